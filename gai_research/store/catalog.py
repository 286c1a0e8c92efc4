"""The catalog writer: the one process (ingest) that writes the DuckDB catalog.

Rows are upserted by UID, so adding the same instance again changes nothing. Every
write recomputes the counts of the series and studies it touched (instances per
series, frames, slices, modalities per study), so they always match the instances.
Rows added inside ``with writer.batch():`` are written in one transaction at its end
(flushed every ``batch_size`` instances, still inside that transaction); outside a
batch, each call is its own transaction.

The writer logs counts only, never a dataset value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from gai_research.config import Settings, Site
from gai_research.store.errors import (
    CatalogBusyError,
    CatalogMissingError,
    InvalidDatasetError,
    LabelError,
    StoreError,
)
from gai_research.store.extract import extract_rows, require_pseudonymized
from gai_research.store.layout import FileStore
from gai_research.store.reconcile import check_catalog
from gai_research.store.schema import (
    SCHEMA_VERSION,
    SNAPSHOT_TABLES,
    TABLES,
    Table,
    create_statements,
)
from gai_research.store.types import (
    IngestRun,
    InstanceRows,
    InstanceStore,
    LabelRow,
    ReconcileReport,
    Snapshot,
    StoredFile,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["CATALOG_FILE", "CatalogWriter", "arrow_schema", "catalog_path", "connect_catalog"]

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.duckdb"
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR[]": pa.list_(pa.string()),
    "DOUBLE[]": pa.list_(pa.float64()),
}
_INSTANCE_TABLES = ("patients", "studies", "series", "instances")


def catalog_path(settings: Settings) -> Path:
    return settings.catalog_dir / CATALOG_FILE


def arrow_schema(table: Table | str, names: Iterable[str] | None = None) -> pa.Schema:
    """The Arrow schema of a table's input columns (or of ``names``), for bulk loads."""
    spec = TABLES[table] if isinstance(table, str) else table
    wanted = tuple(names) if names is not None else spec.input_names
    by_name = {c.name: c for c in spec.columns}
    return pa.schema([(n, _ARROW_TYPES[by_name[n].sql_type]) for n in wanted])


