"""What the generator promises: task and site names, per-study facts, the cohort summary.

This module imports nothing heavy, so ``from gai_research.synth import TASKS`` is cheap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_PATIENTS",
    "GENERATOR",
    "GENERATOR_VERSION",
    "SITES",
    "TASKS",
    "TASK_MODALITY",
    "CohortSummary",
    "StudyInfo",
]

#: The disease tasks, in the order the platform lists them.
TASKS: tuple[str, ...] = (
    "lung_nodule_ct",
    "lung_nodule_dx",
    "breast_mg",
    "dementia_mr",
    "stroke_ct",
)

#: The three provincial medical centers (the values of ``gai_research.config.Site``).
SITES: tuple[str, ...] = ("SUWON", "ANSEONG", "ICHEON")

#: DICOM Modality of each task's images.
TASK_MODALITY: dict[str, str] = {
    "lung_nodule_ct": "CT",
    "lung_nodule_dx": "DX",
    "breast_mg": "MG",
    "dementia_mr": "MR",
    "stroke_ct": "CT",
}

#: 24 patients (8 per site, half of them women) plus 4 who also visit a second center
#: make 28 visits, just enough to carry the plan's 30 coverage studies: a positive and
#: a negative of every task at every site. 30-32 studies, ~1,100 files, 115-125 MB,
#: about 6 s on two cores. Nine patients are the least that still cover every cell.
DEFAULT_PATIENTS = 24

#: Written into ``manifest.json``; a folder whose manifest names this generator may be
#: regenerated in place.
GENERATOR = "gai_research.synth"
#: Bumped whenever the same seed would give different bytes.
GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class StudyInfo:
    """One generated study (identified: original UIDs and the site MRN)."""

    study_uid: str
    site: str
    patient_id: str
    task: str
    modality: str
    positive: bool
    n_series: int
    n_instances: int
    study_date: str


@dataclass
class CohortSummary:
    """What :func:`gai_research.synth.generate_cohort` wrote."""

    out_dir: Path
    patients: int
    seed: int
    studies: tuple[StudyInfo, ...]

    @property
    def n_instances(self) -> int:
        return sum(s.n_instances for s in self.studies)

    def table(self) -> list[dict]:
        """One row per (site, task), in site order (SUWON, ANSEONG, ICHEON) then task order."""
        rows = []
        for site in SITES:
            for task in TASKS:
                cell = [s for s in self.studies if s.site == site and s.task == task]
                rows.append(
                    {
                        "site": site,
                        "task": task,
                        "patients": len({s.patient_id for s in cell}),
                        "studies": len(cell),
                        "positive": sum(s.positive for s in cell),
                        "instances": sum(s.n_instances for s in cell),
                    }
                )
        return rows

    def by_site(self) -> dict[str, dict]:
        """Patients (distinct MRNs), studies and instances per site, in site order."""
        studies = Counter(s.site for s in self.studies)
        instances = Counter()
        patients: dict[str, set[str]] = {site: set() for site in SITES}
        for s in self.studies:
            instances[s.site] += s.n_instances
            patients[s.site].add(s.patient_id)
        return {
            site: {
                "patients": len(patients[site]),
                "studies": studies[site],
                "instances": instances[site],
            }
            for site in SITES
        }
