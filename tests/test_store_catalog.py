"""The catalog writer: idempotent upserts, consistent counts, labels, runs, reconcile."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from gai_research.config import Settings
from gai_research.home import init_home
from gai_research.store import (
    CatalogWriter,
    FileStore,
    IngestRun,
    InvalidDatasetError,
    LabelError,
    LabelRow,
    NotPseudonymizedError,
    StoreError,
)
from tests.test_store_support import base, ct_series, ct_slice, enhanced_mr, mg_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def writer(settings: Settings) -> Iterator[CatalogWriter]:
    init_home(settings)
    with CatalogWriter(settings) as catalog:
        yield catalog


def ingest(writer: CatalogWriter, datasets, site: str = "SUWON", **kw) -> None:
    with writer.batch():
        for ds in datasets:
            writer.add_instance(ds, site, writer.store.write_instance(ds), **kw)


def rows(writer: CatalogWriter, sql: str) -> list[tuple]:
    return writer._con.execute(sql).fetchall()


def test_counts_and_modalities_follow_the_instances(writer: CatalogWriter) -> None:
    ingest(writer, ct_series(5))
    assert rows(
        writer, "SELECT n_instances, n_frames, n_slices, slice_spacing_mm, extent_mm FROM series"
    ) == [(5, 5, 5, 1.25, 5.0)]
    ingest(writer, [enhanced_mr(12, series="mr"), *ct_series(2, series="scout")])
    assert rows(writer, "SELECT modalities, n_series, n_instances FROM studies") == [
        (["CT", "MR"], 3, 8)
    ]
    assert rows(writer, "SELECT n_instances, n_frames, n_slices FROM series ORDER BY n_frames") == [
        (2, 2, 2),
        (5, 5, 5),
        (1, 12, 12),
    ]
    assert writer.counts()["patients"] == 1


def test_the_same_instances_twice_change_nothing(writer: CatalogWriter) -> None:
    datasets = [*ct_series(3), mg_image("R", "CC", patient="PSN-0002", study="s2", series="mg")]
    ingest(writer, datasets, ingested_at=dt.datetime(2026, 12, 1))
    tables = ("patients", "studies", "series", "instances")
    before = {t: rows(writer, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    ingest(writer, datasets, ingested_at=dt.datetime(2026, 12, 2))  # a re-run, a day later
    ingest(writer, datasets[:1], ingested_at=dt.datetime(2026, 12, 3))  # outside a batch too
    after = {t: rows(writer, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    assert after == before


def test_a_changed_file_updates_its_row_and_ingest_time(writer: CatalogWriter) -> None:
    ingest(writer, [ct_slice(0)], ingested_at=dt.datetime(2026, 12, 1))
    changed = ct_slice(0)
    changed.SeriesDescription = "reconstructed"
    stored = writer.store.write_instance(changed, replace=True)
    writer.add_instance(changed, "SUWON", stored, ingested_at=dt.datetime(2026, 12, 2))
    assert rows(writer, "SELECT sha256, ingested_at FROM instances") == [
        (stored.sha256, dt.datetime(2026, 12, 2))
    ]
    assert rows(writer, "SELECT description FROM series") == [("reconstructed",)]


def test_a_failed_batch_writes_nothing(writer: CatalogWriter) -> None:
    with pytest.raises(RuntimeError, match="stop"), writer.batch():
        for ds in ct_series(2):
            writer.add_instance(ds, "SUWON", writer.store.write_instance(ds))
        raise RuntimeError("stop")
    assert writer.counts()["instances"] == 0


def test_batches_flush_every_batch_size_rows_in_one_transaction(settings: Settings) -> None:
    init_home(settings)
    with CatalogWriter(settings, batch_size=2) as writer:
        ingest(writer, ct_series(5))
        assert rows(writer, "SELECT n_instances FROM series") == [(5,)]


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
@pytest.mark.parametrize("marker", [None, "NO"])
def test_writer_refuses_a_dataset_not_pseudonymized(
    writer: CatalogWriter, marker: str | None
) -> None:
    stored = writer.store.write_instance(ct_slice(0))
    with pytest.raises(NotPseudonymizedError):
        writer.add_instance(base(marker=marker), "SUWON", stored)
    with pytest.raises(NotPseudonymizedError):
        writer.store_instance(base(marker=marker, sop="other"), "SUWON")
    assert writer.counts()["instances"] == 0


def test_writer_refuses_a_stored_file_of_another_instance(writer: CatalogWriter) -> None:
    stored = writer.store.write_instance(ct_slice(0))
    with pytest.raises(InvalidDatasetError, match="does not hold this dataset"):
        writer.add_instance(ct_slice(1), "SUWON", stored)


def test_store_instance_writes_file_and_rows(writer: CatalogWriter) -> None:
    stored = writer.store_instance(ct_slice(0), "icheon")
    assert stored.path.is_file()
    assert rows(writer, "SELECT site FROM studies") == [("ICHEON",)]


def test_the_writer_logs_no_dataset_values(
    writer: CatalogWriter, caplog: pytest.LogCaptureFixture
) -> None:
    datasets = ct_series(2)
    with caplog.at_level(logging.DEBUG, logger="gai_research"):
        ingest(writer, datasets)
        writer.add_labels(
            "lung_nodule_ct", [LabelRow(datasets[0].StudyInstanceUID, "study", value=1)]
        )
        writer.reconcile()
    text = caplog.text
    assert caplog.records
    for value in (
        "PSN-0001",
        datasets[0].StudyInstanceUID,
        datasets[0].SOPInstanceUID,
        "CHEST",
        "SIEMENS",
    ):
        assert value not in text


LABELS = {
    "study": {"kind": "study", "name": "positive", "value": 1.0, "extra": {"birads": 4}},
    "nodule": {
        "kind": "nodule",
        "name": "nodule",
        "x_mm": 10.5,
        "y_mm": -20.0,
        "z_mm": -95.0,
        "diameter_mm": 8.0,
    },
    "finding": {
        "kind": "finding",
        "name": "mass",
        "row_px": 120,
        "col_px": 88,
        "laterality": "L",
        "view": "CC",
    },
    "volume": {"kind": "volume", "name": "hippocampus_l", "volume_ml": 3.4},
}


@pytest.mark.parametrize("kind", sorted(LABELS))
def test_labels_of_each_kind_are_stored_and_queryable(writer: CatalogWriter, kind: str) -> None:
    ds = ct_slice(0)
    row = {"study_uid": ds.StudyInstanceUID, "sop_uid": ds.SOPInstanceUID, **LABELS[kind]}
    assert writer.add_labels("task_a", [row]) == 1
    stored = writer._con.execute("SELECT * FROM labels").fetch_df().iloc[0]
    assert (stored["task"], stored["kind"], stored["label_index"]) == ("task_a", kind, 0)
    for field, value in LABELS[kind].items():
        if field == "extra":
            assert rows(writer, "SELECT json_extract(extra, '$.birads')::INTEGER FROM labels") == [
                (4,)
            ]
        else:
            assert stored[field] == value


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"kind": "study"}, "needs value"),
        ({"kind": "nodule", "x_mm": 1, "y_mm": 2, "z_mm": 3}, "needs diameter_mm"),
        ({"kind": "finding", "row_px": 1, "col_px": 2}, "needs sop_uid"),
        ({"kind": "volume"}, "needs volume_ml"),
        ({"kind": "box", "value": 1}, "unknown label kind"),
        ({"kind": "study", "value": 1, "birads": 4}, "unknown label field"),
        ({"kind": "study", "value": 1, "extra": [1]}, "extra must be a mapping"),
    ],
)
def test_invalid_labels_are_refused(writer: CatalogWriter, row: dict, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        writer.add_labels("task_a", [{"study_uid": "2.25.1", **row}])
    assert writer.counts()["labels"] == 0


def test_labels_replace_a_study_task_and_keep_others(writer: CatalogWriter) -> None:
    nodule = {"kind": "nodule", "x_mm": 1, "y_mm": 2, "z_mm": 3, "diameter_mm": 4}
    writer.add_labels(
        "lung_nodule_ct",
        [{"study_uid": "2.25.1", **nodule}] * 2 + [{"study_uid": "2.25.2", **nodule}],
    )
    writer.add_labels("stroke_ct", [{"study_uid": "2.25.1", "kind": "study", "value": 0}])
    writer.add_labels("lung_nodule_ct", [{"study_uid": "2.25.1", **nodule, "diameter_mm": 9}])
    assert rows(
        writer, "SELECT task, study_uid, label_index, diameter_mm FROM labels ORDER BY ALL"
    ) == [
        ("lung_nodule_ct", "2.25.1", 0, 9.0),
        ("lung_nodule_ct", "2.25.2", 0, 4.0),
        ("stroke_ct", "2.25.1", 0, None),
    ]


def test_runs_move_the_sync_state_forward_only(writer: CatalogWriter) -> None:
    start = dt.datetime(2026, 6, 1, 1, tzinfo=dt.UTC)
    assert writer.last_sync("SUWON", "pacs") is None
    writer.record_run(
        IngestRun("SUWON", "pacs", start, start, "ok", {"stored": 10}, dt.date(2026, 5, 31))
    )
    writer.record_run(
        IngestRun("SUWON", "pacs", start, start, "failed", {"stored": 0}, dt.date(2026, 6, 30))
    )
    writer.record_run(
        IngestRun("SUWON", "pacs", start, start, "ok", {"stored": 1}, dt.date(2026, 4, 30))
    )
    writer.record_run(IngestRun("icheon", "pacs", start, start, "ok", {}, dt.date(2026, 1, 31)))
    assert writer.last_sync("suwon", "pacs") == dt.date(2026, 5, 31)
    assert writer.last_sync("ICHEON", "pacs") == dt.date(2026, 1, 31)
    assert writer.last_sync("ANSEONG", "pacs") is None
    runs = rows(
        writer,
        "SELECT status, json_extract(counts, '$.stored')::INTEGER FROM ingest_runs WHERE site = 'SUWON' ORDER BY ALL",
    )
    assert runs == [("failed", 0), ("ok", 1), ("ok", 10)]


def _missing(writer: CatalogWriter, store: FileStore) -> str:
    path = next(store.iter_files()).relpath
    store.path(path).unlink()
    return path


def _orphan(writer: CatalogWriter, store: FileStore) -> str:
    return store.write_instance(ct_slice(0, study="lost")).relpath


def _resized(writer: CatalogWriter, store: FileStore) -> str:
    path = next(store.iter_files()).relpath
    with open(store.path(path), "ab") as handle:
        handle.write(b"\0\0")
    return path


def _temp(writer: CatalogWriter, store: FileStore) -> str:
    path = next(store.iter_files()).relpath.rsplit("/", 1)[0] + "/.tmp-x.part"
    store.path(path).write_bytes(b"half")
    return path


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (_missing, "missing"),
        (_orphan, "orphans"),
        (_resized, "size_mismatch"),
        (_temp, "temp_files"),
    ],
)
def test_reconcile_finds_what_disagrees(writer: CatalogWriter, damage, field: str) -> None:
    ingest(writer, ct_series(3))
    assert writer.reconcile().ok
    found = damage(writer, writer.store)
    report = writer.reconcile()
    assert not report.ok
    assert getattr(report, field) == [found]
    assert [p for p in report.PROBLEMS if getattr(report, p)] == [field]


def test_reconcile_verifies_hashes_on_request(writer: CatalogWriter) -> None:
    ingest(writer, ct_series(2))
    path = next(writer.store.iter_files()).relpath
    full = writer.store.path(path)
    data = bytearray(full.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    full.write_bytes(bytes(data))
    assert writer.reconcile().ok
    assert writer.reconcile(verify_hashes=True).hash_mismatch == [path]


def test_one_writer_at_a_time(writer: CatalogWriter) -> None:
    code = textwrap.dedent(
        """
        from gai_research.config import load_settings
        from gai_research.store import CatalogBusyError, CatalogWriter
        try:
            CatalogWriter(load_settings())
        except CatalogBusyError as exc:
            print("busy:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.startswith("busy: ")
    assert "one writer" in out.stdout


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            {
                "series": pa.table(
                    {"series_uid": ["2.25.1", "2.25.1"], "study_uid": ["2.25.9", "2.25.9"]}
                )
            },
            "more than once",
        ),
        ({"series": pa.table({"study_uid": ["2.25.9"]})}, "key column series_uid missing"),
        (
            {"series": pa.table({"series_uid": ["2.25.1"], "colour": ["red"]})},
            "unknown column colour",
        ),
        ({"sync_state": pa.table({"site": ["SUWON"]})}, "cannot bulk-load"),
    ],
)
def test_bulk_load_refuses_bad_tables(writer: CatalogWriter, tables: dict, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        writer.bulk_load(tables)
    assert writer.counts()["series"] == 0


def test_bulk_load_upserts_and_refreshes_counts(writer: CatalogWriter) -> None:
    ingest(writer, ct_series(2))
    series_uid, study_uid = rows(writer, "SELECT series_uid, study_uid FROM series")[0]
    extra = pa.table(
        {
            "sop_uid": ["2.25.77", "2.25.78"],
            "series_uid": [series_uid] * 2,
            "study_uid": [study_uid] * 2,
            "path": ["x/y/2.25.77.dcm", "x/y/2.25.78.dcm"],
            "size_bytes": [10, 10],
            "sha256": ["0" * 64] * 2,
        }
    )
    assert writer.bulk_load({"instances": extra}) == {"instances": 2}
    writer.bulk_load({"instances": extra})
    assert rows(writer, "SELECT n_instances FROM series") == [(4,)]
    assert rows(writer, "SELECT n_instances FROM studies") == [(4,)]


def test_a_catalog_of_another_schema_version_is_refused(settings: Settings) -> None:
    init_home(settings)
    with CatalogWriter(settings) as writer:
        writer._con.execute("UPDATE catalog_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 999"):
        CatalogWriter(settings)


@pytest.mark.parametrize(
    ("views", "laterality", "view_position"),
    [
        ([("L", "CC")], "L", "CC"),
        ([("L", "CC"), ("L", "MLO")], "L", None),
        ([("L", "CC"), ("R", "CC")], "B", "CC"),
        ([("L", "CC"), ("R", "MLO")], "B", None),
    ],
)
def test_series_laterality_and_view_summarize_the_images(
    writer: CatalogWriter, views: list, laterality: str, view_position: str | None
) -> None:
    ingest(writer, [mg_image(lat, view, sop=f"{lat}{view}") for lat, view in views])
    assert rows(writer, "SELECT laterality, view_position FROM series") == [
        (laterality, view_position)
    ]


def test_reconcile_finds_duplicate_keys(writer: CatalogWriter) -> None:
    ingest(writer, ct_series(2))
    writer._con.execute("INSERT INTO patients SELECT * FROM patients")
    assert writer.reconcile().duplicate_keys == ["patients: PSN-0001"]
