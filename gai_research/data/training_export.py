"""Training-data export: NIfTI images, label masks, a MONAI datalist, splits, a manifest.

    >>> gai.export("lung-ct", "exports/lung-ct", task="lung_nodule_ct", seed=0)

writes::

    OUT/images/<series_uid>.nii.gz   one image per series (RAS affine; gzip without timestamp)
    OUT/labels/<series_uid>.nii.gz   label mask where the task's labels define one (CT nodules)
    OUT/datalist.json                MONAI decathlon style: training / validation / test
    OUT/splits.csv                   patient -> split, with the stratum it was dealt from
    OUT/labels.csv                   the task's label rows of the exported studies (with a task)
    OUT/DATA_CARD.md                 the data card (gai_research.data.cards)
    OUT/manifest.json                every file with its size and sha256; cohort, snapshot, options

Splits are by patient (:mod:`gai_research.data.splits`). Every file is written to a
temporary name in its folder and renamed, so none is ever half-written; each finished
file is journalled, and a rerun skips the files whose checksum and source key still
match, so an interrupted export resumes where it stopped. Files of an earlier export
in the same folder that are no longer part of it are removed; a folder holding
anything else is refused.

(The module is not called ``export.py``: a submodule of that name would replace the
``export`` function on ``gai_research.data`` as soon as it was imported.)
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.data.errors import ExportError
from gai_research.data.exportfiles import datalist, export_summary, labels_csv, splits_csv
from gai_research.data.exportplan import EXPORT_FORMAT, ExportItem, plan_export
from gai_research.data.splits import check_fractions
from gai_research.errors import GaiError

if TYPE_CHECKING:
    from gai_research.config import Settings
    from gai_research.data.cohort import Cohort

__all__ = ["FORMATS", "ExportResult", "export"]

log = logging.getLogger(__name__)

FORMATS = ("nifti",)
MANIFEST = "manifest.json"
JOURNAL = ".gai-export-journal.jsonl"
DATALIST = "datalist.json"
CARD = "DATA_CARD.md"
TABLES = (DATALIST, "splits.csv", "labels.csv", CARD)
# what a loader raises for a series it cannot read; anything else is a bug and propagates
_LOAD_FAILURES = (GaiError, ValueError, OSError, RuntimeError, ArithmeticError, KeyError)


@dataclass
class ExportResult:
    """What an export wrote: where, items per split, and what it reused, skipped or failed."""

    out_dir: Path
    datalist: Path
    manifest: Path
    card: Path | None = None
    items: dict[str, int] = field(default_factory=dict)  # split -> datalist entries
    patients: dict[str, int] = field(default_factory=dict)  # split -> patients
    written: int = 0  # image and label files written by this run
    reused: int = 0  # already there from an earlier run, checksum matching
    removed: int = 0  # files of an earlier export that are no longer part of it
    failed: list[tuple[str, str]] = field(default_factory=list)  # (series or SOP UID, reason)
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> series
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def __repr__(self) -> str:
        items = ", ".join(f"{n} {k}" for k, n in self.items.items())
        return (
            f"ExportResult({str(self.out_dir)!r}: {items}; {self.written} files written, "
            f"{self.reused} reused, {len(self.failed)} failed, {self.seconds:.1f} s)"
        )


# --- the export folder -----------------------------------------------------------------------
class _Folder:
    """The export folder: what an earlier run left, and journalled atomic writes."""

    def __init__(self, out: Path, cohort_name: str, overwrite: bool) -> None:
        self.out = out
        self.known: dict[str, dict] = {}  # relpath -> {sha256, size, source} from earlier runs
        self.files: dict[str, dict] = {}  # this export's files so far
        self.written = self.reused = self.bytes = 0
        if out.exists() and not out.is_dir():
            raise ExportError(f"{out} is a file, not a folder", hint="choose a folder path")
        self._read_earlier(cohort_name, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        self._clean_temporaries()
        self._journal = (out / JOURNAL).open("a", encoding="utf-8")

    def _read_earlier(self, cohort_name: str, overwrite: bool) -> None:
        manifest, journal = self.out / MANIFEST, self.out / JOURNAL
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
                if data.get("format") != EXPORT_FORMAT:
                    raise ValueError("format")
            except (OSError, ValueError):
                raise ExportError(
                    f"{manifest} is not the manifest of a gai export",
                    hint="choose a new or empty folder",
                ) from None
            earlier = data.get("cohort", {}).get("name")
            if earlier != cohort_name and not overwrite:
                raise ExportError(
                    f"{self.out} holds the export of cohort {earlier!r}",
                    hint="choose another folder, or replace it (overwrite=True, --overwrite)",
                )
            self.known.update(data.get("files", {}))
        elif self.out.is_dir() and any(self.out.iterdir()) and not journal.is_file():
            raise ExportError(
                f"{self.out} is not empty and holds no earlier export",
                hint="choose a new or empty folder; files that are not ours are never overwritten",
            )
        if journal.is_file():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.known[entry["path"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by an interruption

    def _clean_temporaries(self) -> None:
        from gai_research.store.layout import TEMP_PREFIX

        for folder in (self.out, self.out / "images", self.out / "labels"):
            if folder.is_dir():
                for path in folder.glob(f"{TEMP_PREFIX}*.part"):
                    path.unlink(missing_ok=True)

    def reuse(self, relpath: str, source: str) -> bool:
        """True (and recorded) when ``relpath`` is there, from ``source``, checksum matching."""
        from gai_research.store.layout import sha256_file

        entry = self.known.get(relpath)
        path = self.out / relpath
        if not entry or entry.get("source") != source or not path.is_file():
            return False
        if path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
            return False
        self.files[relpath] = {k: entry[k] for k in ("sha256", "size", "source")}
        self.reused += 1
        return True

    def write(self, relpath: str, data: bytes, source: str | None = None) -> None:
        """Write through a temporary file and a rename; journal it when ``source`` is given."""
        from gai_research.store.layout import atomic_write

        atomic_write(self.out / relpath, data)
        entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "source": source}
        self.files[relpath] = entry
        if source is not None:
            self._journal.write(json.dumps({"path": relpath, **entry}) + "\n")
            self._journal.flush()
            self.written += 1
            self.bytes += len(data)

    def finish(self, manifest: dict[str, Any]) -> int:
        """Remove what an earlier export left and this one does not keep; write the manifest."""
        from gai_research.store.layout import atomic_write

        removed = 0
        for stale in sorted(set(self.known) - set(self.files)):
            path = self.out / stale
            if stale.startswith(("images/", "labels/")) and path.is_file():
                path.unlink()
                removed += 1
        manifest["files"] = dict(sorted(self.files.items()))
        atomic_write(self.out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        self.close()
        (self.out / JOURNAL).unlink(missing_ok=True)
        return removed

    def close(self) -> None:
        if not self._journal.closed:
            self._journal.close()


# --- items -----------------------------------------------------------------------------------
def _load_item(
    item: ExportItem,
    folder: _Folder,
    loaders: tuple[Callable[..., Any], Callable[..., Any] | None],
    options: tuple[dict[str, Any], dict[str, Any]],
):
    """The item's voxels and RAS affine, or None when its image file is already there."""
    from gai_research.data.nifti import volume_array

    if folder.reuse(item.image, item.source):
        return None
    if item.sop_uid:
        return volume_array(loaders[1](item.sop_uid, **options[1]))
    return volume_array(loaders[0](item.series_uid, **options[0]))


