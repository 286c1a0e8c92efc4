"""Read-only query handles on published snapshots (never on the writer's database).

A handle is an in-memory DuckDB connection with one view per research table over the
snapshot's Parquet files. Its file access is limited to those files and locked, and
:meth:`SnapshotReader.query` runs single read-only statements only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from gai_research.config import Settings
from gai_research.store.errors import QueryError, StoreError
from gai_research.store.schema import SNAPSHOT_TABLES
from gai_research.store.snapshot import resolve_snapshot
from gai_research.store.types import Snapshot

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "READ_ONLY_STATEMENTS",
    "SnapshotReader",
    "catalog_stats",
    "check_read_only",
    "open_snapshot",
]

READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise :class:`QueryError` unless ``sql`` is one SELECT (or EXPLAIN) statement."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"bad query: {_first_line(exc)}", hint="check the SQL") from None
    if len(statements) != 1:
        raise QueryError(
            f"give exactly one SQL statement (got {len(statements)})", hint="remove the extra ';'"
        )
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise QueryError(
            f"only read-only queries run on a snapshot (got {kind.name})",
            hint="snapshots are immutable; the catalog is written by ingest only",
        )


class SnapshotReader:
    """A read-only query handle on one snapshot. Use it as a context manager."""

    def __init__(self, snapshot: Snapshot, *, threads: int | None = None) -> None:
        self.snapshot = snapshot
        missing = [t.name for t in SNAPSHOT_TABLES if not snapshot.file(t.name).is_file()]
        if missing:
            raise StoreError(
                f"snapshot {snapshot.short} lacks {missing[0]}.parquet",
                hint="it was damaged; open another (`gai catalog snapshot --list`) or republish",
            )
        con = duckdb.connect(":memory:")
        try:
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            paths = []
            for table in SNAPSHOT_TABLES:
                path = str(snapshot.file(table.name))
                paths.append(_literal(path))
                con.execute(
                    f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet({_literal(path)})"
                )
            con.execute(f"SET allowed_paths = [{', '.join(paths)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        self._con = con

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SnapshotReader({self.snapshot.short})"

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection (file access limited to this snapshot's files)."""
        return self._con

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(t.name for t in SNAPSHOT_TABLES)

    def relation(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """A lazy DuckDB relation for a read-only query (chain, then ``.df()``/``.to_arrow_table()``)."""
        check_read_only(self._con, sql)
        try:
            return self._con.sql(sql, params=params)
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {_first_line(exc)}", hint="check the SQL") from None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run one read-only statement; the result as an Arrow table."""
        relation = self.relation(sql, params)
        try:
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {_first_line(exc)}", hint="check the SQL") from None

    def df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run one read-only statement; the result as a pandas DataFrame."""
        return self.query(sql, params).to_pandas()

    def close(self) -> None:
        self._con.close()


def open_snapshot(
    settings: Settings, snapshot: str | None = None, *, threads: int | None = None
) -> SnapshotReader:
    """A read-only handle on the latest snapshot, or on one pinned by its hash or a unique prefix."""
    return SnapshotReader(resolve_snapshot(settings, snapshot), threads=threads)


def _rows(reader: SnapshotReader, sql: str) -> list[dict[str, Any]]:
    return reader.query(sql).to_pylist()


def catalog_stats(reader: SnapshotReader) -> dict[str, Any]:
    """Counts of a snapshot: totals, and by site, by modality and by manufacturer."""
    totals = _rows(
        reader,
        "SELECT (SELECT count(*) FROM patients) AS patients, (SELECT count(*) FROM studies) AS studies, "
        "(SELECT count(*) FROM series) AS series, (SELECT count(*) FROM instances) AS instances, "
        "(SELECT count(*) FROM labels) AS labels, "
        "(SELECT COALESCE(sum(size_bytes), 0)::BIGINT FROM instances) AS bytes",
    )[0]
    by_site = _rows(
        reader,
        "SELECT st.site, count(DISTINCT st.patient_pseudonym) AS patients, "
        "count(DISTINCT st.study_uid) AS studies, COALESCE(sum(st.n_series), 0)::BIGINT AS series, "
        "COALESCE(sum(st.n_instances), 0)::BIGINT AS instances FROM studies st GROUP BY st.site ORDER BY st.site",
    )
    by_modality = _rows(
        reader,
        "SELECT COALESCE(se.modality, '(none)') AS modality, count(DISTINCT se.study_uid) AS studies, "
        "count(*) AS series, COALESCE(sum(se.n_instances), 0)::BIGINT AS instances "
        "FROM series se GROUP BY 1 ORDER BY instances DESC, modality",
    )
    by_manufacturer = _rows(
        reader,
        "SELECT COALESCE(se.manufacturer, '(none)') AS manufacturer, count(*) AS series, "
        "COALESCE(sum(se.n_instances), 0)::BIGINT AS instances "
        "FROM series se GROUP BY 1 ORDER BY instances DESC, manufacturer",
    )
    return {
        "snapshot": reader.snapshot.id,
        "created_at": reader.snapshot.created_at,
        "totals": totals,
        "by_site": by_site,
        "by_modality": by_modality,
        "by_manufacturer": by_manufacturer,
    }
