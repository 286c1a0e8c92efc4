"""Run one model over a cohort: parallel workers, honest latency, failures kept per study.

    >>> summary = run_model("baseline-lung-nodule-ct", "demo-lung-ct", workers=2)
    >>> summary.n_ok, summary.n_failed, summary.n_cached, summary.latency()

For each study of the cohort (on the cohort's snapshot) the runner

1. reuses the stored ``ok`` record of (model, version, snapshot, study) unless ``force``
   (failed, timed-out and skipped studies are tried again);
2. hands over only the series whose modality the model takes (``ModelInfo.modalities``;
   empty: all); a study with none is recorded ``skipped`` (reason ``modality``);
3. calls ``model.predict`` in one of ``workers`` threads (adapters mostly wait on sockets,
   baselines spend their time in numpy, which releases the GIL);
4. records latency: wall time from the hand-over (the ``predict`` call) to the prediction
   being available, unless the adapter measured the vendor itself and put it in
   ``Prediction.timing[LATENCY_TIMING_KEY]`` (DICOM nodes: first C-STORE to last result);
5. records a ModelError as ``failed`` (or ``timeout``) with its ``reason``, any other
   exception as ``failed``/``error``; nothing a model does ends the run;
6. gives up on a study after ``timeout_s`` (status ``timeout``) and puts a fresh worker in
   place of the one still waiting, so a hung vendor never stalls the cohort;
7. saves records to the catalog's ``predictions`` table as it goes.

Counts reconcile: ``n_ok + n_failed + n_cached == n_studies`` (``n_failed`` counts every
new record that is not ok: failed, timeout and skipped).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gai_research.models.errors import ModelConfigError, ModelError, ModelTimeoutError
from gai_research.models.store import PredictionRecord, load_predictions, save_records, store_masks
from gai_research.models.types import Model, ModelInfo, Prediction, StudyInput

if TYPE_CHECKING:
    from gai_research.config import Settings
    from gai_research.data.cohort import Cohort

__all__ = ["LATENCY_TIMING_KEY", "RunSummary", "run_model"]

log = logging.getLogger(__name__)

#: ``Prediction.timing`` key an adapter sets when it measured the vendor's own latency
#: (the DICOM-node adapter: first C-STORE sent to last result received, seconds); the
#: runner then records it instead of its own wall time
LATENCY_TIMING_KEY = "first_store_to_last_result_s"
#: the same, as the contract's first draft (types.Prediction) spelled it
_LATENCY_TIMING_KEYS = (LATENCY_TIMING_KEY, "first_store_to_last_result")
#: adapters that take a ``timeout_s`` option the runner passes on
_TIMED_ADAPTERS = ("http", "dicom")
_SAVE_EVERY = 50
_SAVE_INTERVAL_S = 5.0
_ERROR_CHARS = 500


@dataclass
class RunSummary:
    """What :func:`run_model` did: one record per cohort study, and the counts."""

    model: str
    info: ModelInfo
    snapshot: str
    cohort: str | None
    cohort_hash: str | None
    records: list[PredictionRecord] = field(default_factory=list)
    n_ok: int = 0  # new predictions
    n_failed: int = 0  # new records that are not ok (failed, timeout, skipped)
    n_cached: int = 0  # stored ok records reused
    wall_s: float = 0.0

    @property
    def n_studies(self) -> int:
        return len(self.records)

    @property
    def n_timeout(self) -> int:
        return sum(r.status == "timeout" for r in self.records)

    @property
    def n_skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.records)

    @property
    def reconciles(self) -> bool:
        return self.n_ok + self.n_failed + self.n_cached == self.n_studies

    def by_reason(self) -> dict[str, int]:
        """Studies without a prediction, by reason (timeout, unavailable, modality, ...)."""
        counts = Counter(r.reason or r.status for r in self.records if not r.ok)
        return dict(sorted(counts.items()))

    def latency(self) -> dict[str, float | int | None]:
        """Latency of the ok studies (new and cached): n, median, p95 and max seconds."""
        values = sorted(r.latency_s for r in self.records if r.ok and r.latency_s is not None)
        if not values:
            return {"n": 0, "median_s": None, "p95_s": None, "max_s": None}
        # linear interpolation (type 7), as evaluation.metrics.latency_summary computes it
        p95 = (
            values[0]
            if len(values) == 1
            else statistics.quantiles(values, n=20, method="inclusive")[-1]
        )
        return {
            "n": len(values),
            "median_s": statistics.median(values),
            "p95_s": p95,
            "max_s": values[-1],
        }

    def frame(self):
        """The records as a pandas DataFrame (see :func:`~gai_research.models.store.predictions_frame`)."""
        from gai_research.models.store import predictions_frame

        return predictions_frame(self.records)


# --- the worker pool ---------------------------------------------------------------------
@dataclass
class _Job:
    index: int
    study: StudyInput
    started: float | None = None  # monotonic time of the hand-over
    abandoned: bool = False


class _Pool:
    """Daemon worker threads that call ``model.predict``; a hung call can be abandoned."""

    def __init__(self, model: Model, workers: int) -> None:
        self.model = model
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.results: queue.Queue[tuple[_Job, Prediction | None, BaseException | None, float]] = (
            queue.Queue()
        )
        self.running: dict[int, _Job] = {}
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        for _ in range(workers):
            self.spawn()

    def spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="gai-model-worker", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self.lock:
                job.started = time.monotonic()
                self.running[job.index] = job
            prediction, error = None, None
            try:
                prediction = self.model.predict(job.study)
            except BaseException as exc:  # recorded per study; never ends the run
                error = exc
            elapsed = time.monotonic() - job.started
            with self.lock:
                self.running.pop(job.index, None)
                abandoned = job.abandoned
            if abandoned:  # a fresh worker took this one's place
                return
            self.results.put((job, prediction, error, elapsed))

    def overdue(self, timeout_s: float) -> list[_Job]:
        """Jobs running longer than ``timeout_s``, marked abandoned (each gets a new worker)."""
        now = time.monotonic()
        late = []
        with self.lock:
            for job in list(self.running.values()):
                if job.started is not None and now - job.started > timeout_s:
                    job.abandoned = True
                    self.running.pop(job.index)
                    late.append((job, now - job.started))
        for _ in late:
            self.spawn()
        return [job for job, _ in late]

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)


# --- records ---------------------------------------------------------------------------
def _clean(message: str, study: StudyInput) -> str:
    """An error message fit to store: the study's UIDs replaced, one line, bounded."""
    text = " ".join(str(message).split())
    for uid in {study.study_uid, *(s.series_uid for s in study.series)}:
        text = text.replace(uid, "<uid>")
    if study.patient_pseudonym:
        text = text.replace(study.patient_pseudonym, "<patient>")
    return text[:_ERROR_CHARS]


