"""Digital Mammography X-Ray Image Storage - For Presentation: four screening views."""

from __future__ import annotations

from pathlib import Path

from pydicom.sequence import Sequence
from pydicom.uid import DigitalMammographyXRayImageStorageForPresentation

from gai_research.synth.breast import MG_MAX, MG_PIXEL_MM, mammography
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

__all__ = ["write_mammography"]

VIEW_CODES = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
}
# chest wall on the image right for right breasts, left for left breasts
ORIENTATION = {
    ("R", "CC"): ["P", "L"],
    ("L", "CC"): ["A", "R"],
    ("R", "MLO"): ["P", "F"],
    ("L", "MLO"): ["A", "F"],
}
BREAST = {"R": ("80248007", "Right breast"), "L": ("12914003", "Left breast")}


def write_mammography(ctx: StudyContext, root: Path) -> StudyResult:
    """R CC, L CC, R MLO, L MLO; positive studies show a mass in both views of one breast."""
    views = mammography(ctx.rng("pixels"), ctx.plan.positive)
    series = SeriesSpec(1, "SCREENING MAMMOGRAPHY", "BREAST", "BILATERAL SCREENING", 60)
    base = series_base(ctx, series, DigitalMammographyXRayImageStorageForPresentation)
    base.PresentationIntentType = "FOR PRESENTATION"
    base.ImageType = ["ORIGINAL", "PRIMARY"]
    base.PositionerType = "MAMMOGRAPHIC"
    base.OrganExposed = "BREAST"
    base.BreastImplantPresent = "NO"
    base.PatientPosition = ""
    base.KVP = 29
    base.ExposureTime = 900
    base.XRayTubeCurrent = 100
    base.Exposure = 90
    base.AnodeTargetMaterial = "TUNGSTEN"
    base.FilterMaterial = "RHODIUM"
    base.CompressionForce = 110
    base.BodyPartThickness = 48
    projection_detector(
        base,
        ctx,
        detector_type="DIRECT",
        source_to_detector_mm=650,
        pixel_mm=MG_PIXEL_MM,
        max_value=MG_MAX,
        calibration="detector plane",
    )
    writer = SeriesWriter(base)
    result = study_result(ctx, len(views))
    for number, view in enumerate(views, start=1):
        ds = instance_attributes(ctx, series, number, seconds=40 * number)
        ds.ImageLaterality = view.laterality
        ds.ViewPosition = view.view
        ds.PatientOrientation = ORIENTATION[(view.laterality, view.view)]
        code = code_item(VIEW_CODES[view.view][0], "SCT", VIEW_CODES[view.view][1])
        code.ViewModifierCodeSequence = Sequence()
        ds.ViewCodeSequence = Sequence([code])
        region = code_item(BREAST[view.laterality][0], "SCT", BREAST[view.laterality][1])
        ds.AnatomicRegionSequence = Sequence([region])
        ds.PositionerPrimaryAngle = (
            0 if view.view == "CC" else (45 if view.laterality == "R" else -45)
        )
        add_pixels(ds, view.pixels, bits_stored=12)
        writer.write(instance_path(root, ctx, series, number), ds)
        if view.mass is not None:
            result.add(
                "masses_mg.csv",
                study_uid=ctx.study_uid,
                sop_uid=ds.SOPInstanceUID,
                laterality=view.laterality,
                view=view.view,
                row=view.mass.row,
                col=view.mass.col,
                diameter_mm=f"{view.mass.diameter_mm:.1f}",
            )
    return result
