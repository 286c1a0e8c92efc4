"""MONAI datasets over catalogued series: ``to_monai(cohort_or_records, transforms)``.

    >>> ds = to_monai(cohort, [Resized(keys="image", spatial_size=(96, 96, 64))], task="lung_nodule_ct")
    >>> loader = monai.data.DataLoader(ds, batch_size=2)

Each item is a dict: ``image`` (a MetaTensor, channel first, from :func:`load_series`),
``series_uid``, ``study_uid`` and the labels. Transforms are MONAI dictionary transforms
applied after loading. The files of every series are looked up once, in the snapshot the
cohort was built on, so items load without the catalog (and in worker processes).

Importing this module is cheap; MONAI is imported when a dataset is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from gai_research.data.volume import resolve_settings, snapshot_reader
from gai_research.data.volume_errors import SeriesNotFoundError, VolumeError
from gai_research.data.volume_geometry import DEFAULT_SPACING_TOLERANCE, PROJECTION_MODALITIES

if TYPE_CHECKING:
    import pandas as pd
    from monai.data import Dataset

    from gai_research.config import Settings

__all__ = ["records_from_cohort", "to_monai"]


def to_monai(
    cohort_or_records: Any,
    transforms: Callable | Sequence[Callable] | None = None,
    *,
    cache: bool = False,
    label_key: str = "label",
    image_key: str = "image",
    task: str | None = None,
    settings: Settings | None = None,
    snapshot: Any = None,
    space: str = "RAS",
    channel_first: bool = True,
    spacing_tolerance: float = DEFAULT_SPACING_TOLERANCE,
    **dataset_kwargs: Any,
) -> Dataset:
    """A MONAI ``Dataset`` (``CacheDataset`` with ``cache=True``) of volumes and labels.

    ``cohort_or_records``: a cohort (anything with a ``.series`` DataFrame with columns
    ``series_uid`` and ``study_uid``, and optionally ``.labels(task)``, ``.snapshot`` and
    ``.settings``), or a list of dicts, each with ``series_uid`` (or ``sop_uid`` for one
    image, or the files themselves under ``image_key``) plus any labels.

    From a cohort, a study's label rows of ``task`` (default: the cohort's ``task``
    filter) become ``label_key`` (the study class: the largest ``kind='study'`` value,
    NaN when there is none), ``<name>_ml`` for volumes and ``n_findings``. Projection
    images (DX, MG, CR) give one item per image, with ``sop_uid``, ``laterality`` and
    ``view``. ``dataset_kwargs`` go to the MONAI dataset (e.g. ``cache_rate``,
    ``num_workers``).
    """
    from monai.data import CacheDataset
    from monai.data import Dataset as MonaiDataset
    from monai.transforms import Compose

    from gai_research.data.monai_transforms import LoadVolumed, record_key

    if hasattr(cohort_or_records, "series"):
        cohort = cohort_or_records
        records = records_from_cohort(cohort, task=task, label_key=label_key)
        settings = settings if settings is not None else getattr(cohort, "settings", None)
        snapshot = snapshot if snapshot is not None else getattr(cohort, "snapshot", None)
    else:
        records = _check_records(cohort_or_records)
    needed = {record_key(r) for r in records if not _has_files(r.get(image_key))}
    files = _resolve_files(needed, settings, snapshot) if needed else {}
    loader = LoadVolumed(
        image_key,
        files=files,
        space=space,
        channel_first=channel_first,
        spacing_tolerance=spacing_tolerance,
    )
    chain = Compose([loader, *_as_list(transforms)])
    if cache:
        return CacheDataset(data=records, transform=chain, **dataset_kwargs)
    return MonaiDataset(data=records, transform=chain, **dataset_kwargs)


def records_from_cohort(
    cohort: Any, *, task: str | None = None, label_key: str = "label"
) -> list[dict]:
    """One record per series of the cohort (per image for projection modalities), with labels."""
    series: pd.DataFrame = cohort.series
    missing = {"series_uid", "study_uid"} - set(series.columns)
    if missing:
        raise VolumeError(
            f"the cohort's series table lacks {', '.join(sorted(missing))}",
            hint="pass a cohort from gai.Cohort, or a list of dicts with series_uid",
        )
    task = task or _cohort_task(cohort)
    labels = (
        _study_labels(cohort.labels(task), label_key) if task and hasattr(cohort, "labels") else {}
    )
    projection = set()
    if "modality" in series.columns:
        projection = set(series.loc[series["modality"].isin(PROJECTION_MODALITIES), "series_uid"])
    images = _images(cohort, projection) if projection else {}
    records: list[dict] = []
    for row in series.sort_values("series_uid").itertuples(index=False):
        base = {"series_uid": row.series_uid, "study_uid": row.study_uid}
        if task:
            base |= labels.get(row.study_uid, {label_key: math.nan, "n_findings": 0})
        if row.series_uid in projection:
            records.extend(base | image for image in images.get(row.series_uid, []))
        else:
            records.append(base)
    return records


def _cohort_task(cohort: Any) -> str | None:
    query = getattr(cohort, "query", None)
    if isinstance(query, Mapping):
        task = (query.get("filters") or {}).get("task")
        if isinstance(task, list | tuple) and len(task) == 1:
            task = task[0]
        return task if isinstance(task, str) else None
    return None


def _study_labels(labels: pd.DataFrame, label_key: str) -> dict[str, dict[str, Any]]:
    """Per study: the class (largest study-level value), volumes as ``<name>_ml``, and the
    number of nodules and findings."""
    out: dict[str, dict[str, Any]] = {}
    for uid, group in labels.groupby("study_uid"):
        study = group[group["kind"] == "study"]["value"].dropna()
        values: dict[str, Any] = {label_key: float(study.max()) if len(study) else math.nan}
        for row in group[group["kind"] == "volume"].itertuples():
            if row.volume_ml == row.volume_ml:  # not NaN
                values[f"{row.name}_ml"] = float(row.volume_ml)
        values["n_findings"] = int(group["kind"].isin(["nodule", "finding"]).sum())
        out[uid] = values
    return out


def _images(cohort: Any, series_uids: set[str]) -> dict[str, list[dict[str, Any]]]:
    instances = cohort.instances
    chosen = instances[instances["series_uid"].isin(series_uids)].sort_values("sop_uid")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in chosen.itertuples(index=False):
        out.setdefault(row.series_uid, []).append(
            {
                "sop_uid": row.sop_uid,
                "laterality": getattr(row, "laterality", None) or "",
                "view": getattr(row, "view_position", None) or "",
            }
        )
    return out


def _check_records(records: Any) -> list[dict]:
    if isinstance(records, Mapping | str | bytes | PurePath) or not isinstance(records, Iterable):
        raise VolumeError(
            f"to_monai needs a cohort or a list of dicts, not a {type(records).__name__}",
            hint="e.g. [{'series_uid': '2.25....', 'label': 1}], or [{'image': folder}] for files",
        )
    out = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise VolumeError(
                f"record {index} is a {type(record).__name__}, not a dict",
                hint="each record is a dict with series_uid (or sop_uid) and its labels",
            )
        out.append(dict(record))
    return out


def _has_files(value: Any) -> bool:
    return isinstance(value, str | PurePath) or (
        isinstance(value, list | tuple) and bool(value) and isinstance(value[0], str | PurePath)
    )


def _resolve_files(
    needed: set[str], settings: Settings | None, snapshot: Any
) -> dict[str, list[str]]:
    """``series:<uid>`` / ``sop:<uid>`` -> absolute file paths, in one catalog query."""
    settings = resolve_settings(settings)
    series = sorted(k.split(":", 1)[1] for k in needed if k.startswith("series:"))
    sops = sorted(k.split(":", 1)[1] for k in needed if k.startswith("sop:"))
    if "" in series:
        raise VolumeError(
            "a record has neither series_uid, sop_uid nor files",
            hint="give each record a series_uid (or sop_uid), or its files under the image key",
        )
    store = settings.store_dir
    files: dict[str, list[str]] = {}
    with snapshot_reader(settings, snapshot) as reader:
        rows = reader.query(
            "SELECT series_uid, sop_uid, path FROM instances "
            "WHERE list_contains(?, series_uid) OR list_contains(?, sop_uid) ORDER BY path",
            [series, sops],
        ).to_pylist()
        short = reader.snapshot.short
    wanted_sops = set(sops)
    for row in rows:
        path = str(store / row["path"])
        if row["series_uid"] in series:
            files.setdefault(f"series:{row['series_uid']}", []).append(path)
        if row["sop_uid"] in wanted_sops:
            files[f"sop:{row['sop_uid']}"] = [path]
    absent = sorted(needed - set(files))
    if absent:
        raise SeriesNotFoundError(
            f"{len(absent)} of {len(needed)} series/images are not in snapshot {short} "
            f"(e.g. {absent[0].replace(':', ' ')})",
            hint="use UIDs from the snapshot the cohort was built on (pass snapshot=...)",
            series_uid=absent[0].split(":", 1)[1] if absent[0].startswith("series:") else "",
        )
    return files


def _as_list(transforms: Callable | Sequence[Callable] | None) -> list[Callable]:
    if transforms is None:
        return []
    if callable(transforms) and not isinstance(transforms, list | tuple):
        return [transforms]
    return list(transforms)
