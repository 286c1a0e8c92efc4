"""Mammography phantoms: the four standard views of both breasts, with or without a mass.

Images are built with the chest wall on the left (left breast) and mirrored for the
right breast, which is stored chest wall on the right, as mammography displays do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gai_research.synth.geometry import smooth_noise, soft_disc

__all__ = ["MG_PIXEL_MM", "MG_VIEWS", "MammoView", "Mass", "mammography"]

MG_ROWS, MG_COLS = 512, 416
MG_PIXEL_MM = 0.5
MG_MAX = 4095
MASS_CONTRAST = 900.0
#: (laterality, view) in acquisition order
MG_VIEWS: tuple[tuple[str, str], ...] = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


@dataclass(frozen=True)
class Mass:
    row: int
    col: int
    diameter_mm: float


@dataclass(frozen=True)
class MammoView:
    laterality: str
    view: str
    pixels: np.ndarray  # uint16 (rows, cols), MONOCHROME2
    mass: Mass | None


@dataclass(frozen=True)
class _Breast:
    depth: float  # nipple distance from the chest wall, px
    half_cc: float  # half height in CC, px
    half_mlo: float
    centre_cc: float  # row of the nipple
    centre_mlo: float
    density: float

    def outline(self, view: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if view == "CC":
            return (cols / self.depth) ** 2 + ((rows - self.centre_cc) / self.half_cc) ** 2 <= 1
        ellipse = (cols / self.depth) ** 2 + ((rows - self.centre_mlo) / self.half_mlo) ** 2 <= 1
        axilla = (rows < self.centre_mlo) & (cols < 0.35 * self.depth * (1 + rows / MG_ROWS))
        return ellipse | axilla

    def position(self, view: str, depth_frac: float, offset_frac: float) -> tuple[int, int]:
        col = self.depth * (1.0 - depth_frac)
        if view == "CC":
            return round(self.centre_cc + offset_frac * self.half_cc), round(col)
        return round(self.centre_mlo + offset_frac * self.half_mlo), round(col)


def _view_image(
    rng: np.random.Generator, breast: _Breast, view: str, mass: Mass | None
) -> np.ndarray:
    rows, cols = np.mgrid[0:MG_ROWS, 0:MG_COLS].astype(np.float32)
    inside = breast.outline(view, rows, cols)
    edge_dist = ndimage.distance_transform_edt(inside)
    thickness = np.clip(edge_dist / 40.0, 0.0, 1.0) ** 0.5  # compressed breast thins to the skin
    glands = smooth_noise(rng, (MG_ROWS, MG_COLS), 6.0)
    nipple_dist = np.hypot(
        cols - breast.depth, rows - (breast.centre_cc if view == "CC" else breast.centre_mlo)
    )
    fibro = np.clip(glands + breast.density - nipple_dist / (1.5 * breast.depth), 0.0, 1.5)
    img = np.full((MG_ROWS, MG_COLS), 60.0, dtype=np.float32)
    tissue = 700.0 + 900.0 * thickness + 500.0 * fibro * thickness
    img[inside] = tissue[inside]
    img[inside & (edge_dist <= 3)] += 150.0  # skin line
    if view == "MLO":  # pectoral muscle in the upper chest-wall corner
        pect = cols < 0.30 * breast.depth * (1.0 - rows / (0.55 * MG_ROWS))
        img[pect & inside] = 2500.0
    if mass is not None:
        dist = np.hypot(rows - mass.row, cols - mass.col)
        radius = mass.diameter_mm / 2 / MG_PIXEL_MM
        img += MASS_CONTRAST * soft_disc(dist, radius, 1.0)
    img = ndimage.gaussian_filter(img, 0.8)
    img += 15.0 * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.rint(img), 0, MG_MAX).astype(np.uint16)


def mammography(rng: np.random.Generator, with_mass: bool) -> tuple[MammoView, ...]:
    """R CC, L CC, R MLO, L MLO; a positive study has one mass seen in both views of one side."""
    breasts = {}
    for side in ("R", "L"):
        depth = float(rng.uniform(0.55, 0.80)) * MG_COLS
        breasts[side] = _Breast(
            depth=depth,
            half_cc=float(rng.uniform(0.34, 0.44)) * MG_ROWS,
            half_mlo=float(rng.uniform(0.36, 0.44)) * MG_ROWS,
            centre_cc=MG_ROWS / 2 + float(rng.uniform(-15, 15)),
            centre_mlo=0.56 * MG_ROWS + float(rng.uniform(-10, 10)),
            density=float(rng.uniform(-0.2, 0.8)),
        )
    masses: dict[tuple[str, str], Mass] = {}
    if with_mass:
        side = "R" if rng.random() < 0.5 else "L"
        diameter = round(float(rng.uniform(8.0, 30.0)), 1)
        depth_frac = float(rng.uniform(0.3, 0.7))
        for view in ("CC", "MLO"):
            r, c = breasts[side].position(view, depth_frac, float(rng.uniform(-0.4, 0.4)))
            masses[(side, view)] = Mass(r, c, diameter)
    views = []
    for side, view in MG_VIEWS:
        mass = masses.get((side, view))
        pixels = _view_image(rng, breasts[side], view, mass)
        if side == "R":  # chest wall on the right
            pixels = pixels[:, ::-1].copy()
            if mass is not None:
                mass = Mass(mass.row, MG_COLS - 1 - mass.col, mass.diameter_mm)
        views.append(MammoView(side, view, pixels, mass))
    return tuple(views)
