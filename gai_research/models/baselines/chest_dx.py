"""baseline-chest-xray: lung nodules on a frontal chest radiograph by blob detection.

The algorithm, step by step (every number is a field of :class:`Params`):

1. **Lung fields.** Otsu's threshold splits the image into dark (air: lungs and the
   background) and bright (soft tissue, bone). Dark components that do not touch the
   image border and cover at least ``min_lung_fraction`` of it are the lungs; their holes
   (a nodule, a rib crossing) are filled. No lung field is an input error.
2. **Search image.** The lungs, eroded by ``erode_mm`` (their partial-volume rim), keep
   their pixels; every other pixel takes the value of the nearest lung pixel, so the
   lung border, heart and diaphragm make no edge.
3. **Blobs** (:mod:`._blobs`): the scale-normalised Hessian blobness at scales covering
   nodules of ``min_diameter_mm`` to ``max_diameter_mm``; local maxima inside the lungs.
   For each, the blobness ``b`` and the surround contrast ``c`` (disc mean minus the
   brightest ring sector), both divided by the image's own lung-to-soft-tissue contrast
   (median of the bright class minus the lung median), so the gates do not depend on the
   detector's gain.
4. **Score** of a blob: ``logistic((b - blob_mid) / blob_scale) * logistic((c -
   contrast_mid) / contrast_scale)`` ("round and bright on every side"); a rib is a ridge
   (low ``b``), a rib crossing fails ``c``. The study score is the best blob's; findings
   are blobs scoring at least ``min_finding_score`` (at most ``max_findings``), with
   ``sop_uid``, ``row_px``/``col_px`` (0-based) and diameter ``2 sqrt(2) sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gai_research.models.baselines._common import (
    Baseline,
    ProjectionImage,
    each_image,
    logistic,
    projection_images,
)
from gai_research.models.types import Finding, Prediction, StudyInput, TaskKind

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ChestXray", "Params", "create"]


@dataclass(frozen=True)
class Params:
    """The knobs of the chest X-ray baseline (see the module docstring)."""

    threshold: float = 0.5
    nominal_pixel_mm: float = 0.7  # used when an image states no pixel spacing
    min_lung_fraction: float = 0.01
    erode_mm: float = 2.0
    min_diameter_mm: float = 8.0
    max_diameter_mm: float = 30.0
    scale_step: float = 1.26
    blob_mid: float = 0.07
    blob_scale: float = 0.008
    contrast_mid: float = 0.1
    contrast_scale: float = 0.025
    min_finding_score: float = 0.05
    max_findings: int = 5


class ChestXray(Baseline):
    """Nodule classification (with located findings) on chest radiographs."""

    NAME = "baseline-chest-xray"
    TASK = "lung_nodule_dx"
    KIND = TaskKind.CLASSIFICATION
    MODALITIES = ("DX", "CR")
    DESCRIPTION = (
        "Otsu lung fields; multi-scale Hessian blob detection inside them, gated by "
        "blobness and surround contrast; study score = best blob"
    )
    Params = Params

    def _run(self, study: StudyInput) -> Prediction:
        images = projection_images(self, study.series_of(*self.MODALITIES))
        scored: list[dict[str, Any]] = []
        per_image = []
        done, skipped = each_image(images, self._blobs)
        for image, blobs in done:
            per_image.append({"sop_uid": image.sop_uid, "n_blobs": len(blobs)})
            scored.extend(blobs)
        scored.sort(key=lambda b: b["score"], reverse=True)
        p: Params = self.params
        kept = [b for b in scored if b["score"] >= p.min_finding_score][: p.max_findings]
        findings = tuple(
            Finding(
                score=round(b["score"], 6),
                diameter_mm=round(b["diameter_mm"], 2),
                label="nodule",
                series_uid=b["series_uid"],
                sop_uid=b["sop_uid"],
                row_px=float(b["row"]),
                col_px=float(b["col"]),
            )
            for b in kept
        )
        return Prediction(
            study_uid=study.study_uid,
            score=max((b["score"] for b in scored), default=0.0),
            findings=findings,
            raw=self.raw(
                images=per_image,
                skipped=skipped,
                blobs=[
                    {k: b[k] for k in ("row", "col", "diameter_mm", "b", "c", "score")}
                    for b in scored[:20]
                ],
            ),
        )

    def _blobs(self, image: ProjectionImage) -> list[dict[str, Any]]:
        import numpy as np
        from scipy import ndimage

        from gai_research.models.baselines._blobs import fill_outside, find_blobs, otsu_threshold

        p: Params = self.params
        pixels = image.pixels
        known = min(image.spacing_mm) > 0
        pixel_mm = float(np.mean(image.spacing_mm)) if known else p.nominal_pixel_mm
        cut = otsu_threshold(pixels.ravel())
        lungs = self._lungs(pixels < cut)
        body = float(np.median(pixels[pixels >= cut]))
        lung_level = float(np.median(pixels[lungs]))
        scale = body - lung_level
        if scale <= 0:
            raise self.input_error(
                "the lung fields are not darker than the soft tissue",
                hint="pass a frontal chest radiograph (MONOCHROME2, or MONOCHROME1 tagged so)",
            )
        erode = max(round(p.erode_mm / pixel_mm), 1)
        search = ndimage.binary_erosion(lungs, iterations=erode)
        if not search.any():
            search = lungs
        work = fill_outside(pixels, search)
        sigmas = _sigmas(p.min_diameter_mm, p.max_diameter_mm, p.scale_step, pixel_mm)
        out = []
        for blob in find_blobs(work, search, sigmas, min_blobness=0.5 * p.blob_mid * scale):
            b, c = blob.blobness / scale, blob.contrast / scale
            score = logistic((b - p.blob_mid) / p.blob_scale) * logistic(
                (c - p.contrast_mid) / p.contrast_scale
            )
            out.append(
                {
                    "sop_uid": image.sop_uid,
                    "series_uid": image.series_uid,
                    "row": blob.row,
                    "col": blob.col,
                    "diameter_mm": 2.0 * blob.radius_px * pixel_mm,
                    "b": b,
                    "c": c,
                    "score": score,
                }
            )
        return out

    def _lungs(self, dark: np.ndarray) -> np.ndarray:
        """Dark components away from the image border, big enough, holes filled."""
        import numpy as np
        from scipy import ndimage

        p: Params = self.params
        labels, n = ndimage.label(dark)
        keep = np.bincount(labels.ravel(), minlength=n + 1) >= p.min_lung_fraction * dark.size
        for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            keep[np.unique(edge)] = False
        keep[0] = False
        if not keep.any():
            raise self.input_error(
                "no lung fields found on the radiograph",
                hint="pass a frontal (PA/AP) chest radiograph",
            )
        return ndimage.binary_fill_holes(keep[labels])


def _sigmas(d_min: float, d_max: float, step: float, pixel_mm: float) -> np.ndarray:
    """Hessian scales (px) for discs of diameter d_min..d_max mm: sigma = radius / sqrt(2)."""
    import numpy as np

    low = d_min / 2.0 / pixel_mm / np.sqrt(2.0)
    high = d_max / 2.0 / pixel_mm / np.sqrt(2.0)
    count = int(np.floor(np.log(high / low) / np.log(step))) + 1
    return low * step ** np.arange(max(count, 1))


def create(**options: Any) -> ChestXray:
    """Entry point ``baseline-chest-xray`` (group ``gai_research.models``)."""
    return ChestXray(**options)