def _record(
    info: ModelInfo, snapshot: str, study_uid: str, status: str, **fields: Any
) -> PredictionRecord:
    return PredictionRecord(
        model=info.name,
        model_version=info.version,
        snapshot=snapshot,
        study_uid=study_uid,
        status=status,
        info=info,
        **fields,
    )


def _outcome(
    info: ModelInfo,
    snapshot: str,
    study: StudyInput,
    prediction: Prediction | None,
    error: BaseException | None,
    elapsed: float,
) -> PredictionRecord:
    if error is None and isinstance(prediction, Prediction):
        measured = [prediction.timing[k] for k in _LATENCY_TIMING_KEYS if k in prediction.timing]
        latency = float(measured[0]) if measured else elapsed
        return _record(
            info, snapshot, study.study_uid, "ok", latency_s=latency, prediction=prediction
        )
    if error is None:
        error = ModelError(f"predict returned {type(prediction).__name__}, not a Prediction")
        reason = "malformed"
    elif isinstance(error, ModelError):
        reason = error.reason
    else:
        reason = "error"
    status = "timeout" if isinstance(error, ModelTimeoutError) else "failed"
    message = error.message if isinstance(error, ModelError) else f"{type(error).__name__}: {error}"
    return _record(
        info,
        snapshot,
        study.study_uid,
        status,
        reason=reason,
        error=_clean(message, study),
        latency_s=elapsed if status == "timeout" else None,
    )


def _accepted(study: StudyInput, info: ModelInfo) -> StudyInput | None:
    """The study with only the series the model takes (None: none of them)."""
    if not info.modalities:
        return study
    wanted = {m.upper() for m in info.modalities}
    series = tuple(s for s in study.series if s.modality.upper() in wanted)
    return dataclasses.replace(study, series=series) if series else None


# --- the run ---------------------------------------------------------------------------------
def _resolve(model: str | Model, settings: Settings, timeout_s: float | None) -> tuple[Model, bool]:
    if not isinstance(model, str):
        return model, False
    from gai_research.models.registry import load_model, read_models_file

    options: dict[str, Any] = {}
    entries = {e.name: e for e in read_models_file(settings)}
    if timeout_s is not None and model in entries and entries[model].adapter in _TIMED_ADAPTERS:
        options["timeout_s"] = timeout_s
    return load_model(model, settings, **options), True


