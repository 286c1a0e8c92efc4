"""A simulated vendor DICOM node: C-STORE a study in, get a TID 1500 SR back.

It behaves the way the consortium's DICOM-node AI products do: a Storage SCP on
127.0.0.1 receives a study; when the sender releases the association the node runs its
model (here a wrapped baseline or test double) on the received files, waits
``delay_s``, writes the result as a Comprehensive 3D SR (:func:`gai_research.models.sr.write_sr`,
origin ``simulator`` in the series description) and C-STOREs it to the return address:

* ``return_to=(host, port, ae_title)``: one fixed address for every caller, or
* the calling AE's configured return address: ``routes={ae_title: (host, port)}`` /
  :meth:`DicomNodeSimulator.add_route`, and by default the platform's own AE
  (``settings.platform_ae_title`` on ``settings.platform_dicom_port``).

A caller with no return address is refused (status 0x0124, "not authorised"), as a
product refuses an AE it was not configured for.

Failure modes, for tests and the demo: ``failure="drop"`` aborts the association at the
first C-STORE, ``"no-result"`` never answers, ``"malformed"`` answers with an SR that is
not a measurement report. ``send_kos=True`` also sends, in the same association, a
key-object selection flagging the study's first image (a vendor's second object, as
products that mark key images do). ``failure_rate`` / ``timeout_rate`` / ``malformed_rate`` do the
same per study and attempt, drawn from ``seed`` (the HTTP simulator's dice), so a run is
reproducible. The wrapped model's own errors are logged and nothing is sent back.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.models.errors import ModelConfigError, ModelError
from gai_research.models.simulators._serve import run_until_stopped
from gai_research.models.types import Model, Origin

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["FAILURES", "DicomNodeSimulator", "serve"]

log = logging.getLogger(__name__)

FAILURES = ("drop", "no-result", "malformed")
NOT_AUTHORISED = 0x0124


@dataclasses.dataclass
class _Batch:
    """What one association delivered."""

    folder: Path
    calling_ae: str
    files: list[Path] = dataclasses.field(default_factory=list)
    fate: str = "ok"  # ok | no-result | malformed (drop never gets here)
    route: tuple[str, int, str] | None = None


class DicomNodeSimulator:
    """A vendor DICOM node wrapping ``model``; see the module docstring.

    ``port=0`` takes a free port (:attr:`port` says which). ``stats`` counts what it did:
    ``received`` objects, ``studies`` run, ``results_sent``, ``dropped``, ``no_result``,
    ``malformed``, ``refused``, ``model_errors``, ``send_errors``.
    """

    def __init__(
        self,
        model: Model,
        *,
        ae_title: str = "GAI-SIM-DICOM",
        port: int = 0,
        return_to: tuple[str, int, str] | None = None,
        routes: Mapping[str, tuple[str, int]] | None = None,
        delay_s: float = 0.0,
        failure: str | None = None,
        failure_rate: float = 0.0,
        timeout_rate: float = 0.0,
        malformed_rate: float = 0.0,
        seed: int = 0,
        send_kos: bool = False,
        settings: Any = None,
    ) -> None:
        rates = (failure_rate, timeout_rate, malformed_rate)
        if failure is not None and failure not in FAILURES:
            raise ModelConfigError(
                f"unknown simulator failure {failure!r}", hint=f"use one of {', '.join(FAILURES)}"
            )
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-9 or delay_s < 0:
            raise ModelConfigError(
                "simulator rates must each be in [0, 1] and sum to at most 1; delay_s >= 0",
                hint=f"got rates {rates}, delay_s={delay_s}",
            )
        self.model = model
        # the SR says what answered: the wrapped model, run by a simulator
        self.info = dataclasses.replace(model.info, origin=Origin.SIMULATOR)
        self.ae_title = ae_title
        self.requested_port = int(port)
        self.return_to = tuple(return_to) if return_to is not None else None
        self.routes = {ae.strip(): (h, int(p)) for ae, (h, p) in (routes or {}).items()}
        self.delay_s = float(delay_s)
        self.failure = failure
        self.failure_rate, self.timeout_rate, self.malformed_rate = (float(r) for r in rates)
        self.seed = int(seed)
        self.send_kos = bool(send_kos)
        self.settings = settings
        self.stats: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self._batches: dict[int, _Batch] = {}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._server = None
        self._thread: threading.Thread | None = None
        self._ae = None
        self._workdir: Path | None = None

    # --- lifecycle ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    def add_route(self, ae_title: str, host: str, port: int) -> None:
        """Configure where results for calls from ``ae_title`` go."""
        with self._lock:
            self.routes[ae_title.strip()] = (host, int(port))

    def start(self) -> DicomNodeSimulator:
        from pynetdicom import evt

        from gai_research.dicom.server import start_scp
        from gai_research.ingest.scp import storage_ae

        if self._server is not None:
            return self
        ae = storage_ae(self.ae_title)
        ae.require_called_aet = True
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
        ]
        # the work folder exists before the first C-STORE can arrive
        self._workdir = Path(tempfile.mkdtemp(prefix="gai-sim-dicom-"))
        try:
            server, thread = start_scp(
                ae,
                ("127.0.0.1", self.requested_port),
                handlers,
                thread_name=f"gai-sim-dicom-{self.requested_port}",
                share=False,
            )
        except OSError as exc:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            raise ModelConfigError(
                f"the DICOM-node simulator cannot listen on port {self.requested_port}: "
                f"{exc.strerror or exc}",
                hint="choose another port, or 0 for a free one",
            ) from None
        self._ae, self._server, self._thread = ae, server, thread
        log.info("DICOM-node simulator %s listening on 127.0.0.1:%d", self.ae_title, self.port)
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let running studies finish for ``grace`` seconds, clean up."""
        from gai_research.dicom.server import stop_scp

        server, self._server = self._server, None
        if server is None:
            return

        def finish_workers() -> None:
            deadline = time.monotonic() + grace + self.delay_s
            for worker in list(self._workers):
                worker.join(max(0.0, deadline - time.monotonic()))

        stop_scp(self._ae, server, self._thread, before_abort=finish_workers)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> DicomNodeSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- receiving ----------------------------------------------------------------------
    def _route_for(self, calling_ae: str) -> tuple[str, int, str] | None:
        if self.return_to is not None:
            return self.return_to  # type: ignore[return-value]
        with self._lock:
            route = self.routes.get(calling_ae)
        if route is not None:
            return route[0], route[1], calling_ae
        settings = self._platform_settings()
        if settings is not None and calling_ae == settings.platform_ae_title.strip():
            return "127.0.0.1", int(settings.platform_dicom_port), calling_ae
        return None

    def _platform_settings(self) -> Any:
        if self.settings is None:
            from gai_research.config import load_settings
            from gai_research.errors import GaiError

            try:
                self.settings = load_settings()
            except GaiError:
                return None
        return self.settings

    def _fate(self, study_uid: str) -> str:
        if self.failure is not None:
            return {"drop": "drop", "no-result": "no-result", "malformed": "malformed"}[
                self.failure
            ]
        from gai_research.models.simulators.http import roll_fate

        return roll_fate(
            self.seed,
            study_uid,
            self._attempts,
            self._lock,
            (
                ("drop", self.failure_rate),
                ("no-result", self.timeout_rate),
                ("malformed", self.malformed_rate),
            ),
        )

    def _on_store(self, event) -> int:
        calling_ae = str(event.assoc.requestor.ae_title or "").strip()
        key = id(event.assoc)
        with self._lock:
            batch = self._batches.get(key)
        if batch is None:
            route = self._route_for(calling_ae)
            if route is None:
                with self._lock:
                    self.stats["refused"] += 1
                log.warning("refused a C-STORE: the calling AE has no configured return address")
                return NOT_AUTHORISED
            study_uid = str(event.dataset.get("StudyInstanceUID", ""))
            fate = self._fate(study_uid)
            if fate == "drop":
                with self._lock:
                    self.stats["dropped"] += 1
                log.info("simulated failure: dropping the association")
                event.assoc.abort()
                return 0xA700
            folder = self._workdir / f"assoc-{len(self._batches)}-{time.monotonic_ns()}"
            folder.mkdir(parents=True)
            batch = _Batch(folder=folder, calling_ae=calling_ae, fate=fate, route=route)
            with self._lock:
                self._batches[key] = batch
        path = batch.folder / f"{len(batch.files):06d}.dcm"
        path.write_bytes(event.encoded_dataset())
        batch.files.append(path)
        with self._lock:
            self.stats["received"] += 1
        return 0x0000

    def _on_aborted(self, event) -> None:
        with self._lock:
            batch = self._batches.pop(id(event.assoc), None)
        if batch is not None:
            shutil.rmtree(batch.folder, ignore_errors=True)

    def _on_released(self, event) -> None:
        with self._lock:
            batch = self._batches.pop(id(event.assoc), None)
        if batch is None or not batch.files:
            return
        worker = threading.Thread(target=self._answer, args=(batch,), daemon=True)
        with self._lock:
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()

    # --- answering ----------------------------------------------------------------------
    def _answer(self, batch: _Batch) -> None:
        from gai_research.models.inputs import study_inputs_from_files

        try:
            studies = study_inputs_from_files(batch.files)
        except ModelError as exc:
            log.warning("simulator could not read what it received: %s", exc)
            self._count("model_errors")
            shutil.rmtree(batch.folder, ignore_errors=True)
            return
        try:
            for number, study in enumerate(studies):
                try:
                    self._answer_study(study, batch, number)
                except ModelError as exc:  # e.g. a prediction write_sr cannot place
                    self._count("model_errors")
                    log.warning("no result for a study: %s", exc)
                except Exception:  # a bug in the wrapped model: log it, keep serving
                    self._count("model_errors")
                    log.exception("the wrapped model crashed on a study")
        finally:
            shutil.rmtree(batch.folder, ignore_errors=True)

    def _answer_study(self, study, batch: _Batch, number: int) -> None:
        import pydicom

        self._count("studies")
        if batch.fate == "no-result":
            self._count("no_result")
            log.info("simulated time-out: no result for a study")
            return
        prediction = self.model.predict(study)
        if self.delay_s:
            time.sleep(self.delay_s)
        headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in study.files]
        if batch.fate == "malformed":
            result = _malformed_sr(headers)
            self._count("malformed")
        else:
            from gai_research.models.sr import write_sr

            result = write_sr(prediction, self.info, headers)
        path = batch.folder / f"result-{number}.dcm"
        result.save_as(path, enforce_file_format=True)
        if self.send_kos and batch.fate == "ok":
            kos = batch.folder / f"result-{number}-kos.dcm"
            _key_images(headers[:1]).save_as(kos, enforce_file_format=True)
            self._send(path, batch.route, kos)
            return
        self._send(path, batch.route)

    def _send(self, path: Path, route: tuple[str, int, str] | None, *more: Path) -> None:
        from gai_research.dicom.net import DicomNode, store_files
        from gai_research.errors import GaiError

        assert route is not None
        host, port, ae_title = route
        node = DicomNode(ae_title=ae_title, host=host, port=int(port), label="return address")
        try:
            result = store_files(node, [path, *more], self.ae_title, retries=1)
        except GaiError as exc:
            self._count("send_errors")
            log.warning("simulator could not send its result: %s", exc)
            return
        self._count("results_sent" if result.sent == 1 + len(more) else "send_errors")

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1


