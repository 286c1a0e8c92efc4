"""Keeping identifiers out of what the DICOM libraries log while ingest runs.

pynetdicom logs the identifiers of C-FIND/C-GET/C-MOVE requests and responses at INFO
(``(0010,0010) PN [...]`` lines, original UIDs) and more at DEBUG; pydicom's warnings
quote element values. :func:`redact_dicom_logs` adds a filter to those loggers that
drops such records, keeping the rest (association set-up, statuses). It is installed
once per process by the ingest entry points (not on import) and is idempotent.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactDicomRecords", "redact_dicom_logs"]

# a dataset dump, a UID, a named identifier attribute
_IDENTIFYING = re.compile(
    r"\([0-9A-Fa-f]{4},\s?[0-9A-Fa-f]{4}\)|UID|Identifier|Patient|Accession|(?:\d+\.){2,}\d{5,}"
)


class RedactDicomRecords(logging.Filter):
    """Drop every pydicom record (values are quoted) and pynetdicom's dataset dumps."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "pydicom" or record.name.startswith("pydicom."):
            return False
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot even be formatted says nothing useful
            return False
        return not _IDENTIFYING.search(message)


def redact_dicom_logs() -> None:
    """Filter the loggers of pydicom and pynetdicom (every module's logger: a filter on a
    parent does not see its children's records)."""
    import pydicom  # noqa: F401  (their module loggers must exist)
    import pynetdicom  # noqa: F401

    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in ("pydicom", "pynetdicom")
    ]
    for name in ["pydicom", "pynetdicom", *names]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactDicomRecords) for f in logger.filters):
            logger.addFilter(RedactDicomRecords())
