"""Plain data passed between the store, the catalog writer, snapshots and their callers.

This module imports nothing heavy.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gai_research.store.errors import LabelError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "IngestRun",
    "InstanceRows",
    "InstanceStore",
    "LabelKind",
    "LabelRow",
    "ReconcileReport",
    "Snapshot",
    "StoreEntry",
    "StoredFile",
]


@dataclass(frozen=True)
class StoredFile:
    """One file in the store: where it is, what it holds, and whether this write created it."""

    relpath: str  # posix path relative to the store folder
    path: Path
    size: int
    sha256: str
    new: bool


@dataclass(frozen=True)
class StoreEntry:
    """A file found by walking the store."""

    relpath: str
    size: int


@runtime_checkable
class InstanceStore(Protocol):
    """Where pseudonymized files live. :class:`gai_research.store.FileStore` is the local one."""

    root: Path

    def relpath(self, study_uid: str, series_uid: str, sop_uid: str) -> str: ...

    def path(self, relpath: str) -> Path: ...

    def write_instance(self, dataset: Dataset, *, replace: bool = False) -> StoredFile: ...

    def write_bytes(self, data: bytes, *, replace: bool = False) -> StoredFile: ...

    def iter_files(self) -> Iterator[StoreEntry]: ...

    def temp_files(self) -> Iterator[str]: ...


@dataclass(frozen=True)
class InstanceRows:
    """The catalog rows one pseudonymized instance contributes (one per table)."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


class LabelKind(StrEnum):
    """What a label row describes; each kind has its required fields."""

    STUDY = "study"  # study-level class: value 0/1 (or a score)
    NODULE = "nodule"  # CT nodule: x_mm, y_mm, z_mm, diameter_mm
    FINDING = "finding"  # 2-D image finding: sop_uid, row_px, col_px
    VOLUME = "volume"  # a measured volume: volume_ml

    @property
    def required(self) -> tuple[str, ...]:
        return _REQUIRED[self]


_REQUIRED = {
    LabelKind.STUDY: ("value",),
    LabelKind.NODULE: ("x_mm", "y_mm", "z_mm", "diameter_mm"),
    LabelKind.FINDING: ("sop_uid", "row_px", "col_px"),
    LabelKind.VOLUME: ("volume_ml",),
}


@dataclass(frozen=True)
class LabelRow:
    """One reference label. ``extra`` holds anything else (e.g. BI-RADS) as a JSON object."""

    study_uid: str
    kind: LabelKind | str
    name: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    value: float | None = None
    x_mm: float | None = None
    y_mm: float | None = None
    z_mm: float | None = None
    diameter_mm: float | None = None
    row_px: float | None = None
    col_px: float | None = None
    frame: int | None = None
    laterality: str | None = None
    view: str | None = None
    volume_ml: float | None = None
    source: str | None = None
    extra: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, row: LabelRow | Mapping[str, Any]) -> LabelRow:
        """A LabelRow from itself or a mapping with the same field names."""
        if isinstance(row, LabelRow):
            return row
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise LabelError(
                f"unknown label field {unknown[0]!r}",
                hint=f"label fields are {', '.join(sorted(allowed))}; put the rest in extra",
            )
        try:
            return cls(**row)
        except TypeError as exc:
            raise LabelError(
                f"incomplete label row: {exc}", hint="give study_uid and kind"
            ) from None

    def validated(self) -> dict[str, Any]:
        """The row as catalog columns; raises :class:`LabelError` when a required field is missing."""
        try:
            kind = LabelKind(str(self.kind).lower())
        except ValueError:
            choices = ", ".join(k.value for k in LabelKind)
            raise LabelError(
                f"unknown label kind {self.kind!r}", hint=f"use one of {choices}"
            ) from None
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["kind"] = kind.value
        if not self.study_uid:
            raise LabelError("a label needs a study_uid", hint="name the pseudonymous study")
        for name in kind.required:
            value = values[name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise LabelError(
                    f"a {kind.value} label needs {name}",
                    hint=f"{kind.value} labels need {', '.join(kind.required)}",
                )
        if self.extra is not None:
            if not isinstance(self.extra, Mapping):
                raise LabelError("label extra must be a mapping", hint="pass a dict of JSON values")
            values["extra"] = json.dumps(dict(self.extra), sort_keys=True, ensure_ascii=False)
        return values


@dataclass(frozen=True)
class IngestRun:
    """One ingest run, for the ``ingest_runs`` table and incremental sync.

    ``synced_through``: when the run succeeded, every study dated up to this day has
    been fetched from ``source``; the next incremental sync starts after it.
    """

    site: str
    source: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    status: str = "ok"  # ok | failed
    counts: Mapping[str, int] = field(default_factory=dict)
    synced_through: dt.date | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class ReconcileReport:
    """Where the catalog and the store disagree. ``ok`` when they agree."""

    instances_checked: int = 0
    files_checked: int = 0
    missing: list[str] = field(default_factory=list)  # instance row, no file
    size_mismatch: list[str] = field(default_factory=list)
    hash_mismatch: list[str] = field(default_factory=list)  # only with verify_hashes
    orphans: list[str] = field(default_factory=list)  # file, no instance row
    temp_files: list[str] = field(default_factory=list)  # left by an interrupted write
    inconsistent_series: list[str] = field(default_factory=list)  # counts out of date
    duplicate_keys: list[str] = field(default_factory=list)  # "table: key" seen twice

    PROBLEMS = (
        "missing",
        "size_mismatch",
        "hash_mismatch",
        "orphans",
        "temp_files",
        "inconsistent_series",
        "duplicate_keys",
    )

    @property
    def ok(self) -> bool:
        return not any(getattr(self, name) for name in self.PROBLEMS)

    def summary(self) -> str:
        found = [
            f"{len(getattr(self, n))} {n.replace('_', ' ')}"
            for n in self.PROBLEMS
            if getattr(self, n)
        ]
        head = f"{self.instances_checked} instance rows, {self.files_checked} files"
        return f"{head}: " + (", ".join(found) if found else "catalog and store agree")


@dataclass(frozen=True)
class Snapshot:
    """One published, immutable snapshot of the catalog, named by its content hash."""

    id: str  # sha256 hex of the manifest's content part
    path: Path
    created_at: str  # ISO 8601, UTC; not part of the hash
    schema_version: int
    tables: Mapping[str, int]  # table -> rows
    files: Mapping[str, str]  # table -> sha256 of its Parquet file
    created: bool = False  # True when publish_snapshot wrote it just now

    @property
    def short(self) -> str:
        return self.id[:12]

    def file(self, table: str) -> Path:
        return self.path / f"{table}.parquet"
