"""gai_research.synth: DICOM validity and headers that look like a Korean hospital's."""

from __future__ import annotations

import io
import itertools
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from gai_research.synth import SITES, TASKS, CohortSummary, StudyInfo, ensure_cohort
from gai_research.synth.korean import rrn_birth_date, rrn_is_valid
from gai_research.synth.people import plan_cohort
from tests.conftest import require_tool

PATIENTS = 9
SEED = 0
ISO2022 = ["", "ISO 2022 IR 149"]
MRN_FORMAT = {"SUWON": r"\d{8}", "ANSEONG": r"A\d{7}", "ICHEON": r"IC-\d{6}"}
INSTITUTION = {
    "SUWON": "경기도의료원 수원병원",
    "ANSEONG": "경기도의료원 안성병원",
    "ICHEON": "경기도의료원 이천병원",
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortSummary:
    return ensure_cohort(
        tmp_path_factory.getbasetemp() / "synth-cohort", patients=PATIENTS, seed=SEED
    )


@pytest.fixture(scope="module")
def headers(cohort: CohortSummary) -> dict[str, pydicom.Dataset]:
    """The first instance of every study (pixels not read), by StudyInstanceUID."""
    first = {}
    for study in cohort.studies:
        path = min((cohort.out_dir / study.site / study.study_uid).rglob("*.dcm"))
        first[study.study_uid] = pydicom.dcmread(path, stop_before_pixels=True)
    return first


def first_file(cohort: CohortSummary, study: StudyInfo) -> Path:
    return min((cohort.out_dir / study.site / study.study_uid).rglob("*.dcm"))


def study_of(cohort: CohortSummary, task: str, positive: bool) -> StudyInfo:
    return next(s for s in cohort.studies if s.task == task and s.positive == positive)


@pytest.mark.parametrize("positive", [True, False], ids=["positive", "negative"])
@pytest.mark.parametrize("task", TASKS)
def test_dciodvfy_reports_no_errors(cohort: CohortSummary, task: str, positive: bool) -> None:
    tool = require_tool("dciodvfy")
    path = first_file(cohort, study_of(cohort, task, positive))
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    report = run.stdout + run.stderr
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors, report


@pytest.mark.parametrize("charset", ["ISO 2022 IR 149", "ISO_IR 192"])
def test_dciodvfy_accepts_both_character_sets(cohort, headers, charset: str) -> None:
    tool = require_tool("dciodvfy")
    study = next(s for s in cohort.studies if charset in headers[s.study_uid].SpecificCharacterSet)
    run = subprocess.run(
        [tool, str(first_file(cohort, study))], capture_output=True, text=True, timeout=60
    )
    assert not [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("task", TASKS)
def test_files_are_what_pydicom_writes(cohort: CohortSummary, task: str) -> None:
    path = first_file(cohort, study_of(cohort, task, True))
    raw = path.read_bytes()
    assert raw[:128] == bytes(128) and raw[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    rewritten = io.BytesIO()
    ds.save_as(rewritten, enforce_file_format=True)
    assert rewritten.getvalue() == raw


@pytest.mark.parametrize("charset", ["ISO 2022 IR 149", "ISO_IR 192"])
def test_korean_names_round_trip(cohort, headers, charset: str) -> None:
    people = {(p.site, p.mrn): p.person for p in plan_cohort(PATIENTS, SEED)}
    studies = [s for s in cohort.studies if charset in headers[s.study_uid].SpecificCharacterSet]
    assert studies
    for study in studies:
        ds = headers[study.study_uid]
        name = people[(study.site, study.patient_id)].name
        assert str(ds.PatientName) == name.dicom
        assert ds.PatientName.ideographic == f"{name.family_hanja}^{name.given_hanja}"
        assert ds.PatientName.phonetic == f"{name.family_hangul}^{name.given_hangul}"
        raw = first_file(cohort, study).read_bytes()
        if charset == "ISO 2022 IR 149":
            assert list(ds.SpecificCharacterSet) == ISO2022
            assert b"\x1b$)C" in raw
            assert name.family_hangul.encode("euc_kr") in raw
        else:
            assert ds.SpecificCharacterSet == "ISO_IR 192"
            assert name.dicom.encode("utf-8") in raw


def test_charsets_are_mixed_about_one_in_five(headers) -> None:
    utf8 = sum(ds.SpecificCharacterSet == "ISO_IR 192" for ds in headers.values())
    assert 0 < utf8 < len(headers) / 2


@pytest.mark.parametrize("site", SITES)
def test_patient_identity_headers(cohort, headers, site: str) -> None:
    for study in (s for s in cohort.studies if s.site == site):
        ds = headers[study.study_uid]
        assert re.fullmatch(MRN_FORMAT[site], ds.PatientID)
        assert ds.InstitutionName == INSTITUTION[site]
        assert ds.InstitutionAddress.startswith("경기도")
        (other,) = ds.OtherPatientIDsSequence
        assert (other.IssuerOfPatientID, other.TypeOfPatientID) == ("KR-RRN", "TEXT")
        assert rrn_is_valid(other.PatientID)
        born, sex = rrn_birth_date(other.PatientID)
        assert ds.PatientBirthDate == f"{born:%Y%m%d}"
        assert ds.PatientSex == sex
        age = int(ds.StudyDate[:4]) - born.year - (ds.StudyDate[4:] < f"{born:%m%d}")
        assert ds.PatientAge == f"{age:03d}Y"
        assert re.fullmatch(r"010-\d{4}-\d{4}", ds.PatientTelephoneNumbers)
        assert ds.PatientAddress.startswith("경기도")
        assert "20260501" <= ds.StudyDate <= "20261120"
        assert ds.InstanceCreationDate == ds.StudyDate  # no wall-clock dates
        assert ds.AccessionNumber and len(ds.AccessionNumber) <= 16
        for pn in (ds.ReferringPhysicianName, ds.PerformingPhysicianName, ds.OperatorsName):
            assert pn.phonetic  # Hangul group present


def test_rrn_leaks_into_korean_free_text_sometimes(headers) -> None:
    leaks = 0
    for ds in headers.values():
        rrn = ds.OtherPatientIDsSequence[0].PatientID
        text = " ".join(
            str(ds.get(k, ""))
            for k in ("ImageComments", "AdditionalPatientHistory", "PatientComments")
        )
        leaks += rrn in text and "주민" in text
    assert 0 < leaks < len(headers)


def test_multi_site_patients_share_identity_not_mrn(cohort, headers) -> None:
    by_rrn: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for ds in headers.values():
        by_rrn[ds.OtherPatientIDsSequence[0].PatientID].append(ds)
    multi = {
        rrn: group
        for rrn, group in by_rrn.items()
        if len({ds.IssuerOfPatientID for ds in group}) > 1
    }
    assert multi
    for group in multi.values():
        assert len({str(ds.PatientName) for ds in group}) == 1
        assert len({ds.PatientBirthDate for ds in group}) == 1
        mrn_by_issuer = {ds.IssuerOfPatientID: ds.PatientID for ds in group}
        assert len(set(mrn_by_issuer.values())) == len(mrn_by_issuer)
    # and a patient's MRN is the same on every study at one site
    for group in by_rrn.values():
        per_site = defaultdict(set)
        for ds in group:
            per_site[ds.IssuerOfPatientID].add(ds.PatientID)
        assert all(len(mrns) == 1 for mrns in per_site.values())


@pytest.mark.parametrize("site", SITES)
def test_sites_have_their_own_equipment(cohort, headers, site: str) -> None:
    mine = {headers[s.study_uid].ManufacturerModelName for s in cohort.studies if s.site == site}
    others = {headers[s.study_uid].ManufacturerModelName for s in cohort.studies if s.site != site}
    assert mine and not mine & others


@pytest.mark.parametrize("task", TASKS)
def test_modality_headers(cohort, task: str) -> None:
    study = study_of(cohort, task, True)
    folder = cohort.out_dir / study.site / study.study_uid
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.rglob("*.dcm"))]
    assert {ds.Modality for ds in datasets} == {study.modality}
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, len(datasets) + 1))
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    if task in ("lung_nodule_ct", "stroke_ct", "dementia_mr"):
        z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
        steps = {round(b - a, 3) for a, b in itertools.pairwise(z)}
        assert len(steps) == 1 and abs(abs(steps.pop()) - float(datasets[0].SliceThickness)) < 1e-3
        assert all(
            float(ds.SliceLocation) == pytest.approx(zz) for ds, zz in zip(datasets, z, strict=True)
        )
        assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    if study.modality == "CT":
        assert (datasets[0].RescaleSlope, datasets[0].RescaleIntercept) == (1, -1024)
    if task == "breast_mg":
        views = [(ds.ImageLaterality, ds.ViewPosition) for ds in datasets]
        assert views == [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]
        assert all(ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT" for ds in datasets)
    if task == "lung_nodule_dx":
        assert datasets[0].ViewPosition == "PA"
        assert datasets[0].PresentationIntentType == "FOR PRESENTATION"