def run_model(
    model: str | Model,
    cohort: Cohort | str,
    *,
    settings: Settings | None = None,
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    timeout_s: float | None = None,
) -> RunSummary:
    """Run ``model`` (a registry name or a Model) over ``cohort`` (a Cohort or a saved name).

    See the module docstring for what is recorded. A model given by name is closed at
    the end; one given as an object is left open for the caller.
    """
    from gai_research.config import load_settings
    from gai_research.data.cohort import Cohort

    if workers < 1:
        raise ModelConfigError(
            f"workers must be at least 1 (got {workers})", hint="e.g. --workers 2"
        )
    if timeout_s is not None and timeout_s <= 0:
        raise ModelConfigError(
            f"timeout must be positive (got {timeout_s})", hint="e.g. --timeout 60"
        )
    if settings is None:
        settings = getattr(cohort, "settings", None) or load_settings()
    if isinstance(cohort, str):
        cohort = Cohort.load(cohort, settings=settings)
    started = time.monotonic()
    instance, owned = _resolve(model, settings, timeout_s)
    try:
        summary = _run(instance, cohort, settings, workers, force, progress, timeout_s)
    finally:
        if owned:
            instance.close()
    summary.wall_s = time.monotonic() - started
    log.info(
        "%s on cohort %s: %d ok, %d failed, %d cached of %d studies in %.1f s",
        summary.model,
        summary.cohort,
        summary.n_ok,
        summary.n_failed,
        summary.n_cached,
        summary.n_studies,
        summary.wall_s,
    )
    return summary


def _run(
    model: Model,
    cohort: Cohort,
    settings: Settings,
    workers: int,
    force: bool,
    progress: bool,
    timeout_s: float | None,
) -> RunSummary:
    from gai_research.models.inputs import study_inputs

    info = model.info
    snapshot = cohort.snapshot
    summary = RunSummary(info.name, info, snapshot, cohort.name, cohort.content_hash)
    uids = list(cohort.study_uids)
    done: dict[str, PredictionRecord] = {}
    if not force:
        for record in load_predictions(
            settings, info.name, info.version, snapshot, study_uids=uids, status="ok"
        ):
            if record.snapshot == snapshot:
                done[record.study_uid] = record
    summary.n_cached = len(done)
    todo = [u for u in uids if u not in done]
    inputs = study_inputs(
        cohort.catalog, todo, settings=settings, series_uids=cohort.series_uids or None
    )
    pending: list[PredictionRecord] = []
    jobs: list[StudyInput] = []
    for uid in todo:
        study = inputs.get(uid)
        if study is None:
            pending.append(
                _record(
                    info,
                    snapshot,
                    uid,
                    "failed",
                    reason="input",
                    error="the study has no files among the cohort's series in this snapshot",
                )
            )
            continue
        chosen = _accepted(study, info)
        if chosen is None:
            pending.append(
                _record(
                    info,
                    snapshot,
                    uid,
                    "skipped",
                    reason="modality",
                    error=f"the study has {', '.join(study.modalities) or 'no modality'}; "
                    f"the model takes {', '.join(info.modalities)}",
                )
            )
            continue
        jobs.append(chosen)
    new: list[PredictionRecord] = list(pending)
    try:
        new += _execute(
            model, info, snapshot, jobs, workers, progress, timeout_s, settings, pending
        )
    finally:
        if pending:
            save_records(settings, pending)
    by_uid = {**done, **{r.study_uid: r for r in new}}
    summary.records = [by_uid[u] for u in uids]
    summary.n_ok = sum(r.ok for r in new)
    summary.n_failed = len(new) - summary.n_ok
    return summary


def _execute(
    model: Model,
    info: ModelInfo,
    snapshot: str,
    studies: Iterable[StudyInput],
    workers: int,
    progress: bool,
    timeout_s: float | None,
    settings: Settings,
    pending: list[PredictionRecord],
) -> list[PredictionRecord]:
    """Predict ``studies`` in a pool; records are appended to ``pending`` (saved in batches)."""
    from tqdm import tqdm

    studies = list(studies)
    if not studies:
        return []
    pool = _Pool(model, min(workers, len(studies)))
    for index, study in enumerate(studies):
        pool.jobs.put(_Job(index, study))
    out: list[PredictionRecord] = []
    last_save = time.monotonic()
    bar = tqdm(
        total=len(studies), desc=info.name, unit="study", file=sys.stderr, disable=not progress
    )
    try:
        while len(out) < len(studies):
            try:
                job, prediction, error, elapsed = pool.results.get(timeout=0.05)
                record = _outcome(info, snapshot, job.study, prediction, error, elapsed)
                if record.ok:
                    record = store_masks(settings, record)
                finished = [record]
            except queue.Empty:
                finished = []
            if timeout_s is not None:
                for job in pool.overdue(timeout_s):
                    finished.append(
                        _record(
                            info,
                            snapshot,
                            job.study.study_uid,
                            "timeout",
                            reason="timeout",
                            error=f"no prediction within {timeout_s:g} s (the runner's limit)",
                            latency_s=float(timeout_s),
                        )
                    )
            for record in finished:
                out.append(record)
                pending.append(record)
                bar.update(1)
                if not record.ok:
                    bar.set_postfix(failed=sum(not r.ok for r in out), refresh=False)
            now = time.monotonic()
            if len(pending) >= _SAVE_EVERY or (pending and now - last_save > _SAVE_INTERVAL_S):
                save_records(settings, pending)
                pending.clear()
                last_save = now
    finally:
        bar.close()
        pool.stop()
    return out