def _write_item(item: ExportItem, folder: _Folder, loaded, compresslevel: int) -> None:
    """Encode and write the image (unless reused), then its mask (in the worker thread)."""
    from gai_research.data.nifti import encode_nifti, read_header, sphere_mask

    if loaded is not None:
        array, affine = loaded
        folder.write(
            item.image, encode_nifti(array, affine, compresslevel=compresslevel), item.source
        )
    if item.label_path and not folder.reuse(item.label_path, item.mask_source):
        shape, affine = read_header(folder.out / item.image)  # the affine as stored
        mask = sphere_mask(shape, affine, item.spheres)
        data = encode_nifti(mask, affine, compresslevel=compresslevel)
        folder.write(item.label_path, data, item.mask_source)


def _run_items(items, folder, loaders, options, compresslevel, result, bar) -> None:
    """Load each item here while a worker thread compresses and writes the one before
    (zlib releases the GIL, so loading and compressing share the two cores)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gai-export") as pool:
        pending: Future | None = None
        for item in bar(items):
            try:
                loaded = _load_item(item, folder, loaders, options)
            except _LOAD_FAILURES as exc:
                text = str(exc).strip().splitlines()
                result.failed.append((item.uid, f"{type(exc).__name__}: {text[0] if text else ''}"))
                log.warning("%s not exported: %s", item.uid, type(exc).__name__)
                continue
            if pending is not None:
                pending.result()  # one volume in flight at most; a write error stops the export
            pending = pool.submit(_write_item, item, folder, loaded, compresslevel)
        if pending is not None:
            pending.result()


def _default_loaders() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The volume loader's numpy readers (``read_series``, ``read_instance``): the same
    arrays and affines as ``load_series``/``load_instance`` without importing MONAI."""
    try:
        from gai_research.data import volume
    except ModuleNotFoundError as exc:
        if exc.name != "gai_research.data.volume":
            raise
        raise ExportError(
            "the volume loader gai_research.data.volume is not installed",
            hint="update gai-research, or pass loader=<function(series_uid, settings=...)>",
        ) from None
    return (
        getattr(volume, "read_series", None) or volume.load_series,
        getattr(volume, "read_instance", None) or getattr(volume, "load_instance", None),
    )


