"""Errors of the gateway; each says what to do next and names no patient, study or UID."""

from __future__ import annotations

from gai_research.errors import GaiError

__all__ = ["GatewayError", "ReturnError", "RulesError"]


class GatewayError(GaiError):
    """The gateway cannot start or run: its home, its port, its database."""


class RulesError(GatewayError):
    """A routing rules file that cannot be used (YAML, an unknown key, a bad regex...).

    ``path`` is where in the file the problem is, e.g. ``rules[2].match.modality``.
    """

    def __init__(self, message: str, *, hint: str | None = None, path: str = "") -> None:
        super().__init__(message, hint=hint)
        self.path = path


class ReturnError(GatewayError):
    """A result could not be stored back into the originating PACS."""
