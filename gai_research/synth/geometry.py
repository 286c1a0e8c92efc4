"""Voxel grids in patient coordinates (DICOM LPS, mm) and the shapes drawn on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "AxialGrid",
    "ellipsoid_inside",
    "rotation_x",
    "smooth_noise",
    "soft_disc",
    "sphere_points",
]


@dataclass(frozen=True)
class AxialGrid:
    """An axial stack: rows run along +y (posterior), columns along +x (patient left).

    ``origin`` is the centre of the first voxel of the first slice; slice ``k`` lies at
    ``z = origin[2] + k * z_step`` (a negative step runs from head to feet).
    """

    rows: int
    cols: int
    slices: int
    pixel_mm: float
    z_step: float
    origin: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.slices, self.rows, self.cols)

    @property
    def voxel_ml(self) -> float:
        return self.pixel_mm * self.pixel_mm * abs(self.z_step) / 1000.0

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable coordinate arrays ``z[:, None, None], y[None, :, None], x[None, None, :]``."""
        x = self.origin[0] + self.pixel_mm * np.arange(self.cols)
        y = self.origin[1] + self.pixel_mm * np.arange(self.rows)
        z = self.origin[2] + self.z_step * np.arange(self.slices)
        return z[:, None, None], y[None, :, None], x[None, None, :]

    def position(self, k: int) -> list[float]:
        """ImagePositionPatient of slice ``k``."""
        return [self.origin[0], self.origin[1], round(self.origin[2] + self.z_step * k, 4)]

    def centroid_mm(self, mask: np.ndarray) -> tuple[float, float, float]:
        """Mean patient position (x, y, z) of the voxels of ``mask``."""
        k, r, c = np.nonzero(mask)
        return (
            float(self.origin[0] + self.pixel_mm * c.mean()),
            float(self.origin[1] + self.pixel_mm * r.mean()),
            float(self.origin[2] + self.z_step * k.mean()),
        )


def ellipsoid_inside(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    centre: tuple[float, float, float],
    semi_axes: tuple[float, float, float],
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Whether points lie inside an ellipsoid; ``rotation`` maps body axes to patient axes."""
    d = [x - centre[0], y - centre[1], z - centre[2]]
    if rotation is not None:  # coordinates along the ellipsoid's own axes: R^T d
        d = [
            rotation[0, i] * d[0] + rotation[1, i] * d[1] + rotation[2, i] * d[2] for i in range(3)
        ]
    return (d[0] / semi_axes[0]) ** 2 + (d[1] / semi_axes[1]) ** 2 + (
        d[2] / semi_axes[2]
    ) ** 2 <= 1.0


def rotation_x(angle_deg: float) -> np.ndarray:
    """Rotation about the patient x axis (tilts the y-z plane)."""
    a = np.deg2rad(angle_deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def sphere_points(n: int = 162) -> np.ndarray:
    """About ``n`` points spread evenly on the unit sphere (Fibonacci lattice), shape (n, 3)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_px)
    return field / max(float(field.std()), 1e-6)


def soft_disc(dist: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """1 inside ``radius``, 0 outside, with a logistic edge of width ``edge`` (no overflow)."""
    return 0.5 * (1.0 - np.tanh((dist - radius) / (2.0 * edge)))
