"""TID 1500 measurement reports (ours and vendors') back into a :class:`Prediction`.

Tolerant on read: the content tree is walked with pydicom, not rebuilt with highdicom's
strict constructors, so a vendor's report that picks other codes, other graphic types or
another nesting still reads. What counts as what:

* a measurement group with a spatial ROI (SCOORD3D in patient mm, or SCOORD on an image)
  is a **finding**: its centre (POINT, or the mean of a polyline/polygon/ellipse, the
  centre of a circle), its score (Certainty of Finding, a probability, a score, a
  percentage), its diameter (mm, cm), its finding type as the label, its laterality;
  a group without a ROI but with a Certainty of Finding or a diameter is a finding
  without position;
* a volume measurement (mL, cm3, mm3, L) in any group is a **volume**, named after the
  finding type ("hemorrhage"), else the finding site and laterality ("hippocampus_l"),
  else the tracking identifier;
* any other score in a group without a ROI is **study-level**: "Certainty of Impression"
  or "Probability of cancer" (or else the first score seen) is ``score``, the rest go to
  ``scores`` by name. Without any, a coded qualitative evaluation (abnormal / present /
  positive = 1, normal / absent / negative = 0) is the score, and without that the
  highest finding score is; ``raw["score_from"]`` says which.

An object that is not a measurement report, or whose coordinates or units make no sense,
is a :class:`~gai_research.models.errors.MalformedResultError` whose message gives the
reason. Messages name groups by position, never by UID or patient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.models import sr_codes as C
from gai_research.models.errors import MalformedResultError
from gai_research.models.types import Finding, Prediction, VolumeMeasurement

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["as_dataset", "read_sr"]

KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
MEASUREMENT_GROUP = ("DCM", "125007")
IMAGING_MEASUREMENTS = ("DCM", "126010")
REPORT_TITLES = {("DCM", "126000")}  # Imaging Measurement Report (CID 7021 others accepted too)
QUALITATIVE_CONTAINERS = {("UMLS", "C0034375"), ("DCM", "126012")}
TRACKING_ID = ("DCM", "112039")
FINDING_TYPE = ("DCM", "121071")
FINDING_SITE = ("SCT", "363698007")
LATERALITY = ("SCT", "272741003")
POSITIVE_VALUES = {
    ("SCT", "263654008"),  # Abnormal
    ("SCT", "52101004"),  # Present
    ("SCT", "10828004"),  # Positive
}
NEGATIVE_VALUES = {
    ("SCT", "17621005"),  # Normal
    ("SCT", "2667000"),  # Absent
    ("SCT", "260385009"),  # Negative
    ("DCM", "111286"),  # No abnormality
}
_LENGTH_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}
_VOLUME_TO_ML = {"ml": 1.0, "cm3": 1.0, "mm3": 0.001, "l": 1000.0, "ul": 0.001, "dl": 100.0}


def as_dataset(obj: Any) -> Dataset:
    """A pydicom Dataset from a Dataset, Part 10 bytes or a file path."""
    import pydicom
    from pydicom import Dataset as PydicomDataset

    if isinstance(obj, PydicomDataset):
        return obj
    try:
        if isinstance(obj, bytes | bytearray):
            from io import BytesIO

            ds = pydicom.dcmread(BytesIO(obj), force=True)
        elif isinstance(obj, str | Path):
            ds = pydicom.dcmread(obj, force=True)
        else:
            ds = None
    except Exception as exc:
        raise MalformedResultError(
            f"result is not a readable DICOM object: {type(exc).__name__}"
        ) from None
    if ds is not None:
        if "SOPClassUID" not in ds:  # force=True reads anything; no SOP class, no object
            raise MalformedResultError("result is not a readable DICOM object (no SOP Class UID)")
        return ds
    raise MalformedResultError(f"cannot read a DICOM result from a {type(obj).__name__}")


@dataclass
class _Group:
    """What one measurement group holds, before it is sorted into the prediction."""

    number: int
    tracking_id: str = ""
    finding_type: tuple[str, str, str] | None = None
    sites: list[tuple[tuple[str, str, str], str | None]] = field(default_factory=list)
    points3d: list[tuple[float, float, float]] = field(default_factory=list)
    points2d: list[tuple[float, float, str | None]] = field(default_factory=list)  # col, row, sop
    images: list[str] = field(default_factory=list)
    nums: list[tuple[tuple[str, str, str], float, str]] = field(default_factory=list)
    codes: list[tuple[tuple[str, str, str], tuple[str, str, str]]] = field(default_factory=list)


def read_sr(dataset: Any, *, sources: Iterable[Dataset] | None = None) -> Prediction:
    """The prediction a TID 1500 measurement report carries.

    ``dataset``: a pydicom Dataset, Part 10 bytes or a path. ``sources`` (optional): the
    study's image headers, used to fill a finding's view and laterality from the image it
    is on (MG, DX); a report does not carry the view itself.
    """
    ds = as_dataset(dataset)
    _check_report(ds)
    study_uid = str(ds.get("StudyInstanceUID", "") or "")
    if not study_uid:
        raise MalformedResultError("the report has no Study Instance UID")
    evidence = _evidence_series(ds, study_uid)
    group_items, qualitative = _measurement_groups(ds)
    groups = [_parse_group(number, item) for number, item in enumerate(group_items, start=1)]
    views = _views(sources)

    findings: list[Finding] = []
    volumes: list[VolumeMeasurement] = []
    score: float | None = None
    scores: dict[str, float] = {}
    score_from = None
    for group in groups:
        volumes.extend(_volumes(group, evidence, len(volumes)))
        finding = _finding(group, evidence, views)
        if finding is not None:
            findings.append(finding)
            continue
        for concept, value, unit in group.nums:
            if not C.is_score(concept) or C.is_diameter(concept) or C.is_volume(concept):
                continue
            value = _score_value(value, unit)
            name = concept[2] or concept[1]
            if score is None and (concept[0], concept[1]) in C.STUDY_SCORE_CONCEPTS:
                score, score_from = value, "measurement"
            else:
                scores.setdefault(name, value)
        qualitative.extend(group.codes)
    if score is None and scores and not _ours(ds):
        name = next(iter(scores))
        score, score_from = scores.pop(name), "measurement"
    if score is None:
        score = _qualitative_score(qualitative)
        score_from = "qualitative" if score is not None else None
    if score is None and findings:
        score, score_from = max(f.score for f in findings), "max-finding"
    if not groups and not qualitative:
        raise MalformedResultError(
            "the measurement report has no measurement groups",
            hint="the vendor's SR must carry TID 1501/1410/1411 groups under Imaging Measurements",
        )
    raw = {
        "format": "dicom-sr",
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "series_description": str(ds.get("SeriesDescription", "") or ""),
        "completion": str(ds.get("CompletionFlag", "") or ""),
        "verification": str(ds.get("VerificationFlag", "") or ""),
        "algorithm": _algorithm(ds),
        "groups": len(groups),
        "score_from": score_from,
    }
    return Prediction(
        study_uid=study_uid,
        score=score,
        scores=scores,
        findings=tuple(findings),
        volumes=tuple(volumes),
        raw=raw,
    )


# -- structure --------------------------------------------------------------------------


def _check_report(ds: Dataset) -> None:
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == KOS_CLASS:
        raise MalformedResultError(
            "the result is a key object selection, not a measurement report",
            hint="read it with gai_research.models.sr.read_kos",
        )
    if str(ds.get("Modality", "")).upper() != "SR" or "ContentSequence" not in ds:
        raise MalformedResultError(
            f"the result is not a structured report (modality {ds.get('Modality', '?')!s})",
            hint="a DICOM-node vendor must answer with a TID 1500 SR, a SEG or a KOS",
        )
    if str(ds.get("ValueType", "")) != "CONTAINER":
        raise MalformedResultError("the report's root content item is not a CONTAINER")


def _measurement_groups(ds: Dataset) -> tuple[list[Dataset], list]:
    """The report's measurement group containers and its report-level qualitative items."""
    containers = [
        item
        for item in ds.ContentSequence
        if _value_type(item) == "CONTAINER" and _key(item) == IMAGING_MEASUREMENTS
    ]
    qualitative: list = []
    for item in ds.ContentSequence:
        if _value_type(item) == "CONTAINER" and _key(item) in QUALITATIVE_CONTAINERS:
            qualitative.extend(
                (_name(child), _code_value(child))
                for child in item.get("ContentSequence", [])
                if _value_type(child) == "CODE"
            )
    if not containers:
        groups = [
            item
            for item in ds.ContentSequence
            if _value_type(item) == "CONTAINER" and _key(item) == MEASUREMENT_GROUP
        ]
        if groups:
            return groups, qualitative
        title = (
            C.concept_key(ds.ConceptNameCodeSequence[0])
            if "ConceptNameCodeSequence" in ds
            else ("", "", "")
        )
        raise MalformedResultError(
            f"not a TID 1500 measurement report: no 'Imaging Measurements' container "
            f"(document title {title[2] or 'missing'!r})",
            hint="the vendor's SR must follow TID 1500 (Measurement Report)",
        )
    groups = []
    for container in containers:
        groups.extend(
            item
            for item in container.get("ContentSequence", [])
            if _value_type(item) == "CONTAINER"
        )
    return groups, qualitative


