"""The whole hub configuration from the platform settings: ``configure(c, settings)``.

``jupyterhub_config.py`` is two lines around this function, so the configuration can be
built and checked in tests without starting anything, and the Zero-to-JupyterHub values
in ``deploy/`` are checked against the same roles, environment and volumes.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.hub import roles
from gai_research.hub.state import HubPaths, prepare_hub_dir

if TYPE_CHECKING:
    from traitlets.config import Config

    from gai_research.config import Settings

__all__ = [
    "AUTHENTICATORS",
    "LOGIN_NOTICE",
    "configure",
    "proxy_command",
    "services",
    "singleuser_command",
]

AUTHENTICATORS = {
    "native": "gai_research.hub.auth.GaiNativeAuthenticator",
    "ldap": "ldapauthenticator.LDAPAuthenticator",  # pip install jupyterhub-ldapauthenticator
    "oauth": "oauthenticator.generic.GenericOAuthenticator",  # pip install oauthenticator
}
LOGIN_NOTICE = (
    "GAI research platform: pseudonymized imaging data of the Suwon, Anseong and Icheon "
    "provincial medical centers. New here? Sign up; an administrator approves your account."
)
REPO = Path(__file__).resolve().parents[2]


def proxy_command(settings: Settings) -> str:
    """configurable-http-proxy: configured, the repository's ``node_modules``, or PATH."""
    if settings.hub.proxy_command:
        return settings.hub.proxy_command
    local = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy") or "configurable-http-proxy"


def singleuser_command() -> list[str]:
    """The user server, from this virtualenv (so its kernel has ``gai_research``)."""
    return [sys.executable, "-m", "jupyterhub.singleuser"]


def _service_environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("GAI_")}
    env["GAI_HOME"] = str(settings.home)
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    if settings.config_file is not None:
        env["GAI_CONFIG"] = str(settings.config_file)
    return env


def services(settings: Settings) -> list[dict[str, Any]]:
    """``c.JupyterHub.services``: MLflow behind the hub's login, and the idle culler."""
    hub = settings.hub
    return [
        {
            "name": roles.MLFLOW_SERVICE,
            "url": f"http://127.0.0.1:{hub.mlflow_port}",
            "command": [sys.executable, "-m", "gai_research.hub.mlflow_service"],
            "environment": _service_environment(settings),
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": list(roles.MLFLOW_SCOPES),
            "display": True,
            "timeout": 60,
            "info": {"description": "MLflow: experiments, runs and the evaluation results"},
        },
        {
            "name": roles.CULLER_SERVICE,
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={hub.idle_timeout_s}",
                f"--cull-every={hub.cull_every_s}",
                "--concurrency=5",
            ],
        },
    ]


def _authenticator(c: Config, settings: Settings, paths: HubPaths, admins: list[str]) -> None:
    hub = settings.hub
    c.JupyterHub.authenticator_class = AUTHENTICATORS[hub.authenticator]
    c.Authenticator.admin_users = set(admins)
    if hub.authenticator != "native":
        return  # the directory's settings come from hub.extra_config
    c.Authenticator.allow_all = True  # approval is the gate: unapproved accounts cannot log in
    c.NativeAuthenticator.enable_signup = True
    c.NativeAuthenticator.open_signup = False
    c.NativeAuthenticator.minimum_password_length = hub.min_password_length
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.allowed_failed_logins = 5
    c.NativeAuthenticator.seconds_before_next_try = 600
    c.GaiNativeAuthenticator.default_group = hub.default_group or ""
    c.GaiNativeAuthenticator.bootstrap_admins = {
        name: str(paths.admin_password(name))
        for name in admins
        if paths.admin_password(name).is_file()
    }


def _spawner(c: Config, settings: Settings, paths: HubPaths) -> None:
    from gai_research.hub.provision import notebooks_source, provision_home, resolve_home
    from gai_research.hub.spawners import user_environment

    hub = settings.hub
    users_root = paths.users if hub.spawner == "demo" else hub.users_dir
    c.Spawner.cmd = singleuser_command()
    c.Spawner.args = ["--MultiKernelManager.default_kernel_name=gai-research"]
    c.Spawner.default_url = "/lab"
    c.Spawner.disable_user_config = True  # a user's ~/.jupyter cannot reconfigure the server
    c.Spawner.mem_limit = hub.mem_limit
    c.Spawner.cpu_limit = hub.cpu_limit
    c.Spawner.environment = user_environment(settings)
    c.Spawner.server_token_scopes = roles.server_token_scopes
    c.Spawner.http_timeout = 90
    c.Spawner.start_timeout = 120

    def provision(spawner: Any) -> None:
        home = resolve_home(settings, Path(users_root or "/"), spawner.user.name)
        provision_home(home, notebooks_source(settings))

    c.Spawner.pre_spawn_hook = provision
    if hub.spawner == "demo":
        c.JupyterHub.spawner_class = "gai_research.hub.spawners.DemoSpawner"
        c.DemoSpawner.users_root = str(paths.users)
    elif hub.spawner == "local-users":
        c.JupyterHub.spawner_class = "gai_research.hub.spawners.LocalUserSpawner"
        c.LocalUserSpawner.users_root = str(hub.users_dir or "")
    else:  # pip install jupyterhub-systemdspawner; cgroup limits, a private /tmp
        from gai_research.hub.boundaries import restricted_dirs

        c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
        c.SystemdSpawner.isolate_tmp = True
        c.SystemdSpawner.isolate_devices = True
        c.SystemdSpawner.disable_user_sudo = True
        c.SystemdSpawner.readonly_paths = [str(settings.store_dir), str(settings.catalog_dir)]
        c.SystemdSpawner.unit_extra_properties = {
            "InaccessiblePaths": " ".join(f"-{p}" for p in restricted_dirs(settings))
        }


def configure(c: Config, settings: Settings) -> HubPaths:
    """Fill ``c`` (a traitlets Config) for the platform's hub; returns the hub's paths."""
    hub = settings.hub
    paths = prepare_hub_dir(settings)
    admins = sorted(set(hub.admin_users))

    c.JupyterHub.bind_url = f"http://{hub.ip}:{hub.port}"
    if hub.public_url:
        c.JupyterHub.public_url = hub.public_url
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub.hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [proxy_command(settings)]
    c.ConfigurableHTTPProxy.pid_file = str(paths.proxy_pid)
    c.JupyterHub.db_url = paths.db_url
    c.JupyterHub.cookie_secret_file = str(paths.cookie_secret)
    c.JupyterHub.pid_file = str(paths.pid)
    c.JupyterHub.cookie_max_age_days = 1
    c.JupyterHub.template_vars = {"announcement_login": LOGIN_NOTICE}

    _authenticator(c, settings, paths, admins)
    c.JupyterHub.custom_scopes = roles.CUSTOM_SCOPES
    c.JupyterHub.load_groups = roles.load_groups()
    c.JupyterHub.load_roles = roles.load_roles(admins)
    _spawner(c, settings, paths)
    c.JupyterHub.services = services(settings)
    return paths
