"""MR Image Storage writer: an axial 3D T1 (MPRAGE-like) brain volume for volumetry."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import MRImageStorage

from gai_research.synth.brain import brain_mr
from gai_research.synth.headers import (
    SeriesSpec,
    SeriesWriter,
    StudyContext,
    add_pixels,
    instance_attributes,
    instance_path,
    series_base,
    study_result,
)
from gai_research.synth.labels import StudyResult

__all__ = ["write_brain_mr"]

SEQUENCE_NAMES = {
    "SIEMENS": ("t1_mprage_tra_iso", "*tfl3d1_16ns"),
    "GE MEDICAL SYSTEMS": ("Ax 3D T1 BRAVO", "efgre3d"),
    "Philips Medical Systems": ("3D_T1_TFE", "T1TFE"),
}


def write_brain_mr(ctx: StudyContext, root: Path) -> StudyResult:
    """One 3D T1 series; the labels give both hippocampal volumes (volumes_mr.csv)."""
    volume = brain_mr(ctx.rng("pixels"), dementia=ctx.plan.positive)
    eq = ctx.equipment
    description, sequence = SEQUENCE_NAMES.get(eq.manufacturer, ("3D T1", "T1_3D"))
    series = SeriesSpec(3, description, "BRAIN", "BRAIN 3D T1 VOLUMETRY", 300)
    grid = volume.grid
    base = series_base(ctx, series, MRImageStorage)
    base.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    base.PatientPosition = "HFS"
    base.FrameOfReferenceUID = ctx.uid("frame-of-reference")
    base.PositionReferenceIndicator = ""
    base.AcquisitionNumber = 1
    base.ScanningSequence = ["GR", "IR"]
    base.SequenceVariant = ["SK", "SP", "MP"]
    base.ScanOptions = ""  # vendors write IR here; it is not a defined term
    base.MRAcquisitionType = "3D"
    base.SequenceName = sequence
    base.AngioFlag = "N"
    base.RepetitionTime = "2300" if eq.field_strength >= 3 else "1900"
    base.EchoTime = "2.98" if eq.field_strength >= 3 else "3.4"
    base.InversionTime = "900"
    base.NumberOfAverages = "1"
    base.ImagingFrequency = f"{42.577 * eq.field_strength:.4f}"
    base.ImagedNucleus = "1H"
    base.EchoNumbers = 1
    base.MagneticFieldStrength = f"{eq.field_strength:g}"
    base.SpacingBetweenSlices = f"{abs(grid.z_step):g}"
    base.NumberOfPhaseEncodingSteps = grid.rows
    base.EchoTrainLength = 1
    base.PercentSampling = "100"
    base.PercentPhaseFieldOfView = "100"
    base.PixelBandwidth = "200"
    base.ReceiveCoilName = "HEAD 32CH" if eq.field_strength >= 3 else "HEAD 16CH"
    base.TransmitCoilName = "BODY"
    base.AcquisitionMatrix = [0, grid.cols, grid.rows, 0]
    base.InPlanePhaseEncodingDirection = "ROW"
    base.FlipAngle = "9"
    base.PixelSpacing = [f"{grid.pixel_mm:g}", f"{grid.pixel_mm:g}"]
    base.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    base.SliceThickness = f"{abs(grid.z_step):g}"
    base.WindowCenter = 500
    base.WindowWidth = 1000
    writer = SeriesWriter(base)
    for k in range(grid.slices):
        ds = instance_attributes(ctx, series, k + 1, seconds=k * 4)
        position = grid.position(k)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        add_pixels(ds, volume.pixels[k], bits_stored=12)
        writer.write(instance_path(root, ctx, series, k + 1), ds)
    result = study_result(ctx, grid.slices)
    total = volume.hippocampus_left_ml + volume.hippocampus_right_ml
    result.add(
        "volumes_mr.csv",
        study_uid=ctx.study_uid,
        series_uid=series.uid(ctx),
        group="dementia" if ctx.plan.positive else "control",
        hippocampus_left_ml=f"{volume.hippocampus_left_ml:.3f}",
        hippocampus_right_ml=f"{volume.hippocampus_right_ml:.3f}",
        hippocampus_ml=f"{total:.3f}",
    )
    return result