def _parse_group(number: int, item: Dataset) -> _Group:
    group = _Group(number=number)
    for child in item.get("ContentSequence", []):
        _visit(group, child, top=True)
    return group


def _visit(group: _Group, item: Dataset, *, top: bool) -> None:
    kind = _value_type(item)
    key = _key(item)
    if kind == "TEXT" and key == TRACKING_ID and top:
        group.tracking_id = str(item.get("TextValue", "") or "").strip()
    elif kind == "CODE" and key == FINDING_TYPE and top:
        group.finding_type = _code_value(item)
    elif kind == "CODE" and key == FINDING_SITE:
        laterality = None
        for child in item.get("ContentSequence", []):
            if _value_type(child) == "CODE" and _key(child) == LATERALITY:
                laterality = C.laterality_from_concept(_code_value(child))
        group.sites.append((_code_value(item), laterality))
        return
    elif kind == "CODE" and top:
        group.codes.append((_name(item), _code_value(item)))
    elif kind == "NUM":
        _read_num(group, item)
    elif kind == "SCOORD3D":
        group.points3d.append(_centre3d(group.number, item))
    elif kind == "SCOORD":
        col, row = _centre2d(group.number, item)
        images = [
            _image_ref(child)
            for child in item.get("ContentSequence", [])
            if _value_type(child) == "IMAGE"
        ]
        group.points2d.append((col, row, images[0] if images else None))
        return
    elif kind == "IMAGE":
        sop = _image_ref(item)
        if sop:
            group.images.append(sop)
    for child in item.get("ContentSequence", []):
        _visit(group, child, top=False)


