"""The other result objects a DICOM-node vendor sends: segmentations and key-object notes.

* :func:`read_seg`: a DICOM Segmentation (binary, fractional or label-map) -> one
  :class:`VolumeMeasurement` per segment (voxel count x voxel volume, in mL) and one
  :class:`Mask` per segment naming the source series; the mask arrays come back beside
  the prediction (``SegReading.arrays``) for the caller to save, since a prediction is
  JSON and does not hold pixels.
* :func:`read_kos`: a Key Object Selection -> the flagged images as findings without a
  position (label = the document title, e.g. "of interest") and a study score of 1, the
  way a triage product says "look at this study". A rejection note (KOS titled
  "Rejected for Quality Reasons" and the like) is not a result and is refused.

Segment names follow the same rules as the SR reader: our finding labels from the
segmented property type ("hemorrhage"), an anatomic site with laterality
("hippocampus_l"), else the segment label in lower case with underscores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gai_research.models import sr_codes as C
from gai_research.models.errors import MalformedResultError
from gai_research.models.sr_read import as_dataset
from gai_research.models.types import Finding, Mask, Prediction, VolumeMeasurement

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SegReading", "read_kos", "read_seg"]

SEG_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
# KOS document titles that retract images rather than flag them (CID 7011)
REJECTION_TITLES = {"113001", "113037", "113038", "113039"}


@dataclass(frozen=True)
class SegReading:
    """A segmentation read: the prediction (volumes, masks) and each segment's frames."""

    prediction: Prediction
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (frames, rows, cols)
    voxel_volume_ml: float = 0.0


def read_seg(dataset: Any) -> SegReading:
    """Segment names and volumes (mL) of a DICOM Segmentation, with the mask arrays."""
    import numpy as np

    ds = as_dataset(dataset)
    if str(ds.get("SOPClassUID", "")) not in SEG_CLASSES:
        raise MalformedResultError(
            f"the result is not a segmentation (modality {ds.get('Modality', '?')!s})"
        )
    study_uid = str(ds.get("StudyInstanceUID", "") or "")
    if not study_uid:
        raise MalformedResultError("the segmentation has no Study Instance UID")
    voxel_ml = _voxel_volume_ml(ds)
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise MalformedResultError(
            f"the segmentation's pixel data cannot be decoded ({type(exc).__name__})"
        ) from None
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    kind = str(ds.get("SegmentationType", "BINARY")).upper()
    frames = ds.get("PerFrameFunctionalGroupsSequence", [])
    if kind != "LABELMAP" and len(frames) != pixels.shape[0]:
        raise MalformedResultError(
            f"the segmentation has {pixels.shape[0]} frames but {len(frames)} frame descriptions"
        )
    frame_segments = [_frame_segment(item) for item in frames]
    scale = float(ds.get("MaximumFractionalValue", 1) or 1) if kind == "FRACTIONAL" else 1.0
    series_uid = _source_series(ds)
    volumes, masks, arrays = [], [], {}
    for number, segment in enumerate(ds.get("SegmentSequence", []), start=1):
        seg_number = int(segment.get("SegmentNumber", number))
        name = _segment_name(segment, seg_number)
        if kind == "LABELMAP":
            mask = pixels == seg_number
            voxels = float(mask.sum())
        else:
            index = [i for i, s in enumerate(frame_segments) if s == seg_number]
            mask = pixels[index]
            voxels = float(mask.sum()) / scale
            if kind == "FRACTIONAL":
                mask = mask.astype(np.float32) / scale
        arrays[name] = mask.astype(bool) if kind != "FRACTIONAL" else mask
        volumes.append(
            VolumeMeasurement(name=name, volume_ml=voxels * voxel_ml, series_uid=series_uid)
        )
        masks.append(Mask(name=name, series_uid=series_uid))
    if not volumes:
        raise MalformedResultError("the segmentation describes no segments")
    raw = {
        "format": "dicom-seg",
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "segmentation_type": kind,
        "segments": [m.name for m in masks],
        "voxel_volume_ml": voxel_ml,
    }
    prediction = Prediction(
        study_uid=study_uid, volumes=tuple(volumes), masks=tuple(masks), raw=raw
    )
    return SegReading(prediction=prediction, arrays=arrays, voxel_volume_ml=voxel_ml)


