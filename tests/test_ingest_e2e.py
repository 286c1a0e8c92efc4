"""End to end against three real site PACS (Orthanc): `gai ingest` pulls by C-FIND + C-MOVE,
C-GET and QIDO-RS + WADO-RS into the store and catalog; counts reconcile exactly; one
patient seen at two hospitals is one pseudonym; a reader of snapshots never fails while
ingest writes; no identifier reaches the shared side, the logs or the output; a PACS
that stops mid-transfer gives a clear error and a rerun resumes; incremental sync."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from gai_research.config import Settings, Site
from gai_research.deid import KeyRing
from gai_research.home import read_key
from gai_research.ingest import ObjectReceived, Spool
from gai_research.ingest.run import ingest_site
from gai_research.pacs import seed_cohort, servers
from gai_research.store import CatalogWriter, open_snapshot
from gai_research.synth import read_cohort
from tests.test_ingest_pipeline_support import (
    SmallCohort,
    catalog_text,
    home_like,
    leaks_in_files,
    leaks_in_text,
    move_study,
    planted_identifiers,
    run_gai,
    shared_files,
    small_cohort,
    table_counts,
    use_settings,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

SPLIT = "20260801"  # studies before are in the PACS from the start; later ones come later
SMALL = 32  # X-rays, mammograms and head CTs: quick to seed and to pull


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SmallCohort:
    """Nine synthetic patients (one seen at two hospitals); small studies only."""
    out = tmp_path_factory.mktemp("e2e-cohort")
    cohort = small_cohort(
        out, patients=9, seed=3, keep=lambda s: s.n_instances <= SMALL and s.study_date < SPLIT
    )
    for study in read_cohort(cohort.full).studies:
        if study.n_instances <= SMALL and study.study_date >= SPLIT:
            move_study(cohort, study, "late")
    return cohort


@pytest.fixture(scope="module")
def seeded(site_pacs: Settings, cohort: SmallCohort) -> Settings:
    for site, result in seed_cohort(site_pacs, cohort.root).items():
        assert result.failed == 0, (site, result.reasons)
    return site_pacs


@pytest.fixture(scope="module")
def planted(cohort: SmallCohort):
    return planted_identifiers(cohort, cohort.root.parent / "late")


class _Reader(threading.Thread):
    """Queries the latest snapshot in a loop, as a researcher's notebook would."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.seen: list[int] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with open_snapshot(self.settings) as reader:
                    n = reader.query("SELECT count(*) AS n FROM instances")["n"][0].as_py()
                    reader.query("SELECT site, count(*) FROM studies GROUP BY site")
                self.seen.append(n)
            except Exception as exc:  # any failure is the finding
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.02)


@pytest.fixture(scope="module")
def pulled(seeded: Settings, tmp_path_factory: pytest.TempPathFactory):
    """`gai ingest --all-sites` (C-FIND + C-MOVE) into a home of its own, with INFO logging
    captured and a snapshot reader running the whole time. Yields (settings, code, output,
    log text, reader)."""
    from gai_research import cli

    settings = home_like(seeded, tmp_path_factory.mktemp("pulled") / "home")
    with CatalogWriter(settings) as writer:
        writer.publish_snapshot()  # an empty first snapshot for the reader
    reader = _Reader(settings)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    root = logging.getLogger()
    level = root.level
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        use_settings(patch, settings)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        reader.start()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(["ingest", "--all-sites"])
        finally:
            reader.stop.set()
            reader.join()
            root.removeHandler(handler)
            root.setLevel(level)
    return settings, code, out.getvalue() + err.getvalue(), logs.getvalue(), reader


def _catalog(settings: Settings) -> dict[str, int]:
    with open_snapshot(settings) as reader:
        rows = reader.query("SELECT site, sum(n_instances) AS n FROM studies GROUP BY site")
    return dict(zip(rows["site"].to_pylist(), rows["n"].to_pylist(), strict=True))


def _check_reconciled(settings: Settings, cohort: SmallCohort) -> None:
    assert _catalog(settings) == {s.value: cohort.instances(s) for s in Site if cohort.of(s)}
    with CatalogWriter(settings) as writer:
        report = writer.reconcile(verify_hashes=True)
    assert report.ok, report.summary()
    assert len(Spool(settings)) == 0


def test_cmove_pull_lands_every_instance_and_the_table_adds_up(pulled, cohort: SmallCohort) -> None:
    settings, code, output, _logs, _reader = pulled
    assert code == 0, output
    tables = table_counts(output)
    assert len(tables) == 3 and output.count("all accounted for") == 3
    for site, table in zip(Site, tables, strict=True):
        n = cohort.instances(site)
        assert table["found at source"] == table["received"] == table["processed"] == n
        assert (table["stored new"], table["duplicates"], table["already in the catalog"]) == (
            n,
            0,
            0,
        )
    _check_reconciled(settings, cohort)


def test_a_snapshot_reader_never_fails_while_ingest_writes(pulled, cohort: SmallCohort) -> None:
    _settings, _code, _output, _logs, reader = pulled
    assert reader.errors == []
    assert len(reader.seen) > 10
    assert reader.seen == sorted(reader.seen)  # snapshots only ever grow during one ingest
    assert reader.seen[0] == 0 and 0 < reader.seen[-1] <= cohort.instances()


