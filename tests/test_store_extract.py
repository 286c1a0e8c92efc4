"""Catalog rows from pseudonymized datasets: ages, birth bands, geometry, multi-frame."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gai_research.store import InvalidDatasetError, NotPseudonymizedError, StoredFile
from gai_research.store.extract import birth_year_band, extract_rows, parse_age
from tests.test_store_support import base, ct_slice, enhanced_mr, mg_image

WHEN = dt.datetime(2026, 12, 1, 9, 0)


def rows_of(ds):
    stored = StoredFile("a/b/c.dcm", Path("/nowhere/a/b/c.dcm"), 1234, "0" * 64, True)
    return extract_rows(ds, "SUWON", stored, ingested_at=WHEN)


@pytest.mark.parametrize(
    ("value", "years"),
    [
        ("063Y", 63),
        ("018M", 1),
        ("030M", 2),
        ("003W", 0),
        ("010D", 0),
        ("45", 45),
        ("", None),
        (None, None),
        ("abc", None),
        ("12X", None),
    ],
)
def test_parse_age(value: str | None, years: int | None) -> None:
    assert parse_age(value) == years


@pytest.mark.parametrize(("year", "band"), [(1955, 1955), (1959, 1955), (1960, 1960), (None, None)])
def test_birth_year_band(year: int | None, band: int | None) -> None:
    assert birth_year_band(year) == band


@pytest.mark.parametrize(
    ("birth_date", "age", "band", "age_years"),
    [
        (None, "063Y", 1960, 63),  # 2026 - 63 = 1963
        ("19580704", None, 1955, 67),  # age computed from the (shifted) dates
        ("19580704", "063Y", 1955, 63),  # the kept PatientAge wins
        (None, None, None, None),
    ],
)
def test_patient_and_study_rows(
    birth_date: str | None, age: str | None, band: int | None, age_years: int | None
) -> None:
    ds = ct_slice(0, age=age)
    if birth_date:
        ds.PatientBirthDate = birth_date
    rows = rows_of(ds)
    assert rows.patient == {"patient_pseudonym": "PSN-0001", "sex": "M", "birth_year_band": band}
    assert rows.study["age_years"] == age_years
    assert rows.study["study_date"] == dt.date(2026, 3, 15)
    assert rows.study["site"] == "SUWON"
    assert rows.study["description"] == "CT CHEST LOW DOSE"
    assert rows.study["accession_pseudonym"].startswith("ACC-")


def test_ct_slice_geometry() -> None:
    rows = rows_of(ct_slice(3, thickness=2.5, step=2.5))
    series, instance = rows.series, rows.instance
    assert series["modality"] == "CT"
    assert series["body_part"] == "CHEST"
    assert (series["image_rows"], series["image_columns"]) == (8, 8)
    assert series["slice_thickness_mm"] == 2.5
    assert (series["pixel_spacing_row_mm"], series["pixel_spacing_col_mm"]) == (0.7, 0.7)
    assert series["image_orientation"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert series["orientation"] == "AXIAL"
    assert instance["slice_position_mm"] == pytest.approx(-100.0 + 3 * 2.5)
    assert instance["n_frames"] == 1
    assert instance["instance_number"] == 4
    assert instance["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"
    assert (instance["path"], instance["size_bytes"], instance["ingested_at"]) == (
        "a/b/c.dcm",
        1234,
        WHEN,
    )


@pytest.mark.parametrize(
    ("iop", "label"),
    [
        ([1, 0, 0, 0, 1, 0], "AXIAL"),
        ([1, 0, 0, 0, 0, -1], "CORONAL"),
        ([0, 1, 0, 0, 0, -1], "SAGITTAL"),
        ([1, 0, 0, 0, 0.7071, 0.7071], "OBLIQUE"),
    ],
)
def test_orientation_label(iop: list[float], label: str) -> None:
    ds = ct_slice(0)
    ds.ImageOrientationPatient = iop
    assert rows_of(ds).series["orientation"] == label


def test_enhanced_multiframe_counts_frames_and_reads_shared_groups() -> None:
    rows = rows_of(enhanced_mr(24, study="s3", series="mr"))
    assert rows.instance["n_frames"] == 24
    assert rows.instance["slice_position_mm"] is None
    assert rows.series["orientation"] == "SAGITTAL"
    assert rows.series["slice_thickness_mm"] == 1.2
    assert rows.series["pixel_spacing_row_mm"] == 1.0


def test_mammography_laterality_view_and_imager_spacing() -> None:
    rows = rows_of(mg_image("L", "MLO", study="s2", series="mg"))
    assert (rows.instance["laterality"], rows.instance["view_position"]) == ("L", "MLO")
    assert rows.series["pixel_spacing_row_mm"] == 0.07
    assert rows.patient["sex"] == "F"


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
@pytest.mark.parametrize("marker", [None, "NO", "", "yes please"])
def test_refuses_a_dataset_not_marked_pseudonymized(marker: str | None) -> None:
    ds = base(marker=marker, patient="홍길동")
    with pytest.raises(NotPseudonymizedError) as info:
        rows_of(ds)
    assert "홍길동" not in str(info.value)
    assert ds.SOPInstanceUID not in str(info.value)


def test_refuses_a_dataset_without_patient_pseudonym() -> None:
    ds = base()
    del ds.PatientID
    with pytest.raises(InvalidDatasetError, match="PatientID"):
        rows_of(ds)


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
def test_odd_descriptive_values_become_null() -> None:
    ds = ct_slice(0)
    ds.SliceThickness = ""
    ds.PixelSpacing = ["0.7"]  # one value where two belong
    ds.StudyDate = "2026"  # not a date
    rows = rows_of(ds)
    assert rows.series["slice_thickness_mm"] is None
    assert rows.series["pixel_spacing_row_mm"] is None
    assert rows.study["study_date"] is None
