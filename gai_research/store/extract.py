"""Catalog rows from one pseudonymized pydicom Dataset.

Strict on what makes a row (the PatientIdentityRemoved marker, pseudonymous UIDs, the
patient pseudonym), tolerant on everything else: an odd or missing descriptive value
becomes NULL. Error messages name attributes, never their values.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Any

from gai_research.store.errors import InvalidDatasetError, NotPseudonymizedError
from gai_research.store.types import InstanceRows, StoredFile

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "birth_year_band",
    "check_uid",
    "extract_rows",
    "parse_age",
    "require_pseudonymized",
]

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
PSEUDONYMOUS_ROOT = "2.25."
BAND_YEARS = 5
_AGE = re.compile(r"^(\d{1,3})\s*([DWMY]?)$")


def require_pseudonymized(dataset: Dataset) -> None:
    """Refuse a dataset unless PatientIdentityRemoved is YES (strict on write)."""
    if str(dataset.get("PatientIdentityRemoved", "") or "").strip() != "YES":
        raise NotPseudonymizedError(
            "refusing a dataset that is not marked PatientIdentityRemoved YES",
            hint="pseudonymize it first (gai_research.deid); the store and catalog take "
            "pseudonymized data only",
        )


def check_uid(value: Any, keyword: str, *, pseudonymous: bool = True) -> str:
    """A syntactically valid UID (and, by default, a ``2.25.`` pseudonymous one)."""
    text = str(value or "").strip()
    if not text:
        raise InvalidDatasetError(f"the dataset has no {keyword}", hint="every instance needs it")
    if len(text) > 64 or not _UID.match(text):
        raise InvalidDatasetError(f"{keyword} is not a valid UID", hint="check the deid output")
    if pseudonymous and not text.startswith(PSEUDONYMOUS_ROOT):
        raise NotPseudonymizedError(
            f"{keyword} is not a pseudonymous UID ({PSEUDONYMOUS_ROOT}<integer>)",
            hint="pseudonymize it first (gai_research.deid) - it remaps every UID",
        )
    return text


def parse_age(value: Any) -> int | None:
    """Whole years from a DICOM AS value (``065Y``, ``018M``, ``003W``, ``010D``)."""
    match = _AGE.match(str(value or "").strip().upper())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2) or "Y"
    return {"Y": number, "M": number // 12, "W": number // 52, "D": number // 365}[unit]


def birth_year_band(birth_year: int | None) -> int | None:
    """The first year of the 5-year band holding ``birth_year``."""
    return None if birth_year is None else birth_year - birth_year % BAND_YEARS


def _date(value: Any) -> dt.date | None:
    text = str(value or "").strip()[:8]
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _text(dataset: Dataset, keyword: str) -> str | None:
    try:
        value = dataset.get(keyword)
    except Exception:  # tolerant on read: a value pydicom cannot decode is no value
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any) -> list[float] | None:
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, str | bytes) or not hasattr(value, "__iter__") else value
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    return numbers if numbers and all(math.isfinite(n) for n in numbers) else None


def _functional(dataset: Dataset, sequence: str, keyword: str) -> Any:
    """A value from the shared functional groups of an enhanced multi-frame image."""
    try:
        shared = dataset.get("SharedFunctionalGroupsSequence")
        if not shared:
            return None
        inner = shared[0].get(sequence)
        return inner[0].get(keyword) if inner else None
    except (AttributeError, IndexError, TypeError):
        return None


def _geometry_value(dataset: Dataset, keyword: str, sequence: str) -> Any:
    value = dataset.get(keyword)
    return value if value not in (None, "") else _functional(dataset, sequence, keyword)


def _orientation_label(iop: list[float]) -> str:
    normal = _cross(iop[:3], iop[3:])
    axis = max(range(3), key=lambda i: abs(normal[i]))
    if abs(normal[axis]) < 0.9:
        return "OBLIQUE"
    return ("SAGITTAL", "CORONAL", "AXIAL")[axis]


def _cross(a: list[float], b: list[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _geometry(dataset: Dataset, n_frames: int) -> dict[str, Any]:
    spacing = _floats(_geometry_value(dataset, "PixelSpacing", "PixelMeasuresSequence"))
    if spacing is None:
        spacing = _floats(dataset.get("ImagerPixelSpacing"))
    thickness = _floats(_geometry_value(dataset, "SliceThickness", "PixelMeasuresSequence"))
    iop = _floats(_geometry_value(dataset, "ImageOrientationPatient", "PlaneOrientationSequence"))
    if iop is not None and len(iop) != 6:
        iop = None
    position = None
    ipp = _floats(dataset.get("ImagePositionPatient"))
    if iop is not None and ipp is not None and len(ipp) == 3 and n_frames == 1:
        normal = _cross(iop[:3], iop[3:])
        position = round(sum(p * n for p, n in zip(ipp, normal, strict=True)), 3)
    return {
        "slice_thickness_mm": thickness[0] if thickness else None,
        "pixel_spacing_row_mm": spacing[0] if spacing and len(spacing) == 2 else None,
        "pixel_spacing_col_mm": spacing[1] if spacing and len(spacing) == 2 else None,
        "image_orientation": iop,
        "orientation": _orientation_label(iop) if iop is not None else None,
        "slice_position_mm": position,
    }


def extract_rows(
    dataset: Dataset, site: str, stored: StoredFile, *, ingested_at: dt.datetime
) -> InstanceRows:
    """The patients/studies/series/instances rows of one pseudonymized, stored instance.

    ``site`` is the site's name (``Site`` value); ``stored`` is what the store returned
    for this dataset's file. Refuses a dataset that is not pseudonymized.
    """
    require_pseudonymized(dataset)
    study_uid = check_uid(dataset.get("StudyInstanceUID"), "StudyInstanceUID")
    series_uid = check_uid(dataset.get("SeriesInstanceUID"), "SeriesInstanceUID")
    sop_uid = check_uid(dataset.get("SOPInstanceUID"), "SOPInstanceUID")
    pseudonym = _text(dataset, "PatientID")
    if pseudonym is None:
        raise InvalidDatasetError(
            "the dataset has no PatientID (the patient pseudonym)", hint="check the deid output"
        )
    study_date = _date(dataset.get("StudyDate")) or _date(dataset.get("SeriesDate"))
    birth_date = _date(dataset.get("PatientBirthDate"))
    age = parse_age(dataset.get("PatientAge"))
    if age is None and birth_date is not None and study_date is not None:
        age = (
            study_date.year
            - birth_date.year
            - ((study_date.month, study_date.day) < (birth_date.month, birth_date.day))
        )
    if birth_date is not None:
        birth_year = birth_date.year
    elif study_date is not None and age is not None:
        birth_year = study_date.year - age
    else:
        birth_year = None
    sex = _text(dataset, "PatientSex")
    n_frames = max(_int(dataset, "NumberOfFrames") or 1, 1)
    geometry = _geometry(dataset, n_frames)
    meta = getattr(dataset, "file_meta", None)
    transfer_syntax = None
    if meta is not None:
        transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "") or None
    frame_of_reference = _text(dataset, "FrameOfReferenceUID")
    return InstanceRows(
        patient={
            "patient_pseudonym": pseudonym,
            "sex": sex.upper() if sex else None,
            "birth_year_band": birth_year_band(birth_year),
        },
        study={
            "study_uid": study_uid,
            "patient_pseudonym": pseudonym,
            "site": str(site),
            "study_date": study_date,
            "age_years": age,
            "description": _text(dataset, "StudyDescription"),
            "accession_pseudonym": _text(dataset, "AccessionNumber"),
        },
        series={
            "series_uid": series_uid,
            "study_uid": study_uid,
            "modality": (_text(dataset, "Modality") or "").upper() or None,
            "series_number": _int(dataset, "SeriesNumber"),
            "body_part": _text(dataset, "BodyPartExamined"),
            "manufacturer": _text(dataset, "Manufacturer"),
            "model": _text(dataset, "ManufacturerModelName"),
            "description": _text(dataset, "SeriesDescription"),
            "frame_of_reference_uid": frame_of_reference,
            "image_rows": _int(dataset, "Rows"),
            "image_columns": _int(dataset, "Columns"),
            "slice_thickness_mm": geometry["slice_thickness_mm"],
            "pixel_spacing_row_mm": geometry["pixel_spacing_row_mm"],
            "pixel_spacing_col_mm": geometry["pixel_spacing_col_mm"],
            "image_orientation": geometry["image_orientation"],
            "orientation": geometry["orientation"],
        },
        instance={
            "sop_uid": sop_uid,
            "series_uid": series_uid,
            "study_uid": study_uid,
            "instance_number": _int(dataset, "InstanceNumber"),
            "sop_class_uid": _text(dataset, "SOPClassUID"),
            "transfer_syntax_uid": transfer_syntax,
            "n_frames": n_frames,
            "laterality": _text(dataset, "ImageLaterality") or _text(dataset, "Laterality"),
            "view_position": _text(dataset, "ViewPosition"),
            "image_rows": _int(dataset, "Rows"),
            "image_columns": _int(dataset, "Columns"),
            "slice_position_mm": geometry["slice_position_mm"],
            "path": stored.relpath,
            "size_bytes": stored.size,
            "sha256": stored.sha256,
            "ingested_at": ingested_at,
        },
    )
