"""screening_metrics: audit definitions on a counted example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gai_research.evaluation.metrics import MetricsError, proportion_ci, screening_metrics


def screens(
    detected: int, false_recalls: int, missed: int, clear: int
) -> tuple[np.ndarray, np.ndarray]:
    cancer = np.array([1] * detected + [0] * false_recalls + [1] * missed + [0] * clear)
    recalled = np.array([1] * (detected + false_recalls) + [0] * (missed + clear))
    return cancer, recalled


# 10,000 screens, 1,000 recalls of which 50 cancers, 10 interval cancers missed:
# recall rate 10%, cancer detection rate 5 per 1,000, PPV1 5%, sensitivity 50/60.
AUDIT = screens(detected=50, false_recalls=950, missed=10, clear=8990)


@pytest.mark.parametrize(
    ("name", "numerator", "denominator", "scale"),
    [
        ("recall_rate", 1000, 10000, 1),
        ("cancer_detection_rate", 50, 10000, 1000),
        ("ppv1", 50, 1000, 1),
        ("sensitivity", 50, 60, 1),
        ("specificity", 8990, 9940, 1),
    ],
)
def test_audit_measures(name: str, numerator: int, denominator: int, scale: int) -> None:
    value = getattr(screening_metrics(*AUDIT), name)
    expected = proportion_ci(numerator, denominator)
    assert tuple(value) == pytest.approx(tuple(scale * v for v in expected))


def test_counts_and_headline_numbers() -> None:
    result = screening_metrics(*AUDIT)
    assert (result.n, result.recalls, result.cancers, result.screen_detected) == (
        10000,
        1000,
        60,
        50,
    )
    assert result.cancer_detection_rate.estimate == pytest.approx(5.0)
    assert result.recall_rate.estimate == pytest.approx(0.10)
    assert result.ppv1.estimate == pytest.approx(0.05)


def test_no_recalls_gives_nan_ppv1() -> None:
    result = screening_metrics([0, 1, 0], [0, 0, 0])
    assert math.isnan(result.ppv1.estimate)
    assert result.recall_rate.estimate == 0.0


def test_bad_input_raises() -> None:
    with pytest.raises(MetricsError, match="differ in length"):
        screening_metrics([0, 1], [0, 1, 1])
