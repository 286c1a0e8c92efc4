"""What an export will write: one item per image series, with its label, split and source key.

The *source key* of a file is a hash of everything its bytes depend on (the series'
stored files by sha256, the loader, the label geometry, the export format version), so
an export can tell, without loading anything, whether a file already written is still
the one it would write now.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gai_research.data.splits import assign_splits

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.data.cohort import Cohort

__all__ = [
    "EXPORT_FORMAT",
    "NON_IMAGE",
    "PROJECTION",
    "ExportItem",
    "ExportPlan",
    "digest",
    "plan_export",
]

EXPORT_FORMAT = "gai-export/1"
NON_IMAGE = frozenset({"SR", "SEG", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTDOSE", "DOC", "REG"})
# projection radiography: each image is its own view, exported one file per image
PROJECTION = frozenset({"MG", "DX", "CR"})


def digest(data: object) -> str:
    """sha256 of canonical JSON: the source key of a file."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class ExportItem:
    """One image series (or one projection image) to export, and the label that goes with it."""

    patient: str
    study_uid: str
    series_uid: str
    site: str
    modality: str
    image: str  # path relative to the export folder
    source: str  # source key of the image
    sop_uid: str | None = None  # set when the item is one image of a projection series
    label_path: str | None = None  # mask path, when the task's labels define one
    spheres: list[tuple[float, float, float, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # class, volumes, finding count
    split: str = ""

    @property
    def uid(self) -> str:
        """What the item loads: the SOP Instance UID of a projection image, else the series UID."""
        return self.sop_uid or self.series_uid

    @property
    def mask_source(self) -> str:
        return digest({"image": self.source, "spheres": self.spheres, "kind": "sphere-mask/1"})

    def datalist_entry(self) -> dict[str, Any]:
        """The item as a decathlon datalist entry: image, label, and flat extra keys."""
        entry: dict[str, Any] = {"image": self.image}
        extra = dict(self.extra)
        if self.label_path:
            entry["label"] = self.label_path
        elif extra.get("class") is not None:
            entry["label"] = extra.pop("class")
        entry |= {
            "patient": self.patient,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            **({"sop_uid": self.sop_uid} if self.sop_uid else {}),
            "site": self.site,
            "modality": self.modality,
        }
        entry |= {k: v for k, v in extra.items() if v is not None}
        return entry


@dataclass
class ExportPlan:
    """The items, what was left out and why, the task's labels, and the strata of the split."""

    items: list[ExportItem]
    excluded: dict[str, int]
    labels: pd.DataFrame
    masks: bool
    strata: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def assign(self, fractions: tuple[float, float, float], seed: int) -> None:
        self.strata = _strata(self.items)
        split = assign_splits(self.strata, fractions, seed)
        for item in self.items:
            item.split = split[item.patient]


def _study_classes(labels: pd.DataFrame) -> dict[str, int]:
    study = labels[labels["kind"] == "study"]
    return {uid: int(group["value"].max()) for uid, group in study.groupby("study_uid")}


def _study_scalars(labels: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per study: volumes as ``<name>_ml`` and the number of nodules/findings."""
    out: dict[str, dict[str, Any]] = {}
    for uid, group in labels.groupby("study_uid"):
        values: dict[str, Any] = {}
        for row in group.itertuples():
            if row.kind == "volume" and row.volume_ml == row.volume_ml:  # not NaN
                values[f"{row.name}_ml"] = float(row.volume_ml)
        values["n_findings"] = int(group["kind"].isin(["nodule", "finding"]).sum())
        out[uid] = values
    return out


def _strata(items: list[ExportItem]) -> dict[str, tuple[str, int | None]]:
    """Patient -> (their sites joined, their class: 1 if any study is positive)."""
    sites: dict[str, set[str]] = {}
    classes: dict[str, int | None] = {}
    for item in items:
        sites.setdefault(item.patient, set()).add(item.site)
        value = item.extra.get("class")
        if value is None:
            classes.setdefault(item.patient, None)
        else:
            classes[item.patient] = max(classes.get(item.patient) or 0, int(value))
    return {p: ("+".join(sorted(sites[p])), classes[p]) for p in sites}


def _task_has_nodules(cohort: Cohort, task: str) -> bool:
    """Whether ``task`` has nodule labels anywhere in the snapshot (then every item gets a mask)."""
    found = cohort.catalog.reader.query(
        "SELECT count(*) AS n FROM labels WHERE task = ? AND kind = 'nodule'", [task]
    )
    return bool(found.column("n")[0].as_py())


def _source(kind: str, uid: str, files: list[str], loader: str) -> str:
    return digest({"v": EXPORT_FORMAT, kind: uid, "files": files, "loader": loader})


def _name(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"


def plan_export(
    cohort: Cohort,
    task: str | None,
    series_loader: Callable[..., Any],
    instance_loader: Callable[..., Any] | None = None,
) -> ExportPlan:
    """The items of an export of ``cohort`` (with ``task`` labels), in a fixed order.

    One item per series; for projection radiography (:data:`PROJECTION`), one per image,
    since the views of a series are not slices of one volume.
    """
    import pandas as pd

    series = cohort.series
    excluded: Counter[str] = Counter()
    images = series[~series["modality"].fillna("").str.upper().isin(NON_IMAGE)]
    if len(images) < len(series):
        excluded["not an image series"] += len(series) - len(images)
    if task:
        labels = cohort.labels(task)
        keep = images["study_uid"].isin(set(labels["study_uid"]))
        if not keep.all():
            excluded[f"study without {task} labels"] += int((~keep).sum())
        images = images[keep]
    else:
        labels = pd.DataFrame(columns=["study_uid", "kind", "series_uid", "sop_uid"])
    classes = _study_classes(labels)
    scalars = _study_scalars(labels) if task else {}
    nodules = labels[labels["kind"] == "nodule"]
    per_image = Counter(labels["sop_uid"].dropna()) if task else Counter()
    masks = bool(task) and _task_has_nodules(cohort, task)
    files = cohort.catalog.reader.df(
        "SELECT series_uid, sop_uid, sha256, laterality, view_position FROM instances "
        "WHERE list_contains(?, series_uid) ORDER BY series_uid, instance_number, sop_uid",
        [images["series_uid"].tolist()],
    )
    by_series: dict[str, list] = {}
    for row in files.itertuples():
        by_series.setdefault(row.series_uid, []).append(row)
    projection = images["modality"].fillna("").str.upper().isin(PROJECTION)
    if projection.any() and instance_loader is None:
        excluded["projection images without an image loader"] += int(projection.sum())
        images = images[~projection]
    items = []
    for row in images.sort_values(["patient_pseudonym", "study_uid", "series_uid"]).itertuples():
        uid = row.series_uid
        base = {
            "patient": row.patient_pseudonym,
            "study_uid": row.study_uid,
            "series_uid": uid,
            "site": row.site,
            "modality": row.modality,
        }
        extra = (
            {"class": classes.get(row.study_uid), **scalars.get(row.study_uid, {})} if task else {}
        )
        if str(row.modality).upper() in PROJECTION:
            for image in by_series.get(uid, []):
                item = ExportItem(
                    **base,
                    sop_uid=image.sop_uid,
                    image=f"images/{image.sop_uid}.nii.gz",
                    source=_source(
                        "instance", image.sop_uid, [image.sha256], _name(instance_loader)
                    ),
                    extra=dict(extra),
                )
                item.extra |= {"laterality": image.laterality, "view": image.view_position}
                if task:
                    item.extra["n_findings"] = per_image.get(image.sop_uid, 0)
                items.append(item)
            continue
        hashes = sorted(i.sha256 for i in by_series.get(uid, []))
        item = ExportItem(
            **base,
            image=f"images/{uid}.nii.gz",
            source=_source("series", uid, hashes, _name(series_loader)),
            extra=extra,
        )
        if masks:
            mine = nodules[
                (nodules["study_uid"] == row.study_uid)
                & (nodules["series_uid"].isna() | (nodules["series_uid"] == uid))
            ]
            item.spheres = [
                (float(n.x_mm), float(n.y_mm), float(n.z_mm), float(n.diameter_mm))
                for n in mine.itertuples()
            ]
            item.label_path = f"labels/{uid}.nii.gz"
        items.append(item)
    return ExportPlan(items=items, excluded=dict(excluded), labels=labels, masks=masks)
