"""Processing one spool entry: pseudonymize it and write it into the store, or quarantine it.

This is the part of the pipeline that may run in worker processes. It reads the raw
object from the spool, pseudonymizes it with :func:`gai_research.deid.pseudonymize`
(the platform key, the profile, the entry's site), checks that the catalog can take
it, and writes it atomically into the store under its pseudonymous UIDs (the same
bytes again is a no-op). What cannot or must not pass is copied unchanged into the
deid quarantine with a reason beside it. Nothing here touches the catalog, the vault
or the spool's entries: the parent commits, then removes (see
:mod:`gai_research.ingest.pipeline`), so every step here can be redone after a crash.

Only small things cross the process boundary: paths and job settings in, an
:class:`~gai_research.ingest.outcomes.EntryOutcome` (the pseudonymized header without
pixel data, the vault record) out.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from multiprocessing import get_context
from pathlib import Path

from gai_research.config import Site
from gai_research.deid.actions import ActionTable
from gai_research.deid.engine import pseudonymize
from gai_research.deid.errors import RejectedError
from gai_research.deid.files import encode_fast, quarantine_file, read_dataset
from gai_research.deid.keys import KeyRing
from gai_research.deid.profile import Profile
from gai_research.deid.types import QuarantineReason
from gai_research.ingest.outcomes import EntryOutcome
from gai_research.store.errors import DuplicateInstanceError, StoreError
from gai_research.store.extract import extract_rows
from gai_research.store.layout import FileStore
from gai_research.store.types import StoredFile

__all__ = ["DeidJob", "EntryProcessor", "WorkItem", "process_entry"]

log = logging.getLogger(__name__)

_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # float, double float, pixel data


@dataclass(frozen=True)
class WorkItem:
    """One spool entry to process: its file, digest, site and how it arrived."""

    path: str
    digest: str
    site: Site
    source: str
    received_at: str


@dataclass(frozen=True)
class DeidJob:
    """Everything a worker needs, sent with each chunk (no worker globals)."""

    profile: Profile
    table: ActionTable
    keys: KeyRing
    store_root: Path
    quarantine_dir: Path
    run_id: str


class _DropRecords(logging.Filter):
    """pydicom's log records quote element values (names, IDs): never let them out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _redact(message: str) -> str:
    """An exception message with quoted values and long digit runs cut out."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d{4,}", "…", message)[:200]


def process_entry(job: DeidJob, item: WorkItem) -> EntryOutcome:
    """Pseudonymize and store one spool entry, or quarantine it; never raises for bad input."""
    path = Path(item.path)
    if not path.is_file():
        return EntryOutcome(item.digest, item.site, "vanished")
    try:
        ds = read_dataset(path)
        result = pseudonymize(ds, job.profile, job.keys, item.site, table=job.table, copy=False)
        ds = result.dataset
        store = FileStore(job.store_root)
        relpath = store.relpath(
            str(ds.get("StudyInstanceUID", "")),
            str(ds.get("SeriesInstanceUID", "")),
            str(ds.get("SOPInstanceUID", "")),
        )
        data = encode_fast(ds)  # before anything decodes the raw elements it copies
        if data is None:
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
        # the catalog must be able to take it before a file exists (no orphan files)
        extract_rows(
            ds,
            item.site.value,
            StoredFile(relpath, store.path(relpath), 0, "", False),
            ingested_at=dt.datetime(2000, 1, 1),
        )
        stored = store.write_bytes(data)
        for tag in _PIXEL_TAGS:  # the parent needs the header only
            if tag in ds:
                del ds[tag]
        return EntryOutcome(item.digest, item.site, "stored", stored, ds, result.record)
    except FileNotFoundError:
        if not path.is_file():
            return EntryOutcome(item.digest, item.site, "vanished")
        reason, detail = QuarantineReason.FAILED, "FileNotFoundError"
        hint = None
    except RejectedError as exc:
        reason, detail, hint = exc.reason, exc.message, exc.hint
    except DuplicateInstanceError:
        reason = QuarantineReason.DUPLICATE_INSTANCE
        detail = "the store already holds a different file for this SOP instance (it was kept)"
        hint = "compare the two with the data steward; the stored one is what researchers see"
    except StoreError as exc:  # not pseudonymized, a UID the store refuses, no PatientID
        reason, detail, hint = QuarantineReason.INVALID_OUTPUT, exc.message, exc.hint
    except Exception as exc:  # a bug or a pydicom failure on odd input: quarantine, go on
        reason = QuarantineReason.FAILED
        detail, hint = f"{type(exc).__name__}: {_redact(str(exc))}", None
        log.debug("a spool entry failed with %s", type(exc).__name__)
    return _quarantine(job, item, path, reason, detail, hint)


def _quarantine(
    job: DeidJob,
    item: WorkItem,
    path: Path,
    reason: QuarantineReason,
    detail: str,
    hint: str | None,
) -> EntryOutcome:
    note = {
        "reason": reason.value,
        "description": reason.description,
        "detail": detail,
        "hint": hint,
        "run_id": job.run_id,
        "site": item.site.value,
        "source": item.source,
        "received_at": item.received_at,
        "quarantined_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        name = quarantine_file(path, job.quarantine_dir, note)
    except FileNotFoundError:
        return EntryOutcome(item.digest, item.site, "vanished")
    return EntryOutcome(
        item.digest, item.site, "quarantined", reason=reason, detail=detail, quarantine_name=name
    )


def process_chunk(job: DeidJob, items: list[WorkItem]) -> list[EntryOutcome]:
    """Process a chunk quietly (pydicom's warnings and log records quote values)."""
    pydicom_log = logging.getLogger("pydicom")
    drop = _DropRecords()
    pydicom_log.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [process_entry(job, item) for item in items]
    finally:
        pydicom_log.removeFilter(drop)


def _worker_start(parent_pid: int) -> None:
    """In each worker: leave Ctrl-C to the parent (it stops the pool after committing what
    is done), and exit as soon as the parent is gone (killed with SIGKILL, the pool's
    queue never closes, so a worker would wait for work forever)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="gai-parent-watch", daemon=True).start()


class _Done:
    """A finished stand-in for a Future (the in-process path)."""

    def __init__(self, value: list[EntryOutcome]) -> None:
        self._value = value

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> list[EntryOutcome]:
        return self._value


def _warm(_index: int) -> int:
    """Start a worker: unpickling this function imports this module and with it deid and
    the store, so the first real chunk does not wait for the imports."""
    time.sleep(0.05)  # hold this worker so the next warm-up task starts another
    return os.getpid()


class EntryProcessor:
    """Runs :func:`process_chunk` in this thread (``workers=0``) or in ``workers`` processes.

    The pool uses the ``spawn`` start method (the receiver and the C-MOVE SCP run
    threads, and forking a threaded process can leave a lock held in the child) and is
    started and warmed up here, so its start-up (~1 s) is not paid by the first objects.
    """

    def __init__(self, job: DeidJob, workers: int = 0) -> None:
        self.job = job
        self.workers = max(0, int(workers))
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=get_context("spawn"),
                initializer=_worker_start,
                initargs=(os.getpid(),),
            )
            list(self._pool.map(_warm, range(self.workers)))

    @property
    def parallel(self) -> int:
        """How many chunks run at once."""
        return max(1, self.workers)

    def __enter__(self) -> EntryProcessor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, items: list[WorkItem]) -> Future | _Done:
        """Start processing ``items``; the result is the list of their outcomes."""
        if self._pool is None:
            return _Done(process_chunk(self.job, items))
        return self._pool.submit(process_chunk, self.job, items)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def chunks(items: Iterable[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    """``items`` in lists of at most ``size``."""
    chunk: list[WorkItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
