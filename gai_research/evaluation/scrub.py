"""Take identifiers out of error text before it goes to MLflow, tables or reports.

Error messages may quote what they failed on: a UID, a pseudonym, a file path with a
patient folder. Tags and reports need the cell, the exception and the gist, not those.
"""

from __future__ import annotations

import re

__all__ = ["scrub"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# DICOM UIDs: 1.2.840.x.y..., 2.25.<big integer>, or any dotted number with a long component
_UID = re.compile(r"\b\d+(?:\.\d+){3,}\b|\b\d+(?:\.\d+)*\.\d{6,}(?:\.\d+)*\b")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s/'\"():,]+){2,}/?")  # absolute paths
# long tokens mixing letters and digits: pseudonyms, accession numbers, hex digests
_TOKEN = re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{10,}\b")
_DIGITS = re.compile(r"\b\d{6,}(?:-\d{5,})?\b")  # hospital IDs, resident registration numbers


def scrub(text: object, limit: int = 500, *, keep_paths: bool = False) -> str:
    """``text`` on one line with UIDs, paths, long ID-like tokens and digit runs masked.

    ``keep_paths`` keeps file paths (UIDs and IDs in them are still masked): for platform
    errors whose fix names a file, such as a models file under the platform home.
    """
    out = _ANSI.sub("", str(text))
    out = _UID.sub("<uid>", out)
    if not keep_paths:
        out = _PATH.sub("<path>", out)
    out = _TOKEN.sub("<id>", out)
    out = _DIGITS.sub("<number>", out)
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."
