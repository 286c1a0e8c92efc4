"""The shared JupyterHub of the gai-research platform.

Start it with ``gai hub`` (``gai hub --demo`` for a demo admin), or with
``jupyterhub -f jupyterhub_config.py`` from the virtualenv. Everything comes from the
platform settings (``GAI_HOME``, ``GAI_HUB__*``, the ``[hub]`` table of ``gai.toml``);
``gai_research.hub.configure`` builds the configuration and ``docs/hub.md`` explains it.
Site-specific settings (LDAP or OAuth, TLS) go in the file named by ``hub.extra_config``,
loaded last.
"""

from gai_research.config import load_settings
from gai_research.hub.configure import configure

c = get_config()  # noqa: F821 - provided by JupyterHub's config loader
settings = load_settings()
configure(c, settings)
if settings.hub.extra_config is not None:
    load_subconfig(str(settings.hub.extra_config))  # noqa: F821 - provided by the loader
