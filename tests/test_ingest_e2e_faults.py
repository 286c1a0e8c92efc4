"""Faults end to end: `gai ingest` killed with SIGKILL part-way, then rerun (exact counts, no
duplicates, no orphan files); DCMTK's storescu pushing to `gai receive`, with objects in the
stream that cannot pass (quarantined with a reason while the rest is stored)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from gai_research.config import Settings, Site
from gai_research.home import init_home
from gai_research.ingest import Spool
from gai_research.pacs import seed_cohort
from gai_research.store import CatalogWriter, open_snapshot
from tests.conftest import free_ports, require_tool
from tests.test_ingest_pipeline_support import (
    GAI,
    SmallCohort,
    env_for,
    home_like,
    leaks_in_files,
    leaks_in_text,
    planted_identifiers,
    run_gai,
    shared_files,
    small_cohort,
    table_counts,
    use_settings,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SmallCohort:
    """Three synthetic patients; X-rays, mammograms and head CTs (148 objects)."""
    out = tmp_path_factory.mktemp("faults-cohort")
    return small_cohort(out, patients=3, seed=2, keep=lambda s: s.n_instances <= 32)


@pytest.fixture(scope="module")
def seeded(site_pacs: Settings, cohort: SmallCohort) -> Settings:
    for result in seed_cohort(site_pacs, cohort.root).values():
        assert result.failed == 0
    return site_pacs


@pytest.fixture(scope="module")
def planted(cohort: SmallCohort):
    return planted_identifiers(cohort)


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_")}
    return {**env, **env_for(settings)}


def _store_files(settings: Settings) -> int:
    return sum(1 for _ in settings.store_dir.rglob("*.dcm"))


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# --- kill -9 -------------------------------------------------------------------------------
@pytest.mark.parametrize(("after", "workers"), [(60, 1), (20, 2)], ids=["1-worker", "2-workers"])
def test_sigkill_during_ingest_then_a_rerun_is_exact(
    seeded: Settings,
    cohort: SmallCohort,
    tmp_path: Path,
    after: int,
    workers: int,
    monkeypatch,
    capsys,
) -> None:
    settings = home_like(seeded, tmp_path / "home")
    process = subprocess.Popen(
        [sys.executable, "-c", GAI, "ingest", "--all-sites", "--quiet", "--workers", str(workers)],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_for(
            lambda: _store_files(settings) >= after or process.poll() is not None, 60, "the store"
        )
        assert process.poll() is None, "the ingest finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)  # the main process only: workers must notice
        process.wait()
        _wait_for(lambda: _gone(process.pid), 20, "orphaned workers to stop")
    finally:
        if not _gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    total = cohort.instances()
    use_settings(monkeypatch, settings)
    code, out, err = run_gai(capsys, "ingest", "--all-sites", "--quiet")
    assert code == 0, err
    for table in table_counts(out):
        assert table["processed"] == table["stored new"] + table["duplicates"]
    with open_snapshot(settings) as reader:
        rows = reader.query(
            "SELECT site, count(*) AS n, count(DISTINCT sop_uid) AS u FROM instances JOIN studies USING (study_uid) GROUP BY site"
        ).to_pylist()
    assert {r["site"]: r["n"] for r in rows} == {s.value: cohort.instances(s) for s in Site}
    assert all(r["n"] == r["u"] for r in rows)  # no instance twice
    with CatalogWriter(settings) as writer:
        report = writer.reconcile(verify_hashes=True)
    assert report.ok, report.summary()  # no orphan, missing or temporary file
    assert _store_files(settings) == total
    assert len(Spool(settings)) == 0


# --- gai receive ---------------------------------------------------------------------------
def _bad_files(cohort: SmallCohort, folder: Path) -> dict[str, Path]:
    """Objects a modality might push that must not pass, as files storescu can send."""
    from pydicom.uid import generate_uid

    folder.mkdir()
    ct = next(
        p for p in cohort.files(Site.SUWON) if dcmread(p, stop_before_pixels=True).Modality == "CT"
    )
    made = {}
    for reason in ("truncated", "burned_in_text"):
        ds = dcmread(ct)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
            entropy_srcs=["push", reason]
        )
        if reason == "truncated":
            ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]  # cut short, consistently
        else:
            ds.BurnedInAnnotation = "YES"
        made[reason] = folder / f"{reason}.dcm"
        ds.save_as(made[reason])
    return made


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _instances(settings: Settings) -> int:
    try:
        with open_snapshot(settings) as reader:
            return reader.query("SELECT count(*) AS n FROM instances")["n"][0].as_py()
    except Exception:
        return -1


def test_storescu_push_to_gai_receive_is_pseudonymized_stored_and_catalogued(
    cohort: SmallCohort, planted, tmp_path: Path, settings: Settings
) -> None:
    storescu = require_tool("storescu")
    init_home(settings)
    (port,) = free_ports(1)
    good = cohort.files(Site.SUWON)
    bad = _bad_files(cohort, tmp_path / "bad")
    files = [*good[: len(good) // 2], *bad.values(), *good[len(good) // 2 :]]
    process = subprocess.Popen(
        [sys.executable, "-c", GAI, "receive", "--port", str(port), "--bind", "127.0.0.1"],
        env=_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _listening(port) or process.poll() is not None, 20, "gai receive")
        assert process.poll() is None
        for _ in range(2):  # the same objects twice: the second time, duplicates only
            push = subprocess.run(
                [storescu, "-aet", "SUWON_PACS", "-aec", "GAI_PLATFORM", "127.0.0.1", str(port)]
                + [str(p) for p in files],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert push.returncode == 0, push.stderr
            _wait_for(
                lambda: len(Spool(settings)) == 0 and _instances(settings) == len(good),
                60,
                "the pipeline",
            )
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    final = out.strip().splitlines()[-1]
    assert final.startswith("pipeline: ")
    assert f"{len(good)} stored new, {len(good)} duplicate(s)" in final
    assert "4 quarantined (2 burned_in_text, 2 truncated)" in final
    notes = sorted(settings.quarantine_dir.glob("*.reason.json"))
    assert len(notes) == 2  # the same bytes twice are kept once
    with CatalogWriter(settings) as writer:
        assert writer.reconcile().ok
    assert leaks_in_text(planted, out + err) == set()
    assert leaks_in_files(planted, shared_files(settings)) == {}
