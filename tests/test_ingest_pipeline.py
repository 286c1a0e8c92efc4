"""The ingest pipeline on a real spool, store, catalog and vault (no PACS needed here):
spool entry -> pseudonymized -> stored -> catalogued -> vault -> entry removed; idempotent,
crash-safe, quarantining what cannot pass, and `gai ingest --spool` / `--source folder`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread

from gai_research.config import Settings, Site
from gai_research.deid import Vault
from gai_research.deid.audit import read_audit
from gai_research.home import init_home
from gai_research.ingest import FolderSource, Spool
from gai_research.ingest.drain import SpoolDrainer
from gai_research.ingest.outcomes import (
    BatchCommitted,
    InstanceQuarantined,
    InstanceStored,
    SnapshotPublished,
)
from gai_research.ingest.pipeline import Pipeline, open_writer
from gai_research.store import CatalogBusyError, CatalogWriter
from gai_research.store.layout import FileStore
from tests.test_ingest_pipeline_support import (
    SmallCohort,
    catalog_instances,
    leaks_in_files,
    leaks_in_text,
    planted_identifiers,
    run_gai,
    shared_files,
    small_cohort,
    table_counts,
)

SITE = Site.SUWON


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SmallCohort:
    """One synthetic SUWON patient: chest X-ray, mammography and head CT (37 objects)."""
    out = tmp_path_factory.mktemp("pipeline-cohort")
    return small_cohort(out, patients=1, seed=0, keep=lambda s: s.n_instances <= 32)


@pytest.fixture(scope="module")
def planted(cohort: SmallCohort):
    return planted_identifiers(cohort)


@pytest.fixture
def home(settings: Settings) -> Settings:
    init_home(settings)
    return settings


def spool_cohort(settings: Settings, cohort: SmallCohort) -> int:
    result = FolderSource(cohort.root / SITE.value, SITE).import_all(Spool(settings))
    assert result.complete
    return result.received


def _bytes(ds) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _reconcile(settings: Settings):
    with CatalogWriter(settings) as writer:
        return writer.reconcile(), writer.counts()


# --- the happy path ----------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_every_entry_is_stored_catalogued_and_leaves_the_spool(
    home: Settings, cohort: SmallCohort, planted, workers: int
) -> None:
    n = spool_cohort(home, cohort)
    events: list = []
    with Pipeline(home, workers=workers, on_event=events.append) as pipe:
        counts = pipe.drain()
        snapshot = pipe.publish()
    assert (counts.processed, counts.new, counts.duplicates, counts.quarantined_total) == (
        n,
        n,
        0,
        0,
    )
    assert len(Spool(home)) == 0
    report, rows = _reconcile(home)
    assert report.ok, report.summary()
    assert rows["instances"] == snapshot.tables["instances"] == n
    stored = [e for e in events if isinstance(e, InstanceStored)]
    assert len(stored) == n and all(e.sop_uid.startswith("2.25.") for e in stored)
    assert any(isinstance(e, SnapshotPublished) for e in events)
    for event in stored[:5]:
        ds = dcmread(home.store_dir / event.relpath)
        assert ds.PatientIdentityRemoved == "YES" and ds.SOPInstanceUID == event.sop_uid
        found = Vault(home.vault_dir).lookup(ds.PatientID)
        assert {row["site"] for row in found["patients"]} == {SITE.value}
    audit = [r for r in read_audit(home.audit_dir) if r["event"] == "ingest.pipeline"]
    assert audit and audit[-1]["sites"][SITE.value]["stored_new"] == n
    assert leaks_in_text(planted, json.dumps(audit) + repr(events)) == set()
    assert leaks_in_files(planted, shared_files(home)) == {}


def test_a_second_run_over_the_same_objects_finds_duplicates_only(
    home: Settings, cohort: SmallCohort
) -> None:
    n = spool_cohort(home, cohort)
    with Pipeline(home) as pipe:
        pipe.drain()
        first = pipe.publish()
    spool_cohort(home, cohort)
    with Pipeline(home) as pipe:
        counts = pipe.drain()
        again = pipe.publish()
    assert (counts.new, counts.duplicates) == (0, n)
    assert again.id == first.id and not again.created


def _variant(kind: str, path: Path) -> bytes:
    ds = dcmread(path)
    if kind == "same bytes":
        return path.read_bytes()
    if kind == "other file meta":  # another route: the sender's implementation, its AE title
        ds.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.999"
        ds.file_meta.SourceApplicationEntityTitle = "OTHER_ROUTE"
        return _bytes(ds)
    if kind == "other transfer syntax":
        from pydicom.uid import ImplicitVRLittleEndian

        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        return _bytes(ds)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("same bytes", "duplicate"),
        ("other file meta", "duplicate"),
        ("other transfer syntax", "duplicate_instance"),
    ],
)
def test_the_same_sop_instance_again_is_stored_once(
    home: Settings, cohort: SmallCohort, kind: str, outcome: str
) -> None:
    """Dedup is by the pseudonymous SOP Instance UID: an identical pseudonymized file is a
    duplicate; different bytes for a stored instance go to the quarantine for the steward."""
    n = spool_cohort(home, cohort)
    with Pipeline(home) as pipe:
        pipe.drain()
    files_before = sorted(e.relpath for e in FileStore(home.store_dir).iter_files())
    Spool(home).put(_variant(kind, cohort.files(SITE)[0]), site=SITE, source="test")
    with Pipeline(home) as pipe:
        counts = pipe.drain()
    assert counts.processed == 1
    if outcome == "duplicate":
        assert (counts.new, counts.duplicates) == (0, 1)
    else:
        assert counts.quarantined == {"duplicate_instance": 1}
    assert sorted(e.relpath for e in FileStore(home.store_dir).iter_files()) == files_before
    report, rows = _reconcile(home)
    assert report.ok and rows["instances"] == n


# --- quarantine ----------------------------------------------------------------------------
def _bad_object(kind: str, cohort: SmallCohort) -> bytes:
    from pydicom.uid import generate_uid

    dx = next(p for p in cohort.files(SITE) if dcmread(p, stop_before_pixels=True).Modality == "DX")
    ds = dcmread(dx)
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["bad", kind])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if kind == "truncated":
        return _bytes(ds)[:-4000]
    if kind == "burned_in_text":
        ds.BurnedInAnnotation = "YES"
        return _bytes(ds)
    if kind == "encapsulated_document":
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
        del ds.PixelData
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocument = b"%PDF-1.4 report of the patient\n"
        return _bytes(ds)
    if kind == "not_dicom":
        return b"a scanned consent form, not an image\n" * 10
    if kind == "incomplete":
        del ds.SOPInstanceUID
        return _bytes(ds)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "reason", ["truncated", "burned_in_text", "encapsulated_document", "not_dicom", "incomplete"]
)
def test_an_unusable_object_is_quarantined_with_its_reason_and_the_rest_stored(
    home: Settings, cohort: SmallCohort, reason: str
) -> None:
    n = spool_cohort(home, cohort)
    Spool(home).put(_bad_object(reason, cohort), site=SITE, source="test")
    events: list = []
    with Pipeline(home, on_event=events.append) as pipe:
        counts = pipe.drain()
    assert counts.processed == n + 1 and counts.accounted
    assert (counts.new, dict(counts.quarantined)) == (n, {reason: 1})
    (event,) = [e for e in events if isinstance(e, InstanceQuarantined)]
    note = json.loads((home.quarantine_dir / event.name).with_suffix(".reason.json").read_text())
    assert note["reason"] == reason and note["site"] == SITE.value and note["detail"]
    assert len(Spool(home)) == 0
    report, rows = _reconcile(home)
    assert report.ok and rows["instances"] == n


# --- crashes -------------------------------------------------------------------------------
class _Crash(BaseException):
    """Stands for kill -9: nothing after it runs, no handler catches it."""


def _crash_after(calls: int):
    seen = {"n": 0}

    def hook(*_args, **_kwargs):
        seen["n"] += 1
        if seen["n"] > calls:
            raise _Crash

    return hook


CRASH_POINTS = {
    # step where the crash hits -> (object, method, calls that still succeed)
    "after the store writes, before the vault": (Vault, "record", 0),
    "in the catalog transaction": (CatalogWriter, "add_instance", 5),
    "after the commit, before any spool removal": (Spool, "remove", 0),
    "half-way through the spool removals": (Spool, "remove", 12),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_crash_at_any_step_loses_nothing_and_duplicates_nothing(
    home: Settings, cohort: SmallCohort, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = spool_cohort(home, cohort)
    owner, name, calls = CRASH_POINTS[point]
    original = getattr(owner, name)
    hook = _crash_after(calls)

    def crashing(self, *args, **kwargs):
        hook()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)
    pipe = Pipeline(home, batch_size=64)
    with pytest.raises(_Crash), pipe:
        pipe.drain()
    monkeypatch.setattr(owner, name, original)
    first = pipe.counts
    with Pipeline(home) as pipe:  # the rerun
        again = pipe.drain()
    assert len(Spool(home)) == 0
    report, rows = _reconcile(home)
    assert report.ok, report.summary()
    assert rows["instances"] == n
    assert first.new + again.new == n  # each instance new exactly once
    assert again.processed == again.new + again.duplicates


def test_temporary_files_of_an_interrupted_store_write_are_removed(
    home: Settings, cohort: SmallCohort
) -> None:
    spool_cohort(home, cohort)
    torn = home.store_dir / "2.25.1" / "2.25.2" / ".tmp-abc123.part"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"half a file")
    with Pipeline(home) as pipe:
        pipe.drain()
    assert not torn.exists()
    report, _ = _reconcile(home)
    assert report.ok, report.summary()


# --- the receiver's drainer ----------------------------------------------------------------
def test_the_drainer_processes_each_burst_and_publishes(
    home: Settings, cohort: SmallCohort
) -> None:
    files = cohort.files(SITE)
    cycles: list = []
    spool = Spool(home)
    with SpoolDrainer(home, idle=0.2, on_cycle=lambda c, s: cycles.append((c.new, s))) as drainer:
        for burst in (files[:10], files[10:]):
            for path in burst:
                spool.put_file(path, site=SITE, source="c-store:SUWON_PACS")
            drainer.notify()
            assert drainer.wait_idle(timeout=60)
        assert catalog_instances(home) == len(files)
    assert drainer.counts.new == len(files) and drainer.counts.accounted
    assert sum(new for new, _ in cycles) == len(files) and len(cycles) >= 2
    with CatalogWriter(home) as writer:
        assert writer.counts()["ingest_runs"] == 1  # one run per site, updated each cycle


HOLD_WRITER = (
    "import sys, time\n"
    "from gai_research.config import load_settings\n"
    "from gai_research.store import CatalogWriter\n"
    "writer = CatalogWriter(load_settings(home=sys.argv[1]))\n"
    "print('holding', flush=True)\n"
    "time.sleep(30)\n"
)


def test_a_second_writer_waits_for_the_catalog_then_says_it_is_busy(home: Settings) -> None:
    CatalogWriter(home).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITER, str(home.home)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with pytest.raises(CatalogBusyError):
            open_writer(home, wait=0.6)
        assert time.monotonic() - started >= 0.5
    finally:
        holder.kill()
        holder.wait()
    open_writer(home, wait=5).close()


# --- the command ---------------------------------------------------------------------------
def test_gai_ingest_spool_prints_a_table_that_adds_up(
    home: Settings, cohort: SmallCohort, planted, monkeypatch, capsys
) -> None:
    n = spool_cohort(home, cohort)
    Spool(home).put(_bad_object("truncated", cohort), site=SITE, source="test")
    code, out, err = run_gai(capsys, "ingest", "--spool")
    assert code == 0, err
    assert "all accounted for" in out
    (table,) = [t for t in table_counts(out) if t["processed"]]
    assert table["found at source"] == table["received"] == table["processed"] == n + 1
    assert (table["stored new"], table["duplicates"], table["quarantined: truncated"]) == (n, 0, 1)
    assert catalog_instances(home) == n
    assert leaks_in_text(planted, out + err) == set()


def test_gai_ingest_from_a_folder_counts_what_is_not_dicom(
    home: Settings, cohort: SmallCohort, tmp_path: Path, monkeypatch, capsys
) -> None:
    (cohort.root / SITE.value / "README.txt").write_text("burn log of the CD\n")
    try:
        code, out, err = run_gai(
            capsys, "ingest", "--site", "suwon", "--source", "folder", str(cohort.root / "SUWON")
        )
    finally:
        (cohort.root / SITE.value / "README.txt").unlink()
    assert code == 0, err
    assert "not DICOM" in out and "all accounted for" in out
    assert catalog_instances(home) == cohort.instances(SITE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest"], "say which site"),
        (["ingest", "--site", "NOWHERE"], "unknown site"),
        (["ingest", "--site", "SUWON", "--source", "folder"], "needs one site and the folder"),
        (["ingest", "--all-sites", "--source", "folder", "x"], "needs one site and the folder"),
        (["ingest", "--site", "SUWON", "x"], "only for --source folder"),
        (["ingest", "--site", "SUWON", "--workers", "-1"], "not a number of processes"),
        (["labels", "import", "x.csv", "y", "--synthetic"], "takes one folder"),
        (["labels", "import", "missing.csv", "--task", "t"], "not found"),
    ],
)
def test_bad_input_is_one_line_that_says_what_to_do(
    home: Settings, argv: list[str], message: str, monkeypatch, capsys
) -> None:
    code, _out, err = run_gai(capsys, *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("gai ")


def test_folder_filters_are_refused(
    home: Settings, cohort: SmallCohort, monkeypatch, capsys
) -> None:
    code, _out, err = run_gai(
        capsys,
        "ingest",
        "--site",
        "SUWON",
        "--source",
        "folder",
        str(cohort.root),
        "--since",
        "2026-01-01",
    )
    assert code == 1 and "filter PACS queries" in err


def test_events_are_typed(home: Settings, cohort: SmallCohort) -> None:
    spool_cohort(home, cohort)
    events: list = []
    with Pipeline(home, on_event=events.append) as pipe:
        pipe.drain()
    kinds = {type(e) for e in events}
    assert kinds == {InstanceStored, BatchCommitted}
    (batch,) = [e for e in events if isinstance(e, BatchCommitted)]
    assert batch.site == SITE and batch.counts.new == cohort.instances(SITE)
