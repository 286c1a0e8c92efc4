"""gai_research.synth: API, layout, determinism, coverage and bad input."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import pytest

from gai_research.errors import GaiError
from gai_research.synth import (
    DEFAULT_PATIENTS,
    SITES,
    TASKS,
    CohortSummary,
    StudyInfo,
    ensure_cohort,
    generate_cohort,
    read_cohort,
)
from gai_research.synth.errors import CohortSizeError, OutputDirError

PATIENTS = 9  # the fewest that put a positive and a negative of every task at every site
SEED = 0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortSummary:
    """One small cohort, shared by every test_synth*.py module of the session."""
    return ensure_cohort(
        tmp_path_factory.getbasetemp() / "synth-cohort", patients=PATIENTS, seed=SEED
    )


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two-patient cohorts (ten studies, every task) with seeds 0 and 1."""
    base = tmp_path_factory.mktemp("small")
    return {
        seed: generate_cohort(base / f"seed{seed}", patients=2, seed=seed).out_dir
        for seed in (0, 1)
    }


def test_public_names() -> None:
    assert TASKS == ("lung_nodule_ct", "lung_nodule_dx", "breast_mg", "dementia_mr", "stroke_ct")
    assert SITES == ("SUWON", "ANSEONG", "ICHEON")
    assert [f.name for f in dataclasses.fields(StudyInfo)] == [
        "study_uid", "site", "patient_id", "task", "modality", "positive", "n_series",
        "n_instances", "study_date",
    ]  # fmt: skip
    assert StudyInfo.__dataclass_params__.frozen
    assert 9 <= DEFAULT_PATIENTS <= 30


def test_same_seed_gives_identical_bytes(small: dict[int, Path], tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no encoding fallbacks, no numeric overflows
        again = generate_cohort(tmp_path / "again", patients=2, seed=0)
    assert again.studies == read_cohort(small[0]).studies
    assert {s.task for s in again.studies} == set(TASKS)
    assert digests(again.out_dir) == digests(small[0])


def test_different_seed_gives_different_files(small: dict[int, Path]) -> None:
    first, second = digests(small[0]), digests(small[1])
    dicom = {k: v for k, v in first.items() if k.endswith(".dcm")}
    assert dicom
    assert not set(dicom.values()) & set(second.values())


@pytest.mark.parametrize(("site", "task"), [(s, t) for s in SITES for t in TASKS])
def test_every_site_and_task_has_positives_and_negatives(
    cohort: CohortSummary, site: str, task: str
) -> None:
    row = next(r for r in cohort.table() if r["site"] == site and r["task"] == task)
    assert row["studies"] >= 2
    assert 1 <= row["positive"] < row["studies"]
    assert row["instances"] >= row["studies"]


def test_table_is_in_site_then_task_order_and_complete(cohort: CohortSummary) -> None:
    rows = cohort.table()
    assert [(r["site"], r["task"]) for r in rows] == [(s, t) for s in SITES for t in TASKS]
    assert set(rows[0]) == {"site", "task", "patients", "studies", "positive", "instances"}
    assert sum(r["studies"] for r in rows) == len(cohort.studies)


@pytest.mark.parametrize("site", SITES)
def test_summary_counts_equal_files_on_disk(cohort: CohortSummary, site: str) -> None:
    counts = cohort.by_site()[site]
    files = list((cohort.out_dir / site).rglob("*.dcm"))
    assert len(files) == counts["instances"]
    studies = [s for s in cohort.studies if s.site == site]
    assert len(studies) == counts["studies"]
    assert {p.name for p in (cohort.out_dir / site).iterdir()} == {s.study_uid for s in studies}
    for study in studies:
        folder = cohort.out_dir / site / study.study_uid
        assert len(list(folder.rglob("*.dcm"))) == study.n_instances
        assert len([p for p in folder.iterdir() if p.is_dir()]) == study.n_series


def test_labels_and_manifest_agree_with_summary(cohort: CohortSummary) -> None:
    with (cohort.out_dir / "labels" / "studies.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["study_uid"] for r in rows] == [s.study_uid for s in cohort.studies]
    assert {r["label"] for r in rows} == {"0", "1"}
    manifest = json.loads((cohort.out_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["generator"] == "gai_research.synth"
    assert manifest["complete"] is True
    assert (manifest["patients"], manifest["seed"]) == (PATIENTS, SEED)
    assert manifest["counts"]["instances"] == cohort.n_instances
    assert manifest["counts"]["by_site"] == cohort.by_site()
    assert read_cohort(cohort.out_dir).studies == cohort.studies
    for name in manifest["labels"]:
        assert (cohort.out_dir / name).is_file()


@pytest.mark.parametrize("patients", [0, -3, True, 2.5, "9"])
def test_bad_patient_count_is_refused(tmp_path: Path, patients: object) -> None:
    with pytest.raises(CohortSizeError) as info:
        generate_cohort(tmp_path / "out", patients=patients)  # type: ignore[arg-type]
    assert isinstance(info.value, GaiError) and info.value.hint
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["foreign-folder", "file"])
def test_unusable_output_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("not a folder")
    else:
        target.mkdir()
        (target / "thesis.docx").write_text("precious")
    with pytest.raises(OutputDirError) as info:
        generate_cohort(target, patients=1)
    assert isinstance(info.value, GaiError) and info.value.hint
    assert kind == "file" or (target / "thesis.docx").read_text() == "precious"


def test_earlier_output_is_regenerated_silently(
    small: dict[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    shutil.copytree(small[0], target)
    summary = generate_cohort(target, patients=2, seed=1)
    assert digests(target) == digests(small[1])  # nothing of seed 0 is left
    assert ensure_cohort(target, patients=2, seed=1).studies == summary.studies
    assert capsys.readouterr() == ("", "")  # library code prints nothing


def test_progress_goes_to_stderr_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_cohort(tmp_path / "out", patients=1, seed=3, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "synth" in captured.err
