"""Latency of model calls: median, quartiles, p95, with failures and timeouts counted apart."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.types import LatencySummary

__all__ = ["latency_summary"]


def latency_summary(
    seconds: Iterable[float | None], timeout: float | None = None
) -> LatencySummary:
    """Summarise per-call latencies in seconds.

    - ``None`` or NaN marks a call that failed (no result): counted in ``failures``;
    - with ``timeout`` given, a value at or above it (``inf`` included) is counted in
      ``timeouts``; without it, ``inf`` raises, because its meaning is not known;
    - every statistic uses only the completed calls (``n``); quantiles interpolate
      linearly (numpy's default, R's type 7).

    A summary over completed calls is optimistic when many calls fail or time out: report
    ``failures`` and ``timeouts`` beside it. Negative values raise.
    """
    raw = [math.nan if value is None else value for value in seconds]
    try:
        values = np.asarray(raw, dtype=float).ravel()
    except (TypeError, ValueError) as error:
        raise MetricsError(
            "latencies must be numbers or None", hint="record a failed call as None"
        ) from error
    failed = np.isnan(values)
    if np.any(values[~failed] < 0):
        raise MetricsError(
            "latencies must not be negative", hint="measure with time.perf_counter()"
        )
    if timeout is None:
        if np.isinf(values).any():
            raise MetricsError(
                "infinite latency without a timeout", hint="pass timeout= to count timeouts"
            )
        timed_out = np.zeros_like(failed)
    else:
        timed_out = ~failed & (values >= float(timeout))
    done = values[~failed & ~timed_out]
    if done.size:
        q1, median, q3, p95 = np.percentile(done, [25, 50, 75, 95])
        stats = (
            float(median),
            float(q1),
            float(q3),
            float(p95),
            float(done.max()),
            float(done.mean()),
        )
    else:
        stats = (math.nan,) * 6
    return LatencySummary(
        n=int(done.size),
        failures=int(failed.sum()),
        timeouts=int(timed_out.sum()),
        median=stats[0],
        q1=stats[1],
        q3=stats[2],
        p95=stats[3],
        max=stats[4],
        mean=stats[5],
    )
