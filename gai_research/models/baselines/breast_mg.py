"""baseline-mammography: dense masses on screening mammograms, view by view.

A mass is a round region denser than the fibroglandular tissue around it. The
algorithm, for each view (R/L CC and MLO; every number is a field of :class:`Params`):

1. **Breast.** Otsu's threshold separates the breast from the air; the largest bright
   component, holes filled, is the breast. The background level ``A`` is the median of
   the rest, the fat level ``F`` the ``fat_percentile``-th percentile of the breast at
   least ``interior_mm`` inside its skin (where the compressed breast is full
   thickness). ``F - A`` is the image's own contrast unit, so the gates below do not
   depend on the detector's gain.
2. **Blobs** (:mod:`._blobs`) inside the breast, on an image whose outside takes the
   nearest breast pixel's value (the skin line makes no edge), at scales covering masses
   of ``min_diameter_mm`` to ``max_diameter_mm``. A blob whose disc does not fit inside
   the breast (the chest-wall edge, the axilla) is dropped.
3. **Features**, in units of ``F - A``: blobness ``b``, surround contrast ``c`` (disc
   mean minus the brightest ring sector: the pectoral muscle's corner or a band of
   glandular tissue fail it) and density ``e`` (mean of the disc's core minus ``F``:
   how far above fat; a mass adds its own density to whatever tissue it lies in, so it
   stands above the brightest normal gland).
4. **Score** of a blob: ``logistic((b - blob_mid) / blob_scale) * logistic((c -
   contrast_mid) / contrast_scale) * logistic((e - density_mid) / density_scale)``.
   The view's score is its best blob's, the study's the best view's. Findings carry the
   image's ``sop_uid``, laterality and view, ``row_px``/``col_px`` and the diameter
   ``2 sqrt(2) sigma``.
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

__all__ = ["Mammography", "Params", "create"]


@dataclass(frozen=True)
class Params:
    """The knobs of the mammography baseline (see the module docstring)."""

    threshold: float = 0.5
    nominal_pixel_mm: float = 0.1  # used when an image states no pixel spacing
    interior_mm: float = 20.0
    fat_percentile: float = 10.0
    erode_mm: float = 2.0
    min_diameter_mm: float = 8.0
    max_diameter_mm: float = 30.0
    scale_step: float = 1.26
    blob_mid: float = 0.08
    blob_scale: float = 0.01
    contrast_mid: float = 0.1
    contrast_scale: float = 0.03
    density_mid: float = 0.54
    density_scale: float = 0.015
    min_finding_score: float = 0.05
    max_findings: int = 8


class Mammography(Baseline):
    """Mass classification (with located findings) on four-view screening mammography."""

    NAME = "baseline-mammography"
    TASK = "breast_mg"
    KIND = TaskKind.CLASSIFICATION
    MODALITIES = ("MG",)
    DESCRIPTION = (
        "per view: breast by Otsu; multi-scale Hessian blobs gated by blobness, surround "
        "contrast and density above fat; study score = best view"
    )
    Params = Params

    def _run(self, study: StudyInput) -> Prediction:
        images = projection_images(self, study.series_of(*self.MODALITIES))
        p: Params = self.params
        scored: list[dict[str, Any]] = []
        views: dict[str, float] = {}
        done, skipped = each_image(images, self._blobs)
        for image, blobs in done:
            key = f"{image.laterality or 'U'}_{image.view or 'UNKNOWN'}"
            best = max((b["score"] for b in blobs), default=0.0)
            views[key] = max(views.get(key, 0.0), best)
            scored.extend(blobs)
        scored.sort(key=lambda b: b["score"], reverse=True)
        kept = [b for b in scored if b["score"] >= p.min_finding_score][: p.max_findings]
        findings = tuple(
            Finding(
                score=round(b["score"], 6),
                diameter_mm=round(b["diameter_mm"], 2),
                label="mass",
                series_uid=b["series_uid"],
                sop_uid=b["sop_uid"],
                row_px=float(b["row"]),
                col_px=float(b["col"]),
                laterality=b["laterality"],
                view=b["view"],
            )
            for b in kept
        )
        return Prediction(
            study_uid=study.study_uid,
            score=max(views.values(), default=0.0),
            scores={f"view_{k}": round(v, 6) for k, v in sorted(views.items())},
            findings=findings,
            raw=self.raw(
                views=views,
                skipped=skipped,
                blobs=[
                    {k: b[k] for k in ("laterality", "view", "row", "col", "b", "c", "e", "score")}
                    for b in scored[:20]
                ],
            ),
        )

    def _blobs(self, image: ProjectionImage) -> list[dict[str, Any]]:
        import numpy as np
        from scipy import ndimage

        from gai_research.models.baselines._blobs import fill_outside, find_blobs

        p: Params = self.params
        pixels = image.pixels
        known = min(image.spacing_mm) > 0
        pixel_mm = float(np.mean(image.spacing_mm)) if known else p.nominal_pixel_mm
        breast = self._breast(pixels)
        edge = ndimage.distance_transform_edt(np.pad(breast, 1))[1:-1, 1:-1] * pixel_mm
        background = float(np.median(pixels[~breast]))
        interior = edge >= p.interior_mm
        fat = float(np.percentile(pixels[interior if interior.any() else breast], p.fat_percentile))
        unit = fat - background
        if unit <= 0:
            raise self.input_error(
                "the breast is not brighter than the background",
                hint="pass For Presentation mammograms (MONOCHROME2, or MONOCHROME1 tagged so)",
            )
        radii = np.array([p.min_diameter_mm, p.max_diameter_mm]) / 2.0 / pixel_mm
        search = edge >= max(p.erode_mm, 0.5 * p.min_diameter_mm)
        work = fill_outside(pixels, edge >= p.erode_mm)
        sigmas = (
            radii[0]
            / np.sqrt(2.0)
            * p.scale_step
            ** np.arange(int(np.floor(np.log(radii[1] / radii[0]) / np.log(p.scale_step))) + 1)
        )
        out = []
        for blob in find_blobs(work, search, sigmas, min_blobness=0.5 * p.blob_mid * unit):
            if edge[blob.row, blob.col] < blob.radius_px * pixel_mm:
                continue  # the disc reaches out of the breast
            b, c, e = blob.blobness / unit, blob.contrast / unit, (blob.core - fat) / unit
            score = (
                logistic((b - p.blob_mid) / p.blob_scale)
                * logistic((c - p.contrast_mid) / p.contrast_scale)
                * logistic((e - p.density_mid) / p.density_scale)
            )
            out.append(
                {
                    "sop_uid": image.sop_uid,
                    "series_uid": image.series_uid,
                    "laterality": image.laterality,
                    "view": image.view,
                    "row": blob.row,
                    "col": blob.col,
                    "diameter_mm": 2.0 * blob.radius_px * pixel_mm,
                    "b": b,
                    "c": c,
                    "e": e,
                    "score": score,
                }
            )
        return out

    def _breast(self, pixels: np.ndarray) -> np.ndarray:
        import numpy as np
        from scipy import ndimage

        from gai_research.models.baselines._blobs import otsu_threshold

        labels, n = ndimage.label(pixels > otsu_threshold(pixels.ravel()))
        if n == 0:
            raise self.input_error("the image is blank", hint="pass a mammogram")
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        breast = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))
        if breast.all() or breast.sum() < 0.05 * breast.size:
            raise self.input_error(
                "no breast outline found on the image (no clear skin-air border)",
                hint="pass For Presentation mammograms",
            )
        return breast


def create(**options: Any) -> Mammography:
    """Entry point ``baseline-mammography`` (group ``gai_research.models``)."""
    return Mammography(**options)
