"""Metrics of the November report, each checked against a published reference.

Proportions with confidence intervals, sensitivity/specificity/PPV/NPV, ROC AUC with
DeLong intervals and the paired DeLong test, operating points, FROC/CPM by the LUNA16
rules, screening-audit measures, Dice/ICC/Bland-Altman agreement and latency. Results
are frozen dataclasses with ``to_dict()`` for ``mlflow.log_metrics``. docs/metrics.md
lists each method and the reference it was checked against.

Importing this package loads numpy only; scipy, statsmodels and the rest load inside the
functions that need them.
"""

from gai_research.evaluation.metrics.agreement import IccKind, bland_altman, dice, icc
from gai_research.evaluation.metrics.binary import binary_metrics
from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.froc import LUNA16_FPS_PER_SCAN, froc
from gai_research.evaluation.metrics.latency import latency_summary
from gai_research.evaluation.metrics.operating_point import (
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from gai_research.evaluation.metrics.proportions import CIMethod, proportion_ci
from gai_research.evaluation.metrics.roc import auc_ci, delong_test
from gai_research.evaluation.metrics.screening import screening_metrics
from gai_research.evaluation.metrics.types import (
    BinaryMetrics,
    BlandAltmanResult,
    DelongTest,
    Estimate,
    FrocResult,
    IccResult,
    LatencySummary,
    OperatingPoint,
    ScreeningMetrics,
)

__all__ = [
    "LUNA16_FPS_PER_SCAN",
    "BinaryMetrics",
    "BlandAltmanResult",
    "CIMethod",
    "DelongTest",
    "Estimate",
    "FrocResult",
    "IccKind",
    "IccResult",
    "LatencySummary",
    "MetricsError",
    "OperatingPoint",
    "ScreeningMetrics",
    "auc_ci",
    "binary_metrics",
    "bland_altman",
    "delong_test",
    "dice",
    "froc",
    "icc",
    "latency_summary",
    "proportion_ci",
    "screening_metrics",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
]
