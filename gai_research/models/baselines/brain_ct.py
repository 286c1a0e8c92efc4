"""baseline-hemorrhage-ct: intracranial hemorrhage on non-contrast head CT by density.

Acute blood is hyperdense: about 50-90 HU against 20-45 HU for brain. The algorithm
(every number is a field of :class:`Params`):

1. **Intracranial space.** Bone is ``>= bone_hu`` (300 HU). On each axial slice, the
   holes of the bone mask (what the skull encloses) minus the bone, eroded by
   ``erode_mm`` to drop partial-volume voxels against the skull, are the cranial cavity.
   A series whose cavity is under ``min_cavity_ml`` is not a head CT (an input error).
2. **Hyperdense voxels.** Each slice is median-filtered (3 x 3) against noise; voxels of
   the cavity in ``[blood_low_hu, blood_high_hu]`` after filtering seed 3D connected
   components; a component keeps the unfiltered in-range voxels connected to it
   (hysteresis, so the volume is not eroded by the filter). Components smaller than
   ``min_component_ml`` are noise.
3. **Measures.** Hemorrhage volume ``V`` (mL) = voxels of the kept components x voxel
   volume; each component is a finding at its centroid (DICOM LPS, mm) with its
   equivalent-sphere diameter.
4. **Score** = ``logistic((V - volume_mid_ml) / volume_scale_ml)``, so a study with no
   hyperdense region scores near 0, one with a few mL near 1. The volume is reported as
   ``hemorrhage`` (0 mL when nothing is found).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gai_research.models.baselines._common import Baseline, logistic, pick_series, read_volume
from gai_research.models.types import (
    Finding,
    Prediction,
    StudyInput,
    TaskKind,
    VolumeMeasurement,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["HemorrhageCT", "Params", "create"]


@dataclass(frozen=True)
class Params:
    """The knobs of the hemorrhage baseline (see the module docstring)."""

    threshold: float = 0.5
    bone_hu: float = 300.0
    erode_mm: float = 2.0
    min_cavity_ml: float = 200.0
    blood_low_hu: float = 50.0
    blood_high_hu: float = 90.0
    min_component_ml: float = 0.1
    volume_mid_ml: float = 0.5
    volume_scale_ml: float = 0.15
    max_findings: int = 5


class HemorrhageCT(Baseline):
    """Hemorrhage triage on head CT (see the module docstring)."""

    NAME = "baseline-hemorrhage-ct"
    TASK = "stroke_ct"
    KIND = TaskKind.TRIAGE
    MODALITIES = ("CT",)
    DESCRIPTION = (
        "hyperdense (50-90 HU) connected regions inside the skull; score from their volume"
    )
    Params = Params

    def _run(self, study: StudyInput) -> Prediction:
        import numpy as np
        from scipy import ndimage

        p: Params = self.params
        series = pick_series(self, study, "CT")
        volume = read_volume(self, series)
        hu = volume.array
        spacing = np.asarray(volume.spacing, dtype=np.float64)
        cavity = self._cavity(hu, spacing)
        smooth = ndimage.median_filter(hu, size=(3, 3, 1))
        in_range = (hu >= p.blood_low_hu) & (hu <= p.blood_high_hu) & cavity
        seeds = (smooth >= p.blood_low_hu) & (smooth <= p.blood_high_hu) & cavity
        labels, n = ndimage.label(in_range, structure=np.ones((3, 3, 3), dtype=bool))
        seeded = np.unique(labels[seeds & (labels > 0)])
        voxel_ml = float(np.prod(spacing)) / 1000.0
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        regions = []
        for index in seeded:
            ml = float(sizes[index]) * voxel_ml
            if ml < p.min_component_ml:
                continue
            ijk = np.argwhere(labels == index).mean(axis=0)
            regions.append({"index": int(index), "volume_ml": ml, "ijk": ijk})
        regions.sort(key=lambda r: r["volume_ml"], reverse=True)
        total_ml = sum(r["volume_ml"] for r in regions)
        score = logistic((total_ml - p.volume_mid_ml) / p.volume_scale_ml)
        kept = regions[: p.max_findings]
        world = (
            volume.voxel_to_world(np.array([r["ijk"] for r in kept])) if kept else np.zeros((0, 3))
        )
        findings = tuple(
            Finding(
                score=round(logistic((r["volume_ml"] - p.volume_mid_ml) / p.volume_scale_ml), 6),
                x_mm=round(float(xyz[0]), 2),
                y_mm=round(float(xyz[1]), 2),
                z_mm=round(float(xyz[2]), 2),
                diameter_mm=round((6.0 * r["volume_ml"] * 1000.0 / np.pi) ** (1 / 3), 2),
                label="hemorrhage",
                series_uid=series.series_uid,
            )
            for r, xyz in zip(kept, world, strict=True)
        )
        return Prediction(
            study_uid=study.study_uid,
            score=score,
            findings=findings,
            volumes=(
                VolumeMeasurement("hemorrhage", round(float(total_ml), 4), series.series_uid),
            ),
            raw=self.raw(
                series_uid=series.series_uid,
                cavity_ml=float(cavity.sum()) * voxel_ml,
                regions=[{"volume_ml": r["volume_ml"]} for r in regions[:20]],
            ),
        )

    def _cavity(self, hu: np.ndarray, spacing: np.ndarray) -> np.ndarray:
        """The cranial cavity: what the skull encloses on each axial slice, eroded."""
        import numpy as np
        from scipy import ndimage

        p: Params = self.params
        bone = hu >= p.bone_hu
        cavity = np.zeros_like(bone)
        for k in range(bone.shape[2]):
            if bone[:, :, k].any():
                cavity[:, :, k] = ndimage.binary_fill_holes(bone[:, :, k]) & ~bone[:, :, k]
        radius = np.maximum(np.rint(p.erode_mm / spacing[:2]).astype(int), 0)
        if radius.any():
            grids = np.ogrid[-radius[0] : radius[0] + 1, -radius[1] : radius[1] + 1]
            disc = (grids[0] / max(radius[0], 1)) ** 2 + (grids[1] / max(radius[1], 1)) ** 2 <= 1
            cavity = ndimage.binary_erosion(cavity, structure=disc[:, :, None])
        cavity_ml = float(cavity.sum()) * float(np.prod(spacing)) / 1000.0
        if cavity_ml < p.min_cavity_ml:
            raise self.input_error(
                f"no cranial cavity found in the CT series (bone encloses {cavity_ml:.0f} mL, "
                f"less than {p.min_cavity_ml:g} mL)",
                hint="pass a non-contrast head CT in Hounsfield units",
            )
        return cavity


def create(**options: Any) -> HemorrhageCT:
    """Entry point ``baseline-hemorrhage-ct`` (group ``gai_research.models``)."""
    return HemorrhageCT(**options)
