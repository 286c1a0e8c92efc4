"""Do the catalog and the store agree? The checks behind ``CatalogWriter.reconcile``."""

from __future__ import annotations

import duckdb

from gai_research.store.layout import sha256_file
from gai_research.store.schema import TABLES
from gai_research.store.types import InstanceStore, ReconcileReport

__all__ = ["check_catalog"]


def check_catalog(
    con: duckdb.DuckDBPyConnection, store: InstanceStore, *, verify_hashes: bool = False
) -> ReconcileReport:
    """Compare the instance rows seen by ``con`` with the files in ``store``.

    Finds rows without a file, files without a row, size (and, with ``verify_hashes``,
    sha256) mismatches, temporary files of interrupted writes, series whose counts are
    out of date, and keys that appear twice.
    """
    report = ReconcileReport()
    on_disk = {entry.relpath: entry.size for entry in store.iter_files()}
    rows = con.execute("SELECT path, size_bytes, sha256 FROM instances").fetchall()
    report.instances_checked, report.files_checked = len(rows), len(on_disk)
    in_catalog = set()
    for path, size, digest in rows:
        in_catalog.add(path)
        if path not in on_disk:
            report.missing.append(path)
        elif on_disk[path] != size:
            report.size_mismatch.append(path)
        elif verify_hashes and sha256_file(store.path(path)) != digest:
            report.hash_mismatch.append(path)
    report.orphans = sorted(set(on_disk) - in_catalog)
    report.missing.sort()
    report.size_mismatch.sort()
    report.hash_mismatch.sort()
    report.temp_files = sorted(store.temp_files())
    report.inconsistent_series = [
        uid
        for (uid,) in con.execute(
            "SELECT s.series_uid FROM series s LEFT JOIN (SELECT series_uid, count(*) AS n "
            "FROM instances GROUP BY series_uid) c USING (series_uid) "
            "WHERE s.n_instances IS DISTINCT FROM COALESCE(c.n, 0) ORDER BY 1"
        ).fetchall()
    ]
    for table in TABLES.values():
        keys = ", ".join(table.key)
        dupes = con.execute(
            f"SELECT concat_ws(' ', {keys}) FROM {table.name} GROUP BY ALL "
            f"HAVING count(*) > 1 ORDER BY 1"
        ).fetchall()
        report.duplicate_keys.extend(f"{table.name}: {key}" for (key,) in dupes)
    return report
