"""Confidence intervals for a single binomial proportion (statsmodels underneath)."""

from __future__ import annotations

import math
import operator
from enum import StrEnum

from gai_research.evaluation.metrics._validate import check_alpha
from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.types import Estimate

__all__ = ["CIMethod", "proportion_ci"]


class CIMethod(StrEnum):
    """Interval methods for a proportion; the value is the name notebooks pass."""

    WILSON = "wilson"
    CLOPPER_PEARSON = "clopper-pearson"
    AGRESTI_COULL = "agresti-coull"
    JEFFREYS = "jeffreys"
    NORMAL = "normal"

    @classmethod
    def parse(cls, method: CIMethod | str) -> CIMethod:
        try:
            return cls(method)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in cls)
            raise MetricsError(
                f"unknown confidence-interval method {method!r}", hint=f"use one of {choices}"
            ) from None


# our name -> statsmodels.stats.proportion.proportion_confint's name
_STATSMODELS = {
    CIMethod.WILSON: "wilson",
    CIMethod.CLOPPER_PEARSON: "beta",
    CIMethod.AGRESTI_COULL: "agresti_coull",
    CIMethod.JEFFREYS: "jeffreys",
    CIMethod.NORMAL: "normal",
}


def _count(value: object, name: str) -> int:
    try:
        count = operator.index(value)  # int, numpy integer, bool
    except TypeError:
        number = float(value)  # type: ignore[arg-type]
        if not number.is_integer():
            raise MetricsError(
                f"{name} must be a whole number, got {value!r}", hint="pass counts, not rates"
            ) from None
        count = int(number)
    if count < 0:
        raise MetricsError(f"{name} must not be negative, got {count}")
    return count


def proportion_ci(
    successes: int,
    total: int,
    method: CIMethod | str = CIMethod.WILSON,
    alpha: float = 0.05,
) -> Estimate:
    """``successes / total`` with a two-sided ``1 - alpha`` confidence interval.

    Methods (statsmodels ``proportion_confint`` computes each):

    - ``"wilson"``: Wilson score interval (the default; recommended by Newcombe 1998 and
      Brown, Cai & DasGupta 2001);
    - ``"clopper-pearson"``: the "exact" interval from beta quantiles;
    - ``"agresti-coull"``: the adjusted Wald interval;
    - ``"jeffreys"``: equal-tailed Beta(x + 1/2, n - x + 1/2) interval, with the lower
      bound set to 0 when ``successes == 0`` and the upper to 1 when
      ``successes == total`` (Brown, Cai & DasGupta 2001, section 4.1.2);
    - ``"normal"``: the Wald interval, clipped to [0, 1] (shown for comparison only).

    For every method the lower bound is exactly 0 when ``successes == 0`` and the upper
    bound exactly 1 when ``successes == total``, so the interval contains the estimate.

    ``total == 0`` returns ``Estimate(nan, nan, nan)``: the proportion is undefined, and a
    report table shows it as missing instead of failing the whole evaluation. Negative
    counts, non-integers and ``successes > total`` raise :class:`MetricsError`.
    """
    successes = _count(successes, "successes")
    total = _count(total, "total")
    if successes > total:
        raise MetricsError(
            f"successes ({successes}) exceed total ({total})",
            hint="check which count is the numerator",
        )
    chosen = CIMethod.parse(method)
    alpha = check_alpha(alpha)
    if total == 0:
        return Estimate(math.nan, math.nan, math.nan)

    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, total, alpha=alpha, method=_STATSMODELS[chosen])
    # At 0 and at total every method's bound is exactly 0 (1) in theory; set it so, which
    # also removes floating-point error (Wilson's upper bound at k = n is 1 - 1e-16).
    low = 0.0 if successes == 0 else float(low)
    high = 1.0 if successes == total else float(high)
    return Estimate(successes / total, low, high)
