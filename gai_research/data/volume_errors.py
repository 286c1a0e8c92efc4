"""Errors of volume loading: each names the series (pseudonymous UID) and the problem.

``problem`` is a short machine-readable code (``gap``, ``duplicate_position``, ...) so a
caller that loads many series (export, a training set) can count and report them.
"""

from __future__ import annotations

from gai_research.data.errors import DataError

__all__ = [
    "DecoderMissingError",
    "DuplicateSliceError",
    "GeometryError",
    "MissingGeometryError",
    "MixedOrientationError",
    "MixedSeriesError",
    "MixedShapeError",
    "NotAnImageError",
    "SeriesNotFoundError",
    "SliceGapError",
    "UnsupportedImageError",
    "VolumeError",
]


class VolumeError(DataError):
    """A series or image that cannot be loaded as a volume."""

    problem = "volume"

    def __init__(self, message: str, *, hint: str | None = None, series_uid: str = "") -> None:
        super().__init__(message, hint=hint)
        self.series_uid = series_uid


class SeriesNotFoundError(VolumeError):
    """The catalog snapshot lists no files for the series (or instance)."""

    problem = "not_found"


class NotAnImageError(VolumeError):
    """A file that is not DICOM, cannot be read, or holds no pixel data."""

    problem = "not_an_image"


class DecoderMissingError(VolumeError):
    """The pixel data use a transfer syntax no installed decoder handles."""

    problem = "decoder_missing"


class UnsupportedImageError(VolumeError):
    """An image kind the loader does not turn into a volume (colour, several samples)."""

    problem = "unsupported"


class MixedSeriesError(VolumeError):
    """The files belong to several series, or are separate projection images."""

    problem = "mixed_series"


class GeometryError(VolumeError):
    """The slices do not form one regular grid."""

    problem = "geometry"


class SliceGapError(GeometryError):
    """Slice spacing is not uniform (a missing slice, or two stacks in one series)."""

    problem = "gap"


class DuplicateSliceError(GeometryError):
    """Two or more slices at the same position (several echoes, phases, or a copy)."""

    problem = "duplicate_position"


class MixedOrientationError(GeometryError):
    """Slices with different ImageOrientationPatient (a localizer, or several planes)."""

    problem = "mixed_orientation"


class MixedShapeError(GeometryError):
    """Slices with different Rows/Columns or pixel spacing."""

    problem = "mixed_shape"


class MissingGeometryError(GeometryError):
    """A multi-slice series without ImagePositionPatient or ImageOrientationPatient."""

    problem = "missing_geometry"
