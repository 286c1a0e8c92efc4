"""Reading DICOM files into frames: per-frame geometry from the headers, and pixels.

One :class:`Source` per file, one :class:`Frame` per frame in it: a classic image has
one frame; an enhanced multi-frame object (Enhanced CT/MR, Legacy Converted) has one per
item of its Per-frame Functional Groups, with the Shared Functional Groups and then the
top-level attributes as fall-backs. Sorting and checking the frames is
:mod:`gai_research.data.volume_geometry`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gai_research.data.volume_errors import (
    DecoderMissingError,
    NotAnImageError,
    UnsupportedImageError,
)

__all__ = [
    "Frame",
    "SeriesFacts",
    "Source",
    "collect_paths",
    "decode_frames",
    "orientation_from_letters",
    "read_source",
    "series_facts",
]

NATIVE_LITTLE_ENDIAN = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
NATIVE_DTYPES = {
    (8, 0): "u1",
    (8, 1): "i1",
    (16, 0): "<u2",
    (16, 1): "<i2",
    (32, 0): "<u4",
    (32, 1): "<i4",
}
# PatientOrientation letters as directions in DICOM patient space (LPS)
ORIENTATION_LETTERS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "H": (0.0, 0.0, 1.0),
    "F": (0.0, 0.0, -1.0),
}
SKIP_NAMES = frozenset({"DICOMDIR"})
# tags read for every file, by number (no keyword look-up)
SERIES_UID, SOP_UID = 0x0020000E, 0x00080018
IMAGE_POSITION, IMAGE_ORIENTATION = 0x00200032, 0x00200037
PIXEL_SPACING, IMAGER_PIXEL_SPACING = 0x00280030, 0x00181164
RESCALE_INTERCEPT, RESCALE_SLOPE = 0x00281052, 0x00281053
SPACING_BETWEEN_SLICES, SLICE_THICKNESS = 0x00180088, 0x00180050
WINDOW_CENTER, WINDOW_WIDTH = 0x00281050, 0x00281051
NUMBER_OF_FRAMES, SAMPLES_PER_PIXEL, ROWS, COLUMNS = 0x00280008, 0x00280002, 0x00280010, 0x00280011
SHARED_GROUPS, PER_FRAME_GROUPS, PIXEL_DATA = 0x52009229, 0x52009230, 0x7FE00010
BITS_ALLOCATED, BITS_STORED, PIXEL_REPRESENTATION = 0x00280100, 0x00280101, 0x00280103


@dataclass(frozen=True)
class Frame:
    """The geometry and value mapping of one frame (one 2-D plane of pixels)."""

    source: int  # index of the Source (file)
    index: int  # 0-based frame index within the file
    rows: int
    cols: int
    position: tuple[float, ...] | None  # ImagePositionPatient (LPS mm)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row then column cosines
    pixel_spacing: tuple[float, ...] | None  # (between rows, between columns) mm
    slope: float
    intercept: float


@dataclass
class Source:
    """One DICOM file and its frames."""

    path: Path
    ds: Dataset | None  # dropped once its pixels are decoded
    series_uid: str
    sop_uid: str
    frames: list[Frame]
    spacing_source: str  # PixelSpacing, ImagerPixelSpacing, PixelMeasuresSequence or none


@dataclass(frozen=True)
class SeriesFacts:
    """What is read once per series, from one file (the first slice after sorting)."""

    study_uid: str
    modality: str
    photometric: str
    frame_of_reference_uid: str
    slice_spacing: float | None  # SpacingBetweenSlices or SliceThickness (single slices)
    window: tuple[float, float] | None  # first WindowCenter/WindowWidth (rescaled units)
    patient_orientation: tuple[str, str] | None


def collect_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Files to read: a folder (every file below it, sorted), one file, or an iterable of files."""
    if isinstance(paths, str | Path):
        root = Path(paths)
        if root.is_dir():
            return sorted(
                p
                for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".") and p.name not in SKIP_NAMES
            )
        return [root]
    return [Path(p) for p in paths]


