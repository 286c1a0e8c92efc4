"""``HubSettings``: the ``hub`` section of the platform settings (``GAI_HUB__*``, ``[hub]``).

Every default is the embedded single-machine demo: the hub on 127.0.0.1:8000, user
servers as local processes, sign-up with admin approval, MLflow on SQLite under
``GAI_HOME``. Production changes a few of them (``spawner = "local-users"``, an LDAP or
OAuth authenticator, PostgreSQL and object storage for MLflow); ``docs/hub.md`` lists them.

This module imports pydantic only: :mod:`gai_research.config` imports it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["HubSettings", "parse_bytes"]

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# POSIX-portable login names: what useradd, LDAP/SSSD and JupyterHub all accept
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def parse_bytes(text: str) -> int:
    """``"8G"`` -> 8589934592 (binary units, as JupyterHub's ``mem_limit`` reads them)."""
    match = _BYTES.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size such as 512M, 8G or 1.5T")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


class HubSettings(BaseModel):
    """Where the shared hub listens, how users sign in and start servers, and their limits."""

    model_config = ConfigDict(extra="forbid")

    ip: str = Field("127.0.0.1", description="address the hub's proxy listens on")
    port: int = Field(8000, ge=1, le=65535, description="public port (configurable-http-proxy)")
    hub_port: int = Field(8081, ge=1, le=65535, description="the hub's internal API port")
    proxy_api_port: int = Field(8001, ge=1, le=65535, description="the proxy's REST API port")
    mlflow_port: int = Field(
        5001, ge=1, le=65535, description="loopback port of the MLflow service (hub-authenticated)"
    )
    public_url: str | None = Field(
        None, description="URL users type, e.g. https://gai.example.kr (default http://IP:PORT)"
    )
    spawner: Literal["demo", "local-users", "systemd"] = Field(
        "demo",
        description="demo: servers run as the hub's account; local-users: as the OS user of "
        "the same name (production on one machine); systemd: SystemdSpawner (cgroup limits)",
    )
    authenticator: Literal["native", "ldap", "oauth"] = Field(
        "native",
        description="native: sign-up with admin approval; ldap / oauth: the hospitals' "
        "directory (their settings go in extra_config)",
    )
    extra_config: Path | None = Field(
        None, description="a Python config file loaded after the platform's (LDAP, OAuth, TLS)"
    )
    admin_users: list[str] = Field(
        default_factory=list, description="hub admins (accounts created with `gai hub --admin`)"
    )
    demo_admin: str = Field("gai-admin", description="the admin account `gai hub --demo` makes")
    default_group: str | None = Field(
        "researchers", description="group an approved account without a group joins"
    )
    min_password_length: int = Field(12, ge=8, le=128)
    mem_limit: str = Field("8G", description="memory per user server (each process, locally)")
    cpu_limit: float = Field(2.0, gt=0, description="CPUs per user server")
    idle_timeout_s: int = Field(3600, ge=60, description="idle servers stop after this long")
    cull_every_s: int = Field(300, ge=10, description="how often the idle culler looks")
    users_dir: Path | None = Field(
        None,
        description="folder of the users' homes; default HOME/hub/users in demo mode, "
        "the OS home (passwd) otherwise",
    )
    notebooks_dir: Path | None = Field(
        None, description="example notebooks copied into new homes; default the repo's notebooks/"
    )
    proxy_command: str | None = Field(
        None, description="configurable-http-proxy; default ./node_modules/.bin, then PATH"
    )
    research_group: str = Field("gai-research", description="OS group of every platform user")
    steward_group: str = Field("gai-steward", description="OS group of the data stewards")
    mlflow_backend_store: str | None = Field(
        None, description="MLflow server store; default sqlite:///HOME/mlflow/mlflow.db"
    )
    mlflow_artifacts_destination: str | None = Field(
        None, description="MLflow artifact store; default HOME/mlflow/artifacts (or s3://...)"
    )
    mlflow_workers: int = Field(1, ge=1, le=32, description="MLflow server worker processes")

    @field_validator("mem_limit")
    @classmethod
    def _check_mem(cls, value: str) -> str:
        parse_bytes(value)
        return value.strip()

    @field_validator("admin_users", "demo_admin", "research_group", "steward_group")
    @classmethod
    def _check_names(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            if not _NAME.match(name):
                raise ValueError(
                    f"{name!r} is not a valid account or group name "
                    "(lower-case letters, digits, '_' and '-', at most 32 characters)"
                )
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> HubSettings:
        ports = {
            "port": self.port,
            "hub_port": self.hub_port,
            "proxy_api_port": self.proxy_api_port,
            "mlflow_port": self.mlflow_port,
        }
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"hub.{name} and hub.{seen[port]} are both {port}")
            seen[port] = name
        return self

    @property
    def mem_limit_bytes(self) -> int:
        return parse_bytes(self.mem_limit)

    @property
    def connect_ip(self) -> str:
        """Where local processes reach the proxy (a wildcard bind is reached on loopback)."""
        return "127.0.0.1" if self.ip in ("", "0.0.0.0", "::") else self.ip

    @property
    def url(self) -> str:
        """The URL users open: ``public_url`` or ``http://IP:PORT/``."""
        if self.public_url:
            return self.public_url.rstrip("/") + "/"
        return f"http://{self.connect_ip}:{self.port}/"

    @property
    def local_url(self) -> str:
        """The proxy as seen from this machine (kernels, ``gai hub status``)."""
        return f"http://{self.connect_ip}:{self.port}/"