def read_kos(dataset: Any) -> Prediction:
    """The images a Key Object Selection flags, as findings without a position."""
    ds = as_dataset(dataset)
    if str(ds.get("SOPClassUID", "")) != KOS_CLASS:
        raise MalformedResultError(
            f"the result is not a key object selection (modality {ds.get('Modality', '?')!s})"
        )
    study_uid = str(ds.get("StudyInstanceUID", "") or "")
    if not study_uid:
        raise MalformedResultError("the key object selection has no Study Instance UID")
    titles = ds.get("ConceptNameCodeSequence", [])
    title = C.concept_key(titles[0]) if titles else ("", "", "")
    if title[0] == "DCM" and title[1] in REJECTION_TITLES:
        raise MalformedResultError(
            f"the key object selection is a rejection note ({title[2]!r}), not a result"
        )
    evidence = {}
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.get("ReferencedSeriesSequence", []):
            for instance in series.get("ReferencedSOPSequence", []):
                evidence[str(instance.ReferencedSOPInstanceUID)] = str(series.SeriesInstanceUID)
    flagged = []
    description = ""
    for item in ds.get("ContentSequence", []):
        kind = str(item.get("ValueType", ""))
        if kind == "TEXT":
            description = str(item.get("TextValue", "") or "")
        for ref in item.get("ReferencedSOPSequence", []) if kind in ("IMAGE", "COMPOSITE") else ():
            flagged.append(str(ref.ReferencedSOPInstanceUID))
    if not flagged:
        raise MalformedResultError("the key object selection flags no images")
    label = title[2].strip().lower() or "key object"
    findings = tuple(
        Finding(score=1.0, label=label, sop_uid=sop, series_uid=evidence.get(sop))
        for sop in dict.fromkeys(flagged)
    )
    raw = {
        "format": "dicom-kos",
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "title": title[2],
        "description": description,
        "flagged": len(findings),
    }
    return Prediction(study_uid=study_uid, score=1.0, findings=findings, raw=raw)


def _voxel_volume_ml(ds: Any) -> float:
    measures = None
    for groups in (
        ds.get("SharedFunctionalGroupsSequence", []),
        ds.get("PerFrameFunctionalGroupsSequence", [])[:1],
    ):
        for item in groups:
            if "PixelMeasuresSequence" in item:
                measures = item.PixelMeasuresSequence[0]
                break
        if measures is not None:
            break
    if measures is None or "PixelSpacing" not in measures:
        raise MalformedResultError(
            "the segmentation has no pixel spacing, so no volume can be computed"
        )
    thickness = measures.get("SpacingBetweenSlices") or measures.get("SliceThickness")
    if thickness is None:
        raise MalformedResultError(
            "the segmentation has no slice thickness, so no volume can be computed"
        )
    row, col = (float(v) for v in measures.PixelSpacing)
    volume = row * col * float(thickness) / 1000.0
    if not math.isfinite(volume) or volume <= 0:
        raise MalformedResultError("the segmentation's voxel size is not a positive number")
    return volume


def _frame_segment(item: Any) -> int | None:
    ids = item.get("SegmentIdentificationSequence", [])
    return int(ids[0].ReferencedSegmentNumber) if ids else None


def _segment_name(segment: Any, number: int) -> str:
    types = segment.get("SegmentedPropertyTypeCodeSequence", [])
    if types:
        concept = C.concept_key(types[0])
        label = C.label_from_concept(concept)
        if label in C.LABEL_CODES and label:
            return label
        if any((s, v) == concept[:2] for s, v, _ in C.SITE_CODES.values()):
            laterality = None
            modifiers = types[0].get("SegmentedPropertyTypeModifierCodeSequence", [])
            for modifier in modifiers:
                laterality = laterality or C.laterality_from_concept(C.concept_key(modifier))
            return C.volume_name_from_site(concept, laterality)
    label = str(segment.get("SegmentLabel", "") or "").strip()
    return C.slug(label) or f"segment_{number}"


def _source_series(ds: Any) -> str | None:
    for series in ds.get("ReferencedSeriesSequence", []):
        if "SeriesInstanceUID" in series:
            return str(series.SeriesInstanceUID)
    return None
