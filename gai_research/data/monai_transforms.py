"""The MONAI transform that loads a record's volume (imports MONAI: import it lazily).

It is a MONAI ``MapTransform`` so that ``CacheDataset`` caches its output (MONAI caches
up to the first transform that is random or not a MONAI ``Transform``), and it lives at
module level so that DataLoader workers can pickle it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.transforms import MapTransform

from gai_research.data.volume import read_files
from gai_research.data.volume_errors import SeriesNotFoundError
from gai_research.data.volume_geometry import DEFAULT_SPACING_TOLERANCE

__all__ = ["BATCH_META_KEYS", "LoadVolumed", "record_key"]

# meta keys every item has (no None, no per-slice lists), so items collate into batches
BATCH_META_KEYS = (
    "space",
    "original_affine",
    "spatial_shape",
    "spacing",
    "original_channel_dim",
    "filename_or_obj",
    "series_uid",
    "study_uid",
    "modality",
    "geometry",
    "photometric_interpretation",
    "pixel_spacing_source",
)


def record_key(record: Mapping[str, Any]) -> str:
    """Which files a record names: ``sop:<uid>`` for one image, ``series:<uid>`` otherwise."""
    if record.get("sop_uid"):
        return f"sop:{record['sop_uid']}"
    return f"series:{record.get('series_uid', '')}"


class LoadVolumed(MapTransform):
    """Load ``record[key]`` as a MetaTensor (channel first by default).

    The files come from ``record[key]`` itself when it is a path, a folder or a list of
    paths (a MONAI-style datalist), else from ``files`` (``record_key`` -> paths) that
    :func:`~gai_research.data.monai.to_monai` resolved from the catalog once.
    """

    def __init__(
        self,
        keys: str | Sequence[Hashable] = "image",
        *,
        files: Mapping[str, Sequence[str]] | None = None,
        space: str = "RAS",
        channel_first: bool = True,
        spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
    ) -> None:
        super().__init__(keys)
        self.files = dict(files or {})
        self.space = space
        self.channel_first = channel_first
        self.spacing_tolerance = spacing_tolerance

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            paths = self._paths(d, key)
            volume = read_files(
                paths,
                space=self.space,
                spacing_tolerance=self.spacing_tolerance,
                series_uid=str(d.get("series_uid", "") or ""),
            )
            meta = {k: volume.meta[k] for k in BATCH_META_KEYS if k in volume.meta}
            volume = type(volume)(volume.array, volume.affine, meta)
            d[key] = volume.to_metatensor(channel_first=self.channel_first)
        return d

    def _paths(self, d: Mapping[Hashable, Any], key: Hashable) -> Any:
        given = d.get(key)
        if isinstance(given, str | Path) or (
            isinstance(given, list | tuple) and given and isinstance(given[0], str | Path)
        ):
            return given
        name = record_key(d)  # type: ignore[arg-type]
        if name not in self.files:
            raise SeriesNotFoundError(
                f"no files for {name.replace(':', ' ')}",
                hint="give the record a series_uid (or sop_uid) that is in the snapshot, "
                f"or the files themselves under {key!r}",
                series_uid=str(d.get("series_uid", "") or ""),
            )
        return self.files[name]
