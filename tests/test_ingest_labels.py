"""Reference labels keyed by original identifiers: converted with the platform key (the same
keyed functions deid uses), checked against the catalog (unknown rows reported by line,
never by identifier), stored; their patient coordinates still point at the finding."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from gai_research.config import Settings, Site, load_settings
from gai_research.deid import KeyRing
from gai_research.home import init_home, read_key
from gai_research.ingest.labels import import_labels, import_synthetic, read_table
from gai_research.ingest.run import ingest_site
from gai_research.store import open_snapshot
from tests.test_ingest_pipeline_support import (
    SmallCohort,
    leaks_in_text,
    planted_identifiers,
    run_gai,
    small_cohort,
)

SITE = Site.SUWON
LEFT_OUT = "lung_nodule_dx"  # this study is not ingested: its label rows must be reported


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SmallCohort:
    """One synthetic patient with all five studies on one day; the chest X-ray left out."""
    out = tmp_path_factory.mktemp("labels-cohort")
    return small_cohort(out, patients=1, seed=0, keep=lambda s: s.task != LEFT_OUT)


@pytest.fixture(scope="module")
def ingested(cohort: SmallCohort, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(home=tmp_path_factory.mktemp("labels-home") / "home")
    init_home(settings)
    report = ingest_site(settings, SITE, source="folder", path=cohort.root / SITE.value)
    assert report.accounted and report.pipeline.new == cohort.instances()
    return settings


@pytest.fixture
def home(ingested: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A copy of the ingested home for one test (labels change the catalog)."""
    shutil.copytree(ingested.home, tmp_path / "home")
    own = ingested.model_copy(update={"home": tmp_path / "home"})
    monkeypatch.setenv("GAI_HOME", str(own.home))
    return own


@pytest.fixture(scope="module")
def keys(ingested: Settings) -> KeyRing:
    return KeyRing.from_secret(read_key(ingested.key_path))


def _labels(settings: Settings, task: str | None = None) -> list[dict]:
    with open_snapshot(settings) as reader:
        sql = "SELECT * FROM labels" + (" WHERE task = ?" if task else "")
        return reader.query(
            sql + " ORDER BY task, study_uid, label_index", [task] if task else None
        ).to_pylist()


def _csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_synthetic_labels_are_keyed_like_the_images_and_unknown_rows_reported(
    home: Settings, cohort: SmallCohort, keys: KeyRing
) -> None:
    report = import_synthetic(home, cohort.full)
    labels = cohort.full / "labels"
    kept = {s.study_uid for s in cohort.studies}
    studies = read_table(labels / "studies.csv")
    left_out = [n for n, r in enumerate(studies, start=2) if r["study_uid"] not in kept]
    assert report.problems[("studies.csv", "with a study not in the catalog")] == left_out
    findings = read_table(labels / "findings_dx.csv")
    if findings:  # the left-out X-ray's finding rows, by line
        assert report.problems[("findings_dx.csv", "with a study not in the catalog")] == list(
            range(2, len(findings) + 2)
        )
    assert not report.ok and report.rows_rejected == len(left_out) + len(findings)
    stored = _labels(home)
    assert {r["study_uid"] for r in stored} == {keys.uid(uid) for uid in kept}
    assert {r["source"] for r in stored} == {"synth"}
    for row in read_table(labels / "studies.csv"):
        if row["study_uid"] in kept:
            (label,) = [
                r for r in _labels(home, row["task"])
                if r["study_uid"] == keys.uid(row["study_uid"]) and r["kind"] == "study"
            ]  # fmt: skip
            assert label["value"] == float(row["label"]) and label["name"] == "positive"
    nodules = read_table(labels / "nodules_ct.csv")
    got = [r for r in _labels(home, "lung_nodule_ct") if r["kind"] == "nodule"]
    assert [(r["x_mm"], r["y_mm"], r["z_mm"], r["diameter_mm"]) for r in got] == [
        tuple(float(n[k]) for k in ("x_mm", "y_mm", "z_mm", "diameter_mm")) for n in nodules
    ]
    assert {r["series_uid"] for r in got} <= {keys.uid(n["series_uid"]) for n in nodules}
    volumes = [r for r in _labels(home, "dementia_mr") if r["kind"] == "volume"]
    assert len(volumes) == 3 * len(read_table(labels / "volumes_mr.csv"))
    assert {r["name"] for r in volumes} == {"hippocampus_l", "hippocampus_r", "hippocampus"}
    planted = planted_identifiers(cohort)
    assert leaks_in_text(planted, "\n".join(report.problem_lines())) == set()