def read_source(path: Path, index: int, *, series_uid: str = "") -> Source:
    """Read one file (whole, pixels included) and describe its frames."""
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise NotAnImageError(
            f"{_label(series_uid)}{path} is not a DICOM file",
            hint="pass only the series' DICOM files (a folder is searched for them)",
            series_uid=series_uid,
        ) from None
    except OSError as exc:
        raise NotAnImageError(
            f"{_label(series_uid)}cannot read {path}: {exc.strerror or exc}",
            hint="check that the file exists and is readable (`gai catalog reconcile` "
            "compares the store with the catalog)",
            series_uid=series_uid,
        ) from None
    uid = _text(ds, SERIES_UID) or series_uid
    if PIXEL_DATA not in ds:
        kind = ds.get("SOPClassUID", "")
        raise NotAnImageError(
            f"{_label(uid)}{path.name} holds no pixel data "
            f"({getattr(kind, 'name', kind) or 'no SOP class'})",
            hint="structured reports, presentation states and the like are not images; "
            "load the image series they refer to",
            series_uid=uid,
        )
    samples = _int(ds, SAMPLES_PER_PIXEL) or 1
    if samples != 1:
        raise UnsupportedImageError(
            f"{_label(uid)}{path.name} is a colour image "
            f"({ds.get('PhotometricInterpretation', '?')}, {samples} samples per pixel)",
            hint="load_series reads monochrome images; read colour images with pydicom",
            series_uid=uid,
        )
    return _describe(path, index, ds, uid)


