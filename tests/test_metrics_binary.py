"""binary_metrics on Altman & Bland's liver-scan example, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gai_research.evaluation.metrics import MetricsError, binary_metrics, proportion_ci


def cases(tp: int, fp: int, fn: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and binary scores with the given confusion counts."""
    y_true = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn)
    y_score = np.array([1.0] * (tp + fp) + [0.0] * (fn + tn))
    return y_true, y_score


# Altman DG, Bland JM (1994) Diagnostic tests 1: sensitivity and specificity. BMJ 308:1552;
# Diagnostic tests 2: predictive values. BMJ 309:102. Liver scan against pathology:
# 231 TP, 32 FP, 27 FN, 54 TN; sensitivity 231/258 = 0.90, specificity 54/86 = 0.63,
# PPV 231/263 = 0.88, NPV 54/81 = 0.67, prevalence 258/344 = 0.75.
LIVER_SCAN = cases(tp=231, fp=32, fn=27, tn=54)


@pytest.mark.parametrize(
    ("name", "published", "numerator", "denominator"),
    [
        ("sensitivity", 0.90, 231, 258),
        ("specificity", 0.63, 54, 86),
        ("ppv", 0.88, 231, 263),
        ("npv", 0.67, 54, 81),
    ],
)
def test_altman_bland_liver_scan(
    name: str, published: float, numerator: int, denominator: int
) -> None:
    result = binary_metrics(*LIVER_SCAN, threshold=0.5)
    value = getattr(result, name)
    assert round(value.estimate, 2) == published
    assert value == proportion_ci(numerator, denominator, "wilson")


def test_liver_scan_counts_and_prevalence() -> None:
    result = binary_metrics(*LIVER_SCAN, threshold=0.5)
    assert (result.tp, result.fp, result.fn, result.tn, result.n) == (231, 32, 27, 54, 344)
    assert round(result.prevalence, 2) == 0.75
    assert result.accuracy == proportion_ci(231 + 54, 344)  # not in the paper: (TP + TN) / n


def test_score_equal_to_threshold_is_positive() -> None:
    result = binary_metrics([1, 0], [0.7, 0.7], threshold=0.7)
    assert (result.tp, result.fp) == (1, 1)


@pytest.mark.parametrize("method", ["clopper-pearson", "jeffreys"])
def test_ci_method_is_passed_on(method: str) -> None:
    result = binary_metrics(*LIVER_SCAN, threshold=0.5, ci_method=method, alpha=0.1)
    assert result.sensitivity == proportion_ci(231, 258, method, alpha=0.1)
    assert result.ci_method == method


def test_no_predicted_positive_gives_nan_ppv() -> None:
    result = binary_metrics([1, 0, 0], [0.1, 0.2, 0.3], threshold=0.9)
    assert math.isnan(result.ppv.estimate)
    assert result.specificity.estimate == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([1, 0, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        (["a", "b"], [0.1, 0.2], "booleans or 0/1"),
        ([1, 0], [0.1, float("nan")], "missing or infinite"),
        ([1, 0, 1], [0.1, 0.2], "differ in length"),
        ([[1, 0]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_bad_input_raises(y_true: list, y_score: list, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        binary_metrics(y_true, y_score, threshold=0.5)


def test_to_dict_is_flat_and_numeric() -> None:
    logged = binary_metrics(*LIVER_SCAN, threshold=0.5).to_dict()
    assert logged["sensitivity"] == pytest.approx(231 / 258)
    assert {"sensitivity_ci_low", "sensitivity_ci_high", "tp", "threshold"} <= logged.keys()
    assert "alpha" not in logged and "ci_method" not in logged
    assert all(isinstance(v, int | float) for v in logged.values())


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=1, max_size=60),
    threshold=st.floats(0, 1),
)
def test_every_interval_contains_its_estimate(data: list, threshold: float) -> None:
    y_true, y_score = zip(*data, strict=True)
    result = binary_metrics(list(y_true), list(y_score), threshold)
    for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        value = getattr(result, name)
        assert math.isnan(value.estimate) or value.contains(value.estimate)
