"""Sensitivity, specificity, predictive values and accuracy at one threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from gai_research.evaluation.metrics._validate import (
    as_binary,
    as_scores,
    check_alpha,
    check_same_length,
)
from gai_research.evaluation.metrics.proportions import CIMethod, proportion_ci
from gai_research.evaluation.metrics.types import BinaryMetrics

__all__ = ["binary_metrics"]


def binary_metrics(
    y_true: Any,
    y_score: Any,
    threshold: float,
    ci_method: CIMethod | str = CIMethod.WILSON,
    alpha: float = 0.05,
) -> BinaryMetrics:
    """Confusion counts and proportions, each with a ``1 - alpha`` interval.

    A case is called positive when ``y_score >= threshold`` (so binary predictions work
    with ``threshold=1`` or ``0.5``). Intervals come from :func:`proportion_ci` with
    ``ci_method`` (Wilson by default); a proportion whose denominator is zero is NaN.
    NaN scores raise: decide first how failed cases count.
    """
    alpha = check_alpha(alpha)
    method = CIMethod.parse(ci_method)
    y = as_binary(y_true, "y_true")
    score = as_scores(y_score, "y_score")
    check_same_length(y_true=y, y_score=score)
    called = score >= float(threshold)
    tp = int(np.count_nonzero(called & y))
    fp = int(np.count_nonzero(called & ~y))
    fn = int(np.count_nonzero(~called & y))
    tn = int(np.count_nonzero(~called & ~y))
    n = y.size
    return BinaryMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        n=n,
        prevalence=(tp + fn) / n if n else float("nan"),
        sensitivity=proportion_ci(tp, tp + fn, method, alpha),
        specificity=proportion_ci(tn, tn + fp, method, alpha),
        ppv=proportion_ci(tp, tp + fp, method, alpha),
        npv=proportion_ci(tn, tn + fn, method, alpha),
        accuracy=proportion_ci(tp + tn, n, method, alpha),
        ci_method=method.value,
        alpha=alpha,
    )
