"""Typed platform settings: environment (``GAI_*``) over an optional ``gai.toml`` over defaults.

Precedence, highest first: keyword arguments to :func:`load_settings`, environment
variables (``GAI_HOME``, ``GAI_KEY_FILE``, ``GAI_MLFLOW_URI``, nested ones with
``__`` such as ``GAI_SITES__SUWON__PACS__DICOM_PORT``), the TOML file named by
``config_file=`` / ``GAI_CONFIG`` / ``./gai.toml``, then the embedded defaults.
Site entries are merged field by field onto the defaults, so a file or variable
only needs to name what it changes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gai_research.errors import ConfigError
from gai_research.gateway.settings import GatewaySettings
from gai_research.hub.settings import HubSettings
from gai_research.sites import Site

__all__ = ["PacsNode", "Settings", "Site", "SiteSettings", "load_settings"]


_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII, no backslash


class PacsNode(BaseModel):
    """Where a DICOM node listens: its AE title, host, DIMSE port and DICOMweb/HTTP port."""

    ae_title: str
    host: str = "127.0.0.1"
    dicom_port: int = Field(ge=1, le=65535)
    http_port: int = Field(ge=1, le=65535)

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        if not _AE_TITLE.match(value) or not value.strip():
            raise ValueError("an AE title is 1-16 printable ASCII characters without '\\'")
        return value


class SiteSettings(BaseModel):
    """One hospital: its names and its PACS."""

    site: Site
    name_en: str
    name_ko: str
    base_center: bool = False
    pacs: PacsNode


DEFAULT_SITES: dict[str, dict[str, Any]] = {
    "SUWON": {
        "site": "SUWON",
        "name_en": "Gyeonggi Provincial Medical Center Suwon Hospital",
        "name_ko": "경기도의료원 수원병원",
        "pacs": {"ae_title": "SUWON_PACS", "dicom_port": 11201, "http_port": 18201},
    },
    "ANSEONG": {
        "site": "ANSEONG",
        "name_en": "Gyeonggi Provincial Medical Center Anseong Hospital",
        "name_ko": "경기도의료원 안성병원",
        "base_center": True,
        "pacs": {"ae_title": "ANSEONG_PACS", "dicom_port": 11202, "http_port": 18202},
    },
    "ICHEON": {
        "site": "ICHEON",
        "name_en": "Gyeonggi Provincial Medical Center Icheon Hospital",
        "name_ko": "경기도의료원 이천병원",
        "pacs": {"ae_title": "ICHEON_PACS", "dicom_port": 11203, "http_port": 18203},
    },
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Settings(BaseSettings):
    """The effective platform settings. Build them with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="GAI_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        Path("var"), description="platform home (GAI_HOME); relative to the working directory"
    )
    key_file: Path | None = Field(
        None, description="pseudonymization key; default HOME/secrets/pseudonym.key"
    )
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI; default SQLite under HOME/mlflow"
    )
    platform_ae_title: str = Field(
        "GAI_PLATFORM", description="AE title of the platform's own DICOM node"
    )
    platform_dicom_port: int = Field(
        11200, ge=1, le=65535, description="port of the platform's C-STORE SCP"
    )
    sites: dict[Site, SiteSettings] = Field(default_factory=dict)
    dask_address: str | None = Field(
        None,
        description="Dask scheduler for evaluation notebooks (GAI_DASK_ADDRESS); default: local process pool",
    )
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings, description="the real-time PACS-to-AI gateway"
    )
    hub: HubSettings = Field(
        default_factory=HubSettings, description="the shared JupyterHub and its MLflow service"
    )
    orthanc_binary: str = Field(
        "Orthanc", description="Orthanc executable (name on PATH or a path) for the site PACS"
    )
    config_file: Path | None = Field(
        None, description="the TOML file these settings were read from"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_path(getattr(init_settings, "init_kwargs", {}).get("config_file"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _merge_sites(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("sites") or {}
        unknown = [str(k) for k in given if str(k).upper() not in DEFAULT_SITES]
        if unknown:
            Site.parse(unknown[0])  # raises with the list of valid sites
        by_name = {str(k).upper(): v for k, v in given.items()}
        data = dict(data)
        data["sites"] = {
            name: _merge(default, by_name.get(name, {})) for name, default in DEFAULT_SITES.items()
        }
        if data.get("config_file") is None:
            data["config_file"] = _config_path(None)
        return data

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        self.home = self.home.expanduser().absolute()
        if self.key_file is not None:
            self.key_file = self.key_file.expanduser().absolute()
        if self.config_file is not None:
            self.config_file = self.config_file.expanduser().absolute()
        ports: dict[int, str] = {self.platform_dicom_port: "platform DICOM"}
        for site in self.sites.values():
            for port, what in ((site.pacs.dicom_port, "DICOM"), (site.pacs.http_port, "HTTP")):
                if port in ports:
                    raise ValueError(
                        f"port {port} is used twice ({ports[port]} and {site.site} {what})"
                    )
                ports[port] = f"{site.site} {what}"
        return self

    # --- derived locations -----------------------------------------------------------
    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def key_path(self) -> Path:
        return self.key_file if self.key_file is not None else self.secrets_dir / "pseudonym.key"

    @property
    def vault_dir(self) -> Path:
        return self.home / "vault"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def audit_dir(self) -> Path:
        return self.home / "audit"

    @property
    def pacs_dir(self) -> Path:
        return self.home / "pacs"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def site(self, value: Site | str) -> SiteSettings:
        """The settings of one site, by ``Site`` or name."""
        return self.sites[Site.parse(value)]


def _config_path(explicit: Path | str | None) -> Path | None:
    if explicit is not None:
        path = Path(explicit)
    elif os.environ.get("GAI_CONFIG"):
        path = Path(os.environ["GAI_CONFIG"])
    else:
        path = Path("gai.toml")
        return path if path.is_file() else None
    if not path.is_file():
        raise ConfigError(
            f"configuration file {path} not found", hint="check the path or unset GAI_CONFIG"
        )
    return path


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the effective settings; every problem becomes one :class:`ConfigError`."""
    if config_file is not None:
        overrides["config_file"] = config_file
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        what = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"invalid setting {where}: {what}" if where else f"invalid settings: {what}",
            hint="fix it in the environment (GAI_*) or in gai.toml; `gai config` shows the effective values",
        ) from None
    except ValueError as exc:  # tomllib and pydantic-settings parse errors
        raise ConfigError(
            f"cannot read settings: {exc}", hint="check gai.toml and GAI_* variables"
        ) from None
