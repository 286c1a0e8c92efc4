"""Agreement of measurements (brain-MRI volumetry): Dice overlap, ICC, Bland-Altman."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np

from gai_research.evaluation.metrics._validate import check_alpha, z_critical
from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.types import BlandAltmanResult, Estimate, IccResult

__all__ = ["IccKind", "bland_altman", "dice", "icc"]


def dice(mask_a: Any, mask_b: Any, empty: float = math.nan) -> float:
    """Dice overlap ``2 |A & B| / (|A| + |B|)`` of two masks of the same shape.

    Non-zero voxels are foreground. When both masks are empty the overlap is undefined
    and ``empty`` is returned (NaN by default, so an average can skip it; pass 1.0 to
    count "both found nothing" as agreement). When exactly one is empty the Dice is 0.
    MONAI's ``DiceMetric(include_background=True)`` gives the same value for non-empty
    masks; its ``ignore_empty`` rule looks only at the ground truth, this one at both.
    """
    a = np.asarray(mask_a)
    b = np.asarray(mask_b)
    if a.shape != b.shape:
        raise MetricsError(
            f"masks differ in shape: {a.shape} and {b.shape}",
            hint="resample both masks onto the same grid first",
        )
    a = a.astype(bool, copy=False)
    b = b.astype(bool, copy=False)
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return float(empty)
    return 2.0 * int(np.count_nonzero(a & b)) / total


class IccKind(StrEnum):
    """Shrout & Fleiss (1979) single-rating ICCs (McGraw & Wong 1996 names in brackets)."""

    ONE_WAY = "ICC(1,1)"  # one-way random, absolute agreement
    TWO_WAY_RANDOM = "ICC(2,1)"  # two-way random, absolute agreement [ICC(A,1)]
    TWO_WAY_MIXED = "ICC(3,1)"  # two-way mixed, consistency [ICC(C,1)]

    @classmethod
    def parse(cls, kind: IccKind | str) -> IccKind:
        try:
            return cls(kind)
        except ValueError:
            choices = ", ".join(repr(k.value) for k in cls)
            raise MetricsError(f"unknown ICC kind {kind!r}", hint=f"use one of {choices}") from None


def _ratings(a: Any, b: Any) -> np.ndarray:
    ratings = (
        np.asarray(a, dtype=float)
        if b is None
        else np.column_stack([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    )
    if ratings.ndim != 2 or ratings.shape[0] < 2 or ratings.shape[1] < 2:
        raise MetricsError(
            f"ICC needs at least 2 targets rated by at least 2 raters, got shape {ratings.shape}",
            hint="pass icc(a, b) with one value per target, or an (n_targets, n_raters) matrix",
        )
    if not np.isfinite(ratings).all():
        raise MetricsError(
            "ratings contain missing or infinite values",
            hint="the ANOVA ICC needs every target rated by every rater: drop incomplete targets",
        )
    return ratings


def icc(
    a: Any,
    b: Any = None,
    kind: IccKind | str = IccKind.TWO_WAY_RANDOM,
    alpha: float = 0.05,
) -> IccResult:
    """Single-rating intraclass correlation with its exact/approximate F interval.

    ``icc(a, b)`` compares two raters (say, vendor volumes against reference volumes, one
    value per target); ``icc(matrix)`` takes an ``(n_targets, n_raters)`` matrix.

    From the two-way ANOVA mean squares (rows MSR, columns MSC, error MSE, within MSW):

    - ICC(1,1) = (MSR - MSW) / (MSR + (k-1) MSW), interval from F = MSR/MSW;
    - ICC(2,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n), interval by
      Satterthwaite's approximate degrees of freedom (Shrout & Fleiss 1979, eq. 7-8;
      McGraw & Wong 1996, ICC(A,1));
    - ICC(3,1) = (MSR - MSE) / (MSR + (k-1) MSE), interval from F = MSR/MSE.

    ``f_value``/``p_value`` test ICC = 0. Checked against Shrout & Fleiss's worked example
    (6 targets, 4 judges) and psych::ICC's intervals for it.
    """
    from scipy.stats import f as f_dist

    alpha = check_alpha(alpha)
    chosen = IccKind.parse(kind)
    y = _ratings(a, b)
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * float(((y.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((y.mean(axis=0) - grand) ** 2).sum())
    ss_total = float(((y - grand) ** 2).sum())
    ss_error = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_error) / (n * (k - 1))
    upper_q = 1.0 - alpha / 2.0

    def f_interval(f_obs: float, df1: float, df2: float) -> tuple[float, float]:
        f_low = f_obs / f_dist.ppf(upper_q, df1, df2)
        f_high = f_obs * f_dist.ppf(upper_q, df2, df1)
        return (f_low - 1) / (f_low + k - 1), (f_high - 1) / (f_high + k - 1)

    with np.errstate(divide="ignore", invalid="ignore"):
        if chosen is IccKind.ONE_WAY:
            value = (msr - msw) / (msr + (k - 1) * msw)
            df1, df2 = n - 1, n * (k - 1)
            f_obs = msr / msw
            low, high = f_interval(f_obs, df1, df2)
        elif chosen is IccKind.TWO_WAY_MIXED:
            value = (msr - mse) / (msr + (k - 1) * mse)
            df1, df2 = n - 1, (n - 1) * (k - 1)
            f_obs = msr / mse
            low, high = f_interval(f_obs, df1, df2)
        else:
            value = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
            df1, df2 = n - 1, (n - 1) * (k - 1)
            f_obs = msr / mse
            low, high = _icc21_interval(value, msr, msc, mse, n, k, upper_q)
    p_value = float(f_dist.sf(f_obs, df1, df2))
    return IccResult(
        kind=chosen.value,
        icc=Estimate(float(value), float(low), float(high)),
        f_value=float(f_obs),
        df1=float(df1),
        df2=float(df2),
        p_value=p_value,
        n_targets=n,
        n_raters=k,
        alpha=alpha,
    )


def _icc21_interval(
    value: float, msr: float, msc: float, mse: float, n: int, k: int, upper_q: float
) -> tuple[float, float]:
    """Shrout & Fleiss (1979) interval for ICC(2,1) with Satterthwaite's df."""
    from scipy.stats import f as f_dist

    a = k * value / (n * (1 - value))
    b = 1 + k * value * (n - 1) / (n * (1 - value))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_star = f_dist.ppf(upper_q, n - 1, v)
    f_star2 = f_dist.ppf(upper_q, v, n - 1)
    low = n * (msr - f_star * mse) / (f_star * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f_star2 * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_star2 * msr)
    return low, high