def connect_catalog(settings: Settings, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the catalog database; a missing one or one held by a writer is a one-line error."""
    path = catalog_path(settings)
    if not settings.catalog_dir.is_dir():
        raise CatalogMissingError(
            f"there is no catalog folder {settings.catalog_dir}",
            hint="run `gai init` to create the platform home, then ingest",
        )
    if read_only and not path.is_file():
        raise CatalogMissingError(
            f"there is no catalog at {path}", hint="run ingest to build it (after `gai init`)"
        )
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        if "lock" in str(exc).lower() or "different configuration" in str(exc):
            raise CatalogBusyError(
                f"the catalog {path} is held by another writer",
                hint="there is one writer (ingest): wait for it to finish, or publish from it",
            ) from None
        raise StoreError(f"cannot open the catalog {path}: {exc}", hint="check the file") from None


class _Pending:
    """Rows waiting for the next flush, merged by key ("latest non-null wins")."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in _INSTANCE_TABLES}

    def __len__(self) -> int:
        return len(self.rows["instances"])

    def add(self, rows: InstanceRows) -> None:
        for table, row, key in (
            ("patients", rows.patient, "patient_pseudonym"),
            ("studies", rows.study, "study_uid"),
            ("series", rows.series, "series_uid"),
            ("instances", rows.instance, "sop_uid"),
        ):
            held = self.rows[table].get(row[key])
            if held is None or table == "instances":
                self.rows[table][row[key]] = dict(row)
            else:
                held.update({k: v for k, v in row.items() if v is not None or k not in held})

    def tables(self) -> dict[str, pa.Table]:
        return {
            name: pa.Table.from_pylist(list(rows.values()), schema=arrow_schema(name))
            for name, rows in self.rows.items()
            if rows
        }

    def clear(self) -> None:
        for rows in self.rows.values():
            rows.clear()


class CatalogWriter:
    """Writes the catalog of ``settings`` (one writer at a time; readers use snapshots).

    Use it as a context manager. ``store`` is where files live (the local
    :class:`FileStore` under ``settings.store_dir`` by default).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: InstanceStore | None = None,
        batch_size: int = 10_000,
    ) -> None:
        self.settings = settings
        self.store: InstanceStore = store if store is not None else FileStore(settings.store_dir)
        self.path = catalog_path(settings)
        self.batch_size = batch_size
        self._pending = _Pending()
        self._in_batch = False
        self._con = connect_catalog(settings, read_only=False)
        try:
            self._create_schema()
        except BaseException:
            self._con.close()
            raise

    # --- life cycle --------------------------------------------------------------------
    def __enter__(self) -> CatalogWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (rows of an unfinished batch are not written)."""
        self._pending.clear()
        self._con.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[CatalogWriter]:
        """One transaction: everything added inside is written at the end, or nothing."""
        if self._in_batch:  # nested: part of the outer batch
            yield self
            return
        self._con.begin()
        self._in_batch = True
        try:
            yield self
            self._flush()
            self._con.commit()
        except BaseException:
            self._pending.clear()
            self._con.rollback()
            raise
        finally:
            self._in_batch = False

    # --- instances -----------------------------------------------------------------------
    def add_instance(
        self,
        dataset: Dataset,
        site: Site | str,
        stored: StoredFile,
        *,
        ingested_at: dt.datetime | None = None,
    ) -> None:
        """Add (or update) the rows of one pseudonymized instance whose file is ``stored``.

        Refuses a dataset that is not marked PatientIdentityRemoved YES, and a
        ``stored`` file that is not where the store keeps this dataset's UIDs.
        """
        site = Site.parse(site)
        when = ingested_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = extract_rows(dataset, site.value, stored, ingested_at=when)
        expected = self.store.relpath(
            rows.instance["study_uid"], rows.instance["series_uid"], rows.instance["sop_uid"]
        )
        if stored.relpath != expected:
            raise InvalidDatasetError(
                f"the stored file {stored.relpath} does not hold this dataset ({expected})",
                hint="pass the StoredFile that writing this dataset returned",
            )
        self._pending.add(rows)
        if not self._in_batch:
            with self.batch():
                pass
        elif len(self._pending) >= self.batch_size:
            self._flush()

    def store_instance(
        self, dataset: Dataset, site: Site | str, *, replace: bool = False
    ) -> StoredFile:
        """Write a pseudonymized dataset into the store, then add its catalog rows."""
        require_pseudonymized(dataset)
        Site.parse(site)
        stored = self.store.write_instance(dataset, replace=replace)
        self.add_instance(dataset, site, stored)
        return stored

    def bulk_load(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Upsert whole Arrow tables (the bulk path: imports, benchmarks, scale-out jobs).

        Keys are table names (patients, studies, series, instances, labels); each
        table holds a subset of that table's input columns, including its key.
        Returns the rows given per table.
        """
        unknown = sorted(set(tables) - {t.name for t in SNAPSHOT_TABLES})
        if unknown:
            raise StoreError(
                f"cannot bulk-load table {unknown[0]!r}",
                hint="bulk-load patients, studies, series, instances or labels",
            )
        with self.batch():
            self._flush()
            self._apply(dict(tables))
        return {name: table.num_rows for name, table in tables.items()}

    # --- labels, runs ----------------------------------------------------------------------
    def add_labels(self, task: str, rows: Iterable[LabelRow | Mapping[str, Any]]) -> int:
        """Set the labels of ``task`` for every study named in ``rows`` (replacing its old ones).

        Rows keep their order within a study (``label_index`` 0, 1, ...). Running it
        again with the same rows gives the same table. Returns the rows written.
        """
        task = str(task or "").strip()
        if not task:
            raise LabelError("a label task needs a name", hint="e.g. lung_nodule_ct")
        by_study: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            values = LabelRow.coerce(row).validated()
            by_study.setdefault(values["study_uid"], []).append(values)
        records = []
        for study_uid, items in by_study.items():
            for index, values in enumerate(items):
                records.append(
                    {**values, "task": task, "study_uid": study_uid, "label_index": index}
                )
        if not records:
            return 0
        table = pa.Table.from_pylist(records, schema=arrow_schema("labels"))
        with self.batch():
            self._con.register("_incoming_labels", table)
            try:
                self._con.execute(
                    "DELETE FROM labels WHERE task = ? AND study_uid IN "
                    "(SELECT DISTINCT study_uid FROM _incoming_labels)",
                    [task],
                )
                for statement in TABLES["labels"].merge_sql("_incoming_labels"):
                    self._con.execute(statement)
            finally:
                self._con.unregister("_incoming_labels")
        log.info("labels: %d rows for %d studies of one task", len(records), len(by_study))
        return len(records)

    def record_run(self, run: IngestRun) -> None:
        """Record an ingest run; a successful one with ``synced_through`` moves the sync state."""
        site = Site.parse(run.site).value
        row = {
            "run_id": run.run_id,
            "site": site,
            "source": run.source,
            "started_at": _naive_utc(run.started_at),
            "finished_at": _naive_utc(run.finished_at),
            "status": run.status,
            "counts": json.dumps(dict(run.counts), sort_keys=True),
            "synced_through": run.synced_through,
        }
        with self.batch():
            self._upsert(
                "ingest_runs", pa.Table.from_pylist([row], schema=arrow_schema("ingest_runs"))
            )
            if run.status == "ok" and run.synced_through is not None:
                state = pa.Table.from_pylist(
                    [
                        {
                            "site": site,
                            "source": run.source,
                            "last_sync_date": run.synced_through,
                            "last_run_id": run.run_id,
                            "updated_at": row["finished_at"] or _now(),
                        }
                    ],
                    schema=arrow_schema("sync_state"),
                )
                before = self.last_sync(site, run.source)
                if before is None or before <= run.synced_through:
                    self._upsert("sync_state", state)

    def last_sync(self, site: Site | str, source: str) -> dt.date | None:
        """The last study date fully synced from ``source`` at ``site`` (None: never)."""
        found = self._con.execute(
            "SELECT last_sync_date FROM sync_state WHERE site = ? AND source = ?",
            [Site.parse(site).value, source],
        ).fetchall()
        return found[0][0] if found else None

    # --- checks ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {
            name: self._con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            for name in TABLES
        }

    def reconcile(self, *, verify_hashes: bool = False) -> ReconcileReport:
        """Check that the catalog and the store agree (every row has its file, every file a row).

        ``verify_hashes`` also re-reads every file and compares its sha256 (slow).
        """
        if self._in_batch:
            self._flush()
        report = check_catalog(self._con, self.store, verify_hashes=verify_hashes)
        log.info("reconcile: %s", report.summary())
        return report

    def publish_snapshot(self) -> Snapshot:
        """Publish the committed catalog as a snapshot (see :func:`publish_snapshot`)."""
        from gai_research.store.snapshot import export_snapshot

        if self._in_batch:
            raise StoreError(
                "cannot publish a snapshot inside a batch",
                hint="publish after the `with writer.batch():` block ends",
            )
        return export_snapshot(self._con, self.settings)

    # --- internals -------------------------------------------------------------------------
    def _create_schema(self) -> None:
        for statement in create_statements():
            self._con.execute(statement)
        found = self._con.execute(
            "SELECT value FROM catalog_meta WHERE key = 'schema_version'"
        ).fetchall()
        if not found:
            self._con.execute(
                "INSERT INTO catalog_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
        elif found[0][0] != str(SCHEMA_VERSION):
            raise StoreError(
                f"the catalog {self.path} has schema version {found[0][0]}, this code writes "
                f"{SCHEMA_VERSION}",
                hint="use the matching gai-research version, or rebuild the catalog by ingesting again",
            )

    def _flush(self) -> None:
        if len(self._pending) == 0:
            return
        tables = self._pending.tables()
        self._pending.clear()
        self._apply(tables)
        log.info("catalog: wrote %d instance rows", tables["instances"].num_rows)

    def _apply(self, tables: dict[str, pa.Table]) -> None:
        """Upsert tables (parents first) and refresh the counts of what they touched."""
        con = self._con
        con.execute("CREATE OR REPLACE TEMP TABLE _touched_series (series_uid VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE _touched_studies (study_uid VARCHAR)")
        for name in ("patients", "studies", "series", "instances", "labels"):
            if name not in tables:
                continue
            table = tables[name]
            con.register("_incoming", table)
            try:
                self._check_keys(name, table)
                if name == "series":
                    con.execute(
                        "INSERT INTO _touched_studies SELECT study_uid FROM _incoming UNION "
                        "SELECT s.study_uid FROM series s JOIN _incoming n USING (series_uid)"
                    )
                    con.execute("INSERT INTO _touched_series SELECT series_uid FROM _incoming")
                elif name == "instances":
                    con.execute(
                        "INSERT INTO _touched_series SELECT series_uid FROM _incoming UNION "
                        "SELECT i.series_uid FROM instances i JOIN _incoming n USING (sop_uid)"
                    )
                self._upsert(name, table, source="_incoming")
            finally:
                con.unregister("_incoming")
        self._refresh_counts()

    def _check_keys(self, name: str, table: pa.Table) -> None:
        spec = TABLES[name]
        missing = [k for k in spec.key if k not in table.column_names]
        extra = [c for c in table.column_names if c not in spec.input_names]
        if missing or extra:
            raise StoreError(
                f"table {name}: "
                + (f"key column {missing[0]} missing" if missing else f"unknown column {extra[0]}"),
                hint=f"{name} takes {', '.join(spec.input_names)}",
            )
        keys = ", ".join(spec.key)
        dupes = self._con.execute(
            f"SELECT count(*) FROM (SELECT {keys} FROM _incoming GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        if dupes:
            raise StoreError(
                f"table {name}: {dupes} keys appear more than once in one load",
                hint="give each key once per load",
            )

    def _upsert(self, name: str, table: pa.Table, source: str | None = None) -> None:
        """Upsert ``table`` (already registered as ``source``, or registered here)."""
        if source is None:
            self._con.register("_incoming_one", table)
            try:
                self._upsert(name, table, source="_incoming_one")
            finally:
                self._con.unregister("_incoming_one")
            return
        for statement in TABLES[name].merge_sql(source, table.column_names):
            self._con.execute(statement)

    def _refresh_counts(self) -> None:
        con = self._con
        con.execute(
            "UPDATE series SET n_instances = a.n, n_frames = a.f, "
            "n_slices = CASE WHEN a.p > 0 THEN a.p ELSE a.f END, "
            "extent_mm = CASE WHEN a.p > 1 THEN a.hi - a.lo END, "
            "slice_spacing_mm = CASE WHEN a.p > 1 THEN (a.hi - a.lo) / (a.p - 1) END, "
            "laterality = CASE WHEN a.n_lat = 1 THEN a.lat WHEN a.n_lat > 1 THEN 'B' END, "
            "view_position = CASE WHEN a.n_view = 1 THEN a.view END "
            "FROM (SELECT t.series_uid, count(i.sop_uid)::INTEGER AS n, "
            "COALESCE(sum(COALESCE(i.n_frames, 1)) FILTER (WHERE i.sop_uid IS NOT NULL), 0)::INTEGER AS f, "
            "count(DISTINCT i.slice_position_mm)::INTEGER AS p, "
            "min(i.slice_position_mm) AS lo, max(i.slice_position_mm) AS hi, "
            "count(DISTINCT i.laterality) AS n_lat, min(i.laterality) AS lat, "
            "count(DISTINCT i.view_position) AS n_view, min(i.view_position) AS view "
            "FROM (SELECT DISTINCT series_uid FROM _touched_series) t "
            "LEFT JOIN instances i ON i.series_uid = t.series_uid GROUP BY t.series_uid) a "
            "WHERE series.series_uid = a.series_uid"
        )
        con.execute(
            "INSERT INTO _touched_studies SELECT s.study_uid FROM series s "
            "JOIN (SELECT DISTINCT series_uid FROM _touched_series) t USING (series_uid)"
        )
        con.execute(
            "UPDATE studies SET modalities = a.m, n_series = a.ns, n_instances = a.ni "
            "FROM (SELECT t.study_uid, list_sort(list_distinct(list(s.modality))) AS m, "
            "count(s.series_uid)::INTEGER AS ns, COALESCE(sum(s.n_instances), 0)::INTEGER AS ni "
            "FROM (SELECT DISTINCT study_uid FROM _touched_studies) t "
            "LEFT JOIN series s ON s.study_uid = t.study_uid GROUP BY t.study_uid) a "
            "WHERE studies.study_uid = a.study_uid"
        )


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
