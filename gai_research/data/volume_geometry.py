"""From frames to one regular grid: sort by position along the normal, check, build the affine.

The affine is DICOM's (LPS, mm) and maps array indices ``(i, j, k)`` - ``i`` the column
index within a slice, ``j`` the row index, ``k`` the slice - to patient coordinates, the
axis order MONAI's DICOM readers use. Slices are ordered by their position along the
normal (row cosines x column cosines), never by InstanceNumber; the slice axis is the
mean step between the sorted positions, so a tilted gantry gives a (correct) sheared
affine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gai_research.data.volume_errors import (
    DuplicateSliceError,
    GeometryError,
    MissingGeometryError,
    MixedOrientationError,
    MixedSeriesError,
    MixedShapeError,
    SliceGapError,
)
from gai_research.data.volume_frames import Frame, orientation_from_letters

__all__ = [
    "DEFAULT_SPACING_TOLERANCE",
    "IDENTITY_ORIENTATION",
    "LPS_TO_RAS",
    "PROJECTION_MODALITIES",
    "Grid",
    "build_grid",
]

DEFAULT_SPACING_TOLERANCE = 0.1  # a step may differ from the median step by 10 %
ORIENTATION_TOLERANCE = 1e-3  # largest difference of a direction cosine (~0.06 degrees)
PIXEL_SPACING_TOLERANCE = 1e-3  # relative
DUPLICATE_MM = 0.01  # slices closer than this along the normal share a position
IDENTITY_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "RG", "XA", "RF", "DG"})


@dataclass(frozen=True)
class Grid:
    """Where each frame goes and what the grid looks like."""

    order: tuple[int, ...]  # frame indices (into the list given) in slice order
    affine: np.ndarray  # 4x4, LPS
    shape: tuple[int, int, int]  # (columns, rows, slices)
    slice_positions: tuple[float, ...]  # mm along the normal, per slice; () without positions
    kind: str  # "volume" (tomographic slices) or "image" (a 2-D projection image)


def build_grid(
    frames: Sequence[Frame],
    *,
    series_uid: str,
    modality: str = "",
    slice_spacing: float | None = None,
    patient_orientation: tuple[str, str] | None = None,
    spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
) -> Grid:
    """Sort and check ``frames``; raise a :class:`GeometryError` subclass naming the series."""
    label = f"series {series_uid or '(no SeriesInstanceUID)'}"
    sizes = sorted({(f.rows, f.cols) for f in frames})
    if len(sizes) > 1:
        shown = ", ".join(f"{r}x{c}" for r, c in sizes[:4])
        raise MixedShapeError(
            f"{label}: slices differ in size (rows x columns: {shown})",
            hint="the series mixes images of different matrices (e.g. a localizer); "
            "load the slices of one size with load_files()",
            series_uid=series_uid,
        )
    if len(frames) == 1:
        return _single(frames[0], slice_spacing, patient_orientation)
    _check_has_geometry(frames, label, modality, series_uid)
    orientation = _common_orientation(frames, label, series_uid)
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    row_mm, col_mm = _common_pixel_spacing(frames, label, series_uid)
    positions = np.array([f.position for f in frames], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along = along[order]
    steps = np.diff(along)
    _check_duplicates(steps, along, order, frames, label, series_uid)
    _check_gaps(steps, along, label, series_uid, spacing_tolerance)
    first, last = positions[order[0]], positions[order[-1]]
    step_vector = (last - first) / (len(frames) - 1)
    _check_line(positions[order], first, step_vector, label, series_uid, spacing_tolerance)
    affine = np.eye(4)
    affine[:3, 0] = row_cos * col_mm
    affine[:3, 1] = col_cos * row_mm
    affine[:3, 2] = step_vector
    affine[:3, 3] = first
    return Grid(
        order=tuple(int(i) for i in order),
        affine=affine,
        shape=(frames[0].cols, frames[0].rows, len(frames)),
        slice_positions=tuple(float(v) for v in along),
        kind="volume",
    )


def _single(frame: Frame, slice_spacing: float | None, letters: tuple[str, str] | None) -> Grid:
    orientation = frame.orientation or orientation_from_letters(letters) or IDENTITY_ORIENTATION
    row_cos, col_cos = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    row_mm, col_mm = frame.pixel_spacing or (1.0, 1.0)
    affine = np.eye(4)
    affine[:3, 0] = row_cos * col_mm
    affine[:3, 1] = col_cos * row_mm
    affine[:3, 2] = np.cross(row_cos, col_cos) * (slice_spacing or 1.0)
    if frame.position is not None:
        affine[:3, 3] = frame.position
    tomographic = frame.position is not None and frame.orientation is not None
    normal = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    along = (float(np.dot(frame.position, normal)),) if tomographic else ()
    return Grid(
        order=(0,),
        affine=affine,
        shape=(frame.cols, frame.rows, 1),
        slice_positions=along,
        kind="volume" if tomographic else "image",
    )


def _check_has_geometry(frames: Sequence[Frame], label: str, modality: str, uid: str) -> None:
    missing = [f for f in frames if f.position is None or f.orientation is None]
    if not missing:
        return
    files = len({f.source for f in frames})
    if modality in PROJECTION_MODALITIES and all(
        f.position is None and f.orientation is None for f in frames
    ):
        raise MixedSeriesError(
            f"{label}: holds {len(frames)} separate {modality} projection images "
            f"in {files} file(s), not slices of one volume",
            hint="load one image at a time: load_instance(sop_uid) or load_files([path])",
            series_uid=uid,
        )
    what = "ImagePositionPatient" if missing[0].position is None else "ImageOrientationPatient"
    raise MissingGeometryError(
        f"{label}: {len(missing)} of {len(frames)} slices have no {what}, "
        "so the slices cannot be placed in space",
        hint="the series lacks the Image Plane module; load each slice alone with load_files([path])",
        series_uid=uid,
    )


def _common_orientation(frames: Sequence[Frame], label: str, uid: str) -> np.ndarray:
    cosines = np.array([f.orientation for f in frames], dtype=np.float64)
    deviation = np.abs(cosines - cosines[0]).max(axis=1)
    if deviation.max() > ORIENTATION_TOLERANCE:
        distinct = {tuple(np.round(c, 3)) for c in cosines}
        other = cosines[int(np.argmax(deviation))]
        raise MixedOrientationError(
            f"{label}: slices have {len(distinct)} different orientations "
            f"(e.g. {_fmt(cosines[0])} and {_fmt(other)})",
            hint="the series mixes planes (a localizer, or several stacks); "
            "load the slices of one orientation with load_files()",
            series_uid=uid,
        )
    row, col = cosines[0, :3], cosines[0, 3:]
    if (
        abs(np.linalg.norm(row) - 1) > 0.01
        or abs(np.linalg.norm(col) - 1) > 0.01
        or abs(float(np.dot(row, col))) > 0.01
    ):
        raise MissingGeometryError(
            f"{label}: ImageOrientationPatient {_fmt(cosines[0])} is not two perpendicular "
            "unit vectors",
            hint="the header is damaged; ask the site to resend the series",
            series_uid=uid,
        )
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    return np.concatenate([row, col])


def _common_pixel_spacing(frames: Sequence[Frame], label: str, uid: str) -> tuple[float, float]:
    given = [f.pixel_spacing for f in frames if f.pixel_spacing is not None]
    if not given:
        return 1.0, 1.0
    values = np.array(given)
    if len(given) != len(frames) or np.any(
        np.abs(values - values[0]) > PIXEL_SPACING_TOLERANCE * values[0]
    ):
        distinct = sorted({tuple(np.round(v, 4)) for v in values})
        raise MixedShapeError(
            f"{label}: slices differ in pixel spacing ({', '.join(map(str, distinct[:4]))} mm)",
            hint="the series mixes reconstructions; load the slices of one spacing with load_files()",
            series_uid=uid,
        )
    return float(values[0][0]), float(values[0][1])


def _check_duplicates(steps, along, order, frames, label: str, uid: str) -> None:
    dup = np.flatnonzero(steps < DUPLICATE_MM)
    if not len(dup):
        return
    distinct = len(along) - len(dup)
    k = int(dup[0])
    a, b = frames[order[k]], frames[order[k + 1]]
    same = "the same file twice" if (a.source, a.index) == (b.source, b.index) else None
    raise DuplicateSliceError(
        f"{label}: {len(along)} slices at only {distinct} distinct positions "
        f"(first repeated at {along[k]:.3f} mm along the normal)",
        hint=same
        or "the series holds several images per position (echoes, phases, acquisitions or "
        "copies); load one set with load_files()",
        series_uid=uid,
    )


def _check_gaps(steps, along, label: str, uid: str, tolerance: float) -> None:
    median = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - median) > tolerance * median)
    if not len(bad):
        return
    k = int(bad[0])
    raise SliceGapError(
        f"{label}: slice spacing is not uniform: median {median:.3f} mm, but {steps[k]:.3f} mm "
        f"between {along[k]:.3f} and {along[k + 1]:.3f} mm along the normal "
        f"({len(bad)} irregular step(s) of {len(steps)})",
        hint="a slice may be missing, or the series holds stacks of different spacing; "
        f"check the series (spacing_tolerance={tolerance:g} allows {tolerance:.0%} deviation)",
        series_uid=uid,
    )


def _check_line(sorted_positions, first, step_vector, label: str, uid: str, tolerance: float):
    expected = first + np.arange(len(sorted_positions))[:, None] * step_vector
    off = np.linalg.norm(sorted_positions - expected, axis=1).max()
    if off > tolerance * np.linalg.norm(step_vector) + DUPLICATE_MM:
        raise GeometryError(
            f"{label}: slice positions do not lie on a line (up to {off:.2f} mm off)",
            hint="the slices were shifted in plane between acquisitions; load each stack alone",
            series_uid=uid,
        )


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"
