"""NIfTI-1 bytes from a loaded volume, and label masks drawn through its affine.

A volume comes from the volume loader as a MONAI ``MetaTensor`` (or anything with an
array interface and an ``affine``): channel-first when it has a channel, the affine in
RAS (``meta["space"]`` says so; LPS is converted). The file is written as gzip with
no timestamp, so the same volume always gives the same bytes (and the same sha256),
which is what lets an export resume by checksum.

Label coordinates in the catalog are DICOM patient coordinates (LPS, mm); they are
mapped to RAS (x and y negated) before they meet the NIfTI affine.
"""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np

__all__ = ["encode_nifti", "read_header", "sphere_mask", "volume_array"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_INT16 = np.iinfo(np.int16)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors, MetaTensor
        value = value.detach().cpu()
        if hasattr(value, "as_tensor"):
            value = value.as_tensor()
        value = value.numpy()
    return np.asarray(value)


def _affine4(affine: np.ndarray) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape == (4, 4):
        return affine
    if affine.shape == (3, 3):  # a 2-D affine: (row, column) + translation
        out = np.eye(4)
        out[:2, :2] = affine[:2, :2]
        out[:2, 3] = affine[:2, 2]
        return out
    raise ValueError(f"the volume's affine has shape {affine.shape}, not 4x4")


def volume_array(volume: Any) -> tuple[np.ndarray, np.ndarray]:
    """The voxel array (x, y, z[, channel]) and the RAS affine of a loaded volume."""
    meta = getattr(volume, "meta", None) or {}
    affine = getattr(volume, "affine", None)
    if affine is None:
        affine = meta.get("affine")
    if affine is None:
        raise ValueError("the loaded volume has no affine")
    affine = _affine4(_numpy(affine))
    if str(meta.get("space", "RAS")).upper() == "LPS":
        affine = LPS_TO_RAS @ affine
    array = _numpy(getattr(volume, "array", volume))  # MetaTensor.array / Volume.array: numpy
    spatial = 3
    if array.ndim == spatial + 1:  # MONAI puts the channel first
        array = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    while array.ndim < spatial:  # a 2-D image: one slice
        array = array[..., np.newaxis]
    return _compact(array), affine


def _compact(array: np.ndarray) -> np.ndarray:
    """Whole-number float volumes (HU, MR intensities) as int16 when that loses nothing."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if (
            array.size
            and np.isfinite(array).all()
            and array.min() >= _INT16.min
            and array.max() <= _INT16.max
            and np.array_equal(array, np.round(array))
        ):
            return array.astype(np.int16)
        return array.astype(np.float32)
    return array


def encode_nifti(array: np.ndarray, affine: np.ndarray, *, compresslevel: int = 1) -> bytes:
    """A gzipped single-file NIfTI-1 image; qform and sform both hold ``affine`` (scanner)."""
    import nibabel as nib

    image = nib.Nifti1Image(np.asanyarray(array), affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    return gzip.compress(image.to_bytes(), compresslevel=compresslevel, mtime=0)


def read_header(path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of a NIfTI file, without reading its voxels."""
    import nibabel as nib

    image = nib.load(str(path))
    return tuple(int(n) for n in image.shape[:3]), np.asarray(image.affine, dtype=np.float64)


def sphere_mask(
    shape: tuple[int, ...],
    affine: np.ndarray,
    spheres: list[tuple[float, float, float, float]],
) -> np.ndarray:
    """A uint8 mask: 1 inside each sphere ``(x_mm, y_mm, z_mm, diameter_mm)`` (LPS centres).

    Voxels whose centre lies within the radius are set; a sphere smaller than a voxel
    still marks the voxel holding its centre. Spheres outside the volume mark nothing.
    """
    shape = tuple(int(n) for n in shape[:3])
    mask = np.zeros(shape, dtype=np.uint8)
    inverse = np.linalg.inv(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    for x, y, z, diameter in spheres:
        centre = np.array([-x, -y, z, 1.0])  # LPS -> RAS
        radius = float(diameter) / 2.0
        index = (inverse @ centre)[:3]
        reach = radius / spacing + 1.0
        low = np.maximum(np.floor(index - reach).astype(int), 0)
        high = np.minimum(np.ceil(index + reach).astype(int) + 1, shape)
        if np.any(low >= high):
            continue
        grid = np.stack(
            np.meshgrid(*(np.arange(a, b) for a, b in zip(low, high, strict=True)), indexing="ij"),
            axis=-1,
        )
        world = grid.reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]
        inside = (np.linalg.norm(world - centre[:3], axis=1) <= radius).reshape(grid.shape[:3])
        box = mask[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        box |= inside.astype(np.uint8)
        nearest = np.rint(index).astype(int)
        if not inside.any() and np.all(nearest >= 0) and np.all(nearest < shape):
            mask[tuple(nearest)] = 1
    return mask
