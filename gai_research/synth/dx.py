"""Digital X-Ray Image Storage - For Presentation: a PA chest radiograph (lung nodules)."""

from __future__ import annotations

from pathlib import Path

from pydicom.sequence import Sequence
from pydicom.uid import DigitalXRayImageStorageForPresentation

from gai_research.synth.chest import DX_MAX, DX_PIXEL_MM, chest_xray
from gai_research.synth.headers import (
    SeriesSpec,
    SeriesWriter,
    StudyContext,
    add_pixels,
    code_item,
    instance_attributes,
    instance_path,
    projection_detector,
    series_base,
    study_result,
)
from gai_research.synth.labels import StudyResult

__all__ = ["write_chest_dx"]


def write_chest_dx(ctx: StudyContext, root: Path) -> StudyResult:
    """One PA chest image; positive studies show a round nodule (findings_dx.csv)."""
    image = chest_xray(ctx.rng("pixels"), ctx.plan.positive)
    series = SeriesSpec(1, "CHEST PA", "CHEST", "CHEST PA", 30)
    ds = series_base(ctx, series, DigitalXRayImageStorageForPresentation)
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = Sequence([code_item("51185008", "SCT", "Chest")])
    ds.ViewPosition = "PA"
    ds.ViewCodeSequence = Sequence([code_item("399348003", "SCT", "postero-anterior")])
    ds.PatientOrientation = ["L", "F"]
    ds.PatientPosition = ""
    ds.PositionerType = ""  # a wall stand: no positioner in the defined terms
    ds.KVP = 120
    ds.ExposureTime = 10
    ds.XRayTubeCurrent = 250
    ds.Exposure = 3
    projection_detector(
        ds,
        ctx,
        detector_type="SCINTILLATOR",
        source_to_detector_mm=1800,
        pixel_mm=DX_PIXEL_MM,
        max_value=DX_MAX,
        calibration="magnification of the detector plane ignored",
    )
    instance = instance_attributes(ctx, series, 1)
    add_pixels(instance, image.pixels, bits_stored=12)
    SeriesWriter(ds).write(instance_path(root, ctx, series, 1), instance)
    result = study_result(ctx, 1)
    if image.nodule is not None:
        row, col, diameter = image.nodule
        result.add(
            "findings_dx.csv",
            study_uid=ctx.study_uid,
            sop_uid=instance.SOPInstanceUID,
            row=row,
            col=col,
            diameter_mm=f"{diameter:.1f}",
        )
    return result