def test_one_patient_at_two_hospitals_is_one_pseudonym(pulled, cohort: SmallCohort) -> None:
    from gai_research.synth.people import plan_cohort

    settings = pulled[0]
    keys = KeyRing.from_secret(read_key(settings.key_path))
    person_of = {(p.site, p.mrn): p.person.index for p in plan_cohort(cohort.patients, cohort.seed)}
    with open_snapshot(settings) as reader:
        rows = reader.query("SELECT study_uid, patient_pseudonym, site FROM studies").to_pylist()
    pseudonym = {r["study_uid"]: r["patient_pseudonym"] for r in rows}
    by_person: dict[int, set[str]] = {}
    sites: dict[int, set[str]] = {}
    for study in cohort.studies:
        person = person_of[(study.site, study.patient_id)]
        by_person.setdefault(person, set()).add(pseudonym[keys.uid(study.study_uid)])
        sites.setdefault(person, set()).add(study.site)
    assert all(len(p) == 1 for p in by_person.values())  # one pseudonym per person...
    assert len({next(iter(p)) for p in by_person.values()}) == len(by_person)  # ...each their own
    assert any(len(s) == 2 for s in sites.values()), "the cohort should have a two-site patient"


def test_no_identifier_in_store_catalog_snapshots_logs_or_output(pulled, planted) -> None:
    settings, _code, output, logs, _reader = pulled
    assert "committed" in logs  # the pipeline's INFO lines were captured
    assert leaks_in_files(planted, shared_files(settings)) == {}
    assert leaks_in_text(planted, catalog_text(settings)) == set()
    assert leaks_in_text(planted, output) == set()
    assert leaks_in_text(planted, logs) == set()


def test_another_route_to_the_same_instances_changes_nothing(pulled, monkeypatch, capsys) -> None:
    settings = pulled[0]
    use_settings(monkeypatch, settings)
    with open_snapshot(settings) as reader:
        before = reader.snapshot.id
    code, out, err = run_gai(
        capsys, "ingest", "--all-sites", "--source", "dicomweb", "--refetch", "--quiet"
    )
    assert code == 0, err
    for table in table_counts(out):
        assert table["stored new"] == 0 and table["duplicates"] == table["received"] > 0
    with open_snapshot(settings) as reader:
        assert reader.snapshot.id == before


@pytest.mark.parametrize(
    "argv", [["--retrieve", "get"], ["--source", "dicomweb"]], ids=["c-get", "dicomweb"]
)
def test_pull_by_cget_or_dicomweb(
    seeded: Settings, cohort: SmallCohort, tmp_path: Path, argv, monkeypatch, capsys
) -> None:
    settings = home_like(seeded, tmp_path / "home")
    use_settings(monkeypatch, settings)
    code, out, err = run_gai(capsys, "ingest", "--all-sites", "--quiet", *argv)
    assert code == 0, err
    for site, table in zip(Site, table_counts(out), strict=True):
        assert table["stored new"] == table["received"] == cohort.instances(site)
    _check_reconciled(settings, cohort)


def test_a_pacs_that_stops_mid_transfer_is_a_clear_error_and_a_rerun_resumes(
    seeded: Settings, cohort: SmallCohort, tmp_path: Path, monkeypatch, capsys
) -> None:
    site = Site.ANSEONG
    settings = home_like(seeded, tmp_path / "home")
    (server,) = servers(seeded, [site])
    received = []

    def pull_the_plug(event) -> None:
        if isinstance(event, ObjectReceived):
            received.append(1)
            if len(received) == 8:
                import os
                import signal

                os.kill(server.pid(), signal.SIGKILL)

    try:
        report = ingest_site(settings, site, on_event=pull_the_plug)
    finally:
        deadline = time.monotonic() + 10
        while server.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        server.start()
    assert not report.accounted
    assert "ANSEONG PACS" in report.error and "rerun" in report.error
    assert 8 <= report.received < cohort.instances(site)
    assert report.synced_through is None
    with CatalogWriter(settings) as writer:
        assert writer.last_sync(site, "dimse") is None  # a failed run moves nothing
    use_settings(monkeypatch, settings)
    code, out, err = run_gai(capsys, "ingest", "--site", "anseong", "--quiet")
    assert code == 0, err
    (table,) = table_counts(out)
    assert table["stored new"] + report.pipeline.new == cohort.instances(site)
    assert _catalog(settings) == {site.value: cohort.instances(site)}


def test_incremental_sync_fetches_only_the_new_studies(
    pulled, seeded: Settings, cohort: SmallCohort
) -> None:
    """Last in this module: it adds the later studies to the PACS."""
    settings = pulled[0]
    late = read_cohort(cohort.full).studies
    late = [s for s in late if s.n_instances <= SMALL and s.study_date >= SPLIT]
    assert late
    for result in seed_cohort(seeded, cohort.root.parent / "late").values():
        assert result.failed == 0
    total = 0
    for site in Site:
        with CatalogWriter(settings) as writer:
            since = writer.last_sync(site, "dimse")
        assert since == max(date.fromisoformat(s.study_date) for s in cohort.of(site))
        report = ingest_site(settings, site)
        new = [s for s in late if s.site == site.value]
        boundary = [s for s in cohort.of(site) if date.fromisoformat(s.study_date) == since]
        assert report.accounted and report.since == since
        assert report.studies_fetched == len(new)
        assert report.studies_skipped == len(boundary)
        assert report.pipeline.new == sum(s.n_instances for s in new)
        assert report.pipeline.duplicates == 0
        total += report.pipeline.new
    assert total == sum(s.n_instances for s in late)
    assert sum(_catalog(settings).values()) == cohort.instances() + total
