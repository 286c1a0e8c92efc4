"""Ingest: bring images from the site PACS (and media) into the restricted spool.

Sources share one protocol (:class:`Source`): ``find_studies(since, until, modality)``
then ``fetch(study, spool)``. :class:`DimseSource` queries by C-FIND and retrieves by
C-MOVE (to the platform's own C-STORE SCP) or C-GET; :class:`DicomWebSource` by
QIDO-RS / WADO-RS; :class:`FolderSource` reads a folder or a DICOMDIR.
:class:`StorageSCP` is the receiver behind ``gai receive``. Everything lands in the
:class:`Spool` (content-addressed, crash-safe, 0700), from which the pipeline
pseudonymizes, stores and catalogs, then removes the entry.

Importing this package is cheap: pydicom, pynetdicom and dicomweb-client load when a
source or the receiver is used.
"""

from __future__ import annotations

from gai_research.ingest.dicomweb import DicomWebSource
from gai_research.ingest.dimse import DimseSource
from gai_research.ingest.errors import IngestError, ReceiverError, SourceError, SpoolError
from gai_research.ingest.folder import FolderScan, FolderSource
from gai_research.ingest.scp import StorageSCP
from gai_research.ingest.spool import Spool
from gai_research.ingest.types import (
    AssociationClosed,
    AssociationRejected,
    FetchResult,
    IngestEvent,
    ObjectReceived,
    ObjectRejected,
    Source,
    SpoolEntry,
    StudyRef,
)

__all__ = [
    "AssociationClosed",
    "AssociationRejected",
    "DicomWebSource",
    "DimseSource",
    "FetchResult",
    "FolderScan",
    "FolderSource",
    "IngestError",
    "IngestEvent",
    "ObjectReceived",
    "ObjectRejected",
    "ReceiverError",
    "Source",
    "SourceError",
    "Spool",
    "SpoolEntry",
    "SpoolError",
    "StorageSCP",
    "StudyRef",
]
