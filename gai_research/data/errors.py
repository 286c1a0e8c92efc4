"""Errors of the researcher API (catalog handle, cohorts, export, data cards).

Messages name filters, cohorts, tasks and files, never a value from an image header.
"""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["CardError", "CohortError", "DataError", "ExportError", "FilterError"]


class DataError(GaiError):
    """Base class of the errors raised by :mod:`gai_research.data`."""


class FilterError(DataError):
    """An unknown filter name, or a filter value of the wrong type or out of range."""


class CohortError(DataError):
    """A cohort that cannot be built, saved or loaded (bad name, name taken, missing file)."""


class ExportError(DataError):
    """A training-data export that cannot run (bad format, splits, folder, missing loader)."""


class CardError(DataError):
    """A data card that cannot be written (template missing or with unknown fields)."""