def _read_num(group: _Group, item: Dataset) -> None:
    values = item.get("MeasuredValueSequence", [])
    if not values:  # a NUM with a qualifier only ("not a number"): nothing to read
        return
    value_item = values[0]
    try:
        if "FloatingPointValue" in value_item:
            value = float(value_item.FloatingPointValue)
        else:
            value = float(value_item.NumericValue)
    except (TypeError, ValueError, AttributeError):
        raise MalformedResultError(
            f"measurement group {group.number}: a numeric value is not a number"
        ) from None
    if not math.isfinite(value):
        raise MalformedResultError(
            f"measurement group {group.number}: a numeric value is not finite"
        )
    units = value_item.get("MeasurementUnitsCodeSequence", [])
    unit = C.concept_key(units[0])[1] if units else ""
    group.nums.append((_name(item), value, unit))


def _centre3d(number: int, item: Dataset) -> tuple[float, float, float]:
    data = [float(v) for v in _graphic_data(item)]
    if not data or len(data) % 3:
        raise MalformedResultError(
            f"measurement group {number}: SCOORD3D graphic data is not x/y/z triplets"
        )
    points = [data[i : i + 3] for i in range(0, len(data), 3)]
    kind = str(item.get("GraphicType", "POINT"))
    if kind == "POLYGON" and len(points) > 1 and points[0] == points[-1]:
        points = points[:-1]  # closed polygons repeat their first vertex
    return tuple(sum(p[i] for p in points) / len(points) for i in range(3))  # type: ignore[return-value]