def _loader_options(loader: Callable[..., Any] | None, catalog) -> dict[str, Any]:
    """``settings=``, and the cohort's open snapshot as ``snapshot=`` when the loader takes it."""
    import inspect

    if loader is None:
        return {}
    options: dict[str, Any] = {"settings": catalog.settings}
    try:
        parameters = inspect.signature(loader).parameters
    except (TypeError, ValueError):
        return options
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if "snapshot" in parameters or takes_any:
        options["snapshot"] = catalog.reader
    return options


def _resolve_cohort(cohort: Cohort | str, settings: Settings | None) -> Cohort:
    from gai_research.data.cohort import Cohort

    if isinstance(cohort, Cohort):
        return cohort
    if isinstance(cohort, str):
        return Cohort.load(cohort, settings=settings)
    raise ExportError(
        f"export takes a Cohort or a saved cohort's name, not {type(cohort).__name__}",
        hint="build one with gai.Cohort.from_filters(...) and save() it",
    )


# --- the export ------------------------------------------------------------------------------
def export(
    cohort: Cohort | str,
    out_dir: str | Path,
    format: str = "nifti",
    task: str | None = None,
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    *,
    loader: Callable[..., Any] | None = None,
    instance_loader: Callable[..., Any] | None = None,
    settings: Settings | None = None,
    overwrite: bool = False,
    card: bool = True,
    progress: bool = True,
    compresslevel: int = 1,
) -> ExportResult:
    """Export a cohort (or a saved cohort's name) as training data into ``out_dir``.

    ``task`` adds its labels: a mask per series where they define one (CT nodules:
    spheres from the world centre and diameter), otherwise the study class as the
    datalist ``label`` (volumes and finding counts as extra keys). ``splits`` are the
    train/validation/test fractions of *patients*; ``seed`` makes them reproducible.
    ``loader(series_uid, settings=...[, snapshot=...])`` returns a series' volume (a MONAI
    MetaTensor or anything with an array and an ``affine``; default: the volume loader
    of :mod:`gai_research.data.volume`); ``instance_loader(sop_uid, ...)`` one image of
    a projection series (MG, DX, CR), each exported on its own. Series that cannot be
    loaded are listed in ``result.failed`` and the manifest and left out of the datalist.
    """
    started = time.monotonic()
    if format not in FORMATS:
        raise ExportError(
            f"unknown export format {format!r}", hint=f"use one of {', '.join(FORMATS)}"
        )
    fractions = check_fractions(splits)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ExportError(f"seed must be a whole number, not {seed!r}", hint="e.g. seed=0")
    cohort = _resolve_cohort(cohort, settings)
    catalog = cohort.catalog
    if task is not None:
        catalog.normalize({"task": task})
    if loader is None:
        loader, default_instance_loader = _default_loaders()
        instance_loader = instance_loader or default_instance_loader
    loaders = (loader, instance_loader)
    options = (_loader_options(loader, catalog), _loader_options(instance_loader, catalog))
    plan = plan_export(cohort, task, loader, instance_loader)
    if not plan.items:
        raise ExportError(
            f"cohort {cohort.name!r} has no image series to export"
            + (f" with {task} labels" if task else ""),
            hint="check cohort.series and cohort.labels(task)",
        )
    plan.assign(fractions, seed)
    out = Path(out_dir)
    folder = _Folder(out, cohort.name, overwrite)
    result = ExportResult(out, out / DATALIST, out / MANIFEST, excluded=dict(plan.excluded))
    from tqdm import tqdm

    try:
        bar = functools.partial(
            tqdm,
            desc=f"export {cohort.name}",
            unit="image",
            file=sys.stderr,
            disable=not progress,
        )
        _run_items(plan.items, folder, loaders, options, compresslevel, result, bar)
        failed = {uid for uid, _ in result.failed}
        done = [i for i in plan.items if i.uid not in failed]
        summary = export_summary(plan, done, result, task, format, fractions, seed)
        listing = datalist(cohort, plan, done, task, fractions, seed)
        folder.write(DATALIST, (json.dumps(listing, indent=1, ensure_ascii=False) + "\n").encode())
        folder.write("splits.csv", splits_csv(plan, done))
        if task:
            folder.write("labels.csv", labels_csv(plan, done))
        if card:
            from gai_research.data.cards import render_card

            folder.write(
                CARD,
                render_card(cohort, export=summary, study_uids={i.study_uid for i in done}).encode(
                    "utf-8"
                ),
            )
            result.card = out / CARD
        manifest = {
            "format": EXPORT_FORMAT,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cohort": {
                "name": cohort.name,
                "content_hash": cohort.content_hash,
                "snapshot": cohort.snapshot,
                "query": cohort.query,
            },
            **summary,
            "failed": [{"uid": uid, "reason": why} for uid, why in result.failed],
        }
        result.removed = folder.finish(manifest)
    finally:
        folder.close()
    result.items = {name: s["items"] for name, s in summary["per_split"].items()}
    result.patients = {name: s["patients"] for name, s in summary["per_split"].items()}
    result.written, result.reused, result.bytes_written = (
        folder.written,
        folder.reused,
        folder.bytes,
    )
    result.seconds = time.monotonic() - started
    return result
