"""Screening-audit measures for mammography (recall rate, cancer detection rate, PPV1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gai_research.evaluation.metrics._validate import as_binary, check_alpha, check_same_length
from gai_research.evaluation.metrics.proportions import CIMethod, proportion_ci
from gai_research.evaluation.metrics.types import Estimate, ScreeningMetrics

__all__ = ["screening_metrics"]


def screening_metrics(
    y_true: Any,
    y_recalled: Any,
    ci_method: CIMethod | str = CIMethod.WILSON,
    alpha: float = 0.05,
) -> ScreeningMetrics:
    """Audit measures of recall decisions on screening examinations.

    ``y_true`` is 1 for a screen followed by a cancer diagnosis within the audit's
    follow-up window (the protocol defines the window, typically 12 months), ``y_recalled``
    is 1 for a positive (abnormal, recall) interpretation. With n screens:

    - recall rate = recalls / n;
    - cancer detection rate = screen-detected cancers (recalled and cancer) per 1,000
      screens; its interval is the proportion's interval times 1,000;
    - PPV1 = screen-detected cancers / recalls (PPV of abnormal interpretation);
    - sensitivity and specificity of the recall decision.

    Intervals are ``ci_method`` intervals (Wilson by default); zero denominators give NaN.
    """
    alpha = check_alpha(alpha)
    method = CIMethod.parse(ci_method)
    cancer = as_binary(y_true, "y_true")
    recalled = as_binary(y_recalled, "y_recalled")
    check_same_length(y_true=cancer, y_recalled=recalled)
    n = cancer.size
    recalls = int(np.count_nonzero(recalled))
    cancers = int(np.count_nonzero(cancer))
    detected = int(np.count_nonzero(recalled & cancer))
    negatives_not_recalled = int(np.count_nonzero(~recalled & ~cancer))
    rate = proportion_ci(detected, n, method, alpha)
    return ScreeningMetrics(
        n=n,
        recalls=recalls,
        cancers=cancers,
        screen_detected=detected,
        recall_rate=proportion_ci(recalls, n, method, alpha),
        cancer_detection_rate=Estimate(*(1000.0 * value for value in rate)),
        ppv1=proportion_ci(detected, recalls, method, alpha),
        sensitivity=proportion_ci(detected, cancers, method, alpha),
        specificity=proportion_ci(negatives_not_recalled, n - cancers, method, alpha),
        ci_method=method.value,
        alpha=alpha,
    )
