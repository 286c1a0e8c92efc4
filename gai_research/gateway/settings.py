"""The gateway's settings: a sub-model of :class:`gai_research.config.Settings` (``gateway``).

Kept in its own module, free of the rest of the gateway, so the platform settings can
import it without pulling in DICOM or database code. Environment variables use the
nested form ``GAI_GATEWAY__DICOM_PORT=11210``; in ``gai.toml`` a ``[gateway]`` table.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["GatewaySettings"]

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII, no backslash


class GatewaySettings(BaseModel):
    """Where the real-time gateway listens, how it decides a study is complete, how it retries."""

    model_config = ConfigDict(extra="forbid")

    ae_title: str = Field(
        "GAI_GATEWAY", description="AE title the site PACS send to (and that results come from)"
    )
    host: str = Field("127.0.0.1", description="address the gateway's DICOM server binds")
    dicom_port: int = Field(11210, ge=0, le=65535, description="DICOM port (0: a free one)")
    stow_port: int | None = Field(
        None, ge=0, le=65535, description="STOW-RS port (POST /sites/<SITE>/studies); None: off"
    )
    rules_file: Path | None = Field(
        None, description="routing rules YAML; default: the packaged rules.default.yaml"
    )
    quiet_period_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="a study is complete after this long without news"
    )
    complete_on_release: bool = Field(
        True,
        description="a study is also complete when the association that sent it is released "
        "(and no other association is sending it)",
    )
    dispatch_process: bool = Field(
        True,
        description="run the model workers and the result return in a second process "
        "(a second core for this Python work; off: threads of the gateway process)",
    )
    return_retries: int = Field(
        3, ge=0, le=100, description="further tries to store a result back into the PACS"
    )
    return_backoff_s: float = Field(2.0, ge=0.0, le=600.0, description="wait between those tries")
    retention_h: float = Field(
        24.0,
        ge=0.0,
        description="hours identified images stay in the spool after their study is done "
        "(0: removed at once); the latency log is kept",
    )
    mlflow_interval_s: float = Field(
        3600.0, ge=0.0, description="log operations metrics this often while running (0: at stop)"
    )
    sr_series_number: int = Field(
        900, ge=1, le=99999, description="SeriesNumber of the result SR in the PACS"
    )

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        if not _AE_TITLE.match(value) or not value.strip():
            raise ValueError("an AE title is 1-16 printable ASCII characters without '\\'")
        return value
