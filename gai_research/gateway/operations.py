"""Operations metrics of the gateway in MLflow: time to result, overhead, throughput.

One run per (task, model, site) and one per (task, model) over all sites (``gai.site =
ALL``), in the task's experiment ``gai-<task>``, tagged ``gai.role=operations`` so the
report finds them beside the evaluation runs. Metrics (the conventions of the
platform): ``ttr_median_s``, ``ttr_p95_s``, ``gateway_overhead_median_s``,
``throughput_per_h``, ``n_studies``, ``n_failed``, ``n_timeout``, and
``ttr_median_s_by_hour`` with ``step`` = hour of day (local time of the gateway) of the
study's arrival. Runs carry study counts and latencies only, never a study key or UID.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gai_research.gateway.jobs import GatewayDB, Job, JobState

__all__ = ["OperationsGroup", "log_operations", "operations_groups", "operations_metrics"]

ALL_SITES = "ALL"


@dataclass(frozen=True)
class OperationsGroup:
    task: str
    model: str
    site: str
    model_version: str
    origin: str
    jobs: tuple[Job, ...]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    position = 0.95 * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def operations_metrics(jobs: Iterable[Job]) -> tuple[dict[str, float], dict[int, float]]:
    """(metrics, median time to result by hour of day) of a group of jobs."""
    jobs = list(jobs)
    done = [j for j in jobs if j.state == JobState.RETURNED and j.time_to_result is not None]
    ttr = [j.time_to_result for j in done]
    overhead = [j.overhead for j in done if j.overhead is not None]
    metrics: dict[str, float] = {
        "n_studies": float(len({j.study_key for j in jobs})),
        "n_returned": float(len(done)),
        "n_failed": float(sum(j.state == JobState.FAILED for j in jobs)),
        "n_timeout": float(sum(j.state == JobState.FAILED and j.reason == "timeout" for j in jobs)),
    }
    if ttr:
        metrics["ttr_median_s"] = statistics.median(ttr)
        metrics["ttr_p95_s"] = _p95(ttr)
        first = min(j.received_first for j in done)
        last = max(j.stored_back_at for j in done)
        hours = max(last - first, 1.0) / 3600.0  # at least one second of window
        metrics["throughput_per_h"] = len(done) / hours
    if overhead:
        metrics["gateway_overhead_median_s"] = statistics.median(overhead)
    by_hour: dict[int, list[float]] = defaultdict(list)
    for job in done:
        by_hour[time.localtime(job.received_first).tm_hour].append(job.time_to_result)
    return metrics, {hour: statistics.median(v) for hour, v in sorted(by_hour.items())}


def operations_groups(jobs: Iterable[Job]) -> list[OperationsGroup]:
    """Jobs grouped by (task, model) per site and over all sites; jobs of a model that
    never loaded (no task known) are left out."""
    groups: dict[tuple[str, str, str], list[Job]] = defaultdict(list)
    for job in jobs:
        if not job.task:
            continue
        groups[(job.task, job.model, job.site)].append(job)
        groups[(job.task, job.model, ALL_SITES)].append(job)
    out = []
    for (task, model, site), members in sorted(groups.items()):
        latest = max(members, key=lambda j: j.updated_at)
        out.append(
            OperationsGroup(
                task=task,
                model=model,
                site=site,
                model_version=latest.model_version or "",
                origin=latest.origin or "",
                jobs=tuple(members),
            )
        )
    return out


def log_operations(
    settings,
    db: GatewayDB,
    *,
    since: float | None = None,
    until: float | None = None,
    tracking_uri: str | None = None,
) -> list[str]:
    """Log one MLflow run per group of the jobs received in [since, until); the run ids."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    until = time.time() if until is None else until
    jobs = [j for j in db.jobs(since=since) if j.received_first < until]
    groups = operations_groups(jobs)
    if not groups:
        return []
    client = MlflowClient(tracking_uri or settings.tracking_uri)
    stamp = int(time.time() * 1000)
    window = (
        dt.datetime.fromtimestamp(
            since if since is not None else min(j.received_first for j in jobs)
        )
        .astimezone()
        .isoformat(timespec="seconds"),
        dt.datetime.fromtimestamp(until).astimezone().isoformat(timespec="seconds"),
    )
    run_ids = []
    for group in groups:
        name = f"gai-{group.task}"
        experiment = client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment is not None else client.create_experiment(name)
        )
        tags: dict[str, Any] = {
            "gai.role": "operations",
            "gai.task": group.task,
            "gai.site": group.site,
            "gai.model": group.model,
            "gai.model_version": group.model_version,
            "gai.origin": group.origin,
            "mlflow.runName": f"operations {group.model} / {group.site}",
        }
        run = client.create_run(experiment_id, tags=tags)
        metrics, by_hour = operations_metrics(group.jobs)
        batch = [Metric(k, float(v), stamp, 0) for k, v in metrics.items()]
        batch += [Metric("ttr_median_s_by_hour", float(v), stamp, h) for h, v in by_hour.items()]
        params = [
            Param("window_start", window[0]),
            Param("window_end", window[1]),
            Param("model_name", group.model),
            Param("model_version", group.model_version),
        ]
        client.log_batch(
            run.info.run_id, metrics=batch, params=params, tags=[RunTag("gai.source", "gateway")]
        )
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return run_ids
