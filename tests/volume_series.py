"""Series for the volume tests, written the ways PACS and converters store them (no tests here).

:func:`synth_cohort` writes a 1-patient synthetic cohort once per test session (every
task, every study positive); the functions below rewrite a series of it: renumbered,
repacked as Enhanced CT multi-frame objects, compressed, or broken one way.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedCTImageStorage, generate_uid

_DONE = "done"


def synth_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's 1-patient synthetic cohort (identified files, labels/ CSVs)."""
    from gai_research.synth import generate_cohort

    root = tmp_path_factory.getbasetemp() / "gai-volume-synth"
    if not (root / _DONE).is_file():
        generate_cohort(root, patients=1, seed=0)
        (root / _DONE).write_text("ok", encoding="utf-8")
    return root


def label_rows(root: Path, name: str) -> list[dict[str, str]]:
    with (root / "labels" / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def series_dir(root: Path, task: str) -> Path:
    """The folder of the (first) series of the cohort's study of ``task``."""
    study = next(s for s in label_rows(root, "studies.csv") if s["task"] == task)
    folder = root / study["site"] / study["study_uid"]
    return next(p for p in sorted(folder.iterdir()) if p.is_dir())


def rewrite(files: list[Path], out: Path, edit) -> Path:
    """Each file read, edited (``edit(ds, index)`` may return a new file name) and saved."""
    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files):
        ds = pydicom.dcmread(path)
        name = edit(ds, index) or path.name
        ds.save_as(out / name, enforce_file_format=True)
    return out


def renumber(files: list[Path], out: Path, numbers: list[int]) -> Path:
    """InstanceNumber and file name from ``numbers``: name order no longer follows position."""

    def edit(ds: Dataset, index: int) -> str:
        ds.InstanceNumber = numbers[index]
        return f"{numbers[index]:04d}.dcm"

    return rewrite(files, out, edit)


def nearest_slices(files: list[Path], centre_z: float, half: int = 8) -> list[Path]:
    """The slices nearest the nodule (a shorter series keeps compression quick)."""
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    nearest = int(np.argmin(np.abs(np.asarray(z) - centre_z)))
    lo = max(0, nearest - half)
    return files[lo : lo + 2 * half]


def enhanced(files: list[Path], out: Path, *, per_file: bool, shuffle: bool) -> Path:
    """Enhanced CT Image Storage from single frames: one multi-frame object (frames in
    shuffled order), or one single-frame enhanced object per slice."""
    slices = [pydicom.dcmread(f) for f in files]
    if shuffle:
        random.Random(7).shuffle(slices)
    groups = [slices] if not per_file else [[s] for s in slices]
    out.mkdir(parents=True, exist_ok=True)
    for number, members in enumerate(groups, start=1):
        ds = _enhanced_object(members, number)
        ds.save_as(out / f"{number:04d}.dcm", enforce_file_format=True)
    return out


def _enhanced_object(members: list[Dataset], number: int) -> Dataset:
    first = members[0]
    ds = Dataset()
    ds.file_meta = first.file_meta.copy()
    for elem in first:
        if elem.tag < 0x7FE00000:
            ds.add(elem)
    for keyword in (
        "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
        "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth",
        "WindowCenterWidthExplanation", "SliceLocation",
    ):  # fmt: skip
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = number
    ds.NumberOfFrames = len(members)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = first.SliceThickness
    orientation = Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    transform = Dataset()
    transform.RescaleIntercept = first.RescaleIntercept
    transform.RescaleSlope = first.RescaleSlope
    transform.RescaleType = "HU"
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for member in members:
        item, position, content = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = member.ImagePositionPatient
        content.InStackPositionNumber = int(member.InstanceNumber)
        item.PlanePositionSequence = Sequence([position])
        item.FrameContentSequence = Sequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = b"".join(m.PixelData for m in members)
    return ds


def classic_multiframe(files: list[Path], out: Path) -> Path:
    """One classic (non-enhanced) multi-frame object: first position + SpacingBetweenSlices."""
    slices = sorted(
        (pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2])
    )
    ds = slices[0]
    ds.NumberOfFrames = len(slices)
    ds.SpacingBetweenSlices = abs(
        float(slices[1].ImagePositionPatient[2]) - float(slices[0].ImagePositionPatient[2])
    )
    ds.PixelData = b"".join(s.PixelData for s in slices)
    out.mkdir(parents=True, exist_ok=True)
    ds.save_as(out / "0001.dcm", enforce_file_format=True)
    return out


def compressed(files: list[Path], out: Path, syntax) -> Path:
    def edit(ds: Dataset, index: int) -> None:
        ds.compress(syntax)

    return rewrite(files, out, edit)


def broken(kind: str, files: list[Path], out: Path) -> list[Path]:
    """A copy of six head CT slices, broken one way."""
    files = files[10:16]
    if kind == "gap":
        files = files[:3] + files[4:]

    def edit(ds: Dataset, index: int) -> None:
        if kind == "mixed_orientation" and index == 2:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # one coronal slice
        elif kind == "mixed_size" and index == 4:
            _crop(ds)
        elif kind == "missing_position" and index == 1:
            del ds.ImagePositionPatient
        elif kind == "two_series" and index == 5:
            ds.SeriesInstanceUID = "2.25.1"

    folder = rewrite(files, out, edit)
    paths = sorted(folder.glob("*.dcm"))
    if kind == "duplicate_position":  # the same slice again under another SOP UID
        ds = pydicom.dcmread(paths[0])
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / "copy.dcm", enforce_file_format=True)
        paths.append(folder / "copy.dcm")
    if kind == "not_dicom":
        (folder / "notes.txt").write_text("not an image", encoding="utf-8")
        paths.append(folder / "notes.txt")
    return paths


def _crop(ds: Dataset) -> None:
    pixels = ds.pixel_array[:128, :128].copy()
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
