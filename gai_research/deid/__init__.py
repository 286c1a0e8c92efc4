"""Pseudonymization: keyed, consistent across hospitals, DICOM PS3.15 Annex E with Korean identifiers.

``pseudonymize(dataset, profile, key, site)`` is the pure function (one dataset
in, one out, plus a record for the vault); ``run_folder`` runs it over a folder
with a process pool, quarantine, vault and audit; ``gai deid`` is the command.

    >>> from gai_research.deid import load_profile, pseudonymize
    >>> result = pseudonymize(ds, load_profile(), key, "SUWON")  # doctest: +SKIP
    >>> result.dataset.PatientID, result.record.pseudonym  # doctest: +SKIP
"""

from __future__ import annotations

from gai_research.deid.actions import ActionTable
from gai_research.deid.engine import pseudonymize
from gai_research.deid.errors import DeidError, ProfileError, RejectedError, VaultError
from gai_research.deid.keys import KeyRing
from gai_research.deid.profile import Profile, load_profile
from gai_research.deid.runner import run_folder
from gai_research.deid.types import (
    DeidRecord,
    DeidResult,
    FileOutcome,
    QuarantineReason,
    RunSummary,
)
from gai_research.deid.vault import Vault

__all__ = [
    "ActionTable",
    "DeidError",
    "DeidRecord",
    "DeidResult",
    "FileOutcome",
    "KeyRing",
    "Profile",
    "ProfileError",
    "QuarantineReason",
    "RejectedError",
    "RunSummary",
    "Vault",
    "VaultError",
    "load_profile",
    "pseudonymize",
    "run_folder",
]
