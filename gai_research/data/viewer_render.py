"""Rendering for the viewer: planes, windows, finding marks and PNG bytes (numpy + Pillow).

Planes follow the radiological convention whatever the acquisition: axial slices are
seen from the feet (patient's right on the image left, anterior up), coronal from the
front (right on the left, head up), sagittal from the patient's left (anterior on the
left, head up). Each view slices the array along the axis closest to its normal, so an
axial CT, a sagittal MR and a coronal reformat all show the expected picture.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gai_research.data.volume_errors import VolumeError
from gai_research.data.volume_geometry import LPS_TO_RAS

__all__ = [
    "FINDING_COLOUR",
    "PREDICTION_COLOUR",
    "VIEWS",
    "WINDOWS",
    "Layout",
    "Mark",
    "display_point",
    "marks_from",
    "plane_layout",
    "radius_on_slice",
    "render_png",
    "resolve_window",
    "slice_pixels",
]

# (centre, width) in the image's rescaled units (HU for CT)
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "brain": (40.0, 80.0),
    "stroke": (35.0, 40.0),  # narrow: grey/white matter contrast for early ischaemia
    "bone": (400.0, 1800.0),
}
DATA_WINDOWS = ("auto", "dicom", "mammography", "full")
VIEWS = ("axial", "coronal", "sagittal")
# per view, in LPS: the plane's normal, the direction to the image right, down the image
_TARGETS = {
    "axial": ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    "coronal": ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    "sagittal": ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
}
FINDING_COLOUR = (0, 230, 0)
PREDICTION_COLOUR = (255, 40, 200)
DEFAULT_DIAMETER_MM = 10.0


@dataclass(frozen=True)
class Layout:
    """How a view maps array axes to the screen."""

    view: str
    slice_axis: int
    h_axis: int  # array axis along the image's columns (left to right)
    v_axis: int  # array axis along the image's rows (top to bottom)
    h_flip: bool
    v_flip: bool
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def n_slices(self) -> int:
        return self.shape[self.slice_axis]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in array pixels."""
        return self.shape[self.h_axis], self.shape[self.v_axis]


@dataclass(frozen=True)
class Mark:
    """A finding or prediction: centre in continuous voxel indices, radius in mm."""

    centre: tuple[float, float, float]
    radius_mm: float
    colour: tuple[int, int, int]
    text: str = ""


def plane_layout(
    affine_lps: np.ndarray, shape: tuple[int, ...], view: str, *, image: bool = False
) -> Layout:
    """The layout of ``view``; a 2-D image (``image=True``) is always shown as stored."""
    if view not in VIEWS:
        raise VolumeError(f"unknown view {view!r}", hint=f"use one of {', '.join(VIEWS)}")
    shape3 = (int(shape[0]), int(shape[1]), int(shape[2]))
    spacing = tuple(float(v) for v in np.linalg.norm(affine_lps[:3, :3], axis=0))
    if image:
        return Layout(view, 2, 0, 1, False, False, shape3, spacing)  # type: ignore[arg-type]
    dirs = affine_lps[:3, :3] / np.asarray(spacing)
    normal, right, down = (np.asarray(v, dtype=float) for v in _TARGETS[view])
    slice_axis = int(np.argmax(np.abs(dirs.T @ normal)))
    rest = [a for a in range(3) if a != slice_axis]
    h_axis = max(rest, key=lambda a: abs(float(dirs[:, a] @ right)))
    v_axis = next(a for a in rest if a != h_axis)
    return Layout(
        view=view,
        slice_axis=slice_axis,
        h_axis=h_axis,
        v_axis=v_axis,
        h_flip=bool(dirs[:, h_axis] @ right < 0),
        v_flip=bool(dirs[:, v_axis] @ down < 0),
        shape=shape3,
        spacing=spacing,  # type: ignore[arg-type]
    )


