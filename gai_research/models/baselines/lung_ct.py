"""baseline-lung-nodule-ct: solid lung nodules on chest CT by lung masking and blobs.

The algorithm, step by step (every number is a field of :class:`Params`):

1. **Lungs.** Voxels below ``air_hu`` (-400 HU) are air. Air connected to the in-plane
   border of the scan is outside the body; the remaining air components of at least
   ``min_lung_ml`` are the lungs. Each axial slice of the lung mask has its holes filled,
   so anything solid the lungs surround (nodules, vessels seen end-on) joins the field.
2. **Candidates.** Solid voxels (>= ``air_hu``) inside the filled lung field, grouped in
   3D connected components. Components smaller than ``min_diameter_mm`` (equivalent
   sphere) are noise; larger than ``max_diameter_mm`` are anatomy, not a nodule.
3. **Features** of each candidate: equivalent-sphere diameter ``d`` (mm, from the voxel
   count and voxel size), roundness ``r`` (smallest / largest principal axis of the
   voxel cloud in mm: 1 for a sphere, near 0 for a vessel) and contrast ``c`` (mean HU
   inside minus the mean HU of the lung within ``ring_mm`` around it).
4. **Score** of a candidate: the product of three soft gates,
   ``logistic((d - size_mid_mm) / size_scale_mm) * logistic((r - round_mid) /
   round_scale) * logistic((c - contrast_mid_hu) / contrast_scale_hu)``: "big enough,
   round enough, dense enough". The study score is the highest candidate score (0 when
   there is no candidate). Findings are the candidates scoring at least
   ``min_finding_score``, best first, at most ``max_findings``, each at its centroid in
   DICOM patient coordinates (LPS, mm) with its equivalent diameter.

No training: the gates are set from the clinical meaning (Lung-RADS treats solid nodules
from 6 mm as actionable) and from CT physics (lung -850 HU, soft tissue 0-60 HU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gai_research.models.baselines._common import Baseline, logistic, pick_series, read_volume
from gai_research.models.types import Finding, Prediction, StudyInput, TaskKind

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LungNoduleCT", "Params", "create"]


@dataclass(frozen=True)
class Params:
    """The knobs of the lung-nodule baseline (see the module docstring)."""

    threshold: float = 0.5
    air_hu: float = -400.0
    min_lung_ml: float = 50.0
    min_diameter_mm: float = 3.0
    max_diameter_mm: float = 50.0
    ring_mm: float = 3.0
    size_mid_mm: float = 5.0
    size_scale_mm: float = 1.0
    round_mid: float = 0.4
    round_scale: float = 0.08
    contrast_mid_hu: float = 300.0
    contrast_scale_hu: float = 75.0
    min_finding_score: float = 0.05
    max_findings: int = 10


class LungNoduleCT(Baseline):
    """Lung-nodule detection on chest CT (see the module docstring)."""

    NAME = "baseline-lung-nodule-ct"
    TASK = "lung_nodule_ct"
    KIND = TaskKind.DETECTION
    MODALITIES = ("CT",)
    DESCRIPTION = (
        "lung mask by HU threshold and hole filling; solid connected components inside the "
        "lungs scored by size, roundness and contrast; study score = best candidate"
    )
    Params = Params

    def _run(self, study: StudyInput) -> Prediction:
        import numpy as np

        p: Params = self.params
        series = pick_series(self, study, "CT")
        volume = read_volume(self, series)
        hu = volume.array
        spacing = np.asarray(volume.spacing, dtype=np.float64)
        lungs, filled = self._lung_field(hu, spacing)
        candidates = _candidates(hu, lungs, filled, spacing, p)
        for c in candidates:
            c["score"] = (
                logistic((c["diameter_mm"] - p.size_mid_mm) / p.size_scale_mm)
                * logistic((c["roundness"] - p.round_mid) / p.round_scale)
                * logistic((c["contrast_hu"] - p.contrast_mid_hu) / p.contrast_scale_hu)
            )
        candidates.sort(key=lambda c: c["score"], reverse=True)
        kept = [c for c in candidates if c["score"] >= p.min_finding_score][: p.max_findings]
        centroids = np.array([c["ijk"] for c in kept]).reshape(-1, 3)
        world = volume.voxel_to_world(centroids) if len(kept) else np.zeros((0, 3))
        findings = tuple(
            Finding(
                score=round(c["score"], 6),
                x_mm=round(float(xyz[0]), 2),
                y_mm=round(float(xyz[1]), 2),
                z_mm=round(float(xyz[2]), 2),
                diameter_mm=round(c["diameter_mm"], 2),
                label="nodule",
                series_uid=series.series_uid,
            )
            for c, xyz in zip(kept, world, strict=True)
        )
        voxel_ml = float(np.prod(spacing)) / 1000.0
        return Prediction(
            study_uid=study.study_uid,
            score=max((c["score"] for c in candidates), default=0.0),
            scores={"n_candidates": float(len(candidates))},
            findings=findings,
            raw=self.raw(
                series_uid=series.series_uid,
                lung_volume_ml=float(lungs.sum()) * voxel_ml,
                candidates=[{k: v for k, v in c.items() if k != "ijk"} for c in candidates[:50]],
            ),
        )

    def _lung_field(self, hu: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lungs, lungs with every slice's holes filled); no lungs is an input error."""
        import numpy as np
        from scipy import ndimage

        p: Params = self.params
        air = hu < p.air_hu
        labels, n = ndimage.label(air)
        if n == 0:
            raise self.input_error(
                "the CT series holds no air-density region (no lungs)",
                hint="pass a chest CT in Hounsfield units",
            )
        border = np.zeros(n + 1, dtype=bool)
        for face in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            border[np.unique(face)] = True
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        min_voxels = p.min_lung_ml * 1000.0 / float(np.prod(spacing))
        keep = (~border) & (sizes >= min_voxels)
        keep[0] = False
        if not keep.any():
            raise self.input_error(
                "no lung fields found in the CT series",
                hint="pass a chest CT covering the lungs (Hounsfield units, axial)",
            )
        lungs = keep[labels]
        filled = np.empty_like(lungs)
        for k in range(lungs.shape[2]):
            filled[:, :, k] = ndimage.binary_fill_holes(lungs[:, :, k])
        return lungs, filled


