"""latency_summary: quantiles of completed calls, failures and timeouts apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gai_research.evaluation.metrics import MetricsError, latency_summary


def test_statistics_of_completed_calls() -> None:
    rng = np.random.default_rng(0)
    seconds = rng.lognormal(0.0, 0.5, 1000)
    summary = latency_summary(seconds.tolist())
    q1, median, q3, p95 = np.percentile(seconds, [25, 50, 75, 95])
    assert (summary.q1, summary.median, summary.q3, summary.p95) == pytest.approx(
        (q1, median, q3, p95)
    )
    assert summary.max == seconds.max() and summary.mean == pytest.approx(seconds.mean())
    assert (summary.n, summary.failures, summary.timeouts) == (1000, 0, 0)
    assert summary.iqr == pytest.approx(q3 - q1)


def test_small_example_by_hand() -> None:
    # 1, 2, 3, 4, 5: median 3, quartiles 2 and 4 (linear, R type 7), p95 4.8
    summary = latency_summary([3, 1, 5, 2, 4])
    assert (summary.median, summary.q1, summary.q3, summary.p95) == pytest.approx((3, 2, 4, 4.8))


def test_failures_are_counted_and_left_out() -> None:
    summary = latency_summary([1.0, None, 2.0, float("nan"), 3.0])
    assert (summary.n, summary.failures, summary.timeouts, summary.n_total) == (3, 2, 0, 5)
    assert summary.median == 2.0


@pytest.mark.parametrize(
    ("values", "timeouts", "median"),
    [([1.0, 2.0, 30.0, math.inf], 2, 1.5), ([1.0, 2.0, 3.0], 0, 2.0)],
)
def test_timeouts_are_counted_and_left_out(values: list, timeouts: int, median: float) -> None:
    summary = latency_summary(values, timeout=30.0)
    assert summary.timeouts == timeouts
    assert summary.median == median


def test_no_completed_call_gives_nan() -> None:
    summary = latency_summary([None, None])
    assert summary.n == 0 and summary.failures == 2 and math.isnan(summary.median)


@pytest.mark.parametrize(
    ("values", "message"),
    [([1.0, -0.5], "negative"), ([1.0, math.inf], "infinite latency"), (["fast"], "numbers")],
)
def test_bad_input_raises(values: list, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        latency_summary(values)