def _centre2d(number: int, item: Dataset) -> tuple[float, float]:
    data = [float(v) for v in _graphic_data(item)]
    if not data or len(data) % 2:
        raise MalformedResultError(
            f"measurement group {number}: SCOORD graphic data is not column/row pairs"
        )
    points = [data[i : i + 2] for i in range(0, len(data), 2)]
    kind = str(item.get("GraphicType", "POINT"))
    if kind == "CIRCLE":
        points = points[:1]  # centre, then a point on the circle
    elif kind == "POLYGON" and len(points) > 1 and points[0] == points[-1]:
        points = points[:-1]
    return (
        sum(p[0] for p in points) / len(points),
        sum(p[1] for p in points) / len(points),
    )


def _graphic_data(item: Dataset) -> list:
    data = item.get("GraphicData", [])
    if isinstance(data, int | float):
        return [data]
    return list(data)


# -- sorting into the prediction ----------------------------------------------------------


def _finding(group: _Group, evidence: dict[str, str], views: dict) -> Finding | None:
    scored = [(c, v, u) for c, v, u in group.nums if C.is_score(c) and not C.is_diameter(c)]
    diameters = [(c, v, u) for c, v, u in group.nums if C.is_diameter(c)]
    certainty = [n for n in scored if (n[0][0], n[0][1]) == ("DCM", "111012")]
    has_roi = bool(group.points3d or group.points2d)
    if not has_roi and not certainty and not diameters:
        return None
    if not has_roi and group.tracking_id == C.STUDY_GROUP_ID:
        return None
    chosen = (certainty or scored or [None])[0]
    score = _score_value(chosen[1], chosen[2]) if chosen is not None else 1.0
    diameter = None
    if diameters:
        _, value, unit = diameters[0]
        diameter = value * _unit_factor(group.number, unit, _LENGTH_TO_MM, "length")
    label = C.label_from_concept(group.finding_type) if group.finding_type else ""
    laterality = next((side for _, side in group.sites if side), None)
    values: dict[str, Any] = {"score": score, "diameter_mm": diameter, "label": label}
    if group.points3d:
        x, y, z = group.points3d[0]
        values.update(x_mm=x, y_mm=y, z_mm=z)
        values["series_uid"] = _series_of(group.images, evidence)
    elif group.points2d:
        col, row, sop = group.points2d[0]
        sop = sop or (group.images[0] if group.images else None)
        values.update(row_px=row - 0.5, col_px=col - 0.5, sop_uid=sop)
        values["series_uid"] = evidence.get(sop or "")
    else:
        sop = group.images[0] if group.images else None
        values.update(sop_uid=sop, series_uid=evidence.get(sop or ""))
    image_laterality, view = views.get(values.get("sop_uid") or "", (None, None))
    values["laterality"] = laterality or image_laterality
    values["view"] = view
    return Finding(**values)


def _volumes(group: _Group, evidence: dict[str, str], offset: int) -> list[VolumeMeasurement]:
    found = []
    for concept, value, unit in group.nums:
        if not C.is_volume(concept):
            continue
        ml = value * _unit_factor(group.number, unit, _VOLUME_TO_ML, "volume")
        found.append(
            VolumeMeasurement(
                name=_volume_name(group, offset + len(found) + 1),
                volume_ml=ml,
                series_uid=_series_of(group.images, evidence),
            )
        )
    return found


