"""Results of the metrics: immutable, named, and flat enough to log to MLflow.

Every result is a frozen dataclass with ``to_dict()``, which returns only scalar numbers
(``{name: float}``), ready for ``mlflow.log_metrics``; ``alpha`` is a setting, not a
metric, and is left out. An :class:`Estimate` field ``x``
becomes three keys ``x``, ``x_ci_low`` and ``x_ci_high``; counts stay integers; strings
(method names) and arrays (curves, per-case tables) are left out, because MLflow logs
those as params and artifacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "BinaryMetrics",
    "BlandAltmanResult",
    "DelongTest",
    "Estimate",
    "FrocResult",
    "IccResult",
    "LatencySummary",
    "OperatingPoint",
    "ScreeningMetrics",
]


class Estimate(NamedTuple):
    """A point estimate with the bounds of its confidence interval.

    It is a tuple, so ``value, low, high = proportion_ci(...)`` works; NaN marks a value
    that the data cannot define (for example a proportion of zero cases).
    """

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high`` (False when any bound is NaN)."""
        return bool(self.low <= value <= self.high)


_NOT_METRICS = frozenset({"alpha"})


def _flatten(result: Any) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for field in fields(result):
        if field.name in _NOT_METRICS:
            continue
        value = getattr(result, field.name)
        if isinstance(value, Estimate):
            out[field.name] = float(value.estimate)
            out[f"{field.name}_ci_low"] = float(value.low)
            out[f"{field.name}_ci_high"] = float(value.high)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | np.integer):
            out[field.name] = int(value)
        elif isinstance(value, float | np.floating):
            out[field.name] = float(value)
    return out


class _Loggable:
    def to_dict(self) -> dict[str, float | int]:
        """Scalar numbers of this result, keyed for ``mlflow.log_metrics``."""
        return _flatten(self)


@dataclass(frozen=True)
class BinaryMetrics(_Loggable):
    """Confusion counts at one threshold and the proportions made from them.

    A case is called positive when ``score >= threshold``. Each proportion is an
    :class:`Estimate` whose interval comes from ``ci_method``; a proportion with a zero
    denominator (no positives, no predicted positives, ...) is NaN.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    n: int
    prevalence: float
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    accuracy: Estimate
    ci_method: str
    alpha: float


@dataclass(frozen=True)
class OperatingPoint(_Loggable):
    """The operating point chosen on the empirical ROC curve for a target.

    ``target`` is the specificity (or sensitivity) asked for, ``constraint`` says which;
    ``threshold`` is the score cut-off used (``score >= threshold`` is positive; ``inf``
    means "call nothing positive"). With ``n_bootstrap > 0`` the interval of the optimised
    measure is a stratified bootstrap percentile interval in which the threshold is chosen
    again in every resample; otherwise both intervals are ``ci_method`` intervals that hold
    the threshold fixed.
    """

    constraint: str
    target: float
    threshold: float
    sensitivity: Estimate
    specificity: Estimate
    n_positive: int
    n_negative: int
    n_bootstrap: int
    ci_method: str
    alpha: float


@dataclass(frozen=True)
class DelongTest(_Loggable):
    """Paired DeLong test of two AUCs on the same cases (as pROC's ``roc.test``).

    ``ci_low``/``ci_high`` bound ``auc_a - auc_b``; ``var_a``, ``var_b`` and ``covariance``
    are the DeLong (co)variances of the two AUCs.
    """

    auc_a: float
    auc_b: float
    difference: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    var_a: float
    var_b: float
    covariance: float
    n_positive: int
    n_negative: int
    alpha: float


@dataclass(frozen=True)
class FrocResult(_Loggable):
    """FROC analysis by the LUNA16 rules, with scan-level bootstrap intervals.

    ``sensitivities[i]`` is the sensitivity at ``fps_per_scan[i]`` false positives per
    scan (an :class:`Estimate`); ``cpm`` is their mean. ``curve_fps``,
    ``curve_sensitivity`` and ``curve_thresholds`` are the full FROC curve (starting at
    the point (0, 0) with threshold ``inf``). ``nodule_probability`` holds, in the order
    of the nodules given, the probability of the candidate that detected each nodule (NaN
    when missed); ``candidate_outcome`` says for every candidate, in input order, whether
    it was the true positive of a nodule (``"tp"``), a false positive (``"fp"``) or
    ignored (``"ignored"``: a second hit on a nodule or a hit on an excluded finding).
    """

    cpm: Estimate
    fps_per_scan: tuple[float, ...]
    sensitivities: tuple[Estimate, ...]
    n_scans: int
    n_nodules: int
    n_detected: int
    n_candidates: int
    n_false_positives: int
    n_ignored: int
    curve_fps: np.ndarray
    curve_sensitivity: np.ndarray
    curve_thresholds: np.ndarray
    nodule_probability: np.ndarray
    candidate_outcome: np.ndarray
    n_bootstrap: int
    alpha: float

    def to_dict(self) -> dict[str, float | int]:
        out = _flatten(self)
        for rate, estimate in zip(self.fps_per_scan, self.sensitivities, strict=True):
            key = f"sensitivity_at_{rate:g}_fps"
            out[key] = float(estimate.estimate)
            out[f"{key}_ci_low"] = float(estimate.low)
            out[f"{key}_ci_high"] = float(estimate.high)
        return out


@dataclass(frozen=True)
class ScreeningMetrics(_Loggable):
    """Screening-audit measures of a recall decision (mammography).

    ``recall_rate`` is recalls / screens, ``cancer_detection_rate`` screen-detected cancers
    per 1,000 screens, ``ppv1`` cancers among recalls (PPV of the abnormal interpretation).
    """

    n: int
    recalls: int
    cancers: int
    screen_detected: int
    recall_rate: Estimate
    cancer_detection_rate: Estimate
    ppv1: Estimate
    sensitivity: Estimate
    specificity: Estimate
    ci_method: str
    alpha: float


@dataclass(frozen=True)
class IccResult(_Loggable):
    """An intraclass correlation (Shrout & Fleiss 1979) with its F-based interval.

    ``f_value`` with ``df1``/``df2`` and ``p_value`` test ICC = 0.
    """

    kind: str
    icc: Estimate
    f_value: float
    df1: float
    df2: float
    p_value: float
    n_targets: int
    n_raters: int
    alpha: float


@dataclass(frozen=True)
class BlandAltmanResult(_Loggable):
    """Bland-Altman agreement of two methods (differences ``a - b``).

    Limits of agreement are ``bias -/+ multiplier * sd``; their intervals use the
    standard error ``sd * sqrt(1/n + multiplier**2 / (2 (n - 1)))`` (Bland & Altman 1999)
    with Student's t on ``n - 1`` degrees of freedom.
    """

    n: int
    bias: Estimate
    sd: float
    multiplier: float
    lower_loa: Estimate
    upper_loa: Estimate
    alpha: float


@dataclass(frozen=True)
class LatencySummary(_Loggable):
    """Distribution of latencies in seconds over the calls that completed.

    ``n`` counts completed calls; ``failures`` (None/NaN given) and ``timeouts`` (values
    at or above the timeout, when one is given) are counted apart and left out of every
    statistic. With no completed call the statistics are NaN.
    """

    n: int
    failures: int
    timeouts: int
    median: float
    q1: float
    q3: float
    p95: float
    max: float
    mean: float

    @property
    def n_total(self) -> int:
        return self.n + self.failures + self.timeouts

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1 if not math.isnan(self.q1) else math.nan
