"""What the pipeline hands around: per-object outcomes, counts, and typed events for hooks.

An :class:`EntryOutcome` is what processing one spool entry produced (it crosses process
boundaries, so it is small: the pseudonymized header without pixel data, the vault
record, where the file went). Events (:class:`InstanceStored`,
:class:`InstanceQuarantined`, :class:`BatchCommitted`, :class:`SnapshotPublished`) carry
pseudonymous UIDs, counts and reasons only: a hook may log or display them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gai_research.config import Site

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from gai_research.deid.types import DeidRecord, QuarantineReason
    from gai_research.store.types import StoredFile

__all__ = [
    "BatchCommitted",
    "EntryOutcome",
    "InstanceQuarantined",
    "InstanceStored",
    "PipelineCounts",
    "PipelineEvent",
    "PipelineHandler",
    "SnapshotPublished",
    "SourceQueried",
]


@dataclass
class EntryOutcome:
    """What processing one spool entry gave: a stored file, a quarantined object, or nothing.

    ``status`` is ``stored`` (pseudonymized and written; ``header`` is the pseudonymized
    dataset without pixel data, ``record`` the vault's record), ``quarantined`` (the
    raw object copied into the quarantine with ``reason``) or ``vanished`` (the spool
    entry was gone before it could be read: another process took it).
    """

    digest: str
    site: Site
    status: Literal["stored", "quarantined", "vanished"]
    stored: StoredFile | None = None
    header: Dataset | None = field(default=None, repr=False)
    record: DeidRecord | None = field(default=None, repr=False)
    reason: QuarantineReason | None = None
    detail: str = ""
    quarantine_name: str = ""


@dataclass
class PipelineCounts:
    """Counts of processed spool entries: ``processed == new + duplicates + quarantined + vanished``.

    ``new``: instances the catalog did not hold before; ``duplicates``: the same SOP
    instance (by pseudonymous SOP Instance UID) was already stored and catalogued, so
    nothing changed; ``quarantined``: by reason; ``vanished``: entries another process
    removed first.
    """

    processed: int = 0
    new: int = 0
    duplicates: int = 0
    quarantined: Counter = field(default_factory=Counter)
    vanished: int = 0

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def accounted(self) -> bool:
        return self.processed == self.new + self.duplicates + self.quarantined_total + self.vanished

    def add(self, other: PipelineCounts) -> None:
        self.processed += other.processed
        self.new += other.new
        self.duplicates += other.duplicates
        self.quarantined.update(other.quarantined)
        self.vanished += other.vanished

    def copy(self) -> PipelineCounts:
        return PipelineCounts(
            self.processed, self.new, self.duplicates, Counter(self.quarantined), self.vanished
        )

    def since(self, earlier: PipelineCounts) -> PipelineCounts:
        """What was counted after ``earlier`` (a copy of these counts taken then)."""
        return PipelineCounts(
            self.processed - earlier.processed,
            self.new - earlier.new,
            self.duplicates - earlier.duplicates,
            self.quarantined - earlier.quarantined,
            self.vanished - earlier.vanished,
        )

    def as_dict(self) -> dict[str, int]:
        """Flat counts for ``ingest_runs.counts`` and the audit trail."""
        counts = {
            "processed": self.processed,
            "stored_new": self.new,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined_total,
        }
        if self.vanished:
            counts["vanished"] = self.vanished
        for reason, count in sorted(self.quarantined.items()):
            counts[f"quarantined_{reason}"] = count
        return counts

    def summary(self) -> str:
        """One line, no identifiers: ``12 stored new, 3 duplicates, 1 quarantined (truncated)``."""
        line = f"{self.new} stored new, {self.duplicates} duplicate(s)"
        if self.quarantined:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.quarantined.items()))
            line += f", {self.quarantined_total} quarantined ({why})"
        if self.vanished:
            line += f", {self.vanished} taken by another process"
        return line


# --- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceStored:
    """A pseudonymized instance is in the store and its catalog rows are committed."""

    site: Site
    study_uid: str  # pseudonymous
    series_uid: str  # pseudonymous
    sop_uid: str  # pseudonymous
    relpath: str
    size: int


@dataclass(frozen=True)
class InstanceQuarantined:
    """A spool entry went to the quarantine (``name`` is its file there, a content hash)."""

    site: Site
    reason: QuarantineReason
    detail: str
    name: str


@dataclass(frozen=True)
class BatchCommitted:
    """One catalog transaction of one site committed; its spool entries are removed."""

    site: Site
    counts: PipelineCounts
    seconds: float


@dataclass(frozen=True)
class SnapshotPublished:
    """A catalog snapshot was published after a run or a batch (``created`` False: unchanged)."""

    snapshot_id: str
    created: bool
    instances: int


@dataclass(frozen=True)
class SourceQueried:
    """A run asked its source what it holds: studies found, and instances it will fetch."""

    site: Site
    source: str
    studies: int
    to_fetch: int | None  # instances of the studies not yet complete in the catalog


PipelineEvent = InstanceStored | InstanceQuarantined | BatchCommitted | SnapshotPublished
PipelineHandler = Callable[[PipelineEvent], None]
