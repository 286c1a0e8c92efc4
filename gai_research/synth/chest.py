"""Chest phantoms: a low-dose CT volume in Hounsfield units and a PA radiograph.

The truth (nodule centres and diameters) is decided first and then drawn, so the
labels describe exactly the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gai_research.synth.geometry import AxialGrid, smooth_noise, soft_disc, sphere_points

__all__ = ["ChestCT", "ChestXray", "Nodule", "chest_ct", "chest_xray"]

CT_SIZE = 256
CT_PIXEL_MM = 1.40625  # 360 mm field of view
CT_SLICE_MM = 2.5
CT_SLICES = 64
NODULE_HU = 40.0
NOISE_HU = 18.0


@dataclass(frozen=True)
class Nodule:
    """A spherical solid nodule: centre in patient coordinates (LPS, mm) and diameter."""

    x_mm: float
    y_mm: float
    z_mm: float
    diameter_mm: float


@dataclass(frozen=True)
class ChestCT:
    hu: np.ndarray  # int16, (slices, rows, cols)
    grid: AxialGrid
    nodules: tuple[Nodule, ...]


@dataclass(frozen=True)
class _Thorax:
    bx: float
    by: float
    a: float
    b: float
    z_mid: float
    half_height: float

    def lung_scale(self, z):
        return np.sqrt(np.clip(1.0 - ((z - self.z_mid) / self.half_height) ** 2, 0.0, 1.0))

    def heart(self, x, y, z):
        h = np.sqrt(np.clip(1.0 - ((z - (self.z_mid - 30.0)) / 55.0) ** 2, 0.0, 1.0))
        cx, cy = self.bx + 0.12 * self.a, self.by - 0.22 * self.b
        return ((x - cx) / (0.30 * self.a * h + 1e-6)) ** 2 + (
            (y - cy) / (0.42 * self.b * h + 1e-6)
        ) ** 2 <= 1

    def mediastinum(self, x, y):
        aorta = (x - (self.bx + 0.14 * self.a)) ** 2 + (
            y - (self.by + 0.42 * self.b)
        ) ** 2 <= 13.0**2
        spine = (x - self.bx) ** 2 + (y - (self.by + 0.62 * self.b)) ** 2 <= 24.0**2
        return aorta | spine

    def lungs(self, x, y, z):
        s = self.lung_scale(z)
        cy = self.by - 0.03 * self.b
        right = ((x - (self.bx - 0.42 * self.a)) / (0.36 * self.a * s + 1e-6)) ** 2 + (
            (y - cy) / (0.70 * self.b * s + 1e-6)
        ) ** 2 <= 1
        left = ((x - (self.bx + 0.42 * self.a)) / (0.33 * self.a * s + 1e-6)) ** 2 + (
            (y - cy) / (0.68 * self.b * s + 1e-6)
        ) ** 2 <= 1
        return (right | left) & ~self.heart(x, y, z) & ~self.mediastinum(x, y)


def _draw_thorax(t: _Thorax, grid: AxialGrid, rng: np.random.Generator) -> np.ndarray:
    z, y, x = grid.axes()
    hu = np.full(grid.shape, -1000.0, dtype=np.float32)
    ex, ey = (x - t.bx) / t.a, (y - t.by) / t.b
    body = np.broadcast_to(ex**2 + ey**2 <= 1.0, grid.shape)
    inner = ((x - t.bx) / (t.a - 14)) ** 2 + ((y - t.by) / (t.b - 12)) ** 2 <= 1.0
    hu[body] = -100.0  # subcutaneous fat
    hu[np.broadcast_to(inner, grid.shape)] = 40.0  # muscle, mediastinum
    # ribs: an elliptic band, bone where the rib arcs cross the slice
    band = (((x - t.bx) / (t.a - 17)) ** 2 + ((y - t.by) / (t.b - 15)) ** 2 <= 1.0) & ~(
        ((x - t.bx) / (t.a - 23)) ** 2 + ((y - t.by) / (t.b - 21)) ** 2 <= 1.0
    )
    angle = np.arctan2(y - t.by, x - t.bx)
    ribs = band & (np.cos(10 * angle + z / 4.0) > 0.55)
    hu[ribs] = 700.0
    hu[t.lungs(x, y, z)] = -850.0
    vb = (x - t.bx) ** 2 + (y - (t.by + 0.62 * t.b)) ** 2
    hu[np.broadcast_to(vb <= 16.0**2, grid.shape)] = 900.0  # cortical shell
    hu[np.broadcast_to(vb <= 13.5**2, grid.shape)] = 300.0  # trabecular bone
    canal = (x - t.bx) ** 2 + (y - (t.by + 0.62 * t.b + 24)) ** 2
    hu[np.broadcast_to(canal <= 11.0**2, grid.shape)] = 700.0
    hu[np.broadcast_to(canal <= 6.5**2, grid.shape)] = 15.0
    lung = hu == -850.0
    hu[lung] += 35.0 * smooth_noise(rng, grid.shape, 1.2)[lung]  # vessels and parenchyma
    return hu


def _place_nodules(
    t: _Thorax, grid: AxialGrid, rng: np.random.Generator, count: int
) -> list[Nodule]:
    z_axis = grid.origin[2] + grid.z_step * np.arange(grid.slices)
    z_lo, z_hi = float(z_axis.min()), float(z_axis.max())
    shell = sphere_points(400)
    nodules: list[Nodule] = []
    tries = 0
    while len(nodules) < count:
        tries += 1
        shrink = 0.9 ** (tries // 200)
        d = round(float(np.exp(rng.uniform(np.log(4.0), np.log(30.0)))) * shrink, 1)
        d = max(d, 4.0)
        r = d / 2
        side = 1 if rng.random() < 0.5 else -1
        cx = t.bx + side * 0.42 * t.a + rng.uniform(-0.3, 0.3) * t.a
        cy = t.by + rng.uniform(-0.6, 0.6) * t.b
        cz = rng.uniform(z_lo + r + 3, z_hi - r - 3)
        cx, cy, cz = round(cx, 1), round(cy, 1), round(cz, 1)
        pts = np.array([cx, cy, cz]) + np.concatenate([(r + 3.0) * shell, (r + 1.5) * shell])
        if not t.lungs(pts[:, 0], pts[:, 1], pts[:, 2]).all():
            continue
        if any(
            np.linalg.norm([cx - n.x_mm, cy - n.y_mm, cz - n.z_mm]) < r + n.diameter_mm / 2 + 4
            for n in nodules
        ):
            continue
        nodules.append(Nodule(cx, cy, cz, d))
    return nodules


def chest_ct(rng: np.random.Generator, nodule_count: int) -> ChestCT:
    """A chest CT with ``nodule_count`` (0-3) solid nodules fully inside the lungs."""
    z_top = -round(float(rng.uniform(20.0, 90.0)), 1)
    half = CT_PIXEL_MM * (CT_SIZE - 1) / 2
    grid = AxialGrid(
        rows=CT_SIZE,
        cols=CT_SIZE,
        slices=CT_SLICES,
        pixel_mm=CT_PIXEL_MM,
        z_step=-CT_SLICE_MM,
        origin=(-half, -half, z_top),
    )
    coverage = CT_SLICE_MM * (CT_SLICES - 1)
    thorax = _Thorax(
        bx=round(float(rng.uniform(-8, 8)), 1),
        by=round(float(rng.uniform(-12, 4)), 1),
        a=float(rng.uniform(140, 165)),
        b=float(rng.uniform(100, 118)),
        z_mid=z_top - coverage / 2 + 10.0,
        half_height=coverage / 2 + 30.0,
    )
    hu = _draw_thorax(thorax, grid, rng)
    nodules = _place_nodules(thorax, grid, rng, nodule_count)
    z, y, x = grid.axes()
    for n in nodules:
        inside = (x - n.x_mm) ** 2 + (y - n.y_mm) ** 2 + (z - n.z_mm) ** 2 <= (
            n.diameter_mm / 2
        ) ** 2
        hu[inside] = NODULE_HU
    hu += NOISE_HU * rng.standard_normal(grid.shape, dtype=np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return ChestCT(hu=hu, grid=grid, nodules=tuple(nodules))


# --- chest radiograph ------------------------------------------------------------------

DX_SIZE = 512
DX_PIXEL_MM = 0.7
DX_MAX = 4095


@dataclass(frozen=True)
class ChestXray:
    pixels: np.ndarray  # uint16, (rows, cols), MONOCHROME2
    nodule: tuple[int, int, float] | None  # (row, col, diameter_mm)


def chest_xray(rng: np.random.Generator, with_nodule: bool) -> ChestXray:
    """A PA chest radiograph (patient's left on the image right), optionally with a nodule."""
    n = DX_SIZE
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float32)
    cx = n / 2 + rng.uniform(-10, 10)
    img = np.full((n, n), 180.0, dtype=np.float32)
    width = rng.uniform(0.40, 0.46) * n
    torso = (np.abs(cols - cx) / width) ** 4 + ((rows - 0.62 * n) / (0.62 * n)) ** 4 <= 1
    img[torso] = 2300.0
    lung_top, lung_h = 0.14 * n + rng.uniform(-8, 8), rng.uniform(0.58, 0.66) * n
    lungs = np.zeros((n, n), dtype=bool)
    lung_geo = []
    for side in (-1, 1):  # -1: patient's right (image left)
        lx, ly = cx + side * 0.20 * n, lung_top + lung_h / 2
        ax, ay = 0.15 * n + rng.uniform(-6, 6), lung_h / 2
        lung_geo.append((lx, ly, ax, ay))
        lungs |= ((cols - lx) / ax) ** 2 + ((rows - ly) / ay) ** 2 <= 1
    heart = ((cols - (cx + 0.06 * n)) / (0.13 * n)) ** 2 + (
        (rows - (lung_top + 0.78 * lung_h)) / (0.14 * n)
    ) ** 2 <= 1
    lungs &= ~heart
    img[lungs] = 950.0
    img[lungs] += 60.0 * smooth_noise(rng, (n, n), 2.0)[lungs]
    spine = np.abs(cols - cx) <= 0.045 * n
    img[spine & torso] = 2700.0
    for k in range(10):  # posterior ribs: gently curved bright bands across each lung
        for side in (-1, 1):
            centre = (
                lung_top + 10 + k * lung_h / 9.5 + 0.00012 * (cols - cx) ** 2 * (1 + 0.1 * side)
            )
            rib = (np.abs(rows - centre) <= 4.5) & (side * (cols - cx) > 0.05 * n) & lungs
            img[rib] += 260.0
    for side in (-1, 1):  # clavicles
        clav = np.abs(rows - (lung_top + 12 - 0.08 * np.abs(cols - cx))) <= 5
        lateral = side * (cols - cx)
        img[clav & (lateral < 0.3 * n) & (lateral > 0.03 * n)] += 400.0
    nodule = None
    if with_nodule:
        while nodule is None:
            lx, ly, ax, ay = lung_geo[int(rng.integers(2))]
            d = round(float(rng.uniform(8.0, 30.0)), 1)
            rad_px = d / 2 / DX_PIXEL_MM
            r0 = round(ly + rng.uniform(-0.7, 0.7) * ay)
            c0 = round(lx + rng.uniform(-0.7, 0.7) * ax)
            ring = [
                (r0 + (rad_px + 4) * np.sin(a), c0 + (rad_px + 4) * np.cos(a))
                for a in np.linspace(0, 2 * np.pi, 36)
            ]
            if all(0 <= rr < n and 0 <= cc < n and lungs[int(rr), int(cc)] for rr, cc in ring):
                nodule = (r0, c0, d)
        r0, c0, d = nodule
        dist = np.hypot(rows - r0, cols - c0)
        img += 520.0 * soft_disc(dist, d / 2 / DX_PIXEL_MM, 0.8)
    img = ndimage.gaussian_filter(img, 1.2)
    img += 18.0 * rng.standard_normal((n, n), dtype=np.float32)
    pixels = np.clip(np.rint(img), 0, DX_MAX).astype(np.uint16)
    return ChestXray(pixels=pixels, nodule=nodule)
