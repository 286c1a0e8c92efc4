"""CT Image Storage writers: low-dose chest CT (lung nodules) and non-contrast head CT (stroke)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from gai_research.synth.brain import head_ct
from gai_research.synth.chest import chest_ct
from gai_research.synth.geometry import AxialGrid
from gai_research.synth.headers import (
    SeriesSpec,
    SeriesWriter,
    StudyContext,
    add_pixels,
    code_item,
    instance_attributes,
    instance_path,
    series_base,
    study_result,
)
from gai_research.synth.labels import StudyResult

__all__ = ["write_chest_ct", "write_head_ct"]

# reconstruction kernel names by manufacturer: (lung, brain)
KERNELS = {
    "SIEMENS": ("Br60", "Hr38"),
    "GE MEDICAL SYSTEMS": ("LUNG", "STANDARD"),
    "Philips": ("YB", "UB"),
}
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
HU_OFFSET = 1024
BODY_PHANTOM = ("113691", "IEC Body Dosimetry Phantom")
HEAD_PHANTOM = ("113690", "IEC Head Dosimetry Phantom")


def _ct_series(
    ctx: StudyContext, series: SeriesSpec, grid: AxialGrid, *, kvp: int, ma: int, kernel: str,
    window: tuple[int, int, str], ctdi: float, phantom: tuple[str, str],
) -> Dataset:  # fmt: skip
    ds = series_base(ctx, series, CTImageStorage)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = ctx.uid("frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.AcquisitionNumber = 1
    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = kvp
    ds.DataCollectionDiameter = 500
    ds.ReconstructionDiameter = f"{grid.pixel_mm * grid.cols:.1f}"
    ds.DistanceSourceToDetector = "1085.6"
    ds.DistanceSourceToPatient = "595"
    ds.GantryDetectorTilt = 0
    ds.TableHeight = "152"
    ds.RotationDirection = "CW"
    ds.ExposureTime = 500
    ds.XRayTubeCurrent = ma
    ds.Exposure = ma // 2
    ds.FilterType = "FLAT"
    ds.GeneratorPower = kvp * ma // 1000
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = kernel
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.6
    ds.TotalCollimationWidth = 38.4
    ds.SpiralPitchFactor = 1.0
    ds.CTDIvol = float(ctdi)
    ds.CTDIPhantomTypeCodeSequence = Sequence([code_item(phantom[0], "DCM", phantom[1])])
    ds.PixelSpacing = [f"{grid.pixel_mm:.5f}", f"{grid.pixel_mm:.5f}"]
    ds.ImageOrientationPatient = AXIAL
    ds.SliceThickness = f"{abs(grid.z_step):g}"
    ds.RescaleIntercept = -HU_OFFSET
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth, ds.WindowCenterWidthExplanation = window
    return ds


def _write_slices(
    ctx: StudyContext, root: Path, series: SeriesSpec, base: Dataset, hu, grid
) -> int:
    stored = (hu.astype(np.int32) + HU_OFFSET).astype(np.uint16)
    writer = SeriesWriter(base)
    for k in range(grid.slices):
        ds = instance_attributes(ctx, series, k + 1, seconds=k // 8)
        position = grid.position(k)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        add_pixels(ds, stored[k], bits_stored=12)
        writer.write(instance_path(root, ctx, series, k + 1), ds)
    return grid.slices


def _kernel(ctx: StudyContext, which: int) -> str:
    return KERNELS.get(ctx.equipment.manufacturer, ("LUNG", "BRAIN"))[which]


def write_chest_ct(ctx: StudyContext, root: Path) -> StudyResult:
    """A low-dose chest CT; positive studies hold 1-3 nodules (labels in nodules_ct.csv)."""
    rng = ctx.rng("pixels")
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])) if ctx.plan.positive else 0
    volume = chest_ct(rng, count)
    kernel = _kernel(ctx, 0)
    series = SeriesSpec(2, f"LUNG 2.5mm {kernel}", "CHEST", "LDCT CHEST", 90)
    base = _ct_series(
        ctx, series, volume.grid, kvp=100, ma=35, kernel=kernel,
        window=(-600, 1500, "LUNG"), ctdi=1.4, phantom=BODY_PHANTOM,
    )  # fmt: skip
    n = _write_slices(ctx, root, series, base, volume.hu, volume.grid)
    result = study_result(ctx, n)
    for nodule in volume.nodules:
        result.add(
            "nodules_ct.csv",
            study_uid=ctx.study_uid,
            series_uid=series.uid(ctx),
            x_mm=f"{nodule.x_mm:.1f}",
            y_mm=f"{nodule.y_mm:.1f}",
            z_mm=f"{nodule.z_mm:.1f}",
            diameter_mm=f"{nodule.diameter_mm:.1f}",
        )
    return result


def write_head_ct(ctx: StudyContext, root: Path) -> StudyResult:
    """A non-contrast head CT; positive studies hold a hemorrhage (hemorrhage_ct.csv)."""
    volume = head_ct(ctx.rng("pixels"), ctx.plan.positive)
    kernel = _kernel(ctx, 1)
    series = SeriesSpec(2, f"BRAIN 5mm {kernel}", "HEAD", "ROUTINE HEAD", 60)
    base = _ct_series(
        ctx, series, volume.grid, kvp=120, ma=280, kernel=kernel,
        window=(40, 80, "BRAIN"), ctdi=52.0, phantom=HEAD_PHANTOM,
    )  # fmt: skip
    n = _write_slices(ctx, root, series, base, volume.hu, volume.grid)
    result = study_result(ctx, n)
    if volume.hemorrhage is not None:
        h = volume.hemorrhage
        result.add(
            "hemorrhage_ct.csv",
            study_uid=ctx.study_uid,
            series_uid=series.uid(ctx),
            x_mm=f"{h.x_mm:.1f}",
            y_mm=f"{h.y_mm:.1f}",
            z_mm=f"{h.z_mm:.1f}",
            volume_ml=f"{h.volume_ml:.3f}",
        )
    return result
