"""Immutable catalog snapshots: Parquet files named by the sha256 of their content.

``catalog/snapshots/<hash>/`` holds one Parquet file per research table (rows in a
fixed order, fixed row groups) and ``manifest.json``. The hash is the sha256 of the
manifest's ``content`` part (format, schema version, and each table's row count and
file sha256), so the same catalog content gives the same hash, and anyone can verify
a snapshot by hashing its files again. ``created_at`` is kept outside the hash.

Publishing writes into a temporary folder, renames it into place (a folder that
already exists under that hash means nothing changed), then atomically replaces the
``LATEST`` pointer. Published folders are never modified, so a reader that opened one
keeps working while the writer writes and publishes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from gai_research.config import Settings
from gai_research.store.errors import CatalogMissingError, SnapshotNotFoundError, StoreError
from gai_research.store.layout import atomic_write, sha256_file
from gai_research.store.schema import SCHEMA_VERSION, SNAPSHOT_TABLES, Table
from gai_research.store.types import Snapshot

__all__ = [
    "FORMAT",
    "export_snapshot",
    "latest_snapshot_id",
    "list_snapshots",
    "publish_snapshot",
    "resolve_snapshot",
    "snapshots_dir",
]

FORMAT = "gai-catalog-snapshot/1"
MANIFEST = "manifest.json"
LATEST = "LATEST"
ROW_GROUP_ROWS = 131_072
FETCH_ROWS = 131_072
MIN_PREFIX = 4
_UNIQUE_COLUMNS = frozenset({"sop_uid", "path", "sha256"})
_HASH = re.compile(r"^[0-9a-f]{64}$")
_LIST_HINT = "`gai catalog snapshot --list` shows the published snapshots"


def snapshots_dir(settings: Settings) -> Path:
    return settings.catalog_dir / "snapshots"


def publish_snapshot(settings: Settings) -> Snapshot:
    """Publish the catalog of ``settings`` as a snapshot and point ``LATEST`` at it.

    Opens the catalog read-only; while an ingest holds it, this raises
    :class:`CatalogBusyError` - the ingest publishes through
    ``CatalogWriter.publish_snapshot()`` instead. Publishing unchanged content again
    returns the existing snapshot (``created`` False).
    """
    from gai_research.store.catalog import connect_catalog

    con = connect_catalog(settings, read_only=True)
    try:
        return export_snapshot(con, settings)
    finally:
        con.close()


def export_snapshot(con: duckdb.DuckDBPyConnection, settings: Settings) -> Snapshot:
    """Write the research tables seen by ``con`` as a snapshot (see :func:`publish_snapshot`)."""
    root = snapshots_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        content = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "tables": {}}
        for table in SNAPSHOT_TABLES:
            rows = _write_table(con, table, tmp)
            digest = sha256_file(tmp / f"{table.name}.parquet")
            content["tables"][table.name] = {"rows": rows, "sha256": digest}
        snapshot_id = _content_hash(content)
        final = root / snapshot_id
        created = False
        if not (final / MANIFEST).is_file():
            manifest = {
                "id": snapshot_id,
                "content": content,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "created_with": {"duckdb": duckdb.__version__, "pyarrow": pa.__version__},
            }
            atomic_write(tmp / MANIFEST, _dumps(manifest).encode(), mode=0o444)
            for path in tmp.glob("*.parquet"):
                path.chmod(0o444)
            try:
                os.rename(tmp, final)
                created = True
            except OSError:  # a concurrent publish of the same content won the race
                if not (final / MANIFEST).is_file():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write(root / LATEST, (snapshot_id + "\n").encode())
    return dataclasses.replace(read_snapshot(final), created=created)


def _write_table(con: duckdb.DuckDBPyConnection, table: Table, folder: Path) -> int:
    """Stream one table, sorted, into Parquet with row groups of a fixed size.

    Row groups are cut at fixed row counts (not where DuckDB's batches happen to end),
    so the bytes depend on the rows alone. Unique columns (keys, paths, hashes) skip
    dictionary encoding, which would only cost time.
    """
    name, columns, order_by = table.name, table.names, table.order_by
    unique = _UNIQUE_COLUMNS | (set(table.key) if len(table.key) == 1 else set())
    dictionary = [c for c in columns if c not in unique]
    query = f"SELECT {', '.join(columns)} FROM {name} ORDER BY {', '.join(order_by)}"
    reader = con.sql(query).to_arrow_reader(FETCH_ROWS)
    rows = 0
    pending: list[pa.RecordBatch] = []
    held = 0
    with pq.ParquetWriter(
        folder / f"{name}.parquet",
        reader.schema,
        compression="zstd",
        compression_level=1,
        use_dictionary=dictionary,
        write_statistics=True,
    ) as writer:
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            while held >= ROW_GROUP_ROWS:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                group, rest = table.slice(0, ROW_GROUP_ROWS), table.slice(ROW_GROUP_ROWS)
                writer.write_table(group.combine_chunks(), row_group_size=ROW_GROUP_ROWS)
                rows += group.num_rows
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            table = pa.Table.from_batches(pending, schema=reader.schema).combine_chunks()
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
    return rows


def _dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _content_hash(content: dict) -> str:
    return hashlib.sha256(_dumps(content).encode()).hexdigest()


def read_snapshot(folder: Path) -> Snapshot:
    """The snapshot in ``folder``, from its manifest (checked against its name)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        content = manifest["content"]
        tables = content["tables"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"snapshot {folder.name} has no readable manifest ({type(exc).__name__})",
            hint=_LIST_HINT,
        ) from None
    if _content_hash(content) != folder.name:
        raise StoreError(
            f"snapshot {folder.name} does not match its manifest", hint="it was changed; republish"
        )
    return Snapshot(
        id=folder.name,
        path=folder,
        created_at=str(manifest.get("created_at", "")),
        schema_version=int(content["schema_version"]),
        tables={name: int(info["rows"]) for name, info in tables.items()},
        files={name: str(info["sha256"]) for name, info in tables.items()},
    )


def latest_snapshot_id(settings: Settings) -> str | None:
    """The hash ``LATEST`` points at, or None when nothing was published."""
    try:
        text = (snapshots_dir(settings) / LATEST).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text if _HASH.match(text) else None


def _published_ids(settings: Settings) -> list[str]:
    root = snapshots_dir(settings)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if _HASH.match(p.name) and (p / MANIFEST).is_file()
    )


