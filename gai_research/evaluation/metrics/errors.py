"""The error the metrics raise when their input cannot give a meaningful number."""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["MetricsError"]


class MetricsError(GaiError, ValueError):
    """Input a metric cannot use: wrong shapes, labels that are not binary, NaN scores,
    too few cases of a class for a variance, an unknown method name.

    It is also a :class:`ValueError`, so callers that already catch bad values keep working.
    """
