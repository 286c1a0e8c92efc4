"""Keyed names for what the gateway handles: study keys and result UIDs.

An original Study Instance UID is an identifier. Everything the gateway shows
(status, explain, logs, MLflow) names a study by its *study key*, an HMAC of the UID
under the platform key: stable across restarts and sites, and not reversible without
the key. Result objects get UIDs derived the same way from (study key, model), so
storing a result again after a crash overwrites the same object in the PACS instead
of adding a second one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

__all__ = ["file_name", "redact", "result_uid", "study_key"]

_PURPOSE = b"gai-gateway/v1/"


def _mac(secret: bytes, purpose: str, material: str) -> bytes:
    key = hmac.new(secret, _PURPOSE + purpose.encode("ascii"), hashlib.sha256).digest()
    return hmac.new(key, material.encode("utf-8"), hashlib.sha256).digest()


def study_key(secret: bytes, study_uid: str) -> str:
    """``GS`` + 16 base32 characters: the study's name outside the restricted database."""
    return "GS" + base64.b32encode(_mac(secret, "study", study_uid)[:10]).decode("ascii")


def result_uid(secret: bytes, key: str, model: str, what: str) -> str:
    """A ``2.25.`` UID for a result object (``what``: series, instance) of (study, model)."""
    digest = _mac(secret, "result", f"{key}\0{model}\0{what}")
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def file_name(sop_uid: str) -> str:
    """A spool file name for an instance: a hash of its SOP Instance UID (no identifier)."""
    return hashlib.sha256(sop_uid.encode("utf-8")).hexdigest()[:24] + ".dcm"


_IDENTIFYING = re.compile(r"\d+(?:\.\d+){2,}|'[^']*'|\"[^\"]*\"|\d{5,}")


def redact(text: str, limit: int = 300) -> str:
    """A message safe to store, print and log: UIDs, quoted values and long numbers cut out.

    Model adapters and DICOM libraries may quote UIDs or header values in their
    exceptions; the gateway keeps only the shape of the message.
    """
    return _IDENTIFYING.sub("…", str(text))[:limit]