def slice_pixels(array: np.ndarray, layout: Layout, index: int) -> np.ndarray:
    """The plane at ``index`` as a 2-D array (rows top to bottom, columns left to right)."""
    plane = np.take(array, index, axis=layout.slice_axis)
    if layout.h_axis < layout.v_axis:  # remaining axes come in array order
        plane = plane.T
    if layout.v_flip:
        plane = plane[::-1]
    if layout.h_flip:
        plane = plane[:, ::-1]
    return plane


def resolve_window(
    window: str | tuple[float, float], array: np.ndarray, meta: Mapping[str, Any]
) -> tuple[float, float]:
    """(centre, width) of a preset name, ``"auto"``/``"dicom"``/``"mammography"``/``"full"``,
    or an explicit pair."""
    if not isinstance(window, str):
        centre, width = (float(v) for v in window)
        if width <= 0:
            raise VolumeError(
                f"window width must be positive, not {width:g}", hint="e.g. (40, 400)"
            )
        return centre, width
    name = window.lower()
    if name in WINDOWS:
        return WINDOWS[name]
    header = meta.get("window")
    if name == "auto":
        if meta.get("modality") == "MG":
            return _percentile_window(array, foreground=True)
        if header is not None and len(header) == 2 and header[1]:
            return float(header[0]), float(header[1])
        return WINDOWS["mediastinum"] if meta.get("modality") == "CT" else _percentile_window(array)
    if name == "dicom":
        if header is not None and len(header) == 2 and header[1]:
            return float(header[0]), float(header[1])
        return _percentile_window(array)
    if name == "mammography":
        return _percentile_window(array, foreground=True)
    if name == "full":
        lo, hi = float(np.min(array)), float(np.max(array))
        return (lo + hi) / 2, max(hi - lo, 1.0)
    names = ", ".join([*WINDOWS, *DATA_WINDOWS])
    raise VolumeError(f"unknown window {window!r}", hint=f"use one of {names}, or (centre, width)")


def _percentile_window(array: np.ndarray, *, foreground: bool = False) -> tuple[float, float]:
    """1st-99.5th percentile (of a subsample); with ``foreground``, of the pixels above
    Otsu's threshold only, so the air around a breast does not set the window."""
    sample = np.asarray(array, dtype=np.float64).ravel()[:: max(1, array.size // 400_000)]
    if foreground:
        kept = sample[sample > _otsu(sample)]
        sample = kept if kept.size else sample
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.5]))
    return (lo + hi) / 2, max(hi - lo, 1e-3)


def _otsu(sample: np.ndarray, bins: int = 256) -> float:
    """The threshold that best splits ``sample`` into two classes (Otsu 1979)."""
    counts, edges = np.histogram(sample, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    total = weight[-1]
    mean = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight - mean * total) ** 2 / (weight * (total - weight))
    return float(centres[int(np.nanargmax(between[:-1]))]) if bins > 1 else float(centres[0])


def _grey(plane: np.ndarray, window: tuple[float, float], invert: bool) -> np.ndarray:
    centre, width = window
    lo = centre - width / 2
    scaled = np.clip((plane - lo) * (255.0 / width), 0, 255).astype(np.uint8)
    return 255 - scaled if invert else scaled


def display_point(
    layout: Layout, centre: Iterable[float], scale: tuple[float, float]
) -> tuple[float, float]:
    """Where a voxel centre appears in the rendered picture: (x, y) in picture pixels."""
    c = tuple(centre)
    w, h = layout.size
    hx = c[layout.h_axis] if not layout.h_flip else w - 1 - c[layout.h_axis]
    vy = c[layout.v_axis] if not layout.v_flip else h - 1 - c[layout.v_axis]
    return (hx + 0.5) * scale[0] - 0.5, (vy + 0.5) * scale[1] - 0.5


def picture_size(layout: Layout, max_side: int) -> tuple[int, int]:
    """Picture (width, height) with square millimetres, the longer side ``max_side``."""
    w, h = layout.size
    width_mm, height_mm = w * layout.spacing[layout.h_axis], h * layout.spacing[layout.v_axis]
    factor = max_side / max(width_mm, height_mm)
    return max(1, round(width_mm * factor)), max(1, round(height_mm * factor))


