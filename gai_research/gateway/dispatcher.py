"""Handing queued jobs to models: per-model concurrency, hard time-outs, retries.

Each model gets ``concurrency`` worker threads (its policy in the rules file), and
each worker holds its own model instance, so the limit is exact and adapters need not
be thread-safe. A worker claims the oldest queued job of its model, prepares the input
(pseudonymized into the restricted spool when the route says so, the mapping
recorded in the vault), calls ``predict``
under the policy's time-out, maps the answer back to the original UIDs and records it;
then hands it to the returner. A time-out or an unavailable vendor is retried with
exponential back-off while tries are left; anything else fails the job at once with
its reason. A model that overran its time-out is discarded (its thread cannot be
killed) and a fresh instance is made for the next job.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gai_research.errors import GaiError
from gai_research.gateway.identity import redact
from gai_research.gateway.jobs import GatewayDB, Job
from gai_research.gateway.rules import ModelPolicy, RuleSet
from gai_research.models.errors import (
    ModelError,
    ModelTimeoutError,
    ModelUnavailableError,
)

__all__ = ["Dispatcher", "ModelFactory", "registry_factory"]

log = logging.getLogger(__name__)

ModelFactory = Callable[[str, ModelPolicy], object]
RETRYABLE = (ModelTimeoutError, ModelUnavailableError)
IDLE_WAIT_S = 0.5


def registry_factory(settings) -> ModelFactory:
    """Models by name from the platform registry (entry points and HOME/models.yaml)."""

    def make(name: str, policy: ModelPolicy):
        from gai_research.models.registry import load_model

        return load_model(name, settings=settings, **policy.options)

    return make


class _HardTimeout(Exception):
    pass


def _call(fn: Callable[[], object], timeout: float, name: str) -> object:
    """``fn()`` in a helper thread; :class:`_HardTimeout` if it runs past ``timeout``."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"gai-gateway-call-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _HardTimeout
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


@dataclasses.dataclass
class _Slot:
    model_name: str
    index: int
    instance: object | None = None


