"""Ground-truth tables: one CSV per finding type, keyed by the original StudyInstanceUID."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gai_research.synth.types import StudyInfo

__all__ = ["LABEL_COLUMNS", "StudyResult", "write_labels"]

LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "studies.csv": (
        "study_uid", "site", "patient_id", "task", "modality", "study_date",
        "accession_number", "label", "n_series", "n_instances",
    ),
    "nodules_ct.csv": ("study_uid", "series_uid", "x_mm", "y_mm", "z_mm", "diameter_mm"),
    "findings_dx.csv": ("study_uid", "sop_uid", "row", "col", "diameter_mm"),
    "masses_mg.csv": ("study_uid", "sop_uid", "laterality", "view", "row", "col", "diameter_mm"),
    "volumes_mr.csv": (
        "study_uid", "series_uid", "group", "hippocampus_left_ml", "hippocampus_right_ml",
        "hippocampus_ml",
    ),
    "hemorrhage_ct.csv": ("study_uid", "series_uid", "x_mm", "y_mm", "z_mm", "volume_ml"),
}  # fmt: skip


@dataclass
class StudyResult:
    """A written study: its facts and the finding rows it adds to each label table."""

    info: StudyInfo
    accession: str
    rows: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, table: str, **row: object) -> None:
        self.rows.setdefault(table, []).append(row)


def write_labels(folder: Path, results: Iterable[StudyResult]) -> None:
    """Write every table (headers even when empty) in the order the studies come."""
    results = list(results)
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in LABEL_COLUMNS.items():
        with (folder / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for result in results:
                if name == "studies.csv":
                    info = result.info
                    writer.writerow(
                        {
                            "study_uid": info.study_uid,
                            "site": info.site,
                            "patient_id": info.patient_id,
                            "task": info.task,
                            "modality": info.modality,
                            "study_date": info.study_date,
                            "accession_number": result.accession,
                            "label": int(info.positive),
                            "n_series": info.n_series,
                            "n_instances": info.n_instances,
                        }
                    )
                else:
                    writer.writerows(result.rows.get(name, ()))
