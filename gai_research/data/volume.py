"""Load a DICOM series as a volume with correct geometry, as a MONAI MetaTensor.

``load_series(series_uid)`` finds the series' files in a catalog snapshot and loads them;
``load_files(paths)`` loads files or a folder directly. Both return a MONAI ``MetaTensor``
laid out as MONAI's ``LoadImage`` lays out DICOM: shape ``(X, Y, Z)`` = (columns, rows,
slices), no channel (``channel_first=True`` adds one), float32 with the rescale applied
(Hounsfield units for CT), and ``affine`` mapping array indices to patient coordinates in
``meta["space"]``: ``"RAS"`` (MONAI's and NIfTI's default) or ``"LPS"`` (DICOM's).

``read_series`` / ``read_files`` return the same data as a :class:`Volume` (numpy, no
torch or MONAI import), for viewers and exporters that do not need tensors.

Slices are sorted by their position along the slice normal, spacing comes from the
positions, and a series that is not one regular grid raises a
:class:`~gai_research.data.volume_errors.VolumeError` subclass naming the series.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gai_research.data.volume_errors import MixedSeriesError, SeriesNotFoundError, VolumeError
from gai_research.data.volume_frames import (
    Source,
    collect_paths,
    decode_frames,
    read_source,
    series_facts,
)
from gai_research.data.volume_geometry import (
    DEFAULT_SPACING_TOLERANCE,
    LPS_TO_RAS,
    build_grid,
)

if TYPE_CHECKING:
    from monai.data import MetaTensor

    from gai_research.config import Settings
    from gai_research.store.reader import SnapshotReader

__all__ = [
    "SPACES",
    "Volume",
    "instance_file",
    "load_files",
    "load_instance",
    "load_series",
    "read_files",
    "read_instance",
    "read_series",
    "resolve_settings",
    "series_files",
    "snapshot_reader",
]

SPACES = ("RAS", "LPS")


@dataclass(frozen=True, eq=False)
class Volume:
    """A loaded series: ``array`` (X, Y, Z) float32, ``affine`` index -> world mm in
    ``meta["space"]``, and ``meta`` (MONAI's keys plus the series' facts)."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def space(self) -> str:
        return self.meta.get("space", "RAS")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis (the affine's column lengths)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def series_uid(self) -> str:
        return self.meta.get("series_uid", "")

    @property
    def modality(self) -> str:
        return self.meta.get("modality", "")

    def in_space(self, space: str) -> Volume:
        """The same volume with its affine in ``space`` ("RAS" or "LPS"); the array is shared."""
        space = check_space(space)
        if space == self.space:
            return self
        affine = LPS_TO_RAS @ self.affine  # its own inverse
        meta = {**self.meta, "space": space, "affine": affine, "original_affine": affine.copy()}
        return Volume(self.array, affine, meta)

    def world_to_voxel(self, points: Any, *, space: str | None = None) -> np.ndarray:
        """Continuous voxel indices (i, j, k) of world points (N x 3 or 3,), given in ``space``
        (the volume's own by default; "LPS" for DICOM coordinates such as catalog labels)."""
        pts = _points(points, space, self.space)
        ijk = (np.linalg.inv(self.affine) @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
        return ijk[0] if np.ndim(points) == 1 else ijk

    def voxel_to_world(self, ijk: Any, *, space: str | None = None) -> np.ndarray:
        """World coordinates (in ``space``, default the volume's) of voxel indices."""
        idx = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        world = (self.affine @ np.c_[idx, np.ones(len(idx))].T).T[:, :3]
        if space is not None and check_space(space) != self.space:
            world = world * np.array([-1.0, -1.0, 1.0])
        return world[0] if np.ndim(ijk) == 1 else world

    def to_metatensor(self, *, channel_first: bool = False) -> MetaTensor:
        """A MONAI MetaTensor (imports MONAI, ~15 s the first time in a process)."""
        from monai.data import MetaTensor

        meta = {k: v for k, v in self.meta.items() if k != "affine"}  # MetaTensor sets it
        array = self.array[None] if channel_first else self.array
        meta["original_channel_dim"] = 0 if channel_first else float("nan")
        return MetaTensor(array, affine=self.affine.copy(), meta=meta)

    def to_nifti(self):
        """A nibabel ``Nifti1Image`` (RAS affine, as NIfTI defines it)."""
        import nibabel as nib

        ras = self.in_space("RAS")
        image = nib.Nifti1Image(np.asarray(ras.array, dtype=np.float32), ras.affine)
        image.header.set_xyzt_units("mm")
        return image


def check_space(space: str) -> str:
    """'RAS' or 'LPS' (any case, or MONAI's ``SpaceKeys``); anything else is an error."""
    value = str(getattr(space, "value", space)).upper()
    if value not in SPACES:
        raise VolumeError(
            f"unknown space {space!r}", hint="use 'RAS' (MONAI/NIfTI) or 'LPS' (DICOM)"
        )
    return value


def _points(points: Any, space: str | None, own: str) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if pts.shape[1] != 3:
        raise VolumeError(
            f"points must have 3 coordinates, not {pts.shape[1]}", hint="pass (x, y, z)"
        )
    if space is not None and check_space(space) != own:
        pts = pts * np.array([-1.0, -1.0, 1.0])
    return pts


# --- files ---------------------------------------------------------------------------------


def read_files(
    paths: str | Path | Iterable[str | Path],
    *,
    space: str = "RAS",
    spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
    series_uid: str = "",
) -> Volume:
    """Read the files of one series (a folder, one file, or a list) into a :class:`Volume`."""
    space = check_space(space)
    files = collect_paths(paths)
    if not files:
        raise SeriesNotFoundError(
            f"{_label(series_uid)}no files to load ({paths})",
            hint="pass a folder holding the series, or a list of its files",
            series_uid=series_uid,
        )
    sources = [read_source(path, i, series_uid=series_uid) for i, path in enumerate(files)]
    uid = _one_series(sources, series_uid)
    frames = [frame for source in sources for frame in source.frames]
    facts = series_facts(sources[0])
    grid = build_grid(
        frames,
        series_uid=uid,
        modality=facts.modality,
        slice_spacing=facts.slice_spacing,
        patient_orientation=facts.patient_orientation,
        spacing_tolerance=spacing_tolerance,
    )
    first = sources[frames[grid.order[0]].source]
    if first is not sources[0]:
        facts = series_facts(first)  # the meta describe the first slice after sorting
    affine = grid.affine if space == "LPS" else LPS_TO_RAS @ grid.affine
    meta = _meta(sources, frames, grid, facts, affine, space, uid)
    data = _assemble(sources, frames, grid.order, uid)
    return Volume(data, affine, meta)


def load_files(
    paths: str | Path | Iterable[str | Path],
    *,
    space: str = "RAS",
    channel_first: bool = False,
    spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
) -> MetaTensor:
    """Load the files of one series as a MONAI ``MetaTensor`` (see the module's docstring)."""
    volume = read_files(paths, space=space, spacing_tolerance=spacing_tolerance)
    return volume.to_metatensor(channel_first=channel_first)


def _one_series(sources: Sequence[Source], expected: str) -> str:
    uids = sorted({s.series_uid for s in sources})
    if len(uids) > 1:
        raise MixedSeriesError(
            f"the files belong to {len(uids)} series ({', '.join(uids[:3])}"
            f"{', ...' if len(uids) > 3 else ''})",
            hint="load one series at a time: pass only its files, or use load_series(series_uid)",
            series_uid=expected or uids[0],
        )
    return uids[0] or expected


def _assemble(sources: Sequence[Source], frames, order: Sequence[int], uid: str) -> np.ndarray:
    """Decode each file once and write its frames, rescaled, into their slots."""
    first = frames[0]
    buffer = np.empty((len(order), first.rows, first.cols), dtype=np.float32)
    slot = {}
    for k, frame_index in enumerate(order):
        frame = frames[frame_index]
        slot[(frame.source, frame.index)] = (k, frame)
    for source in sources:
        stored = decode_frames(source, series_uid=uid)
        for frame in source.frames:
            k, f = slot[(frame.source, frame.index)]
            out = buffer[k]
            if f.slope == 1.0:
                np.add(stored[f.index], np.float32(f.intercept), out=out, casting="unsafe")
            else:
                np.multiply(stored[f.index], np.float32(f.slope), out=out, casting="unsafe")
                if f.intercept:
                    out += np.float32(f.intercept)
        source.ds = None  # the file's bytes are no longer needed
    return buffer.transpose(2, 1, 0)  # (slices, rows, cols) -> (X=cols, Y=rows, Z=slices)


def _meta(sources, frames, grid, facts, affine: np.ndarray, space: str, uid: str) -> dict:
    ordered = [frames[i] for i in grid.order]
    first = sources[ordered[0].source]
    meta: dict[str, Any] = {
        "space": space,
        "affine": affine.copy(),
        "original_affine": affine.copy(),
        "spatial_shape": np.array(grid.shape),
        "spacing": np.linalg.norm(affine[:3, :3], axis=0),
        "original_channel_dim": float("nan"),
        "filename_or_obj": str(first.path),
        "series_uid": uid,
        "study_uid": facts.study_uid,
        "modality": facts.modality,
        "photometric_interpretation": facts.photometric,
        "geometry": grid.kind,
        "pixel_spacing_source": first.spacing_source,
        "source_files": [str(sources[f.source].path) for f in ordered],
        "source_frames": [f.index + 1 for f in ordered],
        "sop_uids": [sources[f.source].sop_uid for f in ordered],
        "slice_positions_mm": list(grid.slice_positions),
    }
    if facts.frame_of_reference_uid:
        meta["frame_of_reference_uid"] = facts.frame_of_reference_uid
    if facts.window is not None:
        meta["window"] = list(facts.window)
    if grid.kind == "image" and facts.patient_orientation is not None:
        meta["patient_orientation"] = list(facts.patient_orientation)
    return meta


def _label(series_uid: str) -> str:
    return f"series {series_uid}: " if series_uid else ""


# --- the catalog ---------------------------------------------------------------------------


@contextlib.contextmanager
def snapshot_reader(settings: Settings | None, snapshot: str | SnapshotReader | None):
    """An open reader: ``snapshot`` itself when it is one (the caller closes it), else the
    snapshot it names (None: the latest), closed on exit."""
    if snapshot is not None and hasattr(snapshot, "query"):
        yield snapshot  # an open reader: the caller closes it
        return
    from gai_research.store import open_snapshot

    with open_snapshot(resolve_settings(settings), snapshot) as reader:
        yield reader


def resolve_settings(settings: Settings | None) -> Settings:
    """``settings``, or the effective ones (environment, gai.toml) when None."""
    if settings is None:
        from gai_research.config import load_settings

        settings = load_settings()
    return settings


def series_files(
    series_uid: str,
    *,
    settings: Settings | None = None,
    snapshot: str | SnapshotReader | None = None,
) -> list[Path]:
    """Absolute paths of the series' files in the store, as the snapshot lists them."""
    settings = resolve_settings(settings)
    store = Path(settings.store_dir)
    with snapshot_reader(settings, snapshot) as reader:
        rows = (
            reader.query(
                "SELECT path FROM instances WHERE series_uid = ? ORDER BY path", [series_uid]
            )
            .column("path")
            .to_pylist()
        )
        if not rows:
            raise SeriesNotFoundError(
                f"series {series_uid} is not in snapshot {reader.snapshot.short}",
                hint="check the pseudonymous SeriesInstanceUID (series.series_uid), "
                "and pass the snapshot your cohort came from",
                series_uid=series_uid,
            )
    return [store / p for p in rows]


def instance_file(
    sop_uid: str,
    *,
    settings: Settings | None = None,
    snapshot: str | SnapshotReader | None = None,
) -> tuple[Path, str]:
    """The stored file of one SOP instance and its series UID."""
    settings = resolve_settings(settings)
    store = Path(settings.store_dir)
    with snapshot_reader(settings, snapshot) as reader:
        rows = reader.query(
            "SELECT path, series_uid FROM instances WHERE sop_uid = ?", [sop_uid]
        ).to_pylist()
        if not rows:
            raise SeriesNotFoundError(
                f"instance {sop_uid} is not in snapshot {reader.snapshot.short}",
                hint="check the pseudonymous SOPInstanceUID (instances.sop_uid)",
            )
    return store / rows[0]["path"], rows[0]["series_uid"]


def read_series(
    series_uid: str,
    *,
    settings: Settings | None = None,
    snapshot: str | SnapshotReader | None = None,
    space: str = "RAS",
    spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
) -> Volume:
    """A catalogued series as a :class:`Volume` (numpy; no torch or MONAI import)."""
    files = series_files(series_uid, settings=settings, snapshot=snapshot)
    return read_files(
        files, space=space, spacing_tolerance=spacing_tolerance, series_uid=series_uid
    )


def load_series(
    series_uid: str,
    *,
    settings: Settings | None = None,
    snapshot: str | SnapshotReader | None = None,
    space: str = "RAS",
    channel_first: bool = False,
    spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
) -> MetaTensor:
    """Load a catalogued series (pseudonymous SeriesInstanceUID) as a MONAI ``MetaTensor``.

    ``snapshot``: a snapshot id (or unique prefix), an open ``SnapshotReader``, or None for
    the latest. See the module's docstring for the layout and ``meta`` keys.
    """
    volume = read_series(
        series_uid,
        settings=settings,
        snapshot=snapshot,
        space=space,
        spacing_tolerance=spacing_tolerance,
    )
    return volume.to_metatensor(channel_first=channel_first)


def read_instance(
    sop_uid: str,
    *,
    settings: Settings | None = None,
    snapshot: str | SnapshotReader | None = None,
    space: str = "RAS",
) -> Volume:
    """One image (e.g. one mammography view) as a :class:`Volume`."""
    path, series_uid = instance_file(sop_uid, settings=settings, snapshot=snapshot)
    return read_files([path], space=space, series_uid=series_uid)


def load_instance(
    sop_uid: str,
    *,
    settings: Settings | None = None,
    snapshot: str | SnapshotReader | None = None,
    space: str = "RAS",
    channel_first: bool = False,
) -> MetaTensor:
    """One image of a series (e.g. one mammography view) as a MONAI ``MetaTensor``."""
    volume = read_instance(sop_uid, settings=settings, snapshot=snapshot, space=space)
    return volume.to_metatensor(channel_first=channel_first)
