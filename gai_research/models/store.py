"""Stored predictions: the catalog table ``predictions`` and mask files beside it.

One row per (model, model_version, snapshot, study_uid): the runner's
:class:`PredictionRecord`, whether the study succeeded or failed (with its reason).
Rows live in the catalog's DuckDB file next to the ingest tables but outside snapshots,
so a model run never changes a snapshot hash. The file has one writer at a time (ingest
holds it while it runs): writes here take the lock for one short transaction and wait
for it, as ingest does.

Masks a model writes are copied to ``HOME/predictions/<model>/<version>/`` under names
made from a hash (never a UID or another identifier); ``Mask.path`` is then relative to
``HOME/predictions``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.models.types import Mask, ModelInfo, Prediction

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from gai_research.config import Settings

__all__ = [
    "STATUSES",
    "PredictionRecord",
    "load_predictions",
    "predictions_dir",
    "predictions_frame",
    "save_records",
    "store_masks",
]

#: ``ok``: a prediction; ``failed``: the model raised or answered garbage; ``timeout``: no
#: answer in time; ``skipped``: not handed over (the model does not take the modality)
STATUSES = ("ok", "failed", "timeout", "skipped")
LOCK_WAIT_S = 60.0
_LOCK_POLL_S = 0.2


@dataclass(frozen=True)
class PredictionRecord:
    """What running one model on one study gave: a prediction, or the reason there is none."""

    model: str
    model_version: str
    snapshot: str  # "" when the study did not come from a catalog snapshot
    study_uid: str
    status: str  # one of STATUSES
    reason: str | None = None  # ModelError.reason, "modality", "error", ...
    error: str | None = None  # the message, no patient identifiers
    latency_s: float | None = None
    prediction: Prediction | None = None
    created_at: dt.datetime = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    info: ModelInfo | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.model_version, self.snapshot, self.study_uid)

    def row(self) -> dict[str, Any]:
        """The record as a ``predictions`` table row."""
        return {
            "model": self.model,
            "model_version": self.model_version,
            "snapshot": self.snapshot or "",
            "study_uid": self.study_uid,
            "status": self.status,
            "reason": self.reason,
            "error": self.error,
            "latency_s": self.latency_s,
            "score": self.prediction.score if self.prediction is not None else None,
            "prediction": self.prediction.to_json() if self.prediction is not None else None,
            "model_info": (
                json.dumps(self.info.to_dict(), sort_keys=True, ensure_ascii=False)
                if self.info is not None
                else None
            ),
            "created_at": _naive_utc(self.created_at),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PredictionRecord:
        info = row.get("model_info")
        text = row.get("prediction")
        return cls(
            model=row["model"],
            model_version=row["model_version"],
            snapshot=row["snapshot"],
            study_uid=row["study_uid"],
            status=row["status"],
            reason=row.get("reason"),
            error=row.get("error"),
            latency_s=row.get("latency_s"),
            prediction=Prediction.from_json(text) if text else None,
            created_at=row["created_at"],
            info=ModelInfo.from_dict(json.loads(info)) if info else None,
        )


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


# --- the table -----------------------------------------------------------------------------
def _connect(settings: Settings, *, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """The catalog database, waiting up to ``wait`` seconds while a writer holds it."""
    from gai_research.store.catalog import connect_catalog
    from gai_research.store.errors import CatalogBusyError

    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            return connect_catalog(settings, read_only=read_only)
        except CatalogBusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_LOCK_POLL_S)


def save_records(
    settings: Settings, records: Iterable[PredictionRecord], *, wait: float = LOCK_WAIT_S
) -> int:
    """Upsert ``records`` into the catalog's ``predictions`` table; returns the rows written.

    A record replaces the stored one with the same key. Waits up to ``wait`` seconds for
    the catalog lock (ingest may hold it).
    """
    import pyarrow as pa

    from gai_research.store.catalog import arrow_schema
    from gai_research.store.schema import PREDICTIONS

    rows = {r.key: r.row() for r in records}  # the last record of a key wins
    if not rows:
        return 0
    table = pa.Table.from_pylist(list(rows.values()), schema=arrow_schema(PREDICTIONS))
    con = _connect(settings, read_only=False, wait=wait)
    try:
        con.execute(PREDICTIONS.ddl())
        con.begin()
        con.register("_incoming_predictions", table)
        try:
            for statement in PREDICTIONS.merge_sql("_incoming_predictions"):
                con.execute(statement)
        finally:
            con.unregister("_incoming_predictions")
        con.commit()
    finally:
        con.close()
    return len(rows)


def load_predictions(
    settings: Settings,
    model: str | None = None,
    version: str | None = None,
    snapshot: str | None = None,
    *,
    study_uids: Sequence[str] | None = None,
    status: str | None = None,
    wait: float = LOCK_WAIT_S,
) -> list[PredictionRecord]:
    """Stored records matching every given filter, ordered by model, version, snapshot, study.

    ``snapshot`` may be a unique prefix of the hash. No catalog (or no predictions table
    yet) gives an empty list.
    """
    from gai_research.store.catalog import catalog_path

    if not catalog_path(settings).is_file():
        return []
    where, params = [], []
    for column, value in (("model", model), ("model_version", version), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if snapshot is not None:
        where.append("starts_with(snapshot, ?)")
        params.append(snapshot)
    if study_uids is not None:
        where.append("list_contains(?, study_uid)")
        params.append(list(study_uids))
    sql = "SELECT * FROM predictions" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY model, model_version, snapshot, study_uid"
    con = _connect(settings, read_only=True, wait=wait)
    try:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'predictions'"
        ).fetchall()[0][0]
        if not found:
            return []
        cursor = con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()
    return [PredictionRecord.from_row(row) for row in rows]


# --- a table for analysis ------------------------------------------------------------------
FRAME_COLUMNS = (
    "model",
    "model_version",
    "snapshot",
    "study_uid",
    "status",
    "reason",
    "error",
    "latency_s",
    "score",
    "positive",
    "scores_json",
    "n_findings",
    "findings_json",
    "volumes_json",
    "masks_json",
    "origin",
    "vendor",
    "created_at",
)


def predictions_frame(records: Iterable[PredictionRecord]) -> pd.DataFrame:
    """One row per record (per study): status, latency, score and the findings as JSON.

    ``positive`` is the study-level call at the model's threshold (None without one).
    """
    import pandas as pd

    rows = []
    for r in records:
        p = r.prediction
        threshold = r.info.threshold if r.info is not None else None
        rows.append(
            {
                "model": r.model,
                "model_version": r.model_version,
                "snapshot": r.snapshot,
                "study_uid": r.study_uid,
                "status": r.status,
                "reason": r.reason,
                "error": r.error,
                "latency_s": r.latency_s,
                "score": p.score if p is not None else None,
                "positive": p.positive(threshold) if p is not None else None,
                "scores_json": json.dumps(dict(p.scores), sort_keys=True) if p else None,
                "n_findings": len(p.findings) if p is not None else None,
                "findings_json": _json([dataclasses.asdict(f) for f in p.findings]) if p else None,
                "volumes_json": _json([dataclasses.asdict(v) for v in p.volumes]) if p else None,
                "masks_json": _json([dataclasses.asdict(m) for m in p.masks]) if p else None,
                "origin": str(r.info.origin) if r.info is not None else None,
                "vendor": r.info.vendor if r.info is not None else None,
                "created_at": r.created_at,
            }
        )
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# --- masks ---------------------------------------------------------------------------------
def predictions_dir(settings: Settings) -> Path:
    """``HOME/predictions``: mask files of stored predictions."""
    return settings.home / "predictions"


def _safe(part: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in part) or "_"


def store_masks(settings: Settings, record: PredictionRecord) -> PredictionRecord:
    """The record with its masks' files copied under ``HOME/predictions/<model>/<version>/``.

    A mask whose ``path`` is an existing file outside that folder is copied to
    ``<sha256 of snapshot, study and mask name>[:24]<suffixes>``; its ``path`` becomes
    relative to ``HOME/predictions``. Other masks are left as they are.
    """
    p = record.prediction
    if p is None or not p.masks:
        return record
    root = predictions_dir(settings)
    folder = root / _safe(record.model) / _safe(record.model_version)
    masks = []
    for index, mask in enumerate(p.masks):
        source = Path(mask.path) if mask.path else None
        if source is None or not source.is_absolute() or not source.is_file():
            masks.append(mask)
            continue
        if source.is_relative_to(root):
            masks.append(dataclasses.replace(mask, path=str(source.relative_to(root))))
            continue
        digest = hashlib.sha256(
            f"{record.snapshot}\0{record.study_uid}\0{index}\0{mask.name}".encode()
        ).hexdigest()[:24]
        suffix = "".join(source.suffixes)[-16:]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{digest}{suffix}"
        shutil.copyfile(source, target)
        masks.append(dataclasses.replace(mask, path=str(target.relative_to(root))))
    return dataclasses.replace(record, prediction=dataclasses.replace(p, masks=tuple(masks)))


def mask_file(settings: Settings, mask: Mask) -> Path | None:
    """The absolute file of a stored mask (None when it has none)."""
    if not mask.path:
        return None
    path = Path(mask.path)
    return path if path.is_absolute() else predictions_dir(settings) / path
