"""Snapshots: content hashes, pinned and latest, prefixes, read-only handles, concurrency."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from gai_research.config import Settings, load_settings
from gai_research.home import init_home
from gai_research.store import (
    CatalogBusyError,
    CatalogMissingError,
    CatalogWriter,
    QueryError,
    SnapshotNotFoundError,
    StoreError,
    list_snapshots,
    open_snapshot,
    publish_snapshot,
)
from gai_research.store.snapshot import latest_snapshot_id, snapshots_dir
from tests.test_store_support import ct_series, mg_image

REPO = Path(__file__).resolve().parents[1]
WHEN = dt.datetime(2026, 12, 1, 9, 30)


def ingest(writer: CatalogWriter, datasets, site: str = "SUWON") -> None:
    with writer.batch():
        for ds in datasets:
            writer.add_instance(ds, site, writer.store.write_instance(ds), ingested_at=WHEN)


def cohort() -> list:
    return ct_series(4) + [
        mg_image(lat, view, patient="PSN-0002", study="mg", series=f"{lat}{view}")
        for lat in "LR"
        for view in ("CC", "MLO")
    ]


@pytest.fixture
def writer(settings: Settings) -> Iterator[CatalogWriter]:
    init_home(settings)
    with CatalogWriter(settings) as catalog:
        ingest(catalog, cohort())
        catalog.add_labels(
            "breast_mg", [{"study_uid": cohort()[-1].StudyInstanceUID, "kind": "study", "value": 1}]
        )
        yield catalog


def count(settings: Settings, snapshot: str | None = None, table: str = "instances") -> int:
    with open_snapshot(settings, snapshot) as reader:
        return reader.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()


def test_publishing_unchanged_content_returns_the_same_snapshot(writer: CatalogWriter) -> None:
    first = writer.publish_snapshot()
    files = {p.name: p.stat().st_mtime_ns for p in first.path.iterdir()}
    second = writer.publish_snapshot()
    assert first.created and not second.created
    assert second.id == first.id
    assert {p.name: p.stat().st_mtime_ns for p in second.path.iterdir()} == files
    assert sorted(files) == sorted(
        [
            "manifest.json",
            "patients.parquet",
            "studies.parquet",
            "series.parquet",
            "instances.parquet",
            "labels.parquet",
        ]
    )
    assert all(stat.S_IMODE(first.file(t).stat().st_mode) == 0o444 for t in first.tables)
    assert first.tables == {"patients": 2, "studies": 2, "series": 5, "instances": 8, "labels": 1}


def test_a_change_gives_a_new_hash_and_moves_latest(
    writer: CatalogWriter, settings: Settings
) -> None:
    old = writer.publish_snapshot()
    ingest(writer, ct_series(2, study="s9", series="x"))
    new = writer.publish_snapshot()
    assert new.id != old.id
    assert latest_snapshot_id(settings) == new.id
    assert count(settings) == 10
    assert count(settings, old.id) == 8  # pinned: unchanged


def test_the_hash_depends_on_content_not_on_ingest_order(tmp_path: Path) -> None:
    ids = []
    for name, order in (("a", cohort()), ("b", cohort()[::-1])):
        settings = load_settings(home=tmp_path / name)
        init_home(settings)
        with CatalogWriter(settings) as writer:
            ingest(writer, order[:5])
            ingest(writer, order[5:])
            ids.append(writer.publish_snapshot().id)
    assert ids[0] == ids[1]


def test_publish_opens_the_catalog_read_only_when_no_writer_holds_it(settings: Settings) -> None:
    init_home(settings)
    with CatalogWriter(settings) as writer:
        ingest(writer, cohort())
        with pytest.raises(CatalogBusyError, match="one writer"):
            publish_snapshot(settings)
    snapshot = publish_snapshot(settings)
    assert snapshot.created
    assert [s.id for s in list_snapshots(settings)] == [snapshot.id]


def test_publishing_inside_a_batch_is_refused(writer: CatalogWriter) -> None:
    with pytest.raises(StoreError, match="inside a batch"), writer.batch():
        writer.publish_snapshot()


@pytest.mark.parametrize("form", ["full", "prefix", "upper-prefix", "short-prefix"])
def test_a_snapshot_is_found_by_hash_or_unique_prefix(
    writer: CatalogWriter, settings: Settings, form: str
) -> None:
    old = writer.publish_snapshot()
    ingest(writer, ct_series(1, study="later"))
    writer.publish_snapshot()
    ref = {
        "full": old.id,
        "prefix": old.id[:12],
        "upper-prefix": old.id[:10].upper(),
        "short-prefix": old.id[:6],
    }[form]
    with open_snapshot(settings, ref) as reader:
        assert reader.snapshot.id == old.id


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("0000000000", "no snapshot matches"),
        ("ab", "at least 4 hex digits"),
        ("not-a-hash", "not a snapshot hash"),
    ],
)
def test_an_unknown_snapshot_says_how_to_list_them(
    writer: CatalogWriter, settings: Settings, ref: str, message: str
) -> None:
    writer.publish_snapshot()
    with pytest.raises(SnapshotNotFoundError, match=message) as info:
        open_snapshot(settings, ref)
    assert "gai catalog snapshot --list" in str(info.value) or "hex digits" in str(info.value)


def test_an_ambiguous_prefix_lists_the_matches(writer: CatalogWriter, settings: Settings) -> None:
    writer.publish_snapshot()
    for tail in ("1", "2"):
        fake = snapshots_dir(settings) / ("abcd" + tail * 60)
        fake.mkdir()
        (fake / "manifest.json").write_text("{}")
    with pytest.raises(SnapshotNotFoundError, match="matches 2 snapshots"):
        open_snapshot(settings, "abcd")


@pytest.mark.parametrize("stage", ["no-home", "no-catalog", "nothing-published"])
def test_missing_catalog_or_snapshot_errors(settings: Settings, stage: str) -> None:
    if stage != "no-home":
        init_home(settings)
    if stage == "nothing-published":
        CatalogWriter(settings).close()
    error = SnapshotNotFoundError if stage == "nothing-published" else CatalogMissingError
    with pytest.raises(error) as info:
        open_snapshot(settings)
    assert ("gai catalog snapshot" if stage == "nothing-published" else "ingest") in str(info.value)


def test_a_tampered_manifest_is_detected(writer: CatalogWriter, settings: Settings) -> None:
    snapshot = writer.publish_snapshot()
    manifest = snapshot.path / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"rows":8', '"rows":9'))
    with pytest.raises(StoreError, match="does not match its manifest"):
        open_snapshot(settings)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO labels (task) VALUES ('x')",
        "DELETE FROM studies",
        "CREATE TABLE t AS SELECT 1",
        "COPY studies TO 'out.csv'",
        "ATTACH 'other.duckdb'",
        "SET threads = 1",
        "PRAGMA version",
        "SELECT 1; SELECT 2",
        "",
    ],
)
def test_only_single_read_only_statements_run(
    writer: CatalogWriter, settings: Settings, sql: str
) -> None:
    writer.publish_snapshot()
    with open_snapshot(settings) as reader, pytest.raises(QueryError):
        reader.query(sql)


def test_the_handle_reads_no_other_file(
    writer: CatalogWriter, settings: Settings, tmp_path: Path
) -> None:
    writer.publish_snapshot()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with open_snapshot(settings) as reader:
        with pytest.raises(duckdb.Error, match="disabled"):
            reader.connection.execute(f"SELECT * FROM read_csv('{secret}')").fetchall()
        with pytest.raises(duckdb.Error):
            reader.connection.execute("SET enable_external_access = true")
        table = reader.query(
            "SELECT st.site, se.modality, count(*) AS n FROM instances i JOIN series se USING (series_uid) "
            "JOIN studies st ON st.study_uid = i.study_uid GROUP BY ALL ORDER BY ALL"
        )
        assert table.to_pylist() == [
            {"site": "SUWON", "modality": "CT", "n": 4},
            {"site": "SUWON", "modality": "MG", "n": 4},
        ]
        assert reader.df("SELECT modalities FROM studies ORDER BY n_instances").modalities.tolist()[
            0
        ].tolist() == ["CT"]


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    from gai_research.config import load_settings
    from gai_research.store import CatalogWriter
    from tests.test_store_support import ct_series

    rounds = int(sys.argv[1])
    with CatalogWriter(load_settings()) as writer:
        for r in range(rounds):
            with writer.batch():
                for ds in ct_series(15, study=f"w{r}", series="a"):
                    writer.add_instance(ds, "ANSEONG", writer.store.write_instance(ds))
            writer.publish_snapshot()
            print(r, flush=True)
    """
)


def test_readers_never_fail_while_the_writer_writes_and_publishes(
    writer: CatalogWriter, settings: Settings
) -> None:
    pinned_id = writer.publish_snapshot().id
    writer.close()  # hand the catalog to the writer process
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, "12"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, int] = {}
    last = 0
    reads = 0
    pinned = open_snapshot(settings, pinned_id)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = proc.poll() is not None
            with open_snapshot(settings) as reader:
                n, total = (
                    reader.query(
                        "SELECT (SELECT count(*) FROM instances) AS n, (SELECT sum(n_instances) FROM series) AS total"
                    )
                    .to_pylist()[0]
                    .values()
                )
                assert n == total  # a snapshot is internally consistent
                assert n >= last  # and never goes back
                last = n
                seen[reader.snapshot.id] = n
            assert pinned.query("SELECT count(*) AS n FROM instances").column("n")[0].as_py() == 8
            reads += 1
            if done:
                break
        out, err = proc.communicate(timeout=60)
    finally:
        pinned.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.split() == [str(r) for r in range(12)]
    assert last == 8 + 12 * 15
    assert len(seen) >= 2 and reads >= 5
