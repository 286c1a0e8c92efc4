"""The Zero-to-JupyterHub values agree with the single-machine hub (no cluster needed).

The chart turns ``hub.config`` into traitlets config, ``hub.loadRoles`` into
``c.JupyterHub.load_roles``, ``hub.services`` into ``c.JupyterHub.services`` and
``singleuser`` into KubeSpawner settings; these tests render the same pieces and compare
them with what :func:`gai_research.hub.configure.configure` builds.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
import yaml
from traitlets.config import Config

from gai_research.config import Settings, load_settings
from gai_research.hub import roles
from gai_research.hub.boundaries import research_dirs, restricted_dirs
from gai_research.hub.configure import configure
from gai_research.hub.settings import HubSettings
from gai_research.hub.spawners import user_environment

VALUES = Path(__file__).resolve().parents[1] / "deploy" / "z2jh-values.yaml"
# keys the chart accepts at each level we use (from the chart's schema; a typo fails here)
CHART_KEYS = {
    "": {"hub", "proxy", "singleuser", "cull", "scheduling", "prePuller", "ingress"},
    "hub": {
        "image",
        "db",
        "config",
        "loadRoles",
        "services",
        "extraConfig",
        "networkPolicy",
        "extraEnv",
        "cookieSecret",
    },
    "singleuser": {
        "image",
        "defaultUrl",
        "uid",
        "fsGid",
        "allowPrivilegeEscalation",
        "memory",
        "cpu",
        "extraEnv",
        "storage",
        "lifecycleHooks",
        "networkPolicy",
        "cmd",
    },
    "singleuser.storage": {
        "type",
        "capacity",
        "homeMountPath",
        "extraVolumes",
        "extraVolumeMounts",
        "dynamic",
        "static",
    },
    "cull": {"enabled", "timeout", "every", "concurrency", "users", "adminUsers", "maxAge"},
}
POD_HOME = PurePosixPath("/srv/gai")


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


@pytest.fixture
def local(settings: Settings) -> Config:
    c = Config()
    configure(c, settings)
    return c


@pytest.mark.parametrize("section", sorted(CHART_KEYS))
def test_only_keys_the_chart_knows(values: dict, section: str) -> None:
    node = values
    for part in filter(None, section.split(".")):
        node = node[part]
    assert set(node) <= CHART_KEYS[section]


def test_the_same_roles_and_groups(values: dict, local: Config) -> None:
    rendered = [{"name": name, **spec} for name, spec in values["hub"]["loadRoles"].items()]
    # z2jh defines the culler's role itself (cull.enabled); everything else must match
    expected = [r for r in local.JupyterHub.load_roles if r["name"] != roles.CULLER_SERVICE]
    expected = [
        {**r, "users": ["gai-admin"]} if r["name"] == "platform-admin" else r for r in expected
    ]
    assert sorted(rendered, key=lambda r: r["name"]) == sorted(expected, key=lambda r: r["name"])
    config = Config(values["hub"]["config"])
    assert config.JupyterHub.load_groups == local.JupyterHub.load_groups
    assert config.JupyterHub.custom_scopes == local.JupyterHub.custom_scopes


def test_the_same_sign_up_rules(values: dict, local: Config) -> None:
    config = Config(values["hub"]["config"])
    assert config.JupyterHub.authenticator_class == local.JupyterHub.authenticator_class
    assert config.NativeAuthenticator == local.NativeAuthenticator
    assert config.Authenticator.allow_all is True
    assert config.GaiNativeAuthenticator.default_group == HubSettings().default_group
    assert config.KubeSpawner.disable_user_config is True


def test_the_same_mlflow_service(values: dict, local: Config) -> None:
    service = values["hub"]["services"]["mlflow"]
    (mine,) = [s for s in local.JupyterHub.services if s["name"] == roles.MLFLOW_SERVICE]
    assert service["oauth_no_confirm"] is mine["oauth_no_confirm"] is True
    assert service["oauth_client_allowed_scopes"] == mine["oauth_client_allowed_scopes"]
    assert "apiToken" not in service  # secrets live in site-secrets.yaml, never here
    extra = "".join(values["hub"]["extraConfig"].values())
    assert "server_token_scopes" in extra and "MLFLOW_TRACKING_TOKEN" in extra


def test_the_same_environment(values: dict, settings: Settings) -> None:
    pod = load_settings(home=Path(str(POD_HOME)))
    mine = user_environment(pod)
    env = values["singleuser"]["extraEnv"]
    machine_only = {
        "PATH",
        "JUPYTER_PATH",
        "JUPYTER_CONFIG_PATH",
        "MLFLOW_TRACKING_TOKEN",
        "GAI_CONFIG",
    }
    assert set(mine) - machine_only <= set(env)
    assert env["GAI_HOME"] == str(POD_HOME)
    for name in set(mine) - machine_only - {"GAI_HOME", "GAI_MLFLOW_URI", "MLFLOW_TRACKING_URI"}:
        assert env[name] == mine[name], name
    assert env["MLFLOW_TRACKING_URI"] == env["GAI_MLFLOW_URI"]
    assert env["MLFLOW_TRACKING_URI"].endswith("/services/mlflow")
    assert not any("KEY" in name for name in env)


def test_the_same_limits_and_culler(values: dict) -> None:
    hub = HubSettings()
    assert values["singleuser"]["memory"]["limit"] == hub.mem_limit
    assert float(values["singleuser"]["cpu"]["limit"]) == hub.cpu_limit
    assert values["cull"]["enabled"] is True
    assert values["cull"]["timeout"] == hub.idle_timeout_s
    assert values["cull"]["every"] == hub.cull_every_s
    assert values["cull"]["users"] is False


def test_volumes_mount_research_data_read_only_and_identified_data_never(values: dict) -> None:
    pod = load_settings(home=Path(str(POD_HOME)))
    storage = values["singleuser"]["storage"]
    mounts = {m["mountPath"]: m for m in storage["extraVolumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"] for v in storage["extraVolumes"]}
    for path in research_dirs(pod):
        mount = mounts[str(path)]
        assert mount.get("readOnly") is True, path
        assert claims[mount["name"]].get("readOnly") is True, path
    assert mounts[str(POD_HOME / "cohorts")].get("readOnly") is not True
    forbidden = [PurePosixPath(str(p)) for p in [*restricted_dirs(pod), pod.mlflow_dir]]
    for mount_path in mounts:
        for closed in forbidden:
            assert not PurePosixPath(mount_path).is_relative_to(closed), mount_path
            assert not closed.is_relative_to(PurePosixPath(mount_path)), mount_path
    assert {v["name"] for v in storage["extraVolumes"]} == {m["name"] for m in mounts.values()}


def test_user_pods_are_unprivileged(values: dict) -> None:
    singleuser = values["singleuser"]
    assert singleuser["uid"] != 0
    assert singleuser["allowPrivilegeEscalation"] is False
    assert singleuser["defaultUrl"] == "/lab"
