"""Bright round blobs on 2D projection images: the detector the chest X-ray and
mammography baselines share.

A bright disc of radius ``r`` on a flat background makes both eigenvalues of the image's
Hessian, smoothed at scale ``sigma = r / sqrt(2)``, strongly negative at its centre. A
ridge (a rib, a clavicle, a duct) makes only one of them negative, an edge neither. So
the **blobness** at a scale is ``sigma^2 * max(-lambda_small, 0)``, where
``lambda_small`` is the eigenvalue of smaller magnitude (Lindeberg's scale normalisation,
so responses compare across scales); it is near zero for ridges and edges.

A blob is then checked by its **surround contrast**: the mean inside the disc of radius
``sqrt(2) sigma`` minus the brightest of the eight sector medians of the ring from 1.5 to
2.2 radii. A real blob is brighter than its surround on every side; a crossing of two
ridges (bright in a "+") or the corner of a bright region is not. Features are in image
units; callers divide by a contrast of their own image (lung vs. chest wall, fat vs.
gland) so the gates do not depend on the detector's gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Blob", "blob_map", "disc_features", "fill_outside", "find_blobs", "otsu_threshold"]

SQRT2 = 2.0**0.5
SECTORS = 8


@dataclass(frozen=True)
class Blob:
    """A local maximum of the blobness over position and scale."""

    row: int
    col: int
    sigma_px: float
    blobness: float  # image units
    contrast: float  # image units: disc mean - brightest sector median of the ring
    core: float  # image units: mean inside 0.7 radius

    @property
    def radius_px(self) -> float:
        return SQRT2 * self.sigma_px


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut maximising the between-class variance of ``values``."""
    import numpy as np

    counts, edges = np.histogram(values, bins=bins)
    mids = (edges[:-1] + edges[1:]) / 2.0
    w0 = np.cumsum(counts).astype(np.float64)
    w1 = w0[-1] - w0
    s0 = np.cumsum(counts * mids)
    m0 = s0 / np.maximum(w0, 1.0)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1.0)
    return float(mids[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))])


def blob_map(image: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best blobness over ``sigmas``, index of the scale that gave it), per pixel."""
    import numpy as np
    from scipy import ndimage

    best = np.zeros(image.shape, dtype=np.float32)
    which = np.zeros(image.shape, dtype=np.int16)
    smooth, done = image, 0.0
    for k, sigma in enumerate(sigmas):
        # Gaussian smoothing composes (variances add), so each scale blurs the previous
        # one by the difference only; central differences of the result give the Hessian
        # (three Gaussian-derivative filters per scale would cost three times as much).
        step = float(np.sqrt(max(sigma**2 - done**2, 0.0)))
        if step > 0:
            smooth = ndimage.gaussian_filter(smooth, step, truncate=3.0)
        done = float(sigma)
        d_row, d_col = np.gradient(smooth)
        hrr = np.gradient(d_row, axis=0)
        hcc = np.gradient(d_col, axis=1)
        hrc = np.gradient(d_row, axis=1)
        half_trace = (hrr + hcc) / 2.0
        root = np.sqrt(np.maximum(half_trace**2 - (hrr * hcc - hrc**2), 0.0))
        small = half_trace + root  # the larger (less negative) eigenvalue
        response = (sigma**2) * np.maximum(-small, 0.0)
        better = response > best
        best[better] = response[better]
        which[better] = k
    return best, which


def disc_features(image: np.ndarray, row: int, col: int, radius: float) -> tuple[float, float]:
    """(surround contrast, core mean) of the disc of ``radius`` centred at (row, col).

    Surround contrast: the disc's mean minus the highest median of the eight 45-degree
    sectors of the ring from 1.5 to 2.2 radii. A blob is brighter than its surround on
    every side; a ridge crossing or a corner of a bright region is not (some sector is
    as bright as the disc). Core mean: the mean inside 0.7 radius.
    """
    import numpy as np

    reach = int(np.ceil(2.2 * radius)) + 1
    r0, r1 = max(row - reach, 0), min(row + reach + 1, image.shape[0])
    c0, c1 = max(col - reach, 0), min(col + reach + 1, image.shape[1])
    rr, cc = np.ogrid[r0:r1, c0:c1]
    dist = np.hypot(rr - row, cc - col)
    sector = (
        ((np.arctan2(rr - row, cc - col) + np.pi) / (2 * np.pi) * SECTORS).astype(int)
    ) % SECTORS
    patch = image[r0:r1, c0:c1]
    inside = patch[dist <= radius]
    core = patch[dist <= 0.7 * radius]
    ring = (dist >= 1.5 * radius) & (dist <= 2.2 * radius)
    medians = [
        float(np.median(patch[ring & (sector == s)]))
        for s in range(SECTORS)
        if (ring & (sector == s)).any()
    ]
    if inside.size == 0 or not medians:
        return 0.0, float(inside.mean()) if inside.size else 0.0
    return float(inside.mean() - max(medians)), float(core.mean() if core.size else inside.mean())


def fill_outside(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``image`` with every pixel outside ``region`` replaced by its nearest pixel inside,
    so the region's border makes no edge for the Hessian to answer."""
    from scipy import ndimage

    index = ndimage.distance_transform_edt(~region, return_distances=False, return_indices=True)
    return image[index[0], index[1]]


def find_blobs(
    image: np.ndarray,
    region: np.ndarray,
    sigmas: np.ndarray,
    *,
    min_blobness: float,
    spacing_px: int = 9,
    limit: int = 50,
) -> list[Blob]:
    """Blobs whose centre lies in ``region``: local maxima (within ``spacing_px``) of the
    best-scale blobness above ``min_blobness``, strongest first, at most ``limit``."""
    import numpy as np
    from scipy import ndimage

    best, which = blob_map(image, sigmas)
    best[~region] = 0.0
    peaks = (best == ndimage.maximum_filter(best, size=spacing_px)) & (best > min_blobness)
    found = []
    where = np.argwhere(peaks)
    strongest = np.argsort(-best[peaks], kind="stable")[:limit]
    for row, col in where[strongest]:
        sigma = float(sigmas[which[row, col]])
        contrast, core = disc_features(image, int(row), int(col), SQRT2 * sigma)
        found.append(
            Blob(
                row=int(row),
                col=int(col),
                sigma_px=sigma,
                blobness=float(best[row, col]),
                contrast=contrast,
                core=core,
            )
        )
    found.sort(key=lambda b: b.blobness, reverse=True)
    return found[:limit]
