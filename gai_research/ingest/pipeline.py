"""The ingest pipeline: spool entry -> pseudonymized -> store -> catalog -> vault -> entry removed.

A :class:`Pipeline` is one session of the catalog's one writer. Entries go in with
:meth:`Pipeline.submit` (or :meth:`Pipeline.drain` for the whole spool); each is
pseudonymized and written into the store by :mod:`gai_research.ingest.process`
(in this process or a pool of workers), and the parent commits them in batches:

1. the vault records pseudonym -> original identifiers (upsert: redoable);
2. one catalog transaction adds the rows of the batch (upsert by UID: redoable);
3. only then are the batch's spool entries removed.

So a crash at any point loses nothing (the entries are still in the spool; a rerun
writes the same bytes, a no-op, and upserts the same rows) and duplicates nothing (the
store keeps one file per pseudonymous SOP Instance UID, the catalog one row). Store
files written just before a crash have no catalog row until the rerun adds it; stale
temporary files of interrupted writes are removed when a session opens, which is safe
because the session holds the catalog's writer lock.

Counts are exact: ``new`` is what the catalog did not hold before (the growth of the
instances table across the batch's transaction), ``duplicates`` the rest of the stored
outcomes. A snapshot is published by :meth:`Pipeline.publish` after each run.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gai_research.config import Settings, Site
from gai_research.ingest.outcomes import (
    BatchCommitted,
    EntryOutcome,
    InstanceQuarantined,
    InstanceStored,
    PipelineCounts,
    PipelineEvent,
    PipelineHandler,
    SnapshotPublished,
)
from gai_research.ingest.process import DeidJob, EntryProcessor, WorkItem, chunks
from gai_research.ingest.spool import Spool
from gai_research.ingest.types import SpoolEntry

if TYPE_CHECKING:
    from gai_research.deid.profile import Profile
    from gai_research.store.catalog import CatalogWriter
    from gai_research.store.types import Snapshot

__all__ = ["Pipeline", "make_job", "open_writer"]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256  # instances per catalog transaction (~50 ms fixed cost each)
CHUNK = 16  # entries per worker task
LOCK_POLL_S = 0.25


def make_job(
    settings: Settings, *, profile: Profile | None = None, run_id: str | None = None
) -> tuple[DeidJob, str]:
    """The workers' job for ``settings`` (key, profile, store, quarantine) and the key's fingerprint."""
    from gai_research.deid.actions import ActionTable
    from gai_research.deid.keys import KeyRing
    from gai_research.deid.profile import load_profile
    from gai_research.home import key_fingerprint, read_key

    key = read_key(settings.key_path)
    profile = profile if profile is not None else load_profile()
    job = DeidJob(
        profile=profile,
        table=ActionTable.build(profile),
        keys=KeyRing.from_secret(key),
        store_root=settings.store_dir,
        quarantine_dir=settings.quarantine_dir,
        run_id=run_id or new_run_id(),
    )
    return job, key_fingerprint(key)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def open_writer(settings: Settings, *, wait: float = 60.0, stop=None) -> CatalogWriter:
    """The catalog writer, waiting up to ``wait`` seconds while another process holds it.

    ``stop`` (a :class:`threading.Event`) ends the wait early with the busy error.
    """
    from gai_research.store import CatalogBusyError, CatalogWriter

    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            return CatalogWriter(settings)
        except CatalogBusyError:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise
            time.sleep(LOCK_POLL_S)


class Pipeline:
    """One ingest session: the catalog writer, the vault, the spool and a processor.

    Use as a context manager. ``processor`` may be shared across sessions (the
    receiver keeps one pool for its lifetime); otherwise one is made with ``workers``.
    ``on_event`` receives :class:`InstanceStored`, :class:`InstanceQuarantined`,
    :class:`BatchCommitted` and :class:`SnapshotPublished` from the calling thread.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        processor: EntryProcessor | None = None,
        workers: int = 0,
        batch_size: int = DEFAULT_BATCH,
        on_event: PipelineHandler | None = None,
        lock_wait: float = 60.0,
        stop=None,
        audit_event: str = "ingest.pipeline",
    ) -> None:
        from gai_research.deid.vault import Vault
        from gai_research.ingest.logs import redact_dicom_logs

        redact_dicom_logs()
        self.settings = settings
        self.batch_size = max(1, int(batch_size))
        self.on_event = on_event
        self.audit_event = audit_event
        self.spool = Spool(settings)
        self._own_processor = processor is None
        if processor is None:
            job, self.key_fingerprint = make_job(settings)
            processor = EntryProcessor(job, workers)
        else:
            from gai_research.home import key_fingerprint, read_key

            self.key_fingerprint = key_fingerprint(read_key(settings.key_path))
        self.processor = processor
        self.run_id = processor.job.run_id
        self.vault = Vault(settings.vault_dir)
        self.vault.check_key(self.key_fingerprint)
        self.counts = PipelineCounts()
        self.by_site: dict[Site, PipelineCounts] = defaultdict(PipelineCounts)
        self.removed: Counter = Counter()  # what deid removed, by kind (no values)
        self.started = time.time()
        self._entries: dict[str, SpoolEntry] = {}  # submitted, not yet removed
        self._inflight: deque = deque()
        self._done: list[EntryOutcome] = []
        try:
            self.writer = open_writer(settings, wait=lock_wait, stop=stop)
        except BaseException:
            if self._own_processor:
                processor.close()
            raise
        self._clean_store_temp_files()

    # --- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type, *exc_info: object) -> None:
        self.close(commit=exc_type is None)

    def close(self, *, commit: bool = True) -> None:
        """Finish (commit what is done unless ``commit`` is False), audit, release the writer.

        Without ``commit`` (after an error) the chunks still running are waited for and
        dropped: their entries stay in the spool for the next run, and no worker of this
        session writes into the store once another session holds the writer.
        """
        try:
            if commit:
                self.flush()
            self._audit()
        finally:
            try:
                while self._inflight:
                    with contextlib.suppress(Exception):
                        self._inflight.popleft().result()
                if self._own_processor:
                    self.processor.close()
            finally:
                self.writer.close()

    def _clean_store_temp_files(self) -> None:
        """Temporary files of writes a crash interrupted (safe: this session holds the lock)."""
        store = self.writer.store
        removed = 0
        for relpath in list(store.temp_files()):
            try:
                store.path(relpath).unlink()
                removed += 1
            except FileNotFoundError:
                pass
        if removed:
            log.info("store: removed %d temporary file(s) of interrupted writes", removed)

    # --- feeding ---------------------------------------------------------------------------
    def submit(self, entries: Iterable[SpoolEntry]) -> int:
        """Queue spool entries for processing; returns how many were new to this session.

        An entry already queued (same digest, not yet committed) is not queued twice.
        Commits whenever a batch is complete, so memory stays bounded.
        """
        fresh = []
        for entry in entries:
            if entry.digest in self._entries:
                continue
            self._entries[entry.digest] = entry
            fresh.append(
                WorkItem(
                    path=str(entry.path),
                    digest=entry.digest,
                    site=entry.site,
                    source=entry.source,
                    received_at=entry.received_at.isoformat(timespec="seconds"),
                )
            )
        limit = 2 * self.processor.parallel
        for chunk in chunks(fresh, CHUNK):
            self._inflight.append(self.processor.submit(chunk))
            self._harvest(block_beyond=limit)
        return len(fresh)

    def drain(self, site: Site | str | None = None) -> PipelineCounts:
        """Process everything in the spool (of one site, or all), until it holds no new entry."""
        before = self.counts.copy()
        while True:
            pending = [e for e in self.spool.entries(site) if e.digest not in self._entries]
            if not pending:
                break
            self.submit(pending)
            self.flush()
        return self.counts.since(before)

    def flush(self) -> PipelineCounts:
        """Wait for everything submitted and commit it; returns the session's counts."""
        self._harvest(block_beyond=0)
        self._commit()
        return self.counts

    @property
    def pending(self) -> int:
        """Entries submitted and not yet committed."""
        return len(self._entries)

    def _harvest(self, *, block_beyond: int) -> None:
        """Collect finished chunks; wait for the oldest while more than ``block_beyond`` run."""
        while self._inflight and (self._inflight[0].done() or len(self._inflight) > block_beyond):
            self._done.extend(self._inflight.popleft().result())
            if len(self._done) >= self.batch_size:
                self._commit()

    # --- committing ------------------------------------------------------------------------
    def _commit(self) -> None:
        if not self._done:
            return
        outcomes, self._done = self._done, []
        by_site: dict[Site, list[EntryOutcome]] = defaultdict(list)
        for outcome in outcomes:
            by_site[outcome.site].append(outcome)
        for site, group in by_site.items():
            self._commit_site(site, group)

    def _commit_site(self, site: Site, outcomes: list[EntryOutcome]) -> None:
        started = time.monotonic()
        stored = [o for o in outcomes if o.status == "stored"]
        records = [o.record for o in stored if o.record is not None]
        if records:  # 1. vault (restricted): upsert, redoable
            self.vault.record(records, run_id=self.run_id, key_fingerprint=self.key_fingerprint)
        counts = PipelineCounts(processed=len(outcomes))
        if stored:  # 2. catalog: one transaction, upsert by UID
            writer = self.writer
            before = writer.counts()["instances"]
            with writer.batch():
                for outcome in stored:
                    writer.add_instance(outcome.header, site, outcome.stored)
            counts.new = writer.counts()["instances"] - before
            counts.duplicates = len(stored) - counts.new
        for outcome in outcomes:
            if outcome.status == "quarantined":
                counts.quarantined[outcome.reason.value] += 1
            elif outcome.status == "vanished":
                counts.vanished += 1
            if outcome.record is not None:
                self.removed.update(outcome.record.removed)
        self.counts.add(counts)  # committed: counted, whatever happens next
        self.by_site[site].add(counts)
        for outcome in outcomes:  # 3. only now: the spool entries go
            entry = self._entries.pop(outcome.digest, None)
            if entry is not None and outcome.status != "vanished":
                self.spool.remove(entry)
        for outcome in outcomes:
            self._emit_outcome(outcome)
        self._emit(BatchCommitted(site, counts, time.monotonic() - started))
        log.info("%s: committed %s", site.value, counts.summary())

    def _emit_outcome(self, outcome: EntryOutcome) -> None:
        if self.on_event is None:
            return
        if outcome.status == "stored":
            header = outcome.header
            self._emit(
                InstanceStored(
                    site=outcome.site,
                    study_uid=str(header.get("StudyInstanceUID", "")),
                    series_uid=str(header.get("SeriesInstanceUID", "")),
                    sop_uid=str(header.get("SOPInstanceUID", "")),
                    relpath=outcome.stored.relpath,
                    size=outcome.stored.size,
                )
            )
        elif outcome.status == "quarantined":
            self._emit(
                InstanceQuarantined(
                    outcome.site, outcome.reason, outcome.detail, outcome.quarantine_name
                )
            )

    def _emit(self, event: PipelineEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("a pipeline event handler failed on %s", type(event).__name__)

    # --- after a run -------------------------------------------------------------------------
    def publish(self) -> Snapshot:
        """Commit what is done, then publish a catalog snapshot (unchanged content: same one)."""
        self.flush()
        snapshot = self.writer.publish_snapshot()
        self._emit(
            SnapshotPublished(snapshot.id, snapshot.created, snapshot.tables.get("instances", 0))
        )
        return snapshot

    def record_run(self, run) -> None:
        """Record an :class:`~gai_research.store.IngestRun` in the catalog."""
        self.writer.record_run(run)

    def _audit(self) -> None:
        if not self.counts.processed:
            return
        from gai_research.deid.audit import append_audit

        profile = self.processor.job.profile
        append_audit(
            self.settings.audit_dir,
            {
                "event": self.audit_event,
                "run_id": self.run_id,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "elapsed_s": round(time.time() - self.started, 3),
                "sites": {site.value: c.as_dict() for site, c in sorted(self.by_site.items())},
                "removed": dict(sorted(self.removed.items())),
                "profile": profile.name,
                "profile_sha256": profile.sha256(),
                "key_fingerprint": self.key_fingerprint,
                "workers": self.processor.workers,
            },
        )