class Dispatcher:
    """Worker threads per model over the job queue of a :class:`GatewayDB`.

    ``on_result(job)`` is called (in the worker) after a result is recorded; the
    service stores it back into the PACS from there.
    """

    def __init__(
        self,
        db: GatewayDB,
        rules: RuleSet,
        factory: ModelFactory,
        *,
        spool: Path,
        secret: bytes,
        on_result: Callable[[Job], None] | None = None,
        vault_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.vault_dir = vault_dir
        self.rules = rules
        self.factory = factory
        self.spool = Path(spool)
        self.secret = secret
        self.on_result = on_result
        self._wake = threading.Condition()
        self._notified = 0  # bumped by notify(): a worker never sleeps through a wake-up
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._slots: list[_Slot] = []
        self._models: set[str] = set()
        self._deid = None
        self._deid_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> Dispatcher:
        for name in self.rules.model_names:
            self.ensure(name)
        for name in self.db.queued_models(now=float("inf")):
            self.ensure(name)  # jobs of a model the current rules no longer name
        return self

    def ensure(self, model: str) -> None:
        """Workers for ``model`` (started once, ``concurrency`` of them)."""
        if model in self._models or self._stop.is_set():
            return
        self._models.add(model)
        for index in range(self.rules.policy(model).concurrency):
            slot = _Slot(model, index)
            thread = threading.Thread(
                target=self._work, args=(slot,), name=f"gai-gateway-{model}-{index}", daemon=True
            )
            self._slots.append(slot)
            self._threads.append(thread)
            thread.start()

    def notify(self) -> None:
        """New jobs are queued (or retries are due): wake the idle workers."""
        with self._wake:
            self._notified += 1
            self._wake.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; wait up to ``timeout`` s for jobs in progress, then close the models.

        A job still running after that stays ``dispatched`` in the database and is sent
        again by the next start.
        """
        self._stop.set()
        self.notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for slot in self._slots:
            self._discard(slot)

    # --- the work ------------------------------------------------------------------
    def _work(self, slot: _Slot) -> None:
        while not self._stop.is_set():
            seen = self._notified
            try:
                job = self.db.claim(slot.model_name)
            except Exception:
                log.exception("claiming a job of %s failed", slot.model_name)
                job = None
            if job is None:
                with self._wake:
                    if self._notified == seen:  # nothing new since the claim looked
                        self._wake.wait(IDLE_WAIT_S)
                continue
            try:
                self.run(job, slot)
            except Exception:  # a bug here must not kill the worker
                if self._stop.is_set():  # the database is closing: the job stays dispatched
                    return  # and is sent again at the next start
                log.exception("job %d of %s failed unexpectedly", job.id, slot.model_name)
                try:
                    self.db.fail(job, "error", "internal error in the gateway (see its log)")
                except Exception:
                    log.exception("recording the failure of job %d failed", job.id)

    def _model(self, slot: _Slot, policy: ModelPolicy):
        if slot.instance is None:
            instance = self.factory(slot.model_name, policy)
            # an adapter that can keep the vendor's result objects (dicom) keeps them in
            # the restricted spool, for forwarding to the PACS
            if getattr(instance, "results_dir", False) is None:
                instance.results_dir = self.spool / ".vendor-results" / slot.model_name
            slot.instance = instance
        return slot.instance

    def _keep_vendor_objects(self, job: Job, model, prediction, uids):
        """The vendor's SEG/KOS/secondary captures rewritten for the PACS (see
        :mod:`gai_research.gateway.forward`); the prediction without their file list."""
        from gai_research.gateway.forward import forward_dir, keep_vendor_objects

        files = prediction.raw.get("result_files") if isinstance(prediction.raw, dict) else None
        out_dir = forward_dir(self.spool, job.study_key, job.model)
        if not files or getattr(model, "results_dir", None) is None:
            shutil.rmtree(out_dir, ignore_errors=True)  # none this time (a retry)
            return prediction
        from pydicom import dcmread

        (first,) = self.db.instance_paths(job.study_key, job.series_uids)[:1]
        count = keep_vendor_objects(
            files,
            model.results_dir,
            out_dir=out_dir,
            original=dcmread(first, stop_before_pixels=True),
            uid_map=uids.table() if uids is not None else {},
            secret=self.secret,
            study_key=job.study_key,
            model=job.model,
            remove_sources=Path(model.results_dir).is_relative_to(self.spool),
        )
        raw = {k: v for k, v in prediction.raw.items() if k != "result_files"}
        return dataclasses.replace(prediction, raw={**raw, "forwarded_objects": count})

    def _discard(self, slot: _Slot) -> None:
        instance, slot.instance = slot.instance, None
        if instance is None:
            return
        threading.Thread(target=_close_quietly, args=(instance,), daemon=True).start()

    def run(self, job: Job, slot: _Slot) -> None:
        """One attempt at one job, ending in result, a queued retry, or failed."""
        policy = self.rules.policy(job.model)
        started = time.time()
        try:
            model = self._model(slot, policy)
            info = model.info
            self.db.set_model_info(job, info)
            scratch = self.spool / job.study_key / f"pseudo-{job.model}"
            study, uids = self._prepare(job, scratch)
            begun = time.perf_counter()
            try:
                prediction = _call(lambda: model.predict(study), policy.timeout_s, job.model)
            except _HardTimeout:
                self._discard(slot)
                raise ModelTimeoutError(
                    f"{job.model} gave no answer within {policy.timeout_s:g} s",
                    hint="raise timeout_s for this model in the rules file, or check the vendor",
                    model=job.model,
                ) from None
            finally:
                if uids is not None:  # the pseudonymized copy has served its purpose
                    shutil.rmtree(scratch, ignore_errors=True)
            seconds = time.perf_counter() - begun
            if uids is not None:
                from gai_research.gateway.pseudo import map_back

                prediction = map_back(prediction, uids)
            original = self.db.study(job.study_key)
            if original is not None and prediction.study_uid != original.study_uid:
                prediction = dataclasses.replace(prediction, study_uid=original.study_uid)
            prediction = self._keep_vendor_objects(job, model, prediction, uids)
        except RETRYABLE as exc:
            self._retry_or_fail(job, policy, exc.reason, exc)
            return
        except ModelError as exc:
            self._failed(job, exc.reason, exc)
            return
        except GaiError as exc:  # pseudonymization refused a file, unreadable input
            rejected = type(exc).__name__ in ("RejectedError", "VaultError")
            reason = "pseudonymization" if rejected else "input"
            self._failed(job, reason, exc)
            return
        except Exception as exc:  # an adapter's own bug: recorded, the gateway goes on
            self._discard(slot)
            self._failed(job, "error", exc)
            return
        self.db.set_result(
            job,
            prediction=prediction.to_json(),
            model_version=info.version,
            task=info.task,
            origin=str(info.origin),
            model_seconds=seconds,
        )
        log.info("study %s: %s answered in %.2f s", job.study_key, job.model, time.time() - started)
        if self.on_result is not None:
            self.on_result(self.db.job(job.id))

    def _prepare(self, job: Job, scratch: Path):
        """The model's input, and the UID map when it was pseudonymized (into ``scratch``)."""
        from gai_research.models.inputs import study_input_from_files

        paths = self.db.instance_paths(job.study_key, job.series_uids)
        if not paths:
            raise GaiError("no images of the selected series are in the spool")
        if not job.pseudonymize:
            study = study_input_from_files(paths)
            return dataclasses.replace(study, site=job.site), None
        pseudo = self._pseudonymizer().files(
            paths, scratch, site=job.site, run_id=f"gateway:{job.study_key}"
        )
        study = study_input_from_files(pseudo.files)
        study = dataclasses.replace(
            study, site=job.site, patient_pseudonym=pseudo.patient_pseudonym
        )
        return study, pseudo.uids

    def _pseudonymizer(self):
        from gai_research.gateway.pseudo import Pseudonymizer

        with self._deid_lock:
            if self._deid is None:
                self._deid = Pseudonymizer(self.secret, vault_dir=self.vault_dir)
            return self._deid

    def warm_up(self) -> None:
        """Import and build now what the first study would otherwise wait for."""
        import gai_research.models.inputs  # noqa: F401

        if any(self.rules.policy(m).pseudonymize for m in self.rules.model_names) or any(
            t.pseudonymize for r in self.rules.rules for t in r.models
        ):
            self._pseudonymizer()

    def _retry_or_fail(self, job: Job, policy: ModelPolicy, reason: str, exc: Exception) -> None:
        if job.attempts <= policy.retries:
            wait = policy.retry_backoff_s * (2 ** (job.attempts - 1))
            self.db.retry_later(job, reason, _message(exc), time.time() + wait)
            log.warning(
                "study %s: %s attempt %d: %s; retry in %.1f s",
                job.study_key,
                job.model,
                job.attempts,
                reason,
                wait,
            )
            return
        self._failed(job, reason, exc)

    def _failed(self, job: Job, reason: str, exc: Exception) -> None:
        self.db.fail(job, reason, _message(exc))
        log.warning("study %s: %s failed (%s): %s", job.study_key, job.model, reason, _message(exc))


def _message(exc: Exception) -> str:
    text = exc.message if isinstance(exc, GaiError) else f"{type(exc).__name__}: {exc}"
    return redact(text)


def _close_quietly(model) -> None:
    try:
        model.close()
    except Exception:
        log.warning("closing a model failed", exc_info=True)
