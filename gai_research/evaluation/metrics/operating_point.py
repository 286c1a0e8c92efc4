"""Operating points on the empirical ROC curve: sensitivity at a specificity and back.

The empirical curve has one point per distinct score (a case is positive when
``score >= threshold``) plus the point (0, 0) at threshold ``inf``. No interpolation: the
reported sensitivity and specificity are those of a threshold a deployment could use.

- ``sensitivity_at_specificity(t)``: among thresholds whose specificity is at least
  ``t``, the one with the highest sensitivity (and, among those, the highest
  specificity);
- ``specificity_at_sensitivity(t)``: among thresholds whose sensitivity is at least
  ``t``, the one with the highest specificity (and then the highest sensitivity).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gai_research.evaluation.metrics._validate import (
    as_binary,
    as_scores,
    check_alpha,
    check_same_length,
)
from gai_research.evaluation.metrics.bootstrap import (
    batch_size,
    check_resamples,
    percentile_interval,
    resample_counts,
)
from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.proportions import CIMethod, proportion_ci
from gai_research.evaluation.metrics.types import Estimate, OperatingPoint

__all__ = ["sensitivity_at_specificity", "specificity_at_sensitivity"]

_EPS = 1e-9


class _Curve:
    """Cases sorted by descending score, grouped at distinct scores."""

    def __init__(self, y_true: Any, y_score: Any) -> None:
        y = as_binary(y_true, "y_true")
        score = as_scores(y_score, "y_score")
        check_same_length(y_true=y, y_score=score)
        self.m, self.n = int(y.sum()), int((~y).sum())
        if self.m == 0 or self.n == 0:
            raise MetricsError(
                f"an operating point needs positive and negative cases, got {self.m} and {self.n}",
                hint="check y_true for this subgroup",
            )
        order = np.argsort(-score, kind="stable")
        self.sorted_positive = y[order]
        sorted_score = score[order]
        # last index of each run of equal scores
        self.ends = np.append(np.flatnonzero(np.diff(sorted_score)), score.size - 1)
        self.thresholds = np.append(np.inf, sorted_score[self.ends])
        self.tp = np.append(0, np.cumsum(self.sorted_positive)[self.ends])
        self.fp = np.append(0, np.cumsum(~self.sorted_positive)[self.ends])

    def weighted_points(
        self, w_pos: np.ndarray, w_neg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative TP and FP counts at each threshold for a batch of resample weights."""
        b = w_pos.shape[0]
        weights = np.empty((b, self.sorted_positive.size))
        weights[:, self.sorted_positive] = w_pos
        weights[:, ~self.sorted_positive] = w_neg
        tp = np.zeros((b, self.ends.size + 1))
        fp = np.zeros((b, self.ends.size + 1))
        tp[:, 1:] = np.cumsum(weights * self.sorted_positive, axis=1)[:, self.ends]
        fp[:, 1:] = np.cumsum(weights * ~self.sorted_positive, axis=1)[:, self.ends]
        return tp, fp


def _check_target(target: float, name: str) -> float:
    target = float(target)
    if not 0.0 <= target <= 1.0:
        raise MetricsError(f"{name} must lie in [0, 1], got {target}", hint="pass 0.9 for 90%")
    return target


def _bootstrap(curve: _Curve, n_resamples: int, seed: int | None, pick: Any) -> np.ndarray:
    rng_pos, rng_neg = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    batch = batch_size(4 * (curve.m + curve.n), n_resamples)
    values = np.empty(n_resamples)
    done = 0
    batches = zip(
        resample_counts(rng_pos, curve.m, n_resamples, batch),
        resample_counts(rng_neg, curve.n, n_resamples, batch),
        strict=True,
    )
    for w_pos, w_neg in batches:
        tp, fp = curve.weighted_points(w_pos, w_neg)
        values[done : done + tp.shape[0]] = pick(tp, fp)
        done += tp.shape[0]
    return values