def test_importing_again_replaces_and_never_duplicates(home: Settings, cohort: SmallCohort) -> None:
    first = import_synthetic(home, cohort.full)
    rows = len(_labels(home))
    again = import_synthetic(home, cohort.full)
    assert len(_labels(home)) == rows == first.rows_imported
    assert again.snapshot == first.snapshot


@pytest.mark.parametrize("modality", ["CT", "MR", "MG"])
def test_pseudonymization_keeps_the_geometry_labels_refer_to(
    ingested: Settings, cohort: SmallCohort, keys: KeyRing, modality: str
) -> None:
    originals = [
        p for p in cohort.files() if dcmread(p, stop_before_pixels=True).Modality == modality
    ]
    assert originals
    for path in originals[:: max(1, len(originals) // 8)]:
        original = dcmread(path)
        study, series, sop = (
            keys.uid(original.StudyInstanceUID),
            keys.uid(original.SeriesInstanceUID),
            keys.uid(original.SOPInstanceUID),
        )
        stored = dcmread(ingested.store_dir / study / series / f"{sop}.dcm")
        for keyword in (
            "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
            "ImagerPixelSpacing", "SliceThickness", "Rows", "Columns", "ImageLaterality",
            "ViewPosition",
        ):  # fmt: skip
            assert stored.get(keyword) == original.get(keyword), keyword
        assert stored.PixelData == original.PixelData


def test_a_nodule_is_where_its_label_says_in_the_stored_images(
    home: Settings, cohort: SmallCohort
) -> None:
    import_synthetic(home, cohort.full)
    nodules = [r for r in _labels(home, "lung_nodule_ct") if r["kind"] == "nodule"]
    assert nodules, "the cohort should have a chest CT with nodules"
    with open_snapshot(home) as reader:
        for nodule in nodules:
            paths = reader.query(
                "SELECT path FROM instances WHERE series_uid = ?", [nodule["series_uid"]]
            )["path"].to_pylist()
            slices = [dcmread(home.store_dir / p) for p in paths]
            z = [float(s.ImagePositionPatient[2]) for s in slices]
            assert min(z) <= nodule["z_mm"] <= max(z)
            nearest = sorted(
                slices, key=lambda s: abs(float(s.ImagePositionPatient[2]) - nodule["z_mm"])
            )[:2]
            peak = -2000.0
            for ds in nearest:
                x0, y0, _ = (float(v) for v in ds.ImagePositionPatient)
                row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
                row = round((nodule["y_mm"] - y0) / row_mm)
                col = round((nodule["x_mm"] - x0) / col_mm)
                hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(
                    ds.RescaleIntercept
                )
                peak = max(peak, float(hu[row - 1 : row + 2, col - 1 : col + 2].max()))
            assert peak > -300.0, "the labelled centre should be solid tissue inside the lung"


@pytest.mark.parametrize("key", ["study_uid", "accession_number", "patient_id+study_date+modality"])
def test_rows_keyed_by_what_the_hospital_knows_find_their_study(
    home: Settings, cohort: SmallCohort, keys: KeyRing, tmp_path: Path, key: str
) -> None:
    studies = [
        r for r in read_table(cohort.full / "labels" / "studies.csv") if r["task"] != LEFT_OUT
    ]
    columns = key.split("+")
    table = _csv(
        tmp_path / "reads.csv",
        [{**{c: r[c] for c in columns}, "value": "0.5", "confidence": "high"} for r in studies],
    )
    report = import_labels(
        home, [table], task="reader_study", site="SUWON", source="reader1", extra=["confidence"]
    )
    got = {r["study_uid"] for r in _labels(home, "reader_study")}
    if key.startswith("patient_id"):
        # one patient, one day, two CT studies (chest and head): ambiguous, and reported so
        ambiguous = [n for n, r in enumerate(studies, start=2) if r["modality"] == "CT"]
        ((where, lines),) = report.problems.items()
        assert where == (
            "reads.csv",
            "whose patient ID and date matches 2 studies (add a modality column)",
        )
        assert lines == ambiguous
        expected = {keys.uid(r["study_uid"]) for r in studies if r["modality"] != "CT"}
    else:
        assert report.ok, report.problem_lines()
        expected = {keys.uid(r["study_uid"]) for r in studies}
    assert got == expected
    for label in _labels(home, "reader_study"):
        assert (label["kind"], label["value"], label["source"]) == ("study", 0.5, "reader1")
        assert label["extra"] == '{"confidence": "high"}'  # keys and identifiers never go there


def test_problem_rows_are_reported_by_line_and_keep_their_study_out(
    home: Settings, cohort: SmallCohort, keys: KeyRing, tmp_path: Path
) -> None:
    (ct,) = [s for s in cohort.studies if s.task == "lung_nodule_ct"]
    (mg,) = [s for s in cohort.studies if s.task == "breast_mg"]
    (mr,) = [s for s in cohort.studies if s.task == "dementia_mr"]
    rows = [
        {"study_uid": mg.study_uid, "value": "1", "sop_uid": ""},  # line 2: fine
        {"study_uid": ct.study_uid, "value": "1", "sop_uid": ""},  # line 3: fine alone...
        {"study_uid": ct.study_uid, "value": "high", "sop_uid": ""},  # line 4: ...this is not
        {"study_uid": "", "value": "1", "sop_uid": ""},  # line 5: no key
        {"study_uid": "1.2.3.4", "value": "1", "sop_uid": ""},  # line 6: unknown study
        {"study_uid": mr.study_uid, "value": "1", "sop_uid": "1.2.3.5"},  # line 7: unknown image
    ]
    report = import_labels(home, [_csv(tmp_path / "t.csv", rows)], task="t")
    assert report.problems == {
        ("t.csv", "with a value that is not a number"): [4],
        (
            "t.csv",
            "without a study key (study_uid, accession_number, or patient_id + study_date)",
        ): [5],
        ("t.csv", "with a study not in the catalog"): [6],
        ("t.csv", "whose image is not in the catalog"): [7],
        ("t.csv", "of a study with a rejected row (kept out)"): [3],
    }
    assert [r["study_uid"] for r in _labels(home, "t")] == [keys.uid(mg.study_uid)]


def test_gai_labels_import_synthetic_reports_what_it_left_out(
    home: Settings, cohort: SmallCohort, monkeypatch, capsys
) -> None:
    code, out, err = run_gai(capsys, "labels", "import", str(cohort.full), "--synthetic")
    assert code == 1
    assert "breast_mg" in out and "label(s) stored" in out
    assert "not imported: studies.csv: 1 row(s) with a study not in the catalog (lines" in err
    planted = planted_identifiers(cohort)
    assert leaks_in_text(planted, out + err) == set()


def test_gai_labels_import_of_one_task(
    home: Settings, cohort: SmallCohort, tmp_path: Path, monkeypatch, capsys
) -> None:
    nodules = cohort.full / "labels" / "nodules_ct.csv"
    code, _out, err = run_gai(
        capsys, "labels", "import", str(nodules), "--task", "lung_nodule_ct", "--source", "reader2"
    )
    assert code == 0, err
    assert len(_labels(home, "lung_nodule_ct")) == len(read_table(nodules))
    assert {r["kind"] for r in _labels(home, "lung_nodule_ct")} == {"nodule"}  # inferred
