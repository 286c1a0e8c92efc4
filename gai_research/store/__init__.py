"""The pseudonymized file store and the DuckDB catalog with immutable snapshots.

Writers (ingest only)::

    with CatalogWriter(settings) as writer, writer.batch():
        stored = writer.store.write_instance(dataset)      # atomic, idempotent
        writer.add_instance(dataset, Site.SUWON, stored)  # rows from the dataset
    writer.publish_snapshot()

Readers (researchers, evaluations) never open the writer's database::

    with open_snapshot(settings) as snap:                 # or open_snapshot(settings, "3f2a9c")
        snap.df("SELECT * FROM studies WHERE site = 'SUWON'")

Importing this package is cheap: DuckDB and pyarrow load with the first name that
needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gai_research.store.errors import (
    CatalogBusyError,
    CatalogMissingError,
    DuplicateInstanceError,
    InvalidDatasetError,
    LabelError,
    NotPseudonymizedError,
    QueryError,
    SnapshotNotFoundError,
    StoreError,
)
from gai_research.store.layout import FileStore
from gai_research.store.types import (
    IngestRun,
    InstanceStore,
    LabelKind,
    LabelRow,
    ReconcileReport,
    Snapshot,
    StoredFile,
)

if TYPE_CHECKING:
    from gai_research.store.catalog import CatalogWriter
    from gai_research.store.reader import SnapshotReader, catalog_stats, open_snapshot
    from gai_research.store.snapshot import list_snapshots, publish_snapshot

__all__ = [
    "CatalogBusyError",
    "CatalogMissingError",
    "CatalogWriter",
    "DuplicateInstanceError",
    "FileStore",
    "IngestRun",
    "InstanceStore",
    "InvalidDatasetError",
    "LabelError",
    "LabelKind",
    "LabelRow",
    "NotPseudonymizedError",
    "QueryError",
    "ReconcileReport",
    "Snapshot",
    "SnapshotNotFoundError",
    "SnapshotReader",
    "StoreError",
    "StoredFile",
    "catalog_stats",
    "list_snapshots",
    "open_snapshot",
    "publish_snapshot",
]

_LAZY = {
    "CatalogWriter": "gai_research.store.catalog",
    "SnapshotReader": "gai_research.store.reader",
    "catalog_stats": "gai_research.store.reader",
    "open_snapshot": "gai_research.store.reader",
    "list_snapshots": "gai_research.store.snapshot",
    "publish_snapshot": "gai_research.store.snapshot",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