def _key_images(headers: list[Dataset]) -> Dataset:
    """A key-object selection ("Of Interest") flagging ``headers``' images."""
    import copy

    import highdicom as hd

    images = [copy.copy(ds) for ds in headers]
    for ds in images:  # highdicom refuses ISO 2022 with an empty first value
        ds.SpecificCharacterSet = "ISO_IR 192"
    return hd.ko.KeyObjectSelectionDocument(
        evidence=images,
        content=hd.ko.KeyObjectSelection(
            document_title=hd.sr.CodedConcept("113000", "DCM", "Of Interest"),
            referenced_objects=images,
        ),
        series_instance_uid=hd.UID(),
        series_number=902,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="gai-research simulator",
    )


def _malformed_sr(headers: list[Dataset]) -> Dataset:
    """A valid Comprehensive 3D SR that is not a measurement report: a text note only."""
    import highdicom as hd

    root = hd.sr.ContainerContentItem(
        name=hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging report"),
        template_id=None,
    )
    root.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=hd.sr.CodedConcept("121071", "DCM", "Finding"),
                value="processing failed: internal error (simulated)",
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        ]
    )
    return hd.sr.Comprehensive3DSR(
        evidence=headers,
        content=root,
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="gai-research simulator",
        specific_character_set="ISO_IR 192",
    )


