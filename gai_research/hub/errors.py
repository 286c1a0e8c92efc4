"""Errors of the shared hub and its MLflow service."""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["BoundaryError", "HubError"]


class HubError(GaiError):
    """The hub cannot be prepared, started or reached."""


class BoundaryError(HubError):
    """The platform home's permissions would let researchers see identified data."""
