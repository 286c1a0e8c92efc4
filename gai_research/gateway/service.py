"""The running gateway: receiver, completion, routing, dispatch and return, wired together.

::

    site PACS --C-STORE--> receiver --(spool + db)--> completion --> routing (rules)
        --> jobs --> dispatcher (per-model workers) --> returner --C-STORE SR--> site PACS

A study is complete when the association that sent it is released (unless another
association is still sending it), after ``quiet_period_s`` without a new instance, or
when :meth:`Gateway.complete` is called (an explicit trigger). Everything that matters
is in the database, so :meth:`Gateway.start` after a crash resumes: studies still
receiving get their quiet period, routing interrupted half-way is redone, jobs that
were with a model are sent again, results not yet stored are stored.

The dispatcher and the returner run in a second process by default
(:mod:`gai_research.gateway.workers`); this process receives, completes, routes, purges
the spool and supervises that worker process.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from gai_research.gateway.dispatcher import ModelFactory
from gai_research.gateway.errors import GatewayError
from gai_research.gateway.facts import series_facts
from gai_research.gateway.jobs import GatewayDB, JobState, StudyState
from gai_research.gateway.match import route
from gai_research.gateway.receiver import GatewayReceiver
from gai_research.gateway.rules import RuleSet, load_rules
from gai_research.gateway.workers import LocalWorkers, ProcessWorkers, build_returner

__all__ = ["Gateway", "gateway_dir", "open_db"]

log = logging.getLogger(__name__)
TICK_S = 0.1
PURGE_EVERY_S = 60.0


def gateway_dir(settings) -> Path:
    """``HOME/gateway``: the database (original UIDs: restricted, 0700)."""
    return settings.home / "gateway"


def open_db(settings, *, create: bool = True) -> GatewayDB:
    """The gateway database of these settings (created with its folder when asked)."""
    folder = gateway_dir(settings)
    path = folder / "gateway.db"
    if not create and not path.is_file():
        raise GatewayError(
            f"no gateway database under {folder}", hint="start the gateway: `gai gateway run`"
        )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    db = GatewayDB(path)
    path.chmod(0o600)
    return db


def preload() -> None:
    """Import the DICOM libraries in this thread before any worker starts.

    pydicom imported for the first time by two threads at once can fail with a circular
    import; and highdicom takes a second to import: not on the first study's clock.
    """
    import highdicom  # noqa: F401
    import pydicom  # noqa: F401
    import pynetdicom  # noqa: F401

    import gai_research.models.inputs
    import gai_research.models.sr  # noqa: F401


class Gateway:
    """The real-time gateway of one platform home. ``start()``/``stop()``, or a context manager.

    ``model_factory(name, policy)`` makes a model instance (default: the platform's model
    registry with the policy's ``options``); ``port=0`` listens on a free port;
    ``stow_port`` (0: a free one) also accepts STOW-RS.
    """

    def __init__(
        self,
        settings,
        *,
        rules: RuleSet | None = None,
        model_factory: ModelFactory | None = None,
        port: int | None = None,
        ae_title: str | None = None,
        host: str | None = None,
        stow_port: int | None = None,
    ) -> None:
        from gai_research.home import check_home, read_key

        check_home(settings)
        config = settings.gateway
        self.settings = settings
        self.config = config
        self.rules = rules if rules is not None else load_rules(config.rules_file)
        self.secret = read_key(settings.key_path)
        self.spool = settings.spool_dir / "gateway"
        self.db = open_db(settings)
        self.ae_title = ae_title or config.ae_title
        self.receiver = GatewayReceiver(
            self.db,
            self.spool,
            self.secret,
            ae_title=self.ae_title,
            host=host or config.host,
            port=config.dicom_port if port is None else port,
            sites={s.pacs.ae_title: site for site, s in settings.sites.items()},
            on_release=self._released,
        )
        self.stow = None
        stow_port = config.stow_port if stow_port is None else stow_port
        if stow_port is not None:
            from gai_research.gateway.stow import StowServer

            self.stow = StowServer(self.receiver, host=host or config.host, port=stow_port)
        if model_factory is None and config.dispatch_process:
            self.workers = ProcessWorkers(settings, self.rules, self.ae_title)
            self.returner = build_returner(settings, self.db, self.secret, self.ae_title)
        else:
            self.workers = LocalWorkers(
                settings, self.rules, self.db, self.secret, self.ae_title, model_factory
            )
            self.returner = self.workers.returner
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._route_lock = threading.Lock()
        self.started_at: float | None = None

    # --- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.receiver.port

    def start(self) -> Gateway:
        """Resume what a previous run left, then listen."""
        self.started_at = time.time()
        preload()
        requeued = self.db.recover()
        if requeued:
            log.warning(
                "%d job(s) were with a model when the gateway stopped: sent again", requeued
            )
        for key in self.db.complete_keys():
            self._route(key)
        self.workers.start()
        self.receiver.start()
        if self.stow is not None:
            self.stow.start()
        thread = threading.Thread(target=self._clock, name="gai-gateway-clock", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop receiving, let jobs in progress finish for ``grace`` s, then stop the rest."""
        self.receiver.stop()
        if self.stow is not None:
            self.stow.stop()
        self._stop.set()
        self.workers.stop(grace)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self.db.close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- completion and routing ----------------------------------------------------------
    def complete(self, key: str, trigger: str = "explicit trigger") -> bool:
        """Declare a study complete now (an explicit trigger); False if it was not receiving."""
        if not self.db.mark_complete(key, trigger):
            return False
        self._route(key)
        return True

    def _released(self, keys: set[str], trigger: str) -> None:
        if not self.config.complete_on_release:
            return
        sending = self.receiver.sending()
        for key in keys - sending:
            self.complete(key, trigger)

    def _route(self, key: str) -> None:
        with self._route_lock:
            study = self.db.study(key)
            if study is None or study.state != StudyState.COMPLETE:
                return
            try:
                facts = series_facts(self.db.instance_facts(key))
                routing = route(self.rules, facts, study.site)
            except Exception as exc:
                self.db.fail_study(key, f"routing failed ({type(exc).__name__})")
                log.exception("routing study %s failed", key)
                return
            self.db.set_routes(key, routing.routes)
        if routing.routes:
            self.workers.notify([r.model for r in routing.routes])
            log.info("study %s -> %s", key, ", ".join(r.model for r in routing.routes))
        else:
            log.info("study %s: no rule matched", key)

    def _clock(self) -> None:
        last_purge = last_check = time.monotonic()
        while not self._stop.wait(TICK_S):
            try:
                quiet_before = time.time() - self.config.quiet_period_s
                sending = self.receiver.sending()
                for key in self.db.due_studies(quiet_before):
                    if key not in sending:
                        self.complete(key, "quiet period")
            except Exception:
                log.exception("the completion check failed")
            now = time.monotonic()
            if now - last_check >= 1.0:
                last_check = now
                self._supervise()
            if now - last_purge >= PURGE_EVERY_S:
                last_purge = now
                try:
                    self.purge()
                except Exception:
                    log.exception("removing finished studies from the spool failed")

    def _supervise(self) -> None:
        """A worker process that died is replaced; what it had in hand is queued again."""
        if self._stop.is_set() or self.workers.alive():
            return
        log.error("the gateway's worker process died: restarting it")
        requeued = self.db.recover()
        if requeued:
            log.warning("%d job(s) it had with a model are sent again", requeued)
        self.workers.start()

    def purge(self, now: float | None = None) -> int:
        """Remove the spooled images (and SR copies) of studies done for ``retention_h``.

        Identified data stay in the restricted spool only as long as they are needed;
        the database keeps the latency log and the states.
        """
        import shutil

        now = time.time() if now is None else now
        before = now - self.config.retention_h * 3600
        keys = self.db.finished_before(before)
        for key in keys:
            shutil.rmtree(self.spool / key, ignore_errors=True)
            self.db.mark_purged(key)
        if keys:
            log.info("removed %d finished stud(ies) from the spool", len(keys))
        return len(keys)

    # --- waiting (tests, benchmarks, `gai gateway run --until-idle`) ------------------------
    def idle(self) -> bool:
        """Nothing receiving, queued, with a model, or waiting to be stored back."""
        counts = self.db.counts()
        busy_studies = sum(
            counts["studies"].get(s, 0) for s in (StudyState.RECEIVED, StudyState.COMPLETE)
        )
        busy_jobs = sum(
            counts["jobs"].get(s, 0)
            for s in (JobState.COMPLETE, JobState.DISPATCHED, JobState.RESULT)
        )
        return busy_studies == 0 and busy_jobs == 0

    def wait_idle(self, timeout: float = 60.0, poll: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(poll)
        return self.idle()
