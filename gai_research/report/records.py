"""The model of what the report collected: runs as read from MLflow, grouped per task.

Plain dataclasses with no MLflow objects inside, so rendering, tests and notebooks can
build and read them without a tracking server. A :class:`RunRecord` keeps the run's
tags, params and metrics exactly as logged; :meth:`RunRecord.estimate` pairs a metric
with its ``_ci_low``/``_ci_high`` keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gai_research.report import conventions as cv

__all__ = ["Collected", "Estimate", "Plot", "RunRecord", "TaskRuns"]

FINISHED = "FINISHED"
FAILED_STATUSES = ("FAILED", "KILLED")


@dataclass(frozen=True)
class Estimate:
    """A logged metric with its interval (None where the run logged none)."""

    key: str
    value: float
    low: float | None = None
    high: float | None = None

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class Plot:
    """A PNG artifact of a run (``plots/roc.png``), kept as bytes to embed."""

    run_id: str
    path: str
    data: bytes


@dataclass
class RunRecord:
    """One MLflow run as the report uses it."""

    run_id: str
    experiment_id: str
    experiment: str
    status: str
    start_time: int  # ms since the epoch, as MLflow stores it
    end_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    artifacts: tuple[str, ...] = ()  # paths at the root and under plots/
    plots: list[Plot] = field(default_factory=list)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # a failed evaluation's summary.json

    # --- identity ------------------------------------------------------------------------
    @property
    def role(self) -> str:
        return self.tags.get(cv.TAG_ROLE, "")

    @property
    def task(self) -> str:
        task = self.tags.get(cv.TAG_TASK)
        if task:
            return task
        name = self.experiment
        return name[len(cv.EXPERIMENT_PREFIX) :] if name.startswith(cv.EXPERIMENT_PREFIX) else name

    @property
    def kind(self) -> str:
        return self.tags.get(cv.TAG_KIND) or cv.TASKS.get(self.task, "classification")

    @property
    def model(self) -> str:
        name = self.tags.get(cv.TAG_MODEL) or self.params.get("model_name")
        if name:
            return name
        run_name = self.tags.get(cv.TAG_RUN_NAME, "")
        return run_name.split(" / ")[0] if run_name else "(unnamed)"

    @property
    def model_version(self) -> str:
        return self.tags.get(cv.TAG_MODEL_VERSION) or self.params.get("model_version") or ""

    @property
    def origin(self) -> str | None:
        """vendor, baseline or simulator; None when the run did not say (shown as unknown)."""
        origin = (self.tags.get(cv.TAG_ORIGIN) or "").strip().lower()
        return origin if origin in cv.ORIGINS else None

    @property
    def vendor(self) -> str | None:
        """The vendor's name, only for origin=vendor: baselines and simulators have none."""
        if self.origin != "vendor":
            return None
        return self.tags.get(cv.TAG_VENDOR) or self.params.get("model_vendor") or None

    @property
    def site(self) -> str:
        return (self.tags.get(cv.TAG_SITE) or "ALL").upper()

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(cv.TAG_PARENT)

    @property
    def protocol(self) -> str:
        return self.tags.get(cv.TAG_PROTOCOL, "")

    @property
    def protocol_hash(self) -> str:
        return self.tags.get(cv.TAG_PROTOCOL_HASH) or self.params.get("protocol_hash", "")

    @property
    def snapshot(self) -> str:
        return self.tags.get(cv.TAG_SNAPSHOT) or self.params.get("snapshot", "")

    @property
    def cohort_hash(self) -> str:
        return self.tags.get(cv.TAG_COHORT_HASH) or self.params.get("cohort_hash", "")

    @property
    def code_version(self) -> str:
        return self.params.get("code_version", "")

    @property
    def packages(self) -> dict[str, str]:
        return {k[4:]: v for k, v in self.params.items() if k.startswith("pkg.")}

    @property
    def error(self) -> str:
        return self.tags.get(cv.TAG_ERROR, "")

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def started(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start_time / 1000, tz=dt.UTC)

    # --- metrics -------------------------------------------------------------------------
    def estimate(self, name: str) -> Estimate | None:
        """The metric ``name`` with its CI keys, or None when the run did not log it."""
        if name not in self.metrics:
            return None
        return Estimate(
            name,
            self.metrics[name],
            self.metrics.get(name + cv.CI_LOW),
            self.metrics.get(name + cv.CI_HIGH),
        )

    def top_level_metrics(self) -> list[str]:
        """Metric keys other than CI bounds, subgroups (sg.) and comparisons (cmp.)."""
        return sorted(
            k
            for k in self.metrics
            if not k.startswith(("sg.", "cmp.")) and not k.endswith((cv.CI_LOW, cv.CI_HIGH))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "status": self.status,
            "role": self.role,
            "task": self.task,
            "model": self.model if self.role != cv.ROLE_EVALUATION else None,
            "site": self.site if self.role != cv.ROLE_EVALUATION else None,
            "origin": self.origin,
            "started": self.started.isoformat(timespec="seconds"),
        }


@dataclass
class TaskRuns:
    """What the report shows of one disease task."""

    task: str
    kind: str
    experiment: str | None = None  # None: no experiment gai-<task> in MLflow
    experiment_id: str | None = None
    rows: list[RunRecord] = field(default_factory=list)  # chosen model runs (one per model x site)
    failed: list[RunRecord] = field(default_factory=list)  # failed runs newer than the chosen ones
    unfinished: list[RunRecord] = field(default_factory=list)  # still running or scheduled
    evaluations: list[RunRecord] = field(default_factory=list)  # parent runs of the rows
    operations: list[RunRecord] = field(default_factory=list)  # gateway runs, one per model x site

    @property
    def has_results(self) -> bool:
        return any(r.finished for r in self.rows)


@dataclass
class Collected:
    """Everything read from MLflow for one report."""

    tracking_uri: str  # with any password masked
    tasks: list[TaskRuns]
    store_missing: bool = False
    pinned_file: str | None = None
    edition: str | None = None

    @property
    def n_rows(self) -> int:
        return sum(len(t.rows) for t in self.tasks)

    def all_runs(self) -> list[RunRecord]:
        """Every run the report cites, once, in task order."""
        seen: dict[str, RunRecord] = {}
        for task in self.tasks:
            for run in [*task.evaluations, *task.rows, *task.operations, *task.failed]:
                seen.setdefault(run.run_id, run)
        return list(seen.values())
