"""The queue and the latency log as plain data, for ``gai gateway status`` and notebooks.

Studies are named by their study key only (``GS...``): no patient name, ID or
original UID leaves the restricted database through this view. Per (study, model) the
latency log holds when the first instance arrived, when the study was complete, when
it was sent to the model, when the answer came and when the result was stored back
in the PACS; the derived spans are what the status view prints.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from gai_research.gateway.jobs import GatewayDB, Job, JobState, StudyState

__all__ = ["JobLatency", "gateway_status", "job_latency", "latency_rows"]


@dataclass(frozen=True)
class JobLatency:
    """One row of the latency log (seconds; None where the step has not happened)."""

    study: str
    site: str
    model: str
    state: str
    reason: str | None
    attempts: int
    received_first: float
    complete_s: float | None  # first instance -> complete
    queue_s: float | None  # complete -> sent to the model (includes retry waits)
    model_s: float | None  # the model's own answer time (last attempt)
    answer_s: float | None  # sent -> answer recorded (input preparation included)
    return_s: float | None  # answer -> stored back in the PACS
    ttr_s: float | None  # first instance -> stored back: the time to result
    overhead_s: float | None  # ttr minus the model's own time


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def job_latency(job: Job) -> JobLatency:
    return JobLatency(
        study=job.study_key,
        site=job.site,
        model=job.model,
        state=job.state,
        reason=job.reason,
        attempts=job.attempts,
        received_first=job.received_first,
        complete_s=_span(job.received_first, job.complete_at),
        queue_s=_span(job.complete_at, job.sent_to_model),
        model_s=job.model_seconds,
        answer_s=_span(job.sent_to_model, job.result_at),
        return_s=_span(job.result_at, job.stored_back_at),
        ttr_s=job.time_to_result,
        overhead_s=job.overhead,
    )


def latency_rows(db: GatewayDB, *, since: float | None = None) -> list[JobLatency]:
    """The latency log, newest first."""
    return [job_latency(j) for j in db.jobs(since=since)]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = 0.95 * (len(ordered) - 1)  # linear interpolation, numpy's default
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def gateway_status(db: GatewayDB, *, limit: int = 20, window_s: float = 86400.0) -> dict[str, Any]:
    """Counts by state, the most recent jobs and studies without jobs, latency summary."""
    counts = db.counts()
    recent = [asdict(job_latency(j)) for j in db.jobs(limit=limit)]
    waiting = [
        {
            "study": s.key,
            "site": s.site,
            "state": s.state,
            "reason": s.reason,
            "instances": s.n_instances,
            "late": s.n_late,
            "received_first": s.received_first,
        }
        for s in db.studies(
            states=(
                StudyState.RECEIVED,
                StudyState.COMPLETE,
                StudyState.NO_MATCH,
                StudyState.FAILED,
            ),
            limit=limit,
        )
    ]
    since = time.time() - window_s
    done = [job_latency(j) for j in db.jobs(states=[JobState.RETURNED], since=since)]
    ttr = [r.ttr_s for r in done if r.ttr_s is not None]
    overhead = [r.overhead_s for r in done if r.overhead_s is not None]
    return {
        "studies": {state.value: counts["studies"].get(state.value, 0) for state in StudyState},
        "jobs": {state.value: counts["jobs"].get(state.value, 0) for state in JobState},
        "recent_jobs": recent,
        "studies_without_jobs": waiting,
        "latency": {
            "window_s": window_s,
            "n_returned": len(done),
            "ttr_median_s": _median(ttr),
            "ttr_p95_s": _p95(ttr),
            "overhead_median_s": _median(overhead),
        },
    }
