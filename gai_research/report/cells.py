"""Every number the report prints is a :class:`Num`, and every printed one is cited.

The template prints numbers only through :meth:`Ledger.cell`, which gives each one an
id, writes the run id (or the other source) and the exact value into data attributes,
and records it for ``report.json``. That is how a reader or a test goes from any cell
back to the MLflow run or catalog snapshot it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from gai_research.report.fmt import fmt_estimate

__all__ = ["Ledger", "Num"]


@dataclass
class Num:
    """A number to print: value, interval, style, and where it came from."""

    value: float | None
    style: str
    metric: str
    source: str  # an MLflow run id, or what else it was read from (snapshot id, file)
    source_kind: str = "run"  # run | catalog | ingest_runs | audit | quarantine | files
    low: float | None = None
    high: float | None = None
    flag: str | None = None  # best | worst: CIs separate from every other model's
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return fmt_estimate(self.value, self.low, self.high, self.style)


def _json_number(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _attr(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class Ledger:
    """Numbers printed so far, in page order (``report.json`` lists them)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def cell(
        self, num: Num | None, section: str, flag_titles: dict[str, str] | None = None
    ) -> Markup:
        """The HTML of one number (``—`` for None), recorded with its source."""
        if num is None:
            return Markup('<span class="missing">—</span>')
        ident = f"n{len(self.entries) + 1}"
        text = num.text
        entry: dict[str, Any] = {
            "id": ident,
            "section": section,
            "metric": num.metric,
            "value": _json_number(num.value),
            "ci_low": _json_number(num.low),
            "ci_high": _json_number(num.high),
            "text": text,
            "source_kind": num.source_kind,
            "run_id" if num.source_kind == "run" else "source": num.source,
            **num.context,
        }
        if num.value is not None and isinstance(num.value, float) and math.isnan(num.value):
            entry["not_estimable"] = True
        if num.flag:
            entry["flag"] = num.flag
        self.entries.append(entry)
        source_attr = "data-run-id" if num.source_kind == "run" else "data-source"
        attrs = [
            f'id="{ident}"',
            f'class="num{" flag-" + num.flag if num.flag else ""}"',
            f'data-metric="{escape(num.metric)}"',
            f'{source_attr}="{escape(num.source)}"',
            f'data-value="{_attr(num.value)}"',
        ]
        if num.low is not None and num.high is not None:
            attrs += [f'data-ci-low="{_attr(num.low)}"', f'data-ci-high="{_attr(num.high)}"']
        html = f"<span {' '.join(attrs)}>{escape(text)}</span>"
        if num.flag:
            mark = "▲" if num.flag == "best" else "▼"
            title = (flag_titles or {}).get(num.flag, num.flag)
            html += f'<span class="flag flag-{num.flag}" title="{escape(title)}">{mark}</span>'
        return Markup(html)
