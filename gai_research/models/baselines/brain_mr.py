"""baseline-hippocampal-volume: hippocampal volumetry on 3D T1 brain MRI, atlas-free.

On T1, the hippocampus is grey matter lying in the medial temporal lobe, surrounded by
white matter and the temporal horn. The algorithm works from the image's own tissue
intensities, so it needs no atlas and no registration (every number is a field of
:class:`Params`):

1. **Head and tissue intensities.** The head is every voxel above ``head_fraction`` of
   the 99th intensity percentile. White matter ``WM`` is the median of the central
   ``core_fraction`` of the head's bounding box (deep white matter dominates it); grey
   matter ``GM`` is the mode of the head's histogram between ``0.3 WM`` and
   ``0.9 WM`` (the cortex is the largest grey-matter structure).
2. **Grey-matter islands.** Voxels with intensity in ``[GM + band_low (WM - GM),
   GM + band_high (WM - GM)]`` form 3D connected components; holes inside each are
   filled (noise can drop single voxels). Cortex outside this band stays out.
3. **Hippocampi.** Each hemisphere (patient left = +x in DICOM LPS of the head's
   centroid) keeps its largest island lying below the head's centroid and between
   ``min_offset_mm`` and ``max_offset_mm`` from the mid-sagittal plane, with a volume
   between ``min_ml`` and ``max_ml``. A hemisphere without one is an input error (a
   volume of 0 would be a lie).
4. **Volumes** ``hippocampus_l`` and ``hippocampus_r`` = voxel count x voxel volume (mL).
5. **Dementia probability** from the total ``V = left + right``:
   ``p = logistic((dementia_mid_ml - V) / dementia_scale_ml)``. The midpoint 5.6 mL lies
   between typical totals of cognitively normal elderly (~6.5-7 mL, about 3.3 mL a
   side) and Alzheimer's dementia (~4.5 mL, about 2.3 mL a side); the scale 0.35 mL
   makes a total 1 mL below the midpoint score ~0.95.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gai_research.models.baselines._common import Baseline, logistic, pick_series, read_volume
from gai_research.models.types import Prediction, StudyInput, TaskKind, VolumeMeasurement

if TYPE_CHECKING:
    import numpy as np

__all__ = ["HippocampalVolume", "Params", "create"]


@dataclass(frozen=True)
class Params:
    """The knobs of the hippocampal-volume baseline (see the module docstring)."""

    threshold: float = 0.5
    head_fraction: float = 0.05
    core_fraction: float = 0.4
    band_low: float = 0.2
    band_high: float = 0.6
    min_offset_mm: float = 10.0
    max_offset_mm: float = 50.0
    min_ml: float = 0.5
    max_ml: float = 8.0
    dementia_mid_ml: float = 5.6
    dementia_scale_ml: float = 0.35


class HippocampalVolume(Baseline):
    """Hippocampal volumetry and a dementia probability (see the module docstring)."""

    NAME = "baseline-hippocampal-volume"
    TASK = "dementia_mr"
    KIND = TaskKind.VOLUMETRY
    MODALITIES = ("MR",)
    DESCRIPTION = (
        "atlas-free hippocampal volumetry: grey-matter-intensity islands in the medial "
        "temporal lobes of a 3D T1; dementia probability = logistic of the total volume"
    )
    Params = Params

    def _run(self, study: StudyInput) -> Prediction:
        import numpy as np

        p: Params = self.params
        series = pick_series(self, study, "MR")
        volume = read_volume(self, series, min_slices=16)
        img = volume.array
        spacing = np.asarray(volume.spacing, dtype=np.float64)
        voxel_ml = float(np.prod(spacing)) / 1000.0
        head, wm, gm = self._tissues(img)
        islands = _islands(img, gm + p.band_low * (wm - gm), gm + p.band_high * (wm - gm))
        centre = volume.voxel_to_world(np.argwhere(head).mean(axis=0))
        chosen: dict[str, dict[str, Any]] = {}
        for island in islands:
            ml = island["voxels"] * voxel_ml
            xyz = volume.voxel_to_world(island["ijk"])
            offset = float(xyz[0] - centre[0])  # LPS: +x is the patient's left
            if not (p.min_ml <= ml <= p.max_ml and p.min_offset_mm <= abs(offset)):
                continue
            if abs(offset) > p.max_offset_mm or xyz[2] >= centre[2]:
                continue
            side = "l" if offset > 0 else "r"
            if side not in chosen or ml > chosen[side]["volume_ml"]:
                chosen[side] = {"volume_ml": ml, "x_mm": float(xyz[0]), "z_mm": float(xyz[2])}
        missing = [name for side, name in (("l", "left"), ("r", "right")) if side not in chosen]
        if missing:
            raise self.input_error(
                f"no {' or '.join(missing)} hippocampus found (no grey-matter island of "
                f"{p.min_ml:g}-{p.max_ml:g} mL in the medial temporal lobe)",
                hint="pass an axial 3D T1-weighted brain MRI covering the temporal lobes",
            )
        left, right = chosen["l"]["volume_ml"], chosen["r"]["volume_ml"]
        total = left + right
        return Prediction(
            study_uid=study.study_uid,
            score=logistic((p.dementia_mid_ml - total) / p.dementia_scale_ml),
            volumes=(
                VolumeMeasurement("hippocampus_l", round(left, 4), series.series_uid),
                VolumeMeasurement("hippocampus_r", round(right, 4), series.series_uid),
            ),
            raw=self.raw(
                series_uid=series.series_uid,
                white_matter=wm,
                grey_matter=gm,
                hippocampus_ml=total,
                islands=len(islands),
                chosen=chosen,
            ),
        )

    def _tissues(self, img: np.ndarray) -> tuple[np.ndarray, float, float]:
        """(head mask, white-matter intensity, grey-matter intensity)."""
        import numpy as np

        p: Params = self.params
        top = float(np.percentile(img, 99))
        head = img > p.head_fraction * top
        if top <= 0 or not head.any():
            raise self.input_error("the MR series is empty (no signal)", hint="pass a brain MRI")
        nz = np.argwhere(head)
        lo, hi = nz.min(axis=0), nz.max(axis=0)
        margin = (hi - lo) * (1.0 - p.core_fraction) / 2.0
        core = tuple(
            slice(int(a + m), int(b - m) + 1) for a, b, m in zip(lo, hi, margin, strict=True)
        )
        wm = float(np.median(img[core][head[core]]))
        values = img[head & (img > 0.3 * wm) & (img < 0.9 * wm)]
        if wm <= 0 or values.size == 0:
            raise self.input_error(
                "no grey/white matter contrast in the MR series",
                hint="pass a T1-weighted brain MRI (white matter brighter than cortex)",
            )
        counts, edges = np.histogram(values, bins=120)
        counts = np.convolve(counts, np.ones(5) / 5.0, mode="same")
        peak = int(np.argmax(counts))
        gm = float((edges[peak] + edges[peak + 1]) / 2.0)
        return head, wm, gm


def _islands(img: np.ndarray, low: float, high: float) -> list[dict[str, Any]]:
    """Connected components of ``low <= img <= high`` with their holes filled."""
    import numpy as np
    from scipy import ndimage

    labels, _ = ndimage.label((img >= low) & (img <= high))
    out = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = ndimage.binary_fill_holes(labels[box] == index)
        count = int(mask.sum())
        if count < 8:
            continue
        offset = np.array([s.start for s in box], dtype=np.float64)
        out.append({"voxels": count, "ijk": np.argwhere(mask).mean(axis=0) + offset})
    return out


def create(**options: Any) -> HippocampalVolume:
    """Entry point ``baseline-hippocampal-volume`` (group ``gai_research.models``)."""
    return HippocampalVolume(**options)
