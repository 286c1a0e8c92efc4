"""Plain data passed between the pseudonymization functions, the runner and the CLI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "DeidRecord",
    "DeidResult",
    "FileOutcome",
    "OriginalIdentity",
    "QuarantineReason",
    "RunSummary",
    "StudyLink",
]


class QuarantineReason(StrEnum):
    """Why a file was put into quarantine instead of the output folder."""

    NOT_DICOM = "not_dicom"
    INCOMPLETE = "incomplete"
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    BURNED_IN_TEXT = "burned_in_text"
    ENCAPSULATED_DOCUMENT = "encapsulated_document"
    INVALID_OUTPUT = "invalid_output"
    DUPLICATE_INSTANCE = "duplicate_instance"
    FAILED = "failed"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    QuarantineReason.NOT_DICOM: "not a DICOM file",
    QuarantineReason.INCOMPLETE: "DICOM without the SOP Class/Instance UIDs of an instance (DICOMDIR, fragment)",
    QuarantineReason.UNREADABLE: "DICOM that pydicom cannot read",
    QuarantineReason.TRUNCATED: "DICOM file cut short (pixel data or elements missing)",
    QuarantineReason.BURNED_IN_TEXT: "pixels may show burned-in text and no cleaning rule matches",
    QuarantineReason.ENCAPSULATED_DOCUMENT: "encapsulated document (PDF/CDA/STL) whose content cannot be cleaned",
    QuarantineReason.INVALID_OUTPUT: "pseudonymized dataset failed validation, not written",
    QuarantineReason.DUPLICATE_INSTANCE: "another, different file already holds this SOP instance",
    QuarantineReason.FAILED: "unexpected error while pseudonymizing",
}


@dataclass(frozen=True)
class OriginalIdentity:
    """The original identifiers behind one pseudonym, for the restricted vault only."""

    site: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    birth_date: str
    rrn_masked: str  # "YYMMDD-G******": enough for the steward to confirm, never the full number


@dataclass(frozen=True)
class StudyLink:
    """One study's original and pseudonymous keys, for the vault."""

    study_uid: str
    pseudo_study_uid: str
    accession_number: str
    pseudo_accession_number: str
    study_date: str


@dataclass
class DeidRecord:
    """What pseudonymizing one dataset did; identifiers only in ``identity`` and ``study``."""

    pseudonym: str
    linkage: str  # "rrn", "site_id" or "study": what keyed the pseudonym
    date_shift_days: int
    identity: OriginalIdentity
    study: StudyLink | None
    sop_instance_uid: str  # the pseudonymous one
    removed: Counter = field(default_factory=Counter)  # what was removed, by kind (no values)
    pixels_cleaned: bool = False


@dataclass
class DeidResult:
    """The pseudonymized dataset and the record of what was done."""

    dataset: Dataset
    record: DeidRecord


@dataclass
class FileOutcome:
    """What happened to one input file of a run. ``index`` is its place in the sorted input list."""

    index: int
    written: bool
    reason: QuarantineReason | None = None
    detail: str = ""
    output: str = ""  # path relative to the output folder, or to the quarantine folder
    record: DeidRecord | None = None
    unchanged: bool = False  # the same output already existed (a re-run)


@dataclass
class RunSummary:
    """Counts of one ``gai deid`` run; ``read == written + sum(quarantined.values())``."""

    run_id: str
    site: str
    read: int = 0
    written: int = 0
    quarantined: Counter = field(default_factory=Counter)
    patients: int = 0
    studies: int = 0
    removed: Counter = field(default_factory=Counter)
    unchanged: int = 0
    elapsed_s: float = 0.0
    output_dir: Path | None = None
    quarantine_dir: Path | None = None
    audit_file: Path | None = None
    vault_file: Path | None = None

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def reconciles(self) -> bool:
        return self.read == self.written + self.quarantined_total

    @property
    def files_per_s(self) -> float:
        return self.read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def table(self) -> list[dict]:
        """Rows for a counts table: read, written, then each quarantine reason."""
        rows = [
            {"outcome": "read", "files": self.read, "note": "every file under the input folder"},
            {
                "outcome": "written",
                "files": self.written,
                "note": f"pseudonymized ({self.unchanged} already present)",
            },
        ]
        for reason in QuarantineReason:
            if self.quarantined.get(reason):
                rows.append(
                    {
                        "outcome": f"quarantined: {reason.value}",
                        "files": self.quarantined[reason],
                        "note": reason.description,
                    }
                )
        return rows
