"""Errors of the ingest stage.

Messages never carry an identifier: no patient data, no UIDs, no file paths from a
PACS or a medium (paths may hold names). Counts and site names say what happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gai_research.errors import GaiError, ServiceError

if TYPE_CHECKING:
    from gai_research.ingest.types import FetchResult

__all__ = ["IngestError", "ReceiverError", "SourceError", "SpoolError"]


class IngestError(GaiError):
    """Base class of the errors raised by :mod:`gai_research.ingest`."""


class SpoolError(IngestError):
    """The restricted spool is missing, too open, or cannot be written."""


class SourceError(IngestError, ServiceError):
    """A PACS, DICOMweb server or medium failed during a query or a transfer.

    ``partial`` holds what the interrupted fetch had spooled before it failed (those
    objects stay in the spool; a rerun adds only what is missing).
    """

    def __init__(
        self, message: str, *, hint: str | None = None, partial: FetchResult | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.partial = partial


class ReceiverError(IngestError, ServiceError):
    """The platform's C-STORE SCP cannot start (port in use, bad AE title)."""
