"""Errors of the results report: each says what went wrong and what to do next."""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["PdfError", "PinnedRunsError", "ReportError"]


class ReportError(GaiError):
    """The report cannot be made as asked (bad options, an unreadable tracking store)."""


class PinnedRunsError(ReportError):
    """A pinned-runs file that cannot be used: bad YAML, unknown or clashing run ids."""


class PdfError(ReportError):
    """Chromium is missing or did not print the PDF (or the screenshot)."""
