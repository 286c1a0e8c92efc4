"""Errors of the pseudonymization stage.

Messages never carry an identifier: a file is named by its index in the run or by
a hash, a patient by the pseudonym, a value by its attribute keyword.
"""

from __future__ import annotations

from gai_research.deid.types import QuarantineReason
from gai_research.errors import GaiError

__all__ = ["DeidError", "ProfileError", "RejectedError", "VaultError"]


class DeidError(GaiError):
    """Base class of the errors raised by :mod:`gai_research.deid`."""


class ProfileError(DeidError):
    """A pseudonymization profile that cannot be used (bad TOML, unknown option, bad rule)."""


class VaultError(DeidError):
    """The re-identification vault is missing, unreadable or too open."""


class RejectedError(DeidError):
    """One dataset must not (or cannot) be passed on; the runner quarantines its file.

    ``reason`` is the machine-readable quarantine reason, ``message`` a sentence
    without identifiers.
    """

    def __init__(
        self, reason: QuarantineReason | str, message: str, *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = QuarantineReason(reason)