def render_png(
    array: np.ndarray,
    layout: Layout,
    index: int,
    window: tuple[float, float],
    marks: Iterable[Mark] = (),
    *,
    invert: bool = False,
    max_side: int = 512,
) -> bytes:
    """The slice as PNG bytes, windowed, with the marks that cross it drawn as circles."""
    from PIL import Image, ImageDraw

    plane = slice_pixels(array, layout, index)
    size = picture_size(layout, max_side)
    picture = Image.fromarray(_grey(plane, window, invert)).resize(size, Image.Resampling.BILINEAR)
    picture = picture.convert("RGB")
    scale = (size[0] / layout.size[0], size[1] / layout.size[1])
    draw = ImageDraw.Draw(picture)
    for mark in marks:
        radius = radius_on_slice(mark, layout, index)
        if radius is None:
            continue
        x, y = display_point(layout, mark.centre, scale)
        rx = max(radius / layout.spacing[layout.h_axis] * scale[0], 3.0)
        ry = max(radius / layout.spacing[layout.v_axis] * scale[1], 3.0)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), outline=mark.colour, width=2)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def radius_on_slice(mark: Mark, layout: Layout, index: int) -> float | None:
    """Radius (mm) of the sphere's cut by the slice plane, None when it misses."""
    distance = abs(mark.centre[layout.slice_axis] - index) * layout.spacing[layout.slice_axis]
    if layout.n_slices == 1:
        distance = 0.0  # a 2-D image shows every finding
    if distance > mark.radius_mm:
        return None
    return math.sqrt(mark.radius_mm**2 - distance**2)


def marks_from(
    items: Any,
    *,
    affine: np.ndarray,
    space: str,
    colour: tuple[int, int, int],
    sop_uids: Iterable[str] = (),
) -> list[Mark]:
    """Marks from label rows or predictions (a DataFrame or dicts).

    3-D rows: ``x_mm, y_mm, z_mm`` in DICOM patient coordinates (LPS, as in the catalog),
    with ``diameter_mm`` (or ``volume_ml``: the sphere of that volume; else 10 mm).
    2-D rows: ``row_px, col_px`` (or ``row, col``), 0-based, with ``diameter_mm``; rows
    with a ``sop_uid`` of another image are left out. ``score`` or ``name`` label it.
    """
    if items is None:
        return []
    rows = items.to_dict("records") if hasattr(items, "to_dict") else list(items)
    inverse = np.linalg.inv(affine)
    to_space = np.eye(4) if space == "LPS" else LPS_TO_RAS
    shown = set(sop_uids)
    marks = []
    for row in rows:
        diameter = _number(row.get("diameter_mm"))
        volume_ml = _number(row.get("volume_ml"))
        if diameter is None and volume_ml is not None:
            diameter = 2 * (3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3)
        diameter = diameter or DEFAULT_DIAMETER_MM
        text = _text(row)
        x, y, z = (_number(row.get(k)) for k in ("x_mm", "y_mm", "z_mm"))
        if x is not None and y is not None and z is not None:
            ijk = (inverse @ to_space @ np.array([x, y, z, 1.0]))[:3]
            marks.append(Mark(tuple(float(v) for v in ijk), diameter / 2, colour, text))
            continue
        r = _number(row.get("row_px", row.get("row")))
        c = _number(row.get("col_px", row.get("col")))
        if r is None or c is None:
            continue
        if shown and row.get("sop_uid") and row["sop_uid"] not in shown:
            continue
        marks.append(Mark((c, r, 0.0), diameter / 2, colour, text))
    return marks


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _text(row: Mapping[str, Any]) -> str:
    score = _number(row.get("score"))
    name = row.get("name") or row.get("label") or ""
    if score is not None:
        return f"{name} {score:.2f}".strip()
    return str(name)