def bland_altman(
    a: Any, b: Any, alpha: float = 0.05, multiplier: float | None = None
) -> BlandAltmanResult:
    """Bias and limits of agreement of two methods measured on the same subjects.

    Differences are ``a - b``. ``bias`` is their mean with a Student-t interval; ``sd``
    their standard deviation (n - 1); the limits are ``bias -/+ multiplier * sd`` where
    ``multiplier`` defaults to z(1 - alpha/2) = 1.96 (Bland & Altman's 1986 paper used 2).
    The limits' intervals use SE = sd * sqrt(1/n + multiplier**2 / (2 (n - 1))) and
    t(n - 1) (Bland & Altman 1999, section 2.2).
    """
    from scipy.stats import t as t_dist

    alpha = check_alpha(alpha)
    first = np.asarray(a, dtype=float)
    second = np.asarray(b, dtype=float)
    if first.ndim != 1 or first.shape != second.shape:
        raise MetricsError(
            f"a and b must be 1-D of equal length, got shapes {first.shape} and {second.shape}",
            hint="pass one measurement per subject for each method",
        )
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        raise MetricsError(
            "measurements contain missing or infinite values",
            hint="drop subjects missing either measurement",
        )
    n = first.size
    if n < 2:
        raise MetricsError(f"Bland-Altman needs at least 2 subjects, got {n}")
    k = z_critical(alpha) if multiplier is None else float(multiplier)
    diff = first - second
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1))
    t_crit = float(t_dist.ppf(1 - alpha / 2, n - 1))
    se_bias = sd / math.sqrt(n)
    se_limit = sd * math.sqrt(1.0 / n + k**2 / (2.0 * (n - 1)))
    lower, upper = bias - k * sd, bias + k * sd
    return BlandAltmanResult(
        n=n,
        bias=Estimate(bias, bias - t_crit * se_bias, bias + t_crit * se_bias),
        sd=sd,
        multiplier=k,
        lower_loa=Estimate(lower, lower - t_crit * se_limit, lower + t_crit * se_limit),
        upper_loa=Estimate(upper, upper - t_crit * se_limit, upper + t_crit * se_limit),
        alpha=alpha,
    )
