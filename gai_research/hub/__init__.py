"""The shared JupyterHub and its MLflow service: accounts, roles, boundaries, one login.

``jupyterhub_config.py`` at the repository root calls :func:`gai_research.hub.configure.configure`,
which builds the whole hub configuration from the platform settings (``GAI_HOME``,
``GAI_HUB__*``). The modules, one idea each:

- :mod:`~gai_research.hub.settings`: ``HubSettings``, the ``hub`` section of the settings;
- :mod:`~gai_research.hub.state`: the hub's private folder ``HOME/hub`` (database, cookie
  secret, bootstrap admin passwords, the MLflow socket);
- :mod:`~gai_research.hub.roles`: groups, RBAC roles and scopes, services' least privilege;
- :mod:`~gai_research.hub.spawners` and :mod:`~gai_research.hub.provision`: how a user's
  server starts, with which environment and limits, and what its home holds;
- :mod:`~gai_research.hub.auth`: sign-up with admin approval (NativeAuthenticator), hardened;
- :mod:`~gai_research.hub.mlflow_rules`, :mod:`~gai_research.hub.mlflow_proxy`,
  :mod:`~gai_research.hub.mlflow_service`: MLflow behind the hub's login;
- :mod:`~gai_research.hub.boundaries`: who may read and write which part of the home;
- :mod:`~gai_research.hub.launch`: what ``gai hub`` does (checks, start, status, stop).

Importing this package is cheap (no JupyterHub, tornado or MLflow import).
"""
