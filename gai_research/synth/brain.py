"""Head phantoms: a non-contrast head CT (with or without a hemorrhage) and a 3D T1 MRI.

Volumes in the labels are counted from the voxel masks actually drawn, so they
equal what a reader measures from the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gai_research.synth.geometry import AxialGrid, ellipsoid_inside, rotation_x, sphere_points

__all__ = ["BrainMR", "HeadCT", "Hemorrhage", "brain_mr", "head_ct"]

HEMORRHAGE_HU = 65.0
HEAD_NOISE_HU = 3.0


@dataclass(frozen=True)
class Hemorrhage:
    x_mm: float  # centroid of the drawn voxels
    y_mm: float
    z_mm: float
    volume_ml: float


@dataclass(frozen=True)
class HeadCT:
    hu: np.ndarray  # int16, (slices, rows, cols)
    grid: AxialGrid
    hemorrhage: Hemorrhage | None


@dataclass(frozen=True)
class BrainMR:
    pixels: np.ndarray  # uint16, (slices, rows, cols)
    grid: AxialGrid
    hippocampus_left_ml: float  # patient's left (+x)
    hippocampus_right_ml: float


def _head_grid(rows: int, pixel: float, slices: int, step: float, z0: float) -> AxialGrid:
    half = pixel * (rows - 1) / 2
    return AxialGrid(rows, rows, slices, pixel, step, (-half, -half, z0))


def head_ct(rng: np.random.Generator, with_hemorrhage: bool) -> HeadCT:
    """A 256x256 (0.9 mm) x 32 (5 mm) head CT, slices from skull base to vertex."""
    zc = -round(float(rng.uniform(120.0, 180.0)), 1)  # table position of the head centre
    grid = _head_grid(256, 0.9, 32, 5.0, zc - 70.0)
    z, y, x = grid.axes()
    c = (round(float(rng.uniform(-4, 4)), 1), round(float(rng.uniform(-6, 6)), 1), zc)
    outer = (float(rng.uniform(68, 76)), float(rng.uniform(88, 96)), 84.0)
    brain_axes = tuple(a - 7.0 for a in outer)
    hu = np.full(grid.shape, -1000.0, dtype=np.float32)
    hu[ellipsoid_inside(x, y, z, c, tuple(a + 5.0 for a in outer))] = 25.0  # scalp
    hu[ellipsoid_inside(x, y, z, c, outer)] = 1000.0  # skull
    hu[ellipsoid_inside(x, y, z, c, brain_axes)] = 40.0  # cortex
    hu[ellipsoid_inside(x, y, z, c, tuple(a - 4.5 for a in brain_axes))] = 28.0  # white matter
    for side in (-1, 1):  # lateral ventricles
        vc = (c[0] + side * 11.0, c[1] - 4.0, c[2] + 12.0)
        hu[ellipsoid_inside(x, y, z, vc, (6.5, 26.0, 11.0))] = 8.0
    hemorrhage = None
    if with_hemorrhage:
        mask = _hemorrhage_mask(rng, grid, c, brain_axes)
        edema = np.zeros_like(mask)
        for k in range(mask.shape[0]):  # a thin hypodense rim in plane
            if mask[k].any():
                edema[k] = ndimage.binary_dilation(mask[k], iterations=2) & ~mask[k]
        edema &= ellipsoid_inside(x, y, z, c, tuple(a - 2.0 for a in brain_axes))
        hu[edema] = 20.0
        hu[mask] = HEMORRHAGE_HU
        cx, cy, cz = grid.centroid_mm(mask)
        hemorrhage = Hemorrhage(
            round(cx, 1), round(cy, 1), round(cz, 1), round(int(mask.sum()) * grid.voxel_ml, 3)
        )
    hu += HEAD_NOISE_HU * rng.standard_normal(grid.shape, dtype=np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return HeadCT(hu=hu, grid=grid, hemorrhage=hemorrhage)


def _hemorrhage_mask(rng, grid: AxialGrid, c, brain_axes) -> np.ndarray:
    z, y, x = grid.axes()
    shell = sphere_points()
    while True:
        volume_mm3 = float(np.exp(rng.uniform(np.log(5.0), np.log(60.0)))) * 1000.0
        ratios = np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)])
        a = (volume_mm3 / (4.0 / 3.0 * np.pi * ratios.prod())) ** (1 / 3)
        semi = tuple(float(v) for v in a * ratios[[1, 0, 2]])  # longest along y
        centre = (
            c[0] + rng.uniform(-0.55, 0.55) * brain_axes[0],
            c[1] + rng.uniform(-0.55, 0.55) * brain_axes[1],
            c[2] + rng.uniform(-0.45, 0.45) * brain_axes[2],
        )
        pts = np.asarray(centre) + shell * (np.asarray(semi) + 6.0)
        inside = ellipsoid_inside(pts[:, 0], pts[:, 1], pts[:, 2], c, brain_axes)
        if inside.all():
            mask = ellipsoid_inside(x, y, z, centre, semi)
            if mask.sum() >= 50:
                return mask


HIPPOCAMPUS_T1 = 600.0
MR_NOISE = 12.0


def brain_mr(rng: np.random.Generator, dementia: bool) -> BrainMR:
    """A 160x160 (1.2 mm) x 80 (1.5 mm) axial 3D T1 volume, slices from feet to head."""
    zc = round(float(rng.uniform(-20.0, 20.0)), 1)
    grid = _head_grid(160, 1.2, 80, 1.5, zc - 68.0)
    z, y, x = grid.axes()
    c = (round(float(rng.uniform(-3, 3)), 1), round(float(rng.uniform(-5, 5)), 1), zc)
    outer = (float(rng.uniform(72, 76)), float(rng.uniform(90, 94)), 86.0)
    atrophy = float(rng.uniform(3.5, 5.5)) if dementia else float(rng.uniform(0.5, 1.5))
    brain_axes = tuple(a - 11.0 - atrophy for a in outer)
    img = np.zeros(grid.shape, dtype=np.float32)
    img[ellipsoid_inside(x, y, z, c, outer)] = 950.0  # scalp fat
    img[ellipsoid_inside(x, y, z, c, tuple(a - 4.0 for a in outer))] = 110.0  # skull
    img[ellipsoid_inside(x, y, z, c, tuple(a - 9.0 for a in outer))] = 180.0  # CSF
    img[ellipsoid_inside(x, y, z, c, brain_axes)] = 480.0  # cortex
    img[ellipsoid_inside(x, y, z, c, tuple(a - 3.5 for a in brain_axes))] = 820.0  # white matter
    ventricle = 1.7 if dementia else 1.0
    for side in (-1, 1):
        vc = (c[0] + side * 10.0, c[1] - 3.0, c[2] + 14.0)
        img[ellipsoid_inside(x, y, z, vc, (5.0 * ventricle, 24.0, 9.0 * ventricle))] = 180.0
    if dementia:
        left = float(rng.uniform(1.9, 2.5))
        right = left + float(rng.uniform(0.0, 0.2))
    else:
        left = float(rng.uniform(3.0, 3.6))
        right = left + float(rng.uniform(0.05, 0.25))
    volumes = {}
    for side, target in ((1, left), (-1, right)):  # +x is the patient's left
        shape = np.array([0.30, 1.0, 0.34])
        b = (target * 1000.0 / (4.0 / 3.0 * np.pi * shape.prod())) ** (1 / 3)
        centre = (c[0] + side * 27.0, c[1] + 16.0, c[2] - 18.0)
        if dementia:  # enlarged temporal horn beside the atrophic hippocampus
            horn = (centre[0] + side * 7.0, centre[1] - 4.0, centre[2] + 3.0)
            img[ellipsoid_inside(x, y, z, horn, (3.5, 12.0, 4.0))] = 180.0
        mask = ellipsoid_inside(x, y, z, centre, tuple(b * shape), rotation=rotation_x(-20.0))
        img[mask] = HIPPOCAMPUS_T1
        volumes[side] = round(int(mask.sum()) * grid.voxel_ml, 3)
    noise = MR_NOISE * rng.standard_normal((2, *grid.shape), dtype=np.float32)
    img = np.hypot(img + noise[0], noise[1])  # magnitude image: Rician noise
    pixels = np.clip(np.rint(img), 0, 4095).astype(np.uint16)
    return BrainMR(pixels, grid, volumes[1], volumes[-1])
