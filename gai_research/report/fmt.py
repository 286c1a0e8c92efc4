"""Numbers as the report prints them, the same way everywhere.

Proportions, AUC, CPM, ICC and Dice get three decimals (``0.912 [0.871–0.943]``),
seconds three significant figures (``1.23 s``), volumes two decimals (``0.42 mL``),
counts thousands separators (``1,204``). A minus sign is U+2212; an interval with a
negative bound is written ``[−3.10, 0.70]`` so the dash is never read as a sign.
A value that could not be estimated (NaN) prints as ``n/e``; one not logged as ``—``.
"""

from __future__ import annotations

import math

__all__ = ["MISSING", "NOT_ESTIMABLE", "STYLES", "fmt_ci", "fmt_estimate", "fmt_value"]

MISSING = "—"
NOT_ESTIMABLE = "n/e"
MINUS = "\u2212"
STYLES = ("prop", "count", "seconds", "ml", "per1000", "rate", "p", "diff", "plain")
UNITS = {"seconds": " s", "ml": " mL", "rate": "/h"}


def _signed(text: str) -> str:
    return text.replace("-", MINUS)


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f}"
    if magnitude >= 0.001:
        return f"{value:#.3g}"
    return "<0.001" if value > 0 else f"{value:.1e}"


def _bare(value: float, style: str) -> str:
    if style == "prop":
        return f"{value:.3f}"
    if style == "diff":
        return f"{value:+.3f}"
    if style == "count":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    if style == "seconds":
        return _seconds(value)
    if style == "ml":
        return f"{value:.2f}"
    if style in ("per1000", "rate"):
        return f"{value:,.1f}"
    if style == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if style == "plain":
        return f"{value:.4g}"
    raise ValueError(f"unknown number style {style!r}")


def fmt_value(value: float | None, style: str, *, unit: bool = True) -> str:
    """One number in ``style`` (see :data:`STYLES`), with its unit where it has one."""
    if value is None:
        return MISSING
    if isinstance(value, float) and math.isnan(value):
        return NOT_ESTIMABLE
    text = _signed(_bare(float(value), style))
    return text + UNITS.get(style, "") if unit else text


def fmt_ci(low: float | None, high: float | None, style: str) -> str:
    """``[low–high]``; ``[low, high]`` when a bound is negative; empty when not logged."""
    if low is None or high is None:
        return ""
    if any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return f"[{NOT_ESTIMABLE}]"
    a, b = fmt_value(low, style, unit=False), fmt_value(high, style, unit=False)
    sep = ", " if (low < 0 or high < 0) else "–"
    return f"[{a}{sep}{b}]"


def fmt_estimate(value: float | None, low: float | None, high: float | None, style: str) -> str:
    """``0.912 [0.871–0.943]``, or the value alone when there is no interval."""
    ci = fmt_ci(low, high, style)
    text = fmt_value(value, style, unit=not ci)
    if not ci:
        return text
    return f"{text} {ci}{UNITS.get(style, '')}"