def _describe(path: Path, index: int, ds: Dataset, series_uid: str) -> Source:
    rows, cols = _int(ds, ROWS), _int(ds, COLUMNS)
    n_frames = int(_float(_text(ds, NUMBER_OF_FRAMES)) or 1)
    position = _floats(_text(ds, IMAGE_POSITION), 3)
    orientation = _floats(_text(ds, IMAGE_ORIENTATION), 6)
    spacing, spacing_source = _pixel_spacing(ds)
    slope = _float(_text(ds, RESCALE_SLOPE))
    intercept = _float(_text(ds, RESCALE_INTERCEPT))
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    frames: list[Frame] = []
    if SHARED_GROUPS in ds or PER_FRAME_GROUPS in ds:  # enhanced multi-frame
        shared = _first_item(ds, "SharedFunctionalGroupsSequence")
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        for k in range(n_frames):
            item = per_frame[k] if per_frame is not None and k < len(per_frame) else None
            f_pos = _floats(
                _group(item, shared, "PlanePositionSequence", "ImagePositionPatient"), 3
            )
            f_ori = _floats(
                _group(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
            )
            f_sp = _floats(_group(item, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
            f_slope = _float(
                _group(item, shared, "PixelValueTransformationSequence", "RescaleSlope")
            )
            f_icpt = _float(
                _group(item, shared, "PixelValueTransformationSequence", "RescaleIntercept")
            )
            if k == 0 and f_sp is not None:
                spacing_source = "PixelMeasuresSequence"
            frames.append(
                Frame(
                    source=index,
                    index=k,
                    rows=rows,
                    cols=cols,
                    position=f_pos or position,
                    orientation=f_ori or orientation,
                    pixel_spacing=f_sp or spacing,
                    slope=slope if f_slope is None else f_slope,
                    intercept=intercept if f_icpt is None else f_icpt,
                )
            )
    elif n_frames > 1 and position is not None and orientation is not None:
        # classic multi-frame with one position: frames follow along the normal
        step = _float(_text(ds, SPACING_BETWEEN_SLICES)) or _float(_text(ds, SLICE_THICKNESS))
        normal = np.cross(orientation[:3], orientation[3:])
        for k in range(n_frames):
            p = (
                None
                if step is None
                else tuple(float(v) for v in np.add(position, k * step * normal))
            )
            frames.append(Frame(index, k, rows, cols, p, orientation, spacing, slope, intercept))
    else:
        single = position if n_frames == 1 else None
        frames = [
            Frame(index, k, rows, cols, single, orientation, spacing, slope, intercept)
            for k in range(n_frames)
        ]
    return Source(
        path=path,
        ds=ds,
        series_uid=series_uid,
        sop_uid=_text(ds, SOP_UID) or "",
        frames=frames,
        spacing_source=spacing_source,
    )


def series_facts(source: Source) -> SeriesFacts:
    """The series-level facts of one (not yet decoded) source."""
    ds = source.ds
    if ds is None:
        raise ValueError("series_facts() needs the source's dataset; call it before decoding")
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = _first_item(ds, "PerFrameFunctionalGroupsSequence")
    slice_spacing = (
        _float(_text(ds, SPACING_BETWEEN_SLICES))
        or _float(_text(ds, SLICE_THICKNESS))
        or _float(_group(per_frame, shared, "PixelMeasuresSequence", "SpacingBetweenSlices"))
        or _float(_group(per_frame, shared, "PixelMeasuresSequence", "SliceThickness"))
    )
    window = _window(_text(ds, WINDOW_CENTER), _text(ds, WINDOW_WIDTH)) or _window(
        _group(per_frame, shared, "FrameVOILUTSequence", "WindowCenter"),
        _group(per_frame, shared, "FrameVOILUTSequence", "WindowWidth"),
    )
    return SeriesFacts(
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        photometric=str(ds.get("PhotometricInterpretation", "") or ""),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        slice_spacing=slice_spacing,
        window=window,
        patient_orientation=_patient_orientation(ds),
    )


def decode_frames(source: Source, *, series_uid: str = "") -> np.ndarray:
    """The stored pixel values of every frame, shape (frames, rows, cols), not rescaled."""
    ds = source.ds
    n = len(source.frames)
    tsyntax = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    arr = _native(ds, tsyntax, n)
    if arr is None:
        if tsyntax.is_compressed:
            _require_decoder(tsyntax, source, series_uid)
        try:
            arr = ds.pixel_array
        except Exception as exc:  # pydicom raises many kinds for damaged pixel data
            raise NotAnImageError(
                f"{_label(series_uid)}cannot decode the pixels of {source.path.name} "
                f"({tsyntax.name}): {exc}",
                hint="the file may be damaged or truncated; re-ingest it from the PACS",
                series_uid=series_uid,
            ) from None
    return arr.reshape(n, source.frames[0].rows, source.frames[0].cols)


def _native(ds: Dataset, tsyntax: UID, n_frames: int) -> np.ndarray | None:
    """Uncompressed little-endian pixels straight from the buffer (pydicom's own result:
    unused high bits are cleared, or sign-extended for signed data); None to let pydicom do it."""
    if tsyntax not in NATIVE_LITTLE_ENDIAN:
        return None
    bits, signed = _int(ds, BITS_ALLOCATED), _int(ds, PIXEL_REPRESENTATION)
    dtype = NATIVE_DTYPES.get((bits, signed))
    if dtype is None:
        return None
    count = n_frames * _int(ds, ROWS) * _int(ds, COLUMNS)
    elem = ds.get_item(PIXEL_DATA)
    buffer = None if elem is None else elem.value
    if not isinstance(buffer, bytes) or len(buffer) < count * (bits // 8):
        return None
    arr = np.frombuffer(buffer, dtype=dtype, count=count)
    stored = _int(ds, BITS_STORED) or bits
    if stored < bits:
        shift = bits - stored
        arr = np.right_shift(np.left_shift(arr, shift), shift)
    return arr


def _require_decoder(tsyntax: UID, source: Source, series_uid: str) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise DecoderMissingError(
            f"{_label(series_uid)}{source.path.name} uses {tsyntax.name} ({tsyntax}), "
            "which pydicom cannot decode",
            hint="convert the series to a supported transfer syntax (e.g. with dcmdjpeg/gdcmconv)",
            series_uid=series_uid,
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plug-in"
        raise DecoderMissingError(
            f"{_label(series_uid)}{source.path.name} uses {tsyntax.name} ({tsyntax}) "
            "and no decoder for it is installed",
            hint=f"install one of: {missing}",
            series_uid=series_uid,
        )


def _label(series_uid: str) -> str:
    return f"series {series_uid}: " if series_uid else ""


def _text(ds: Dataset, tag: int) -> Any:
    """An element's value without pydicom's conversion: text VRs (DS, IS, UI, CS) stay
    raw text (much faster than building DSfloat objects); None when absent or empty."""
    elem = ds.get_item(tag)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").strip(" \x00")
    return value if value not in ("", None) else None


def _int(ds: Dataset, tag: int) -> int:
    """A US element (Rows, Columns, ...), read from its raw bytes when little endian."""
    elem = ds.get_item(tag)
    if elem is None:
        return 0
    value = elem.value
    if isinstance(value, bytes) and len(value) == 2 and ds.original_encoding[1] is not False:
        return int.from_bytes(value, "little")
    return int(ds[tag].value or 0)


def _split(value: Any) -> list[Any]:
    if isinstance(value, str):
        return value.split("\\")
    if isinstance(value, list | tuple | MultiValue):
        return list(value)
    return [value]


def _float(value: Any) -> float | None:
    """The first number of a value (text, number or multi-value); None if there is none."""
    if value is None or value == "":
        return None
    parts = _split(value)
    try:
        out = float(parts[0])
    except (TypeError, ValueError, IndexError):
        return None
    return out if np.isfinite(out) else None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """Exactly ``n`` finite numbers, or None."""
    if value is None or isinstance(value, bytes):
        return None
    try:
        out = tuple(float(v) for v in _split(value))
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None:
        return None
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _group(item: Dataset | None, shared: Dataset | None, group: str, keyword: str) -> Any:
    """A functional-group attribute: the frame's own item first, then the shared one."""
    for container in (item, shared):
        inner = _first_item(container, group)
        if inner is not None and keyword in inner:
            return inner.get(keyword)
    return None


def _pixel_spacing(ds: Dataset) -> tuple[tuple[float, ...] | None, str]:
    for tag, name in (
        (PIXEL_SPACING, "PixelSpacing"),
        (IMAGER_PIXEL_SPACING, "ImagerPixelSpacing"),
    ):
        value = _floats(_text(ds, tag), 2)
        if value is not None and min(value) > 0:
            return value, name
    return None, "none"


def _window(centre: Any, width: Any) -> tuple[float, float] | None:
    c, w = _float(centre), _float(width)
    return (c, w) if c is not None and w else None


def _patient_orientation(ds: Dataset) -> tuple[str, str] | None:
    value = ds.get("PatientOrientation")
    if value is None or isinstance(value, str) or len(value) != 2:
        return None
    return str(value[0]), str(value[1])


def orientation_from_letters(letters: tuple[str, str] | None) -> tuple[float, ...] | None:
    """Direction cosines (LPS) of rows and columns from PatientOrientation, e.g. ("L", "F");
    None when the letters are missing or do not give two perpendicular directions."""
    if letters is None:
        return None
    vectors = []
    for text in letters:
        if not text or any(ch not in ORIENTATION_LETTERS for ch in text):
            return None
        v = np.sum([ORIENTATION_LETTERS[ch] for ch in text], axis=0)
        vectors.append(v / np.linalg.norm(v))
    if abs(float(np.dot(vectors[0], vectors[1]))) > 1e-6:
        return None
    return tuple(float(v) for v in np.concatenate(vectors))