def _result(
    curve: _Curve,
    index: int,
    constraint: str,
    target: float,
    optimised: str,
    bootstrap: np.ndarray | None,
    ci_method: CIMethod | str,
    alpha: float,
) -> OperatingPoint:
    tp, fp = int(curve.tp[index]), int(curve.fp[index])
    sensitivity = proportion_ci(tp, curve.m, ci_method, alpha)
    specificity = proportion_ci(curve.n - fp, curve.n, ci_method, alpha)
    if bootstrap is not None:
        low, high = percentile_interval(bootstrap, alpha)
        if optimised == "sensitivity":
            sensitivity = Estimate(sensitivity.estimate, low, high)
        else:
            specificity = Estimate(specificity.estimate, low, high)
    return OperatingPoint(
        constraint=constraint,
        target=target,
        threshold=float(curve.thresholds[index]),
        sensitivity=sensitivity,
        specificity=specificity,
        n_positive=curve.m,
        n_negative=curve.n,
        n_bootstrap=0 if bootstrap is None else bootstrap.size,
        ci_method=CIMethod.parse(ci_method).value,
        alpha=alpha,
    )


def sensitivity_at_specificity(
    y_true: Any,
    y_score: Any,
    specificity: float,
    n_bootstrap: int = 0,
    seed: int | None = 0,
    ci_method: CIMethod | str = CIMethod.WILSON,
    alpha: float = 0.05,
) -> OperatingPoint:
    """The highest sensitivity of a threshold whose specificity is at least ``specificity``.

    With ``n_bootstrap=0`` (default) both intervals are ``ci_method`` intervals at the
    chosen threshold (they ignore that the threshold was chosen on the same data). With
    ``n_bootstrap > 0`` the sensitivity interval is a stratified bootstrap percentile
    interval, the threshold being chosen again in every resample (as pROC's ``ci.se``).
    """
    alpha = check_alpha(alpha)
    target = _check_target(specificity, "specificity")
    curve = _Curve(y_true, y_score)
    limit = (1.0 - target) * curve.n + _EPS
    last = int(np.count_nonzero(curve.fp <= limit)) - 1
    # first point with that sensitivity: same TP, fewest FP
    index = int(np.searchsorted(curve.tp[: last + 1], curve.tp[last], side="left"))

    def pick(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
        rows = np.arange(tp.shape[0])
        return tp[rows, np.count_nonzero(fp <= limit, axis=1) - 1] / curve.m

    bootstrap = _bootstrap(curve, check_resamples(n_bootstrap), seed, pick) if n_bootstrap else None
    return _result(curve, index, "specificity", target, "sensitivity", bootstrap, ci_method, alpha)


def specificity_at_sensitivity(
    y_true: Any,
    y_score: Any,
    sensitivity: float,
    n_bootstrap: int = 0,
    seed: int | None = 0,
    ci_method: CIMethod | str = CIMethod.WILSON,
    alpha: float = 0.05,
) -> OperatingPoint:
    """The highest specificity of a threshold whose sensitivity is at least ``sensitivity``.

    Intervals as in :func:`sensitivity_at_specificity`, with the roles swapped.
    """
    alpha = check_alpha(alpha)
    target = _check_target(sensitivity, "sensitivity")
    curve = _Curve(y_true, y_score)
    need = target * curve.m - _EPS
    first = int(np.count_nonzero(curve.tp < need))
    # last point with that specificity: same FP, most TP
    index = int(np.searchsorted(curve.fp, curve.fp[first], side="right")) - 1

    def pick(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
        rows = np.arange(tp.shape[0])
        return 1.0 - fp[rows, np.count_nonzero(tp < need, axis=1)] / curve.n

    bootstrap = _bootstrap(curve, check_resamples(n_bootstrap), seed, pick) if n_bootstrap else None
    return _result(curve, index, "sensitivity", target, "specificity", bootstrap, ci_method, alpha)
