"""DICOM results both ways: predictions as TID 1500 SR, and vendors' SR / SEG / KOS read back.

``write_sr`` (:mod:`~gai_research.models.sr_write`) builds a Comprehensive 3D SR
measurement report with highdicom; ``read_sr`` (:mod:`~gai_research.models.sr_read`)
reads ours and vendors' reports tolerantly; ``read_seg`` / ``read_kos``
(:mod:`~gai_research.models.sr_seg_kos`) read segmentations and key-object selections.
``read_result`` picks the reader by SOP class and ``merge_predictions`` folds the objects
a DICOM node sent for one study into one prediction. See ``docs/sr.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gai_research.models.errors import MalformedResultError
from gai_research.models.sr_read import as_dataset, read_sr
from gai_research.models.sr_seg_kos import KOS_CLASS, SEG_CLASSES, SegReading, read_kos, read_seg
from gai_research.models.sr_write import write_sr
from gai_research.models.types import Prediction

__all__ = [
    "SegReading",
    "merge_predictions",
    "read_kos",
    "read_result",
    "read_seg",
    "read_sr",
    "result_kind",
    "write_sr",
]


def result_kind(sop_class_uid: str, modality: str = "") -> str | None:
    """``"sr"``, ``"seg"``, ``"kos"`` for the result object classes we read, else None."""
    if sop_class_uid in SEG_CLASSES:
        return "seg"
    if sop_class_uid == KOS_CLASS:
        return "kos"
    if sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.88.") or modality.upper() == "SR":
        return "sr"
    return None


def read_result(dataset: Any, *, sources: Iterable[Any] | None = None) -> Prediction:
    """Any result object (SR, SEG, KOS) as a prediction; SEG mask arrays are dropped
    (use :func:`read_seg` to keep them)."""
    ds = as_dataset(dataset)
    kind = result_kind(str(ds.get("SOPClassUID", "")), str(ds.get("Modality", "")))
    if kind == "sr":
        return read_sr(ds, sources=sources)
    if kind == "seg":
        return read_seg(ds).prediction
    if kind == "kos":
        return read_kos(ds)
    raise MalformedResultError(
        f"a result object of modality {ds.get('Modality', '?')!s} is neither SR, SEG nor KOS",
        hint="the vendor node should answer with a TID 1500 SR, a SEG or a key object selection",
    )


def merge_predictions(study_uid: str, predictions: Sequence[Prediction]) -> Prediction:
    """One prediction from the objects sent for a study, in arrival order.

    The study score comes from the first SR that has one, else from a KOS; named scores
    are merged (first wins); findings and masks are all kept; a volume from a SEG is kept
    only when no SR measured a volume of that name. ``raw`` lists each object's raw part.
    """
    if not predictions:
        raise MalformedResultError("no result objects to merge")
    for p in predictions:
        if p.study_uid != study_uid:
            raise MalformedResultError("a result object belongs to another study")

    def fmt(p: Prediction) -> str:
        return (p.raw or {}).get("format", "") if isinstance(p.raw, dict) else ""

    ordered = sorted(predictions, key=lambda p: {"dicom-sr": 0, "dicom-kos": 1}.get(fmt(p), 2))
    score = next((p.score for p in ordered if p.score is not None), None)
    scores: dict[str, float] = {}
    findings, volumes, masks = [], [], []
    seen_volumes: set[str] = set()
    for p in ordered:
        for name, value in p.scores.items():
            scores.setdefault(name, value)
        findings.extend(p.findings)
        masks.extend(p.masks)
        for v in p.volumes:
            if fmt(p) == "dicom-seg" and v.name in seen_volumes:
                continue
            seen_volumes.add(v.name)
            volumes.append(v)
    return Prediction(
        study_uid=study_uid,
        score=score,
        scores=scores,
        findings=tuple(findings),
        volumes=tuple(volumes),
        masks=tuple(masks),
        raw={"objects": [p.raw for p in predictions]},
    )
