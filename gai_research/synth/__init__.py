"""Synthetic three-hospital DICOM cohort with known ground truth.

``generate_cohort(out_dir, patients=24, seed=0)`` writes identified DICOM files as
the Suwon, Anseong and Icheon PACS would send them (Korean names, MRNs, RRNs), one
folder per site, plus ground-truth CSVs under ``labels/`` and a ``manifest.json``.
Everything is synthetic: names are random combinations of common syllables.

Importing this package is cheap; numpy, scipy and pydicom load on the first call of
:func:`generate_cohort`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gai_research.synth.errors import CohortSizeError, OutputDirError, SynthError
from gai_research.synth.types import (
    DEFAULT_PATIENTS,
    SITES,
    TASK_MODALITY,
    TASKS,
    CohortSummary,
    StudyInfo,
)

if TYPE_CHECKING:
    from gai_research.synth.cohort import (
        ensure_cohort,
        generate_cohort,
        read_cohort,
        read_manifest,
    )

__all__ = [
    "DEFAULT_PATIENTS",
    "SITES",
    "TASKS",
    "TASK_MODALITY",
    "CohortSizeError",
    "CohortSummary",
    "OutputDirError",
    "StudyInfo",
    "SynthError",
    "ensure_cohort",
    "generate_cohort",
    "read_cohort",
    "read_manifest",
]


def __getattr__(name: str):
    if name in ("ensure_cohort", "generate_cohort", "read_cohort", "read_manifest"):
        from gai_research.synth import cohort

        return getattr(cohort, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
