"""Errors of the evaluation engine (protocols, per-case tables, runs); metrics have their own."""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["CaseTableError", "EvaluationError", "ProtocolError"]


class EvaluationError(GaiError):
    """An evaluation could not be prepared or run (no cohort, no notebook, no tracking store)."""


class ProtocolError(EvaluationError):
    """A protocol file that cannot be used; the message names the file, the key and the fix."""


class CaseTableError(EvaluationError):
    """A per-case table without the columns or values its notebook needs."""
