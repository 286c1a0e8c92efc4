"""The November results report: accuracy and speed of every AI solution at every hospital,
and how the data platform was used, generated from MLflow and the catalog.

    >>> from gai_research.report import build_report, write_report
    >>> report = build_report(lang="ko")                      # latest finished runs
    >>> files = write_report(report, "var/reports/2026-11-20", pdf=True)

``gai report`` does the same from the command line (docs/report.md). Importing this
package is cheap: MLflow, matplotlib and Jinja2 load when a report is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gai_research.report.errors import PdfError, PinnedRunsError, ReportError

if TYPE_CHECKING:
    from gai_research.report.build import Report, ReportFiles, build_report, write_report
    from gai_research.report.collect import collect_runs
    from gai_research.report.pinned import PinnedRuns, read_pinned

__all__ = [
    "PdfError",
    "PinnedRuns",
    "PinnedRunsError",
    "Report",
    "ReportError",
    "ReportFiles",
    "build_report",
    "collect_runs",
    "read_pinned",
    "write_report",
]

_LAZY = {
    "Report": "gai_research.report.build",
    "ReportFiles": "gai_research.report.build",
    "build_report": "gai_research.report.build",
    "write_report": "gai_research.report.build",
    "collect_runs": "gai_research.report.collect",
    "PinnedRuns": "gai_research.report.pinned",
    "read_pinned": "gai_research.report.pinned",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
