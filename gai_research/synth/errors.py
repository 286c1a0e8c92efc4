"""Errors of the synthetic-cohort generator."""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["CohortSizeError", "OutputDirError", "SynthError"]


class SynthError(GaiError):
    """Base class of errors raised by :mod:`gai_research.synth`."""


class CohortSizeError(SynthError):
    """The requested cohort cannot be generated (e.g. fewer than one patient)."""


class OutputDirError(SynthError):
    """The output folder cannot be used (it is a file, or holds data of someone else)."""
