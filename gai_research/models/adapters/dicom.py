"""The ``dicom`` adapter: a vendor AI product reached as a DICOM node.

``predict(study)`` C-STOREs every file of the study to the vendor's AE, then waits for
the vendor to C-STORE its results (TID 1500 SR, SEG, key-object selection) to our own
Storage SCP, matched by Study Instance UID, and folds them into one
:class:`~gai_research.models.types.Prediction`
(:func:`gai_research.models.sr.merge_predictions`).

When is a study done? Once at least one result object has arrived, no association that
delivered results for it is still open, and ``settle_s`` has passed since the last
object: a product that sends an SR and a SEG in two associations is waited for, one
that sends a single SR costs ``settle_s`` of wall time; a node that keeps its association
open is taken as done after ``idle_s`` without a new object. The measured latency,
``timing["first_store_to_last_result_s"]``, runs from the first C-STORE to the last
result received and does not include the settling.

Failures, each a per-study :class:`~gai_research.models.errors.ModelError`:

* nothing back within ``timeout_s`` of the first C-STORE: ModelTimeoutError;
* association refused, nobody listening, association dropped, files refused:
  ModelUnavailableError;
* a result object that does not read as SR / SEG / KOS: MalformedResultError.

One receiver serves every study of this model; studies may run concurrently from
several threads (the runner's workers), results are routed by study UID. Results for a
study nobody waits for (it timed out already) are accepted and dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gai_research.errors import GaiError
from gai_research.models.errors import (
    MalformedResultError,
    ModelConfigError,
    ModelError,
    ModelInputError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from gai_research.models.types import ModelInfo, Prediction, StudyInput

__all__ = ["DicomNodeModel"]

log = logging.getLogger(__name__)

POLL_S = 0.05
DEFAULT_LISTEN_AE = "GAI_PLATFORM"
PROJECTION_MODALITIES = {"MG", "DX", "CR"}
UNREADABLE = "not a readable DICOM file"  # gai_research.dicom.net.store_files' reason


@dataclass
class _Pending:
    """A study handed to the vendor whose results we are waiting for."""

    study_uid: str
    started: float
    results: list[tuple[float, bytes]] = field(default_factory=list)  # (arrived, Part 10 bytes)
    open_associations: set[int] = field(default_factory=set)


class DicomNodeModel:
    """A vendor DICOM node as a :class:`~gai_research.models.types.Model`.

    ``host``/``port``/``ae_title``: the vendor's node. ``listen_port``: where our results
    receiver listens; None (the default): the platform's configured DICOM port
    (``settings.platform_dicom_port``), the address vendor nodes are configured to send
    results to; 0: a free port (tests, or a node told the port some other way).
    ``listen_ae``: the receiver's AE title, also our calling AE title, by which the node
    finds its return address (None: ``settings.platform_ae_title``, ``GAI_PLATFORM``).
    Models of one process with the same fixed ``listen_port`` share one receiver (the
    gateway runs one instance per worker, all told the same return address); it stops
    with the last of them. A study is waited for by one of them at a time.
    ``results_dir``: if given, every result object is kept there as
    ``<study_uid>/<n>.dcm``, SEG masks point at their file, and
    ``prediction.raw["result_files"]`` lists them (``path`` relative to ``results_dir``,
    ``kind`` sr / seg / kos / other) for a caller to forward.
    """

    def __init__(
        self,
        info: ModelInfo,
        *,
        host: str,
        port: int,
        ae_title: str,
        listen_port: int | None = None,
        listen_ae: str | None = None,
        listen_host: str = "127.0.0.1",
        timeout_s: float = 60.0,
        settle_s: float = 0.5,
        idle_s: float = 5.0,
        store_retries: int = 2,
        results_dir: str | Path | None = None,
        settings: Any = None,
    ) -> None:
        if timeout_s <= 0 or settle_s < 0 or idle_s < settle_s:
            raise ModelConfigError(
                f"model {info.name!r}: timeout_s must be > 0 and 0 <= settle_s <= idle_s",
                hint=f"got timeout_s={timeout_s}, settle_s={settle_s}, idle_s={idle_s}",
                model=info.name,
            )
        from gai_research.dicom.net import DicomNode

        self.info = info
        self.node = DicomNode(ae_title=ae_title, host=host, port=int(port), label="vendor node")
        if listen_port is None or listen_ae is None:
            platform = _platform(settings)
            listen_port = platform[1] if listen_port is None else listen_port
            listen_ae = listen_ae or platform[0]
        self.listen_ae = listen_ae
        self.listen_host = listen_host
        self.requested_listen_port = int(listen_port)
        self.timeout_s = float(timeout_s)
        self.settle_s = float(settle_s)
        self.idle_s = float(idle_s)
        self.store_retries = int(store_retries)
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._receiver: _Receiver | None = None
        # the receiver's (shared) table of waiting studies and its condition, once joined
        self._pending: dict[str, _Pending] = {}
        self._cond = threading.Condition()

    # --- the results receiver -----------------------------------------------------------
    @property
    def listen_port(self) -> int:
        """The receiver's port (the requested one until it listens)."""
        if self._receiver is None:
            return self.requested_listen_port
        return self._receiver.port

    def start_listener(self) -> int:
        """Start (or join) the results receiver (idempotent); returns its port."""
        with self._lock:
            if self._receiver is None:
                receiver = _acquire(
                    self.listen_host, self.requested_listen_port, self.listen_ae, self.info.name
                )
                self._receiver = receiver
                self._pending, self._cond = receiver.pending, receiver.cond
        return self.listen_port

    def close(self) -> None:
        """Leave the results receiver (stopped with its last user); studies still waiting
        time out."""
        with self._lock:
            receiver, self._receiver = self._receiver, None
        if receiver is not None:
            _release(receiver)

    def __enter__(self) -> DicomNodeModel:
        self.start_listener()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- predict ------------------------------------------------------------------------
    def predict(self, study: StudyInput) -> Prediction:
        """Send the study, wait for its results, read them into one prediction."""
        from gai_research.dicom.net import store_files

        files = study.files
        if not files:
            raise self._error(ModelInputError, "the study has no files to send", study)
        self.start_listener()
        started = time.monotonic()
        with self._cond:
            if study.study_uid in self._pending:
                raise self._error(
                    ModelInputError,
                    "the study is already with this node",
                    study,
                    hint="send each study once at a time",
                )
            pending = _Pending(study.study_uid, started)
            self._pending[study.study_uid] = pending
        try:
            try:
                sent = store_files(self.node, files, self.listen_ae, retries=self.store_retries)
            except GaiError as exc:
                raise self._error(
                    ModelUnavailableError, exc.message, study, hint=exc.hint
                ) from None
            stored = time.monotonic()
            unreadable = sent.reasons.get(UNREADABLE, 0)
            if unreadable:
                raise self._error(
                    ModelInputError,
                    f"{unreadable} of {sent.offered} files of the study are not readable DICOM",
                    study,
                    hint="hand over the study's DICOM files only",
                )
            if sent.failed:
                reasons = ", ".join(f"{n} {why}" for why, n in sent.reasons.most_common())
                raise self._error(
                    ModelUnavailableError,
                    f"the vendor node refused {sent.failed} of {sent.offered} files ({reasons})",
                    study,
                    hint="check that the node knows our AE title "
                    f"{self.listen_ae!r} and where to send results",
                )
            results = self._wait(pending, study)
        finally:
            with self._cond:
                self._pending.pop(study.study_uid, None)
        prediction = self._read(study, results)
        last = max(arrived for arrived, _ in results)
        timing = dict(prediction.timing) | {
            "first_store_to_last_result_s": last - started,
            "store_s": stored - started,
            "n_result_objects": float(len(results)),
        }
        return replace(prediction, timing=timing)

    def _wait(self, pending: _Pending, study: StudyInput) -> list[tuple[float, bytes]]:
        deadline = pending.started + self.timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                if pending.results:
                    quiet = now - pending.results[-1][0]
                    if quiet >= self.settle_s and not pending.open_associations:
                        return list(pending.results)
                    if quiet >= self.idle_s or now >= deadline:
                        # a node that keeps its association open, or still sending at the
                        # deadline: take what came
                        return list(pending.results)
                elif now >= deadline:
                    self.stats["timeouts"] += 1
                    raise self._error(
                        ModelTimeoutError,
                        f"no result from the vendor node within {self.timeout_s:g} s",
                        study,
                        hint=f"is the node configured to send results to {self.listen_ae!r} "
                        f"at {self.listen_host}:{self.listen_port}? raise timeout_s if it is slow",
                    )
                wake = deadline
                if pending.results:
                    pause = self.idle_s if pending.open_associations else self.settle_s
                    wake = min(deadline, pending.results[-1][0] + pause)
                self._cond.wait(max(POLL_S, min(wake - now, 1.0)))

    def _read(self, study: StudyInput, results: list[tuple[float, bytes]]) -> Prediction:
        from gai_research.models.sr import merge_predictions, read_seg, read_sr, result_kind
        from gai_research.models.sr_read import as_dataset

        sources = None
        if set(study.modalities) & PROJECTION_MODALITIES:
            sources = [ds for s in study.series for ds in s.datasets(pixels=False)]
        predictions, ignored, kept = [], Counter(), []
        for number, (_, data) in enumerate(results, start=1):
            try:
                ds = as_dataset(data)
                kind = result_kind(str(ds.get("SOPClassUID", "")), str(ds.get("Modality", "")))
                saved = self._keep(study.study_uid, number, data)
                if saved is not None:
                    kept.append({"path": saved, "kind": kind or "other"})
                if kind == "sr":
                    predictions.append(read_sr(ds, sources=sources))
                elif kind == "seg":
                    reading = read_seg(ds).prediction
                    if saved is not None:
                        reading = replace(
                            reading, masks=tuple(replace(m, path=saved) for m in reading.masks)
                        )
                    predictions.append(reading)
                elif kind == "kos":
                    from gai_research.models.sr import read_kos

                    predictions.append(read_kos(ds))
                else:
                    ignored[str(ds.get("Modality", "?"))] += 1
            except MalformedResultError as exc:
                raise self._error(
                    MalformedResultError,
                    f"result object {number}: {exc.message}",
                    study,
                    hint=exc.hint,
                ) from None
        if not predictions:
            kinds = ", ".join(f"{n} {m}" for m, n in ignored.items())
            raise self._error(
                MalformedResultError,
                f"the vendor node sent no SR, SEG or key object selection (only {kinds})",
                study,
            )
        merged = merge_predictions(study.study_uid, predictions)
        if ignored:
            merged = replace(merged, raw={**merged.raw, "ignored": dict(ignored)})
        if kept:  # what a caller may forward (the gateway: SEG, KOS, secondary captures)
            merged = replace(merged, raw={**merged.raw, "result_files": kept})
        return merged

    def _keep(self, study_uid: str, number: int, data: bytes) -> str | None:
        if self.results_dir is None:
            return None
        relative = f"{study_uid}/{number}.dcm"
        path = self.results_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return relative

    def _error(
        self, cls: type[ModelError], message: str, study: StudyInput, *, hint: str | None = None
    ) -> ModelError:
        return cls(
            f"{self.info.name}: {message}",
            hint=hint,
            model=self.info.name,
            study_uid=study.study_uid,
        )


