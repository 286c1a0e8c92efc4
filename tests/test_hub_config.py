"""The hub's configuration, built from the settings without starting anything."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from gai_research.config import Settings, load_settings
from gai_research.errors import ConfigError
from gai_research.hub import roles
from gai_research.hub.configure import configure, services
from gai_research.hub.errors import HubError
from gai_research.hub.launch import hub_environment
from gai_research.hub.settings import HubSettings, parse_bytes
from gai_research.hub.spawners import mlflow_url, user_environment
from gai_research.hub.state import (
    ensure_admin_password,
    ensure_cookie_secret,
    hub_paths,
    prepare_hub_dir,
    read_secret,
)

REPO = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def configured(settings: Settings) -> Config:
    c = Config()
    configure(c, settings)
    return c


# --- settings --------------------------------------------------------------------------
def test_defaults_are_the_loopback_demo() -> None:
    hub = HubSettings()
    assert (hub.ip, hub.port, hub.spawner, hub.authenticator) == (
        "127.0.0.1",
        8000,
        "demo",
        "native",
    )
    assert hub.url == "http://127.0.0.1:8000/"
    assert hub.mem_limit_bytes == 8 * 1024**3


def test_environment_overrides(gai_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAI_HUB__PORT", "9100")
    monkeypatch.setenv("GAI_HUB__ADMIN_USERS", '["kim-admin"]')
    monkeypatch.setenv("GAI_HUB__SPAWNER", "local-users")
    hub = load_settings().hub
    assert (hub.port, hub.admin_users, hub.spawner) == (9100, ["kim-admin"], "local-users")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mem_limit", "lots", "size"),
        ("admin_users", '["Kim Admin"]', "account"),
        ("hub_port", "8000", "both 8000"),
        ("spawner", "docker", "spawner"),
        ("min_password_length", "4", "min_password_length"),
    ],
)
def test_bad_hub_settings_are_one_error(
    gai_home: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"GAI_HUB__{field.upper()}", value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


@pytest.mark.parametrize(("text", "size"), [("512M", 512 * 1024**2), ("1.5G", 1536 * 1024**2)])
def test_parse_bytes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_the_hub_process_sees_the_same_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = load_settings(
        home=settings.home,
        hub={"port": 9200, "mem_limit": "3G", "users_dir": settings.home / "u"},
    )
    env = hub_environment(custom, ["gai-admin"])
    for name in list(os.environ):
        if name.startswith("GAI_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("GAI_"):
            monkeypatch.setenv(name, value)
    seen = load_settings().hub
    assert seen.model_copy(update={"admin_users": []}) == custom.hub
    assert seen.admin_users == ["gai-admin"]


# --- the hub's private folder ------------------------------------------------------------
def test_hub_folder_is_private_and_its_secret_made_once(settings: Settings) -> None:
    paths = prepare_hub_dir(settings)
    assert _mode(paths.root) == 0o700
    assert _mode(paths.cookie_secret) == 0o600
    secret = paths.cookie_secret.read_text()
    assert len(secret.strip()) == 64
    assert ensure_cookie_secret(paths.cookie_secret) is False
    prepare_hub_dir(settings)
    assert paths.cookie_secret.read_text() == secret


def test_an_open_hub_folder_is_tightened(settings: Settings) -> None:
    paths = prepare_hub_dir(settings)
    paths.root.chmod(0o755)
    prepare_hub_dir(settings)
    assert _mode(paths.root) == 0o700


def test_a_readable_secret_is_refused(settings: Settings) -> None:
    paths = prepare_hub_dir(settings)
    paths.cookie_secret.chmod(0o644)
    with pytest.raises(HubError, match="readable by others"):
        read_secret(paths.cookie_secret)


def test_admin_password_is_generated_once(settings: Settings) -> None:
    paths = prepare_hub_dir(settings)
    path, password = ensure_admin_password(paths, "gai-admin")
    assert password and len(password) >= 20 and _mode(path) == 0o600
    assert read_secret(path) == password
    again, shown = ensure_admin_password(paths, "gai-admin")
    assert again == path and shown is None  # never printed twice
    other = ensure_admin_password(paths, "kim-admin")[1]
    assert other and other != password  # generated, never a fixed default


def test_a_long_home_gets_a_short_socket_path(tmp_path: Path) -> None:
    home = tmp_path / ("deep-" * 20) / "home"
    paths = hub_paths(load_settings(home=home))
    assert len(str(paths.mlflow_socket)) <= 100


# --- the configuration ------------------------------------------------------------------
def test_everything_lives_under_gai_home(configured: Config, settings: Settings) -> None:
    hub_dir = settings.home / "hub"
    assert configured.JupyterHub.db_url == f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
    assert configured.JupyterHub.cookie_secret_file == str(hub_dir / "jupyterhub_cookie_secret")
    assert configured.ConfigurableHTTPProxy.pid_file == str(hub_dir / "proxy.pid")
    assert configured.DemoSpawner.users_root == str(hub_dir / "users")


def test_everything_listens_on_loopback(configured: Config) -> None:
    assert configured.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert configured.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert configured.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    mlflow = services(load_settings())[0]
    assert mlflow["url"].startswith("http://127.0.0.1:")


def test_sign_up_needs_approval_and_strong_passwords(configured: Config) -> None:
    native = configured.NativeAuthenticator
    assert configured.JupyterHub.authenticator_class.endswith("GaiNativeAuthenticator")
    assert native.open_signup is False and native.enable_signup is True
    assert native.minimum_password_length >= 12
    assert native.check_common_password is True
    assert native.allowed_failed_logins > 0
    assert configured.GaiNativeAuthenticator.bootstrap_admins == {}  # nobody pre-approved


def test_bootstrap_admins_come_from_their_password_files(settings: Settings) -> None:
    custom = load_settings(home=settings.home, hub={"admin_users": ["gai-admin"]})
    paths = prepare_hub_dir(custom)
    ensure_admin_password(paths, "gai-admin")
    c = Config()
    configure(c, custom)
    assert c.GaiNativeAuthenticator.bootstrap_admins == {
        "gai-admin": str(paths.admin_password("gai-admin"))
    }
    assert c.Authenticator.admin_users == {"gai-admin"}


def test_roles_give_each_group_its_scopes(configured: Config) -> None:
    by_name = {role["name"]: role for role in configured.JupyterHub.load_roles}
    assert by_name["researcher"]["groups"] == ["researchers"]
    assert "custom:mlflow:write" in by_name["researcher"]["scopes"]
    assert by_name["lead"]["scopes"] == [roles.MLFLOW_ACCESS, "custom:mlflow:read"]
    assert not any(
        s.startswith(("admin", "tokens", "servers")) for s in by_name["steward"]["scopes"]
    )
    assert set(configured.JupyterHub.load_groups) == {"researchers", "leads", "stewards"}
    assert set(configured.JupyterHub.custom_scopes) == {
        "custom:mlflow:read",
        "custom:mlflow:write",
        "custom:mlflow:admin",
    }


def test_services_hold_the_least_privilege(configured: Config) -> None:
    by_name = {role["name"]: role for role in configured.JupyterHub.load_roles}
    assert by_name["idle-culler"]["services"] == ["idle-culler"]
    assert set(by_name["idle-culler"]["scopes"]) == {
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    }
    assert not any("mlflow" in role.get("services", []) for role in by_name.values())
    mlflow, culler = configured.JupyterHub.services
    assert mlflow["oauth_no_confirm"] is True
    assert mlflow["oauth_client_allowed_scopes"] == list(roles.MLFLOW_SCOPES)
    assert "admin" not in mlflow and "admin" not in culler
    assert "--timeout=3600" in culler["command"]


def test_user_servers_get_the_platform_but_not_the_key(
    configured: Config, settings: Settings
) -> None:
    env = configured.Spawner.environment
    assert env["GAI_HOME"] == str(settings.home)
    assert env["MLFLOW_TRACKING_URI"] == env["GAI_MLFLOW_URI"] == mlflow_url(settings)
    assert env["MLFLOW_TRACKING_URI"].endswith("/services/mlflow")
    assert callable(env["MLFLOW_TRACKING_TOKEN"])
    assert (Path(env["JUPYTER_PATH"]) / "kernels" / "gai-research" / "kernel.json").is_file()
    assert (Path(env["JUPYTER_CONFIG_PATH"]) / "jupyter_server_config.json").is_file()
    assert not any("KEY" in name or "secrets" in str(value) for name, value in env.items())
    assert configured.Spawner.mem_limit == "8G"
    assert configured.Spawner.disable_user_config is True
    assert "--MultiKernelManager.default_kernel_name=gai-research" in configured.Spawner.args


def test_server_token_can_reach_mlflow_only() -> None:
    scopes = roles.server_token_scopes()
    assert roles.MLFLOW_ACCESS in scopes
    assert not any(s.startswith(("admin", "tokens", "list:", "read:users")) for s in scopes)


@pytest.mark.parametrize(
    ("spawner", "cls"),
    [
        ("demo", "gai_research.hub.spawners.DemoSpawner"),
        ("local-users", "gai_research.hub.spawners.LocalUserSpawner"),
        ("systemd", "systemdspawner.SystemdSpawner"),
    ],
)
def test_spawner_modes(settings: Settings, spawner: str, cls: str) -> None:
    c = Config()
    configure(c, load_settings(home=settings.home, hub={"spawner": spawner}))
    assert c.JupyterHub.spawner_class == cls


def test_systemd_mode_makes_identified_data_inaccessible(settings: Settings) -> None:
    c = Config()
    configure(c, load_settings(home=settings.home, hub={"spawner": "systemd"}))
    hidden = c.SystemdSpawner.unit_extra_properties["InaccessiblePaths"]
    assert str(settings.vault_dir) in hidden and str(settings.secrets_dir) in hidden
    assert str(settings.store_dir) in c.SystemdSpawner.readonly_paths


def test_jupyterhub_config_file_loads(settings: Settings, tmp_path: Path) -> None:
    extra = tmp_path / "site.py"
    extra.write_text("c.JupyterHub.template_vars = {'site': 'anseong'}\n")
    os.environ["GAI_HUB__EXTRA_CONFIG"] = str(extra)
    try:
        c = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO)).load_config()
    finally:
        del os.environ["GAI_HUB__EXTRA_CONFIG"]
    assert c.JupyterHub.authenticator_class.endswith("GaiNativeAuthenticator")
    assert c.JupyterHub.template_vars == {"site": "anseong"}  # the site file comes last
    assert (settings.home / "hub" / "jupyterhub_cookie_secret").is_file()


def test_user_environment_threads_follow_the_cpu_limit(settings: Settings) -> None:
    custom = load_settings(home=settings.home, hub={"cpu_limit": 3.5})
    assert user_environment(custom)["OMP_NUM_THREADS"] == "4"
