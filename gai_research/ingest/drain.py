"""The receiver's pipeline: a background thread that drains the spool while objects arrive.

``gai receive`` answers each C-STORE as soon as the object is safe in the spool; a
:class:`SpoolDrainer` thread then pseudonymizes, stores and catalogs what arrived, in
cycles: it opens a pipeline session (the catalog's writer lock) when the spool holds
entries, commits them batch by batch until the spool is empty, publishes a snapshot,
records the run and releases the lock, so ``gai ingest`` or ``gai labels import`` can
run between two bursts. A failure (catalog busy, disk full) is logged and retried
later; the objects wait in the spool meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict

from gai_research.config import Settings, Site
from gai_research.errors import GaiError
from gai_research.ingest.outcomes import PipelineCounts, PipelineHandler
from gai_research.ingest.pipeline import Pipeline, make_job
from gai_research.ingest.process import EntryProcessor

__all__ = ["SpoolDrainer"]

log = logging.getLogger(__name__)

RETRY_S = 5.0


class SpoolDrainer:
    """Runs the pipeline on what arrives in the spool, until :meth:`stop`.

    Call :meth:`notify` when an object arrived (the receiver's ``ObjectReceived``) to
    start a cycle at once; otherwise the spool is looked at every ``idle`` seconds.
    ``publish_every`` bounds how stale the snapshot gets during a long, steady push.
    ``on_event`` gets the pipeline's events from the drainer thread; ``on_cycle`` gets
    each cycle's counts (one line per burst in ``gai receive``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 0,
        on_event: PipelineHandler | None = None,
        on_cycle=None,
        idle: float = 1.0,
        publish_every: float = 30.0,
        lock_wait: float = 30.0,
        source: str = "c-store",
    ) -> None:
        from gai_research.ingest.logs import redact_dicom_logs

        redact_dicom_logs()
        job, _fingerprint = make_job(settings)
        self.settings = settings
        self.processor = EntryProcessor(job, workers)
        self.run_id = job.run_id
        self.on_event = on_event
        self.on_cycle = on_cycle
        self.idle = idle
        self.publish_every = publish_every
        self.lock_wait = lock_wait
        self.source = source
        self.started = dt.datetime.now(dt.UTC)
        self.counts = PipelineCounts()
        self.by_site: dict[Site, PipelineCounts] = defaultdict(PipelineCounts)
        self.snapshot = ""
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SpoolDrainer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def notify(self, _event: object = None) -> None:
        """Something arrived: start a cycle now."""
        self._wake.set()

    def start(self) -> SpoolDrainer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gai-drainer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Drain what is left, then stop (waits up to ``timeout`` seconds; None: until done)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None
                self.processor.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the spool is empty and no cycle runs (tests, benchmarks)."""
        from gai_research.ingest.spool import Spool

        spool = Spool(self.settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._busy.is_set() and len(spool) == 0:
                return True
            time.sleep(0.05)
        return False

    # --- the thread --------------------------------------------------------------------
    def _loop(self) -> None:
        from gai_research.ingest.spool import Spool

        spool = Spool(self.settings)
        while True:
            self._wake.wait(self.idle)
            self._wake.clear()
            stopping = self._stop.is_set()
            if len(spool):
                self._busy.set()
                try:
                    self._cycle()
                except GaiError as exc:
                    self.failures += 1
                    log.warning("receiver pipeline: %s; the objects wait in the spool", exc)
                    if not stopping:
                        self._stop.wait(RETRY_S)
                except Exception:
                    self.failures += 1
                    log.exception("receiver pipeline failed; the objects wait in the spool")
                    if not stopping:
                        self._stop.wait(RETRY_S)
                finally:
                    self._busy.clear()
            if stopping:
                return

    def _cycle(self) -> None:
        with Pipeline(
            self.settings,
            processor=self.processor,
            on_event=self.on_event,
            lock_wait=self.lock_wait,
            audit_event="ingest.receive",
        ) as pipe:
            published = time.monotonic()
            while pipe.submit(pipe.spool.entries()):
                pipe.flush()
                if time.monotonic() - published > self.publish_every:
                    self.snapshot = pipe.publish().id
                    published = time.monotonic()
            pipe.flush()
            for site, counts in pipe.by_site.items():
                self.by_site[site].add(counts)
            self.counts.add(pipe.counts)
            self.snapshot = pipe.publish().id
            self._record_runs(pipe)
            cycle = pipe.counts
        if self.on_cycle is not None and cycle.processed:
            self.on_cycle(cycle, self.snapshot)

    def _record_runs(self, pipe: Pipeline) -> None:
        """One ``ingest_runs`` row per site for the receiver's lifetime, updated each cycle."""
        from gai_research.store import IngestRun

        for site, counts in self.by_site.items():
            pipe.record_run(
                IngestRun(
                    site=site.value,
                    source=self.source,
                    started_at=self.started,
                    finished_at=dt.datetime.now(dt.UTC),
                    status="ok" if counts.accounted and not counts.vanished else "failed",
                    counts=counts.as_dict(),
                    run_id=f"{self.run_id}-{site.value}",
                )
            )