class _Receiver:
    """A results receiver (Storage SCP) and the studies waiting on it, matched by Study
    Instance UID. One per fixed (host, port) in a process, shared by every model that
    listens there; a receiver on port 0 is private to its model."""

    def __init__(self, host: str, port: int, ae_title: str) -> None:
        self.host, self.requested_port, self.ae_title = host, int(port), ae_title
        self.pending: dict[str, _Pending] = {}
        self.assoc_studies: dict[int, set[str]] = {}
        self.cond = threading.Condition()
        self.stats: Counter[str] = Counter()
        self.users = 0
        self._server = None
        self._thread: threading.Thread | None = None
        self._ae = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    def start(self, model: str) -> None:
        from pynetdicom import evt

        from gai_research.dicom.server import start_scp
        from gai_research.ingest.scp import storage_ae

        ae = storage_ae(self.ae_title)
        ae.require_called_aet = True
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        try:
            server, thread = start_scp(
                ae,
                (self.host, self.requested_port),
                handlers,
                thread_name=f"gai-dicom-results-{model}",
            )
        except OSError as exc:
            raise ModelConfigError(
                f"model {model!r}: cannot receive results on port "
                f"{self.requested_port}: {exc.strerror or exc}",
                hint="another receiver listens there: choose another listen_port (0: free)",
                model=model,
            ) from None
        self._ae, self._server, self._thread = ae, server, thread
        log.info("results receiver %s on %s:%d", self.ae_title, self.host, self.port)

    def stop(self) -> None:
        from gai_research.dicom.server import stop_scp

        server, self._server = self._server, None
        if server is None:
            return
        stop_scp(self._ae, server, self._thread)

    def _on_store(self, event) -> int:
        try:
            data = event.encoded_dataset()
            study_uid = str(event.dataset.get("StudyInstanceUID", "") or "")
        except Exception as exc:  # an undecodable object: refuse it, the vendor sees why
            log.warning("refused a result object that cannot be decoded (%s)", type(exc).__name__)
            return 0xC000
        now = time.monotonic()
        with self.cond:
            pending = self.pending.get(study_uid)
            if pending is None:
                self.stats["unmatched"] += 1
                log.warning("a result arrived for a study nobody waits for (late or foreign)")
                return 0x0000
            pending.results.append((now, data))
            pending.open_associations.add(id(event.assoc))
            self.assoc_studies.setdefault(id(event.assoc), set()).add(study_uid)
            self.stats["received"] += 1
            self.cond.notify_all()
        return 0x0000

    def _on_closed(self, event) -> None:
        with self.cond:
            for study_uid in self.assoc_studies.pop(id(event.assoc), set()):
                pending = self.pending.get(study_uid)
                if pending is not None:
                    pending.open_associations.discard(id(event.assoc))
            self.cond.notify_all()