def _candidates(
    hu: np.ndarray, lungs: np.ndarray, filled: np.ndarray, spacing: np.ndarray, p: Params
) -> list[dict[str, Any]]:
    """Features of each solid connected component inside the filled lung field."""
    import numpy as np
    from scipy import ndimage

    solid = filled & ~lungs
    labels, n = ndimage.label(solid, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return []
    voxel_mm3 = float(np.prod(spacing))
    ring_vox = np.maximum(np.rint(p.ring_mm / spacing).astype(int), 1)
    out = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        count = int(mask.sum())
        diameter = (6.0 * count * voxel_mm3 / np.pi) ** (1.0 / 3.0)
        if not p.min_diameter_mm <= diameter <= p.max_diameter_mm:
            continue
        ijk = np.argwhere(mask).astype(np.float64)
        mm = ijk * spacing
        if count >= 4:
            eig = np.linalg.eigvalsh(np.cov(mm.T) + np.diag(spacing**2 / 12.0))
            roundness = float(np.sqrt(max(eig[0], 0.0) / eig[-1]))
        else:
            roundness = 0.0
        # the lung around the candidate, within ring_mm of it
        lo = [max(s.start - r, 0) for s, r in zip(box, ring_vox, strict=True)]
        hi = [min(s.stop + r, dim) for s, r, dim in zip(box, ring_vox, hu.shape, strict=True)]
        grown = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        inside = labels[grown] == index
        near = ndimage.binary_dilation(inside, iterations=1, structure=_ellipsoid(ring_vox))
        ring = near & ~inside & lungs[grown]
        values = hu[grown]
        contrast = float(values[inside].mean() - values[ring].mean()) if ring.any() else 0.0
        offset = np.array([s.start for s in box], dtype=np.float64)
        out.append(
            {
                "ijk": (ijk.mean(axis=0) + offset).tolist(),
                "diameter_mm": float(diameter),
                "volume_ml": count * voxel_mm3 / 1000.0,
                "roundness": roundness,
                "contrast_hu": contrast,
            }
        )
    return out


def _ellipsoid(radii: np.ndarray) -> np.ndarray:
    """A boolean ellipsoid footprint with the given radii in voxels along each axis."""
    import numpy as np

    grids = np.ogrid[tuple(slice(-int(r), int(r) + 1) for r in radii)]
    return sum((g / max(float(r), 1e-6)) ** 2 for g, r in zip(grids, radii, strict=True)) <= 1.0


def create(**options: Any) -> LungNoduleCT:
    """Entry point ``baseline-lung-nodule-ct`` (group ``gai_research.models``)."""
    return LungNoduleCT(**options)