def _volume_name(group: _Group, number: int) -> str:
    label = C.label_from_concept(group.finding_type) if group.finding_type else ""
    if label:
        return label
    if group.sites:
        site, laterality = group.sites[0]
        return C.volume_name_from_site(site, laterality)
    return group.tracking_id or f"volume_{number}"


def _series_of(images: list[str], evidence: dict[str, str]) -> str | None:
    for sop in images:
        if sop in evidence:
            return evidence[sop]
    series = set(evidence.values())
    return series.pop() if len(series) == 1 else None


def _score_value(value: float, unit: str) -> float:
    return value / 100.0 if unit == "%" else value


def _unit_factor(number: int, unit: str, table: dict[str, float], what: str) -> float:
    factor = table.get(unit.lower()) if unit else 1.0
    if factor is None:
        raise MalformedResultError(
            f"measurement group {number}: a {what} in unit {unit!r}, which we do not convert",
            hint=f"expected one of {sorted(table)}",
        )
    return factor


def _qualitative_score(items: list) -> float | None:
    for _name_key, value in items:
        pair = (value[0], value[1])
        word = value[2].lower()
        if pair in POSITIVE_VALUES or word in ("abnormal", "present", "positive"):
            return 1.0
        if pair in NEGATIVE_VALUES or word in ("normal", "absent", "negative", "no abnormality"):
            return 0.0
    return None


# -- small readers ------------------------------------------------------------------------


def _evidence_series(ds: Dataset, study_uid: str) -> dict[str, str]:
    """SOP instance UID -> series UID of the images the report lists as evidence."""
    out: dict[str, str] = {}
    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in ds.get(keyword, []):
            if str(study.get("StudyInstanceUID", "")) != study_uid:
                continue
            for series in study.get("ReferencedSeriesSequence", []):
                for instance in series.get("ReferencedSOPSequence", []):
                    out[str(instance.ReferencedSOPInstanceUID)] = str(series.SeriesInstanceUID)
    return out


def _views(sources: Iterable[Dataset] | None) -> dict[str, tuple[str | None, str | None]]:
    out: dict[str, tuple[str | None, str | None]] = {}
    for ds in sources or ():
        laterality = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "") or None
        view = str(ds.get("ViewPosition", "") or "") or None
        out[str(ds.SOPInstanceUID)] = (laterality, view)
    return out


def _algorithm(ds: Dataset) -> dict[str, str]:
    """Algorithm name/version of the first group that names one, else the device observer."""
    found: dict[str, str] = {}
    names = {("DCM", "111001"): "name", ("DCM", "111003"): "version", ("DCM", "121013"): "device"}

    def walk(items: Iterable[Dataset], depth: int) -> None:
        for item in items:
            if _value_type(item) == "TEXT" and _key(item) in names:
                found.setdefault(names[_key(item)], str(item.get("TextValue", "")))
            if depth < 4:
                walk(item.get("ContentSequence", []), depth + 1)

    walk(ds.get("ContentSequence", []), 0)
    return found


def _ours(ds: Dataset) -> bool:
    """Written by :func:`write_sr` (it declares our private coding scheme when it uses it)."""
    return any(
        str(item.get("CodingSchemeDesignator", "")) == C.GAI_SCHEME
        for item in ds.get("CodingSchemeIdentificationSequence", [])
    )


def _value_type(item: Dataset) -> str:
    return str(item.get("ValueType", ""))


def _name(item: Dataset) -> tuple[str, str, str]:
    names = item.get("ConceptNameCodeSequence", [])
    return C.concept_key(names[0]) if names else ("", "", "")


def _key(item: Dataset) -> tuple[str, str]:
    scheme, value, _ = _name(item)
    return scheme, value


def _code_value(item: Dataset) -> tuple[str, str, str]:
    values = item.get("ConceptCodeSequence", [])
    return C.concept_key(values[0]) if values else ("", "", "")


def _image_ref(item: Dataset) -> str | None:
    refs = item.get("ReferencedSOPSequence", [])
    return str(refs[0].ReferencedSOPInstanceUID) if refs else None
