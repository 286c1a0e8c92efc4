"""Operating points: a hand-checked example, a brute-force check, and the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gai_research.evaluation.metrics import (
    MetricsError,
    proportion_ci,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

# 4 positives, 6 negatives; scores chosen so every threshold is easy to count by hand.
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.4, 0.2, 0.1, 0.1])


@pytest.mark.parametrize(
    ("target", "threshold", "sensitivity", "specificity"),
    [
        # spec >= 1: nothing above 0.7 is negative, best is threshold 0.8 (2 of 4 positives)
        (1.0, 0.8, 0.5, 1.0),
        # spec >= 5/6: threshold 0.6 (0.9, 0.8, 0.7, 0.6 positive) -> 3/4, 5/6
        (0.8, 0.6, 0.75, 5 / 6),
        # spec >= 0.5: threshold 0.3 -> 4/4 with 3 FP (0.7, 0.5, 0.4) -> spec 3/6
        (0.5, 0.3, 1.0, 0.5),
        # spec >= 0: all positives found; the highest such threshold is 0.3
        (0.0, 0.3, 1.0, 0.5),
    ],
)
def test_sensitivity_at_specificity_by_hand(
    target: float, threshold: float, sensitivity: float, specificity: float
) -> None:
    point = sensitivity_at_specificity(Y, S, target)
    assert point.threshold == threshold
    assert point.sensitivity.estimate == pytest.approx(sensitivity)
    assert point.specificity.estimate == pytest.approx(specificity)
    assert point.sensitivity == proportion_ci(round(sensitivity * 4), 4)


@pytest.mark.parametrize(
    ("target", "threshold", "sensitivity", "specificity"),
    [
        (1.0, 0.3, 1.0, 0.5),  # all 4 positives: highest threshold keeping them is 0.3
        (0.75, 0.6, 0.75, 5 / 6),  # 3 of 4: threshold 0.6, one FP (0.7)
        (0.5, 0.8, 0.5, 1.0),  # 2 of 4 with no FP at 0.8
        (0.0, 0.8, 0.5, 1.0),  # nothing needed: full specificity, then the most positives
    ],
)
def test_specificity_at_sensitivity_by_hand(
    target: float, threshold: float, sensitivity: float, specificity: float
) -> None:
    point = specificity_at_sensitivity(Y, S, target)
    assert point.threshold == threshold
    assert point.sensitivity.estimate == pytest.approx(sensitivity)
    assert point.specificity.estimate == pytest.approx(specificity)


def brute_force(
    y: np.ndarray, s: np.ndarray, target: float, constraint: str
) -> tuple[float, float]:
    """Best (sensitivity, specificity) over all thresholds, by the documented rule."""
    points = []
    for t in [math.inf, *np.unique(s)]:
        called = s >= t
        points.append(
            (
                (called & (y == 1)).sum() / (y == 1).sum(),
                (~called & (y == 0)).sum() / (y == 0).sum(),
            )
        )
    if constraint == "specificity":
        return max(p for p in points if p[1] >= target - 1e-12)
    return max((p for p in points if p[0] >= target - 1e-12), key=lambda p: (p[1], p[0]))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target", [0.0, 0.5, 0.8, 0.9, 0.95, 1.0])
@pytest.mark.parametrize("constraint", ["specificity", "sensitivity"])
def test_matches_brute_force(seed: int, target: float, constraint: str) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(200) < 0.3).astype(int)
    s = np.round(rng.normal(size=200) + y, 1)
    function = (
        sensitivity_at_specificity if constraint == "specificity" else specificity_at_sensitivity
    )
    point = function(y, s, target)
    assert (point.sensitivity.estimate, point.specificity.estimate) == pytest.approx(
        brute_force(y, s, target, constraint)
    )


def test_bootstrap_interval_is_reproducible_and_sane() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.4).astype(int)
    s = rng.normal(size=400) + 1.5 * y
    first = sensitivity_at_specificity(y, s, 0.9, n_bootstrap=500, seed=3)
    assert first == sensitivity_at_specificity(y, s, 0.9, n_bootstrap=500, seed=3)
    assert 0.0 <= first.sensitivity.low <= first.sensitivity.high <= 1.0
    assert first.sensitivity.low < first.sensitivity.estimate < first.sensitivity.high
    assert first.n_bootstrap == 500
    # the fixed-threshold interval of the other measure is unchanged by the bootstrap
    assert first.specificity == sensitivity_at_specificity(y, s, 0.9).specificity


def test_specificity_bootstrap_interval() -> None:
    rng = np.random.default_rng(6)
    y = (rng.random(400) < 0.4).astype(int)
    s = rng.normal(size=400) + 1.5 * y
    point = specificity_at_sensitivity(y, s, 0.9, n_bootstrap=500)
    assert point.specificity.low < point.specificity.estimate < point.specificity.high


@pytest.mark.parametrize(
    ("y", "target", "message"),
    [([1, 1, 1], 0.9, "positive and negative"), ([1, 0, 1], 1.5, r"\[0, 1\]")],
)
def test_bad_input_raises(y: list, target: float, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        sensitivity_at_specificity(y, [0.1, 0.2, 0.3], target)
