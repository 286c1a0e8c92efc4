"""What an evaluation notebook is told besides its per-case table: protocol, model, provenance.

The runner writes one ``context.json`` per notebook job; a notebook reads it through its
``context_path`` parameter and never opens the catalog. Tests write their own, from a
protocol and a :class:`~gai_research.models.types.ModelInfo`, with :func:`make_context`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gai_research.evaluation.errors import EvaluationError
from gai_research.evaluation.protocol import Protocol, parse_protocol
from gai_research.models.types import ModelInfo

__all__ = ["ALL_SITES", "CONTEXT_FORMAT", "EvalContext", "make_context"]

CONTEXT_FORMAT = "gai-evaluation-context/1"
ALL_SITES = "ALL"


@dataclass(frozen=True)
class EvalContext:
    """One notebook job's inputs besides the cases: the validated protocol and provenance."""

    protocol: Protocol
    model: ModelInfo
    site: str = ALL_SITES  # ALL, or the one site the job's table is restricted to
    snapshot: str = ""
    cohort_hash: str = ""
    cohort_name: str = ""
    code_version: str = ""

    @property
    def protocol_hash(self) -> str:
        return self.protocol.content_hash

    @property
    def threshold(self) -> float | None:
        """The operating threshold: the model's own, else the protocol's fallback."""
        ops = self.protocol.operating_points
        if ops.vendor_threshold and self.model.threshold is not None:
            return float(self.model.threshold)
        return ops.threshold

    @property
    def threshold_source(self) -> str:
        ops = self.protocol.operating_points
        if ops.vendor_threshold and self.model.threshold is not None:
            return "model"
        return "protocol" if ops.threshold is not None else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CONTEXT_FORMAT,
            "protocol": self.protocol.canonical(),
            "protocol_hash": self.protocol_hash,
            "model": self.model.to_dict(),
            "site": self.site,
            "snapshot": self.snapshot,
            "cohort_hash": self.cohort_hash,
            "cohort_name": self.cohort_name,
            "code_version": self.code_version,
        }

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "context") -> EvalContext:
        if not isinstance(data, dict) or data.get("format") != CONTEXT_FORMAT:
            raise EvaluationError(
                f"{source} is not an evaluation context ({CONTEXT_FORMAT})",
                hint="the runner writes it; in tests use gai_research.evaluation.context.make_context",
            )
        protocol = parse_protocol(data.get("protocol"), f"{source}: protocol")
        if data.get("protocol_hash") and data["protocol_hash"] != protocol.content_hash:
            raise EvaluationError(
                f"{source}: the protocol does not match its recorded hash",
                hint="write the context again from the protocol file",
            )
        try:
            model = ModelInfo.from_dict(data["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EvaluationError(
                f"{source}: the model information is incomplete ({type(exc).__name__}: {exc})",
                hint="the context needs the model's ModelInfo.to_dict()",
            ) from None
        return cls(
            protocol=protocol,
            model=model,
            site=str(data.get("site") or ALL_SITES),
            snapshot=str(data.get("snapshot") or ""),
            cohort_hash=str(data.get("cohort_hash") or ""),
            cohort_name=str(data.get("cohort_name") or ""),
            code_version=str(data.get("code_version") or ""),
        )

    @classmethod
    def read(cls, path: str | Path) -> EvalContext:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EvaluationError(
                f"cannot read the evaluation context {path.name} ({type(exc).__name__})",
                hint="pass context_path= the context.json the runner wrote",
            ) from None
        return cls.from_dict(data, path.name)


def make_context(
    protocol: Protocol, model: ModelInfo, *, site: str = ALL_SITES, **provenance: str
) -> EvalContext:
    """A context for ``protocol`` and ``model`` (``snapshot=``, ``cohort_hash=``, ...)."""
    return EvalContext(protocol=protocol, model=model, site=site, **provenance)