def list_snapshots(settings: Settings) -> list[Snapshot]:
    """Every published snapshot, oldest first."""
    snapshots = [read_snapshot(snapshots_dir(settings) / sid) for sid in _published_ids(settings)]
    return sorted(snapshots, key=lambda s: (s.created_at, s.id))


def resolve_snapshot(settings: Settings, snapshot: str | None = None) -> Snapshot:
    """The latest snapshot, or the one whose hash is ``snapshot`` or starts with it."""
    if snapshot is None:
        sid = latest_snapshot_id(settings)
        if sid is None:
            _raise_nothing_published(settings)
        return read_snapshot(snapshots_dir(settings) / sid)
    prefix = str(snapshot).strip().lower()
    if not re.fullmatch(r"[0-9a-f]+", prefix) or len(prefix) < MIN_PREFIX:
        raise SnapshotNotFoundError(
            f"{snapshot!r} is not a snapshot hash or a prefix of one",
            hint=f"give at least {MIN_PREFIX} hex digits; {_LIST_HINT}",
        )
    matches = [sid for sid in _published_ids(settings) if sid.startswith(prefix)]
    if not matches:
        if not _published_ids(settings):
            _raise_nothing_published(settings)
        raise SnapshotNotFoundError(f"no snapshot matches {prefix}", hint=_LIST_HINT)
    if len(matches) > 1:
        shown = ", ".join(m[:12] for m in matches[:5])
        raise SnapshotNotFoundError(
            f"{prefix} matches {len(matches)} snapshots ({shown})", hint="give more digits"
        )
    return read_snapshot(snapshots_dir(settings) / matches[0])


def _raise_nothing_published(settings: Settings) -> None:
    from gai_research.store.catalog import catalog_path

    if not catalog_path(settings).is_file():
        raise CatalogMissingError(
            f"there is no catalog under {settings.catalog_dir}",
            hint="run ingest to build it (after `gai init`)",
        )
    raise SnapshotNotFoundError(
        "no catalog snapshot has been published yet", hint="run `gai catalog snapshot`"
    )