def serve(
    model_name: str,
    port: int = 0,
    ae_title: str = "GAI-SIM-DICOM",
    delay_s: float = 0.0,
    return_host: str | None = None,
    return_port: int | None = None,
    return_ae: str | None = None,
    failure: str | None = None,
    *,
    settings: Any = None,
    on_ready: Callable[[DicomNodeSimulator], None] | None = None,
    stop: threading.Event | None = None,
    **rates: Any,
) -> None:
    """Run a simulated node wrapping the registry's model ``model_name`` until SIGTERM/SIGINT.

    ``return_host``/``return_port``/``return_ae`` fix the return address (all three, or
    none: then the calling AE's configured address). ``rates``: ``failure_rate``,
    ``timeout_rate``, ``malformed_rate``, ``seed``. ``stop``: an event that ends it (for
    embedding); signal handlers are installed only from the main thread.
    """
    from gai_research.models.registry import load_model

    given = [v is not None for v in (return_host, return_port, return_ae)]
    if any(given) and not all(given):
        raise ModelConfigError(
            "a return address needs host, port and AE title",
            hint="give all three (--return-host/--return-port/--return-ae), or none",
        )
    return_to = (return_host, int(return_port), return_ae) if all(given) else None
    model = load_model(model_name, settings=settings)
    run_until_stopped(
        model,
        lambda: DicomNodeSimulator(
            model,
            ae_title=ae_title,
            port=port,
            return_to=return_to,  # type: ignore[arg-type]
            delay_s=delay_s,
            failure=failure,
            settings=settings,
            **rates,
        ),
        on_ready=on_ready,
        stop=stop,
    )
