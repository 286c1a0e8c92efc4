"""The export's tables: the MONAI datalist, splits.csv, labels.csv and the summary.

The summary (:func:`export_summary`) is what the manifest records and the data card
describes: options, and per split its items, patients, positive patients and sites.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from gai_research.data.exportplan import ExportItem, ExportPlan
from gai_research.data.splits import SPLIT_NAMES

if TYPE_CHECKING:
    from gai_research.data.cohort import Cohort

__all__ = ["datalist", "export_summary", "labels_csv", "splits_csv"]


def datalist(cohort: Cohort, plan: ExportPlan, done: list[ExportItem], task, fractions, seed):
    modalities = sorted({i.modality for i in done})
    data: dict[str, Any] = {
        "name": cohort.name,
        "description": f"gai-research export of cohort {cohort.name}"
        + (f", task {task}" if task else ""),
        "reference": f"catalog snapshot {cohort.snapshot}",
        "licence": "pseudonymized research data of the GAI demonstration; see DATA_CARD.md",
        "release": dt.date.today().isoformat(),
        "tensorImageSize": "3D",
        "modality": {str(i): m for i, m in enumerate(modalities)},
        "cohort_hash": cohort.content_hash,
        "snapshot": cohort.snapshot,
        "task": task,
        "splits": list(fractions),
        "seed": seed,
    }
    if plan.masks:
        data["labels"] = {"0": "background", "1": "nodule"}
    for name, key in zip(SPLIT_NAMES, ("numTraining", "numValidation", "numTest"), strict=True):
        data[key] = sum(i.split == name for i in done)
    for name in SPLIT_NAMES:
        data[name] = [i.datalist_entry() for i in done if i.split == name]
    return data


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None or v != v else v for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


def splits_csv(plan: ExportPlan, done: list[ExportItem]) -> bytes:
    rows = []
    for patient in sorted({i.patient for i in done}):
        mine = [i for i in done if i.patient == patient]
        sites, cls = plan.strata[patient]
        rows.append(
            {
                "patient": patient,
                "split": mine[0].split,
                "sites": sites,
                "class": cls,
                "items": len(mine),
            }
        )
    return _csv(rows, ["patient", "split", "sites", "class", "items"])


def labels_csv(plan: ExportPlan, done: list[ExportItem]) -> bytes:
    split = {i.study_uid: i.split for i in done}
    labels = plan.labels[plan.labels["study_uid"].isin(split)]
    columns = [c for c in labels.columns if c != "patient_pseudonym"]
    rows = [dict(zip(labels.columns, row, strict=True)) for row in labels.itertuples(index=False)]
    for row in rows:
        row["split"] = split[row["study_uid"]]
    return _csv(rows, ["split", *columns])


def export_summary(plan, done, result, task, fmt, fractions, seed) -> dict[str, Any]:
    """The export's facts for the manifest and the data card."""
    per_split = {}
    for name in SPLIT_NAMES:
        mine = [i for i in done if i.split == name]
        patients = {i.patient for i in mine}
        positive = {i.patient for i in mine if i.extra.get("class") == 1}
        per_split[name] = {
            "items": len(mine),
            "patients": len(patients),
            "positive_patients": len(positive) if task else None,
            "sites": sorted({i.site for i in mine}),
        }
    return {
        "image_format": fmt,
        "task": task,
        "masks": plan.masks,
        "splits": list(fractions),
        "seed": seed,
        "per_split": per_split,
        "excluded": plan.excluded,
        "failed": len(result.failed),
    }
