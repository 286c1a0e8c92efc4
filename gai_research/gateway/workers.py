"""Where the model workers and the result return run: in the gateway process, or in a second one.

Receiving (pynetdicom), preparing inputs, calling models, writing SRs and storing them
back are all Python and share one interpreter lock. Measured with ten studies in flight
on two cores, the single gateway process used ~0.8 of a core while the other sat mostly
idle, and the time to result grew with the queue for that lock. :class:`ProcessWorkers`
runs the dispatcher and the returner in a child process (``spawn``) with its own
database connection: the two processes meet only in the database (SQLite WAL, one
writer at a time), and a shared event wakes the child when jobs are queued.
:class:`LocalWorkers` keeps everything in one process: for tests and for model
factories that cannot cross a process boundary.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time

from gai_research.gateway.dispatcher import Dispatcher, ModelFactory, registry_factory
from gai_research.gateway.jobs import GatewayDB
from gai_research.gateway.returner import Returner
from gai_research.gateway.rules import RuleSet

__all__ = ["LocalWorkers", "ProcessWorkers", "build_returner"]

log = logging.getLogger(__name__)
RETURN_EVERY_S = 0.5
READY_TIMEOUT_S = 120.0
WAKE_CHECK_S = 0.5
PR_SET_PDEATHSIG = 1


def build_returner(settings, db: GatewayDB, secret: bytes, ae_title: str) -> Returner:
    config = settings.gateway
    return Returner(
        db,
        settings.spool_dir / "gateway",
        secret,
        settings=settings,
        ae_title=ae_title,
        retries=config.return_retries,
        backoff_s=config.return_backoff_s,
        series_number=config.sr_series_number,
    )


def _build(settings, rules: RuleSet, db: GatewayDB, secret: bytes, ae_title: str, factory):
    returner = build_returner(settings, db, secret, ae_title)
    dispatcher = Dispatcher(
        db,
        rules,
        factory or registry_factory(settings),
        spool=settings.spool_dir / "gateway",
        secret=secret,
        on_result=returner.return_job,
        vault_dir=settings.vault_dir,
    )
    return dispatcher, returner


def _warm_up_returns() -> None:
    from gai_research.gateway.returner import warm_up

    try:
        warm_up()
    except Exception:  # a slower first result, not a reason to stop
        log.warning("warming up the SR writer failed", exc_info=True)


class LocalWorkers:
    """Dispatcher and returner as threads of the gateway process."""

    def __init__(
        self,
        settings,
        rules: RuleSet,
        db: GatewayDB,
        secret: bytes,
        ae_title: str,
        factory: ModelFactory | None = None,
    ) -> None:
        self.dispatcher, self.returner = _build(settings, rules, db, secret, ae_title, factory)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.dispatcher.warm_up()
        _warm_up_returns()
        self.dispatcher.start()
        self._thread = threading.Thread(
            target=self._returns, name="gai-gateway-returns", daemon=True
        )
        self._thread.start()

    def _returns(self) -> None:
        while not self._stop.wait(RETURN_EVERY_S):
            try:
                self.returner.return_due()
            except Exception:
                log.exception("storing results back failed")

    def notify(self, models: list[str]) -> None:
        for model in models:
            self.dispatcher.ensure(model)
        self.dispatcher.notify()

    def alive(self) -> bool:
        return True

    def stop(self, grace: float) -> None:
        self._stop.set()
        self.dispatcher.stop(timeout=grace)
        if self._thread is not None:
            self._thread.join(timeout=5.0)


class ProcessWorkers:
    """Dispatcher and returner in a child process, models from the registry."""

    def __init__(self, settings, rules: RuleSet, ae_title: str) -> None:
        self.settings = settings
        self.rules = rules
        self.ae_title = ae_title
        self._context = multiprocessing.get_context("spawn")
        self._wake = self._context.Event()
        self._stop = self._context.Event()
        self._grace = self._context.Value("d", 10.0)
        self._ready = self._context.Event()
        self._process = None

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the child and wait until it can take jobs (imports and warm-up: seconds),
        so the first studies do not wait for it."""
        self._stop.clear()
        self._ready.clear()
        self._process = self._context.Process(
            target=_child,
            args=(
                os.getpid(),
                self.settings,
                self.rules,
                self.ae_title,
                self._wake,
                self._stop,
                self._grace,
                self._ready,
                logging.getLogger().getEffectiveLevel(),
            ),
            name="gai-gateway-workers",
            daemon=True,
        )
        self._process.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self._process.is_alive() or time.monotonic() > deadline:
                log.error("the gateway's worker process did not come up; it is retried")
                break
        self._wake.set()  # look at the queue at once

    def notify(self, models: list[str]) -> None:
        self._wake.set()

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self, grace: float) -> None:
        if self._process is None:
            return
        self._grace.value = grace
        self._stop.set()
        self._wake.set()
        self._process.join(grace + 5.0)
        if self._process.is_alive():
            log.warning("the gateway's worker process did not stop in time: terminated")
            self._process.terminate()
            self._process.join(5.0)


def _die_with_parent(parent: int) -> None:
    """Make sure this process does not outlive the gateway that started it.

    A worker left behind by a gateway killed with SIGKILL would go on with jobs the next
    gateway queues again (processed twice). Linux kills us with the parent
    (``PR_SET_PDEATHSIG``); elsewhere the loop in :func:`_child` checks the parent's pid.
    """
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _child(
    parent: int,
    settings,
    rules: RuleSet,
    ae_title: str,
    wake,
    stop,
    grace,
    ready,
    log_level: int,
) -> None:
    """The worker process: claim jobs, run models, store results, until ``stop``.

    Ctrl-C reaches the whole process group: the child leaves its shutdown to the gateway
    (SIGINT ignored); SIGTERM stops it as the gateway would.
    """
    import signal

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated: list[int] = []  # set by SIGTERM (no lock taken in a signal handler)
    signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    from gai_research.gateway.service import open_db, preload
    from gai_research.home import read_key
    from gai_research.ingest.logs import RedactDicomRecords, redact_dicom_logs

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.root.handlers:
        handler.addFilter(RedactDicomRecords())
    redact_dicom_logs()
    preload()
    db = open_db(settings)
    workers = LocalWorkers(settings, rules, db, read_key(settings.key_path), ae_title)
    workers.start()
    ready.set()
    try:
        while not terminated and not stop.is_set():
            if os.getppid() != parent:
                os._exit(1)  # the gateway is gone: leave its jobs to the next one
            if wake.wait(WAKE_CHECK_S):
                wake.clear()
                workers.notify(sorted(db.queued_models(now=float("inf"))))
    finally:
        workers.stop(grace.value)
        db.close()
