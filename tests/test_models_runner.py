"""Study inputs, the runner and stored predictions, on the shared pseudonymized catalog.

The model is the test double of ``tests/models_doubles.py`` (declared in a models file
as ``tests.models_doubles:create``) misbehaving on chosen studies, and one real
baseline. Each test uses its own model name, so all share one private home.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import numpy as np
import pytest

from gai_research.config import Settings
from gai_research.data.cohort import Cohort
from gai_research.models import ModelConfigError, ModelInputError
from gai_research.models.adapters.python import PythonModel
from gai_research.models.inputs import (
    study_input,
    study_input_from_files,
    study_inputs,
    study_inputs_from_files,
)
from gai_research.models.registry import models_file
from gai_research.models.runner import RunSummary, run_model
from gai_research.models.store import (
    PredictionRecord,
    load_predictions,
    predictions_dir,
    predictions_frame,
    save_records,
)
from tests.data_fixtures import CatalogFixture, copy_home, pseudonymized_catalog

MODELS_YAML = """\
models:
  - name: runner-double
    adapter: python
    options: {entry_point: "tests.models_doubles:create"}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the shared catalog home, with the double in its models file."""
    fixture: CatalogFixture = pseudonymized_catalog(tmp_path_factory)
    settings = copy_home(fixture, tmp_path_factory.mktemp("models-runner"))
    models_file(settings).write_text(MODELS_YAML, encoding="utf-8")
    return settings


@pytest.fixture(scope="module")
def lung(home: Settings) -> Cohort:
    cohort = Cohort.from_filters("lung-ct", _catalog(home), modality="CT", task="lung_nodule_ct")
    cohort.save(settings=home)
    return cohort


@pytest.fixture(scope="module")
def everything(home: Settings) -> Cohort:
    return Cohort.from_sql("all", _catalog(home), "SELECT study_uid FROM studies")


def _catalog(settings: Settings):
    from gai_research.data.catalog import open_catalog

    return open_catalog(settings=settings)


def double(home: Settings, name: str, **options) -> PythonModel:
    """The test double through the python adapter, under its own name (records do not mix)."""
    return PythonModel(None, entry_point="tests.models_doubles:create", name=name, **options)


def check_reconciles(summary: RunSummary, cohort: Cohort) -> None:
    assert summary.reconciles
    assert summary.n_ok + summary.n_failed + summary.n_cached == len(cohort) == summary.n_studies
    assert [r.study_uid for r in summary.records] == list(cohort.study_uids)


# --- inputs -------------------------------------------------------------------------------
def test_study_inputs_hold_the_store_files_in_slice_order(home: Settings, lung: Cohort) -> None:
    inputs = study_inputs(lung.catalog, lung.study_uids, settings=home)
    assert set(inputs) == set(lung.study_uids)
    for study in inputs.values():
        assert study.snapshot == lung.snapshot and study.site in ("SUWON", "ANSEONG", "ICHEON")
        assert study.patient_pseudonym and study.modalities == ("CT",)
        (series,) = study.series
        assert series.meta["body_part"] == "CHEST" and series.meta["n_instances"] == len(
            series.files
        )
        assert all(p.is_absolute() and p.is_file() for p in series.files)
        assert all(home.store_dir in p.parents for p in series.files)
    files = inputs[lung.study_uids[0]].series[0]
    numbers = [int(ds.InstanceNumber) for ds in files.datasets(pixels=False)]
    assert numbers == sorted(numbers)


def test_study_input_of_an_unknown_study_is_an_input_error(lung: Cohort) -> None:
    with pytest.raises(ModelInputError, match="no files in snapshot"):
        study_input(lung.catalog, "2.25.42")


def test_study_input_from_files_matches_the_catalog(home: Settings, lung: Cohort) -> None:
    expected = study_input(lung.catalog, lung.study_uids[0], settings=home)
    files = list(expected.files)
    random.Random(3).shuffle(files)
    found = study_input_from_files(files)
    assert found.study_uid == expected.study_uid
    assert [s.series_uid for s in found.series] == [s.series_uid for s in expected.series]
    assert found.series[0].files == expected.series[0].files  # same slice order
    assert found.series[0].modality == "CT" and found.series[0].meta["body_part"] == "CHEST"
    assert found.patient_pseudonym == expected.patient_pseudonym


def test_files_of_two_studies_are_two_inputs(home: Settings, lung: Cohort) -> None:
    a, b = (study_input(lung.catalog, uid, settings=home) for uid in lung.study_uids[:2])
    both = study_inputs_from_files([*a.files, *b.files])
    assert [s.study_uid for s in both] == sorted([a.study_uid, b.study_uid])
    with pytest.raises(ModelInputError, match="2 studies, not one"):
        study_input_from_files([*a.files, *b.files])


def test_files_that_are_not_dicom_are_an_input_error(
    tmp_path: Path, home: Settings, lung: Cohort
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    files = study_input(lung.catalog, lung.study_uids[0], settings=home).files
    with pytest.raises(ModelInputError, match=f"1 of {len(files) + 1} files are not DICOM"):
        study_input_from_files([*files, junk])
    with pytest.raises(ModelInputError, match="no files"):
        study_input_from_files([])


# --- the runner ---------------------------------------------------------------------------
def test_failures_are_recorded_per_study_and_counts_reconcile(home: Settings, lung: Cohort) -> None:
    u = lung.study_uids
    model = double(home, "double-failures", fail_on=[u[0]], raise_on=[u[1]], garbage_on=[u[2]])
    summary = run_model(model, lung, settings=home, workers=3, progress=False)
    check_reconciles(summary, lung)
    assert (summary.n_ok, summary.n_failed, summary.n_cached) == (len(u) - 3, 3, 0)
    by_uid = {r.study_uid: r for r in summary.records}
    assert (by_uid[u[0]].status, by_uid[u[0]].reason) == ("failed", "unavailable")
    assert (by_uid[u[1]].status, by_uid[u[1]].reason) == ("failed", "error")
    assert by_uid[u[1]].error == "RuntimeError: the double crashed on <uid>"
    assert (by_uid[u[2]].status, by_uid[u[2]].reason) == ("failed", "malformed")
    assert summary.by_reason() == {"error": 1, "malformed": 1, "unavailable": 1}
    for record in summary.records:
        assert record.error is None or record.study_uid not in record.error
        assert (record.prediction is not None) == record.ok
    stored = load_predictions(home, "double-failures")
    assert [r.study_uid for r in stored] == sorted(u)
    assert {r.study_uid: r.status for r in stored} == {
        r.study_uid: r.status for r in summary.records
    }
    ok = next(r for r in stored if r.ok)
    assert ok.prediction == by_uid[ok.study_uid].prediction  # the JSON round trip is exact
    assert ok.info.name == "double-failures" and ok.snapshot == lung.snapshot
    model.close()


def test_a_rerun_reuses_ok_records_and_force_recomputes(home: Settings, lung: Cohort) -> None:
    u = lung.study_uids
    first = double(home, "double-cache", fail_on=[u[0]])
    run_model(first, lung, settings=home, progress=False)
    again = double(home, "double-cache")
    summary = run_model(again, lung, settings=home, progress=False)
    check_reconciles(summary, lung)
    assert (summary.n_ok, summary.n_failed, summary.n_cached) == (1, 0, len(u) - 1)
    assert again.model.calls == [u[0]]  # only the failed study was tried again
    forced = double(home, "double-cache")
    summary = run_model(forced, lung, settings=home, progress=False, force=True)
    check_reconciles(summary, lung)
    assert (summary.n_ok, summary.n_cached) == (len(u), 0)
    assert sorted(forced.model.calls) == sorted(u)
    newer = double(home, "double-cache", version="2")  # a new version is a new key
    assert run_model(newer, lung, settings=home, progress=False).n_cached == 0
    assert len(load_predictions(home, "double-cache")) == 2 * len(u)
    assert len(load_predictions(home, "double-cache", version="2")) == len(u)
    assert load_predictions(home, "double-cache", snapshot=lung.snapshot[:10], version="1")


@pytest.mark.parametrize("workers", [1, 3])
def test_latency_follows_the_model_delay(home: Settings, lung: Cohort, workers: int) -> None:
    medians = []
    for delay in (0.0, 0.15, 0.4):
        model = double(home, f"double-delay-{workers}-{delay}", delay_s=delay)
        summary = run_model(model, lung, settings=home, workers=workers, progress=False)
        latencies = [r.latency_s for r in summary.records]
        assert all(latency >= delay for latency in latencies)
        medians.append(statistics.median(latencies))
        assert summary.latency()["median_s"] == pytest.approx(medians[-1])
        assert summary.latency()["p95_s"] == pytest.approx(np.percentile(latencies, 95))
    assert medians == sorted(medians)
    assert medians[-1] - medians[0] == pytest.approx(0.4, abs=0.2)


def test_a_latency_the_adapter_measured_is_recorded(home: Settings, lung: Cohort) -> None:
    model = double(home, "double-vendor-timing", vendor_timing_s=1.25)
    summary = run_model(model, lung, settings=home, progress=False)
    assert {r.latency_s for r in summary.records} == {1.25}


def test_a_hung_study_times_out_and_the_others_finish(home: Settings, lung: Cohort) -> None:
    u = lung.study_uids
    model = double(home, "double-hang", hang_on=[u[0], u[1]])
    try:
        summary = run_model(model, lung, settings=home, workers=1, timeout_s=0.5, progress=False)
    finally:
        model.close()  # lets the abandoned calls return
    check_reconciles(summary, lung)
    by_uid = {r.study_uid: r for r in summary.records}
    for uid in u[:2]:
        assert (by_uid[uid].status, by_uid[uid].reason) == ("timeout", "timeout")
        assert by_uid[uid].latency_s == 0.5 and "0.5 s" in by_uid[uid].error
    assert summary.n_timeout == 2 and summary.n_ok == len(u) - 2


def test_studies_of_other_modalities_are_skipped(home: Settings, everything: Cohort) -> None:
    model = double(home, "double-modality", modalities=("MR",))
    summary = run_model(model, everything, settings=home, workers=2, progress=False)
    check_reconciles(summary, everything)
    modalities = everything.studies.set_index("study_uid")["modalities"]
    for record in summary.records:
        if "MR" in list(modalities[record.study_uid]):
            assert record.ok
        else:
            assert (record.status, record.reason) == ("skipped", "modality")
            assert "the model takes MR" in record.error
    assert summary.n_skipped == summary.n_failed > 0 and summary.n_ok > 0
    assert model.model.calls and len(model.model.calls) == summary.n_ok


def test_masks_are_kept_under_names_without_identifiers(home: Settings, lung: Cohort) -> None:
    model = double(home, "double-masks", mask=True)
    summary = run_model(model, lung, settings=home, progress=False)
    folder = predictions_dir(home) / "double-masks" / "1"
    stored = {r.study_uid: r for r in load_predictions(home, "double-masks")}
    for record in summary.records:
        (mask,) = stored[record.study_uid].prediction.masks
        path = predictions_dir(home) / mask.path
        assert path.parent == folder and path.is_file() and path.name.endswith(".nii.gz")
        assert record.study_uid not in mask.path and "2.25." not in path.name
    assert len(list(folder.iterdir())) == len(lung)


def test_predictions_frame_has_one_row_per_study(home: Settings, lung: Cohort) -> None:
    import pandas as pd

    u = lung.study_uids
    model = double(home, "double-frame", fail_on=[u[0]])
    summary = run_model(model, lung, settings=home, progress=False)
    frame = predictions_frame(summary.records)
    assert list(frame["study_uid"]) == list(u)
    assert frame.loc[0, "status"] == "failed" and pd.isna(frame.loc[0, "score"])
    ok = frame[frame["status"] == "ok"]
    assert ok["score"].between(0, 1).all() and (ok["n_findings"] == 1).all()
    assert (ok["positive"] == (ok["score"] >= 0.5)).all()
    assert set(ok["origin"]) == {"simulator"}
    assert summary.frame().shape == frame.shape


def test_a_model_and_cohort_given_by_name(home: Settings, lung: Cohort) -> None:
    summary = run_model("runner-double", "lung-ct", settings=home, progress=False)
    check_reconciles(summary, lung)
    assert summary.n_ok == len(lung) and summary.cohort == "lung-ct"
    assert summary.cohort_hash == lung.content_hash


@pytest.mark.parametrize(("option", "value"), [("workers", 0), ("timeout_s", -1.0)])
def test_bad_run_options_are_config_errors(
    home: Settings, lung: Cohort, option: str, value
) -> None:
    with pytest.raises(ModelConfigError):
        run_model("runner-double", lung, settings=home, progress=False, **{option: value})


def test_a_model_run_leaves_the_snapshot_hash_alone(home: Settings, lung: Cohort) -> None:
    from gai_research.store import CatalogWriter

    assert load_predictions(home)  # earlier tests stored predictions in this catalog
    with CatalogWriter(home) as writer:
        assert writer.publish_snapshot().id == lung.snapshot


def test_saving_replaces_the_record_of_the_same_key(home: Settings) -> None:
    record = PredictionRecord("double-save", "1", "abc", "2.25.7", "failed", reason="timeout")
    assert save_records(home, [record]) == 1
    save_records(home, [PredictionRecord("double-save", "1", "abc", "2.25.7", "ok", latency_s=0.1)])
    (stored,) = load_predictions(home, "double-save")
    assert (stored.status, stored.reason, stored.latency_s) == ("ok", None, 0.1)


def test_no_catalog_means_no_predictions(settings: Settings) -> None:
    assert load_predictions(settings) == []


# --- a real baseline -----------------------------------------------------------------------
def test_the_lung_nodule_baseline_runs_over_the_cohort(home: Settings, lung: Cohort) -> None:
    summary = run_model("baseline-lung-nodule-ct", lung, settings=home, workers=2, progress=False)
    check_reconciles(summary, lung)
    assert summary.n_ok == len(lung), summary.by_reason()
    assert summary.info.origin == "baseline"
    for record in summary.records:
        assert record.latency_s > 0 and 0.0 <= record.prediction.score <= 1.0
        assert all(f.has_world_position for f in record.prediction.findings)
    again = run_model("baseline-lung-nodule-ct", lung, settings=home, progress=False)
    assert again.n_cached == len(lung) and again.n_ok == 0


def test_saving_waits_while_another_process_holds_the_catalog(home: Settings) -> None:
    import subprocess
    import sys

    from gai_research.store.catalog import catalog_path

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(1.5); con.close()",
            str(catalog_path(home)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        record = PredictionRecord("double-lock", "1", "abc", "2.25.8", "ok", latency_s=0.2)
        assert save_records(home, [record], wait=30) == 1  # waited for the lock
    finally:
        holder.wait(timeout=30)
    assert [r.study_uid for r in load_predictions(home, "double-lock")] == ["2.25.8"]
