"""What ingest hands around: study references, spool entries, fetch results, events.

Everything here is identified data's metadata (original UIDs), kept inside the
restricted stages; none of it is written to a log or an error message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from gai_research.config import Site

__all__ = [
    "AssociationClosed",
    "AssociationRejected",
    "EventHandler",
    "FetchResult",
    "IngestEvent",
    "ObjectReceived",
    "ObjectRejected",
    "Source",
    "SpoolEntry",
    "StudyRef",
    "parse_da",
    "parse_int",
]


def parse_da(value: object) -> date | None:
    """A DICOM DA value (``YYYYMMDD``) as a date; None when empty or malformed."""
    text = str(value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_int(value: object) -> int | None:
    """An IS value (or a number) as an int; None when empty or malformed."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyRef:
    """One study as a source reports it, before transfer.

    ``n_instances`` is NumberOfStudyRelatedInstances as the PACS reports it (None when
    it does not); ``sop_classes`` is filled where the source knows them.
    """

    site: Site
    study_uid: str
    study_date: date | None = None
    modalities: tuple[str, ...] = ()
    n_instances: int | None = None
    n_series: int | None = None
    sop_classes: tuple[str, ...] = ()

    def in_range(
        self, since: date | None = None, until: date | None = None, modality: str | None = None
    ) -> bool:
        """Whether the study passes a date-range / modality filter (unknown values pass)."""
        if self.study_date is not None:
            if since is not None and self.study_date < since:
                return False
            if until is not None and self.study_date > until:
                return False
        return not (modality and self.modalities and modality.upper() not in self.modalities)


@dataclass(frozen=True)
class SpoolEntry:
    """One object waiting in the restricted spool.

    ``digest`` is the SHA-256 of the file's bytes (and its file name); ``source`` says
    how it arrived (``c-store``, ``c-move``, ``c-get``, ``wado-rs``, ``folder``, with the
    peer's AE title where there is one). ``new`` is True only on the entry a
    :meth:`~gai_research.ingest.spool.Spool.put` call has just written; a second put of
    the same bytes returns the first entry with ``new=False``.
    """

    path: Path
    digest: str
    site: Site
    source: str
    received_at: datetime
    size: int
    new: bool = field(default=False, compare=False)

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class FetchResult:
    """What one fetch (a study, or a whole folder) put into the spool.

    ``received`` counts objects now in the spool (``new`` of them written by this
    fetch, the rest already there from an earlier run); ``failed`` counts objects that
    did not arrive or were refused, by reason. ``expected`` is what the source said it
    held (None when unknown). ``not_dicom`` counts files of a folder that are not DICOM.
    """

    site: Site
    source: str
    study: StudyRef | None = None
    expected: int | None = None
    received: int = 0
    new: int = 0
    failed: int = 0
    not_dicom: int = 0
    reasons: Counter = field(default_factory=Counter)
    entries: list[SpoolEntry] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    @property
    def already_spooled(self) -> int:
        return self.received - self.new

    @property
    def missing(self) -> int:
        """Objects the source announced that neither arrived nor were reported failed."""
        if self.expected is None:
            return 0
        return max(self.expected - self.received - self.failed, 0)

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.missing == 0

    def fail(self, reason: str, count: int = 1) -> None:
        if count > 0:
            self.failed += count
            self.reasons[reason] += count

    def add(self, entry: SpoolEntry) -> None:
        self.received += 1
        self.new += int(entry.new)
        self.entries.append(entry)

    def summary(self) -> str:
        """One line with the counts (no identifiers)."""
        parts = [f"{self.received} received"]
        if self.expected is not None:
            parts[0] += f" of {self.expected}"
        if self.already_spooled:
            parts.append(f"{self.already_spooled} already spooled")
        if self.failed:
            why = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
            parts.append(f"{self.failed} failed ({why})")
        if self.missing:
            parts.append(f"{self.missing} missing")
        if self.not_dicom:
            parts.append(f"{self.not_dicom} not DICOM")
        return ", ".join(parts)


# --- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectReceived:
    """An object arrived and is in the spool (``entry.new`` False when it already was)."""

    site: Site
    source: str
    peer: str
    entry: SpoolEntry
    sop_class_uid: str
    transfer_syntax_uid: str
    study_uid: str = field(repr=False)
    sop_instance_uid: str = field(repr=False)


@dataclass(frozen=True)
class ObjectRejected:
    """An object was refused (answered with ``status``) or could not be kept."""

    site: Site | None
    source: str
    peer: str
    status: int
    reason: str


@dataclass(frozen=True)
class AssociationRejected:
    """The receiver refused an association (unknown calling AE title, wrong called AE)."""

    peer: str
    address: str
    reason: str


@dataclass(frozen=True)
class AssociationClosed:
    """An association with the receiver ended (released or aborted), with its counts."""

    peer: str
    address: str
    site: Site | None
    received: int
    new: int
    failed: int
    reasons: Counter
    seconds: float
    aborted: bool

    def summary(self) -> str:
        site = self.site.value if self.site else "?"
        line = f"{self.peer} ({site}) from {self.address}: {self.received} received"
        if self.received - self.new:
            line += f" ({self.received - self.new} already spooled)"
        if self.failed:
            why = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
            line += f", {self.failed} failed ({why})"
        end = "aborted" if self.aborted else "released"
        return f"{line}; {end} after {self.seconds:.1f} s"


IngestEvent = ObjectReceived | ObjectRejected | AssociationRejected | AssociationClosed
EventHandler = Callable[[IngestEvent], None]


@runtime_checkable
class Source(Protocol):
    """A place studies come from: a site PACS over DIMSE or DICOMweb, or a folder."""

    site: Site

    def find_studies(
        self, since: date | None = None, until: date | None = None, modality: str | None = None
    ) -> list[StudyRef]:
        """Studies whose StudyDate lies in [since, until] (either end open) and, when
        ``modality`` is given, that hold that modality."""
        ...

    def fetch(self, study: StudyRef, spool, on_instance: EventHandler | None = None) -> FetchResult:
        """Bring every instance of ``study`` into ``spool``; ``on_instance`` sees an
        ObjectReceived or ObjectRejected per object."""
        ...