_SHARED: dict[tuple[str, int], _Receiver] = {}
_SHARED_LOCK = threading.Lock()


def _acquire(host: str, port: int, ae_title: str, model: str) -> _Receiver:
    """The receiver on (host, port), started if nobody listens there yet."""
    with _SHARED_LOCK:
        receiver = _SHARED.get((host, port)) if port else None
        if receiver is not None and receiver.ae_title != ae_title:
            raise ModelConfigError(
                f"model {model!r}: port {port} receives results as "
                f"{receiver.ae_title!r}, not {ae_title!r}",
                hint="models sharing a listen_port must share its listen_ae too",
                model=model,
            )
        if receiver is None:
            receiver = _Receiver(host, port, ae_title)
            receiver.start(model)
            if port:
                _SHARED[(host, port)] = receiver
        receiver.users += 1
        return receiver


def _release(receiver: _Receiver) -> None:
    """One user fewer; the last one stops the receiver (under the lock, so a model made
    right after can bind the port again)."""
    with _SHARED_LOCK:
        receiver.users -= 1
        if receiver.users > 0:
            return
        key = (receiver.host, receiver.requested_port)
        if _SHARED.get(key) is receiver:
            del _SHARED[key]
        receiver.stop()


def _platform(settings: Any) -> tuple[str, int]:
    """The platform's AE title and DICOM port from the settings (defaults if none load)."""
    try:
        if settings is None:
            from gai_research.config import load_settings

            settings = load_settings()
        return settings.platform_ae_title.strip(), int(settings.platform_dicom_port)
    except GaiError:
        return DEFAULT_LISTEN_AE, 0
