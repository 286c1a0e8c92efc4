"""One error base class for the whole platform.

Every error carries the facts and says the fix: the CLI prints ``str(error)`` on
one line and exits non-zero, so a message must make sense on its own.
"""

from __future__ import annotations


class GaiError(Exception):
    """Base class of every error the platform raises on purpose.

    ``message`` says what went wrong, ``hint`` what to do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(GaiError):
    """Settings that cannot be used: bad values, bad site names, unreadable files."""


class HomeError(GaiError):
    """The platform home is missing, incomplete, or has unsafe permissions."""


class ServiceError(GaiError):
    """An external service (Orthanc, a DICOM peer, a tool from Debian) is missing or failing."""
