"""Generate the whole synthetic three-hospital cohort into a folder."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from gai_research.synth.ct import write_chest_ct, write_head_ct
from gai_research.synth.dx import write_chest_dx
from gai_research.synth.errors import CohortSizeError, OutputDirError
from gai_research.synth.headers import StudyContext, study_context
from gai_research.synth.labels import LABEL_COLUMNS, StudyResult, write_labels
from gai_research.synth.mg import write_mammography
from gai_research.synth.mr import write_brain_mr
from gai_research.synth.people import plan_cohort
from gai_research.synth.types import (
    DEFAULT_PATIENTS,
    GENERATOR,
    GENERATOR_VERSION,
    SITES,
    TASKS,
    CohortSummary,
    StudyInfo,
)

__all__ = ["MAX_PATIENTS", "ensure_cohort", "generate_cohort", "read_cohort", "read_manifest"]

log = logging.getLogger(__name__)

MAX_PATIENTS = 100_000
MANIFEST = "manifest.json"
LABELS = "labels"
LAYOUT = "<SITE>/<StudyInstanceUID>/<SeriesNumber>/<InstanceNumber:04d>.dcm"

WRITERS: dict[str, Callable[[StudyContext, Path], StudyResult]] = {
    "lung_nodule_ct": write_chest_ct,
    "lung_nodule_dx": write_chest_dx,
    "breast_mg": write_mammography,
    "dementia_mr": write_brain_mr,
    "stroke_ct": write_head_ct,
}


def generate_cohort(
    out_dir: str | Path,
    *,
    patients: int = DEFAULT_PATIENTS,
    seed: int = 0,
    progress: bool = False,
) -> CohortSummary:
    """Write a deterministic synthetic cohort of ``patients`` people to ``out_dir``.

    ``out_dir`` may be new, empty, or an earlier output of this generator (which is
    replaced). The same ``patients`` and ``seed`` give byte-identical files.
    """
    patients = _check_int("patients", patients, 1, MAX_PATIENTS)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    out = Path(out_dir)
    _prepare(out)
    plan = plan_cohort(patients, seed)
    _write_manifest(out, {"complete": False, "seed": seed, "patients": patients})
    results = []
    bar = tqdm(plan, desc="synth", unit="study", file=sys.stderr, disable=not progress)
    for planned in bar:
        bar.set_postfix_str(f"{planned.site} {planned.task}", refresh=False)
        results.append(WRITERS[planned.task](study_context(planned, seed, patients), out))
    write_labels(out / LABELS, results)
    summary = CohortSummary(out, patients, seed, tuple(r.info for r in results))
    _write_manifest(out, _manifest(summary))
    log.info("wrote %d studies, %d instances to %s", len(results), summary.n_instances, out)
    return summary


def ensure_cohort(
    out_dir: str | Path,
    *,
    patients: int = DEFAULT_PATIENTS,
    seed: int = 0,
    progress: bool = False,
) -> CohortSummary:
    """The cohort in ``out_dir`` if it is complete and was made with these settings by this
    generator version; otherwise :func:`generate_cohort` (re)writes it."""
    manifest = read_manifest(out_dir)
    if (
        manifest is not None
        and manifest.get("complete")
        and manifest.get("version") == GENERATOR_VERSION
        and manifest.get("patients") == patients
        and manifest.get("seed") == seed
    ):
        return read_cohort(out_dir)
    return generate_cohort(out_dir, patients=patients, seed=seed, progress=progress)


def read_cohort(folder: str | Path) -> CohortSummary:
    """The summary of a complete earlier generation, read from its manifest and studies.csv."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or not manifest.get("complete"):
        raise OutputDirError(
            f"{folder} holds no complete synthetic cohort",
            hint="generate one with generate_cohort() or `gai synth`",
        )
    with (folder / LABELS / "studies.csv").open(newline="", encoding="utf-8") as handle:
        studies = tuple(
            StudyInfo(
                study_uid=row["study_uid"],
                site=row["site"],
                patient_id=row["patient_id"],
                task=row["task"],
                modality=row["modality"],
                positive=row["label"] == "1",
                n_series=int(row["n_series"]),
                n_instances=int(row["n_instances"]),
                study_date=row["study_date"],
            )
            for row in csv.DictReader(handle)
        )
    return CohortSummary(folder, int(manifest["patients"]), int(manifest["seed"]), studies)


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of an earlier generation in ``folder``, or None if it holds none."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == GENERATOR else None


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CohortSizeError(
            f"{name} must be a whole number, not {value!r}",
            hint=f"use a whole number from {low} to {high}",
        )
    if not low <= value <= high:
        raise CohortSizeError(
            f"{name}={value} is out of range", hint=f"use a whole number from {low} to {high}"
        )
    return value


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{out} is a file, not a folder", hint="choose a folder path")
    if out.is_dir() and any(out.iterdir()):
        if read_manifest(out) is None:
            raise OutputDirError(
                f"{out} is not empty and holds no earlier synthetic cohort",
                hint="choose a new or empty folder; files that are not ours are never overwritten",
            )
        log.info("replacing the earlier synthetic cohort in %s", out)
        for name in (*SITES, LABELS):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        (out / MANIFEST).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _manifest(summary: CohortSummary) -> dict:
    studies = summary.studies
    return {
        "complete": True,
        "seed": summary.seed,
        "patients": summary.patients,
        "layout": LAYOUT,
        "labels": [f"{LABELS}/{name}" for name in LABEL_COLUMNS],
        "counts": {
            "studies": len(studies),
            "series": sum(s.n_series for s in studies),
            "instances": summary.n_instances,
            "positive": sum(s.positive for s in studies),
            "by_site": summary.by_site(),
            "by_task": {t: sum(s.task == t for s in studies) for t in TASKS},
            "modalities": dict(sorted(Counter(s.modality for s in studies).items())),
        },
    }


def _write_manifest(out: Path, body: dict) -> None:
    data = {"generator": GENERATOR, "version": GENERATOR_VERSION, **body}
    (out / MANIFEST).write_text(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
