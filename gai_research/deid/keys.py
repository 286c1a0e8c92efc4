"""Keyed derivations: patient pseudonyms, UIDs, date shifts, accession numbers.

Everything is HMAC-SHA256 under purpose keys derived from the platform's secret,
so the same input and key give the same output on any worker, at any site, in any
order, and nothing needs a shared counter. Without the key the outputs cannot be
recomputed from the inputs (unlike plain MD5/SHA "hashing"), which is what makes
them pseudonyms in the sense of Korea's PIPA: the key is the additional
information kept apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["KeyRing"]

_VERSION = b"gai-deid/v1/"
PSEUDONYM_PREFIX = "GP"
ACCESSION_PREFIX = "GA"


def _mac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


# The derivations are pure functions of (purpose key, input): cached, since the slices of a
# series repeat their patient, study, series and frame of reference.
@lru_cache(maxsize=256)
def _pseudonym(key: bytes, material: str) -> str:
    return PSEUDONYM_PREFIX + base64.b32encode(_mac(key, material)[:10]).decode("ascii")


@lru_cache(maxsize=256)
def _shift_days(key: bytes, material: str, max_days: int) -> int:
    value = int.from_bytes(_mac(key, material)[:8], "big")
    return -(1 + value % max_days)


@lru_cache(maxsize=256)
def _accession(key: bytes, site: str, original: str) -> str:
    digest = _mac(key, f"{site}\0{original}")
    return ACCESSION_PREFIX + base64.b32encode(digest[:10]).decode("ascii")[:14]


@lru_cache(maxsize=4096)
def _uid(key: bytes, original: str) -> str:
    """A remapped UID (a pure cache: a series' slices share their study, series and frame UIDs)."""
    digest = _mac(key, original)
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


@dataclass(frozen=True)
class KeyRing:
    """Purpose keys derived once from the secret; immutable and cheap to send to workers."""

    patient_key: bytes
    uid_key: bytes
    date_key: bytes
    accession_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> KeyRing:
        if len(secret) < 32:
            raise ValueError("the pseudonymization secret must be at least 32 bytes")

        def derive(purpose: str) -> bytes:
            return hmac.new(secret, _VERSION + purpose.encode("ascii"), hashlib.sha256).digest()

        return cls(
            patient_key=derive("patient"),
            uid_key=derive("uid"),
            date_key=derive("date"),
            accession_key=derive("accession"),
        )

    def __repr__(self) -> str:  # never show key material
        return "KeyRing(<derived keys>)"

    def patient_pseudonym(self, linkage_material: str) -> str:
        """``GP`` + 16 base32 characters (80 bits): fits PatientID (LO) and PatientName (PN)."""
        return _pseudonym(self.patient_key, linkage_material)

    def date_shift_days(self, linkage_material: str, max_days: int) -> int:
        """A per-patient shift in ``[-max_days, -1]``: never zero, dates always move back."""
        return _shift_days(self.date_key, linkage_material, max_days)

    def uid(self, original: str) -> str:
        """``2.25.<integer>`` of a version-4-shaped UUID made from the keyed hash of the UID."""
        return _uid(self.uid_key, original.strip().rstrip("\0"))

    def accession_number(self, site: str, original: str) -> str:
        """``GA`` + 14 base32 characters: fits AccessionNumber (SH, 16)."""
        return _accession(self.accession_key, site, original.strip())
