"""A simulated vendor HTTP inference service, for the tests and the demo.

:class:`HttpVendorSimulator` serves the contract of ``docs/vendor-http-api.md`` on
127.0.0.1 with the standard library's ``ThreadingHTTPServer``, wrapping any
:class:`~gai_research.models.types.Model` (a baseline, a test double). It receives a
study as ``multipart/related`` DICOM or as DICOMweb references (which it retrieves by
WADO-RS, as a vendor would), writes the instances to a private temporary folder, builds
a :class:`~gai_research.models.types.StudyInput` with
:func:`gai_research.models.inputs.study_input_from_files`, waits ``delay_s``, runs the
model and answers its prediction as JSON.

Faults, for exercising the client's error paths: each request for a study draws a number
in [0, 1) from ``sha256(seed, study UID, how many requests for that study came before)``,
so the fates are the same in every run whatever the order in which parallel workers ask.
Below ``failure_rate`` it answers HTTP 500; in the next ``timeout_rate`` it holds the
connection open without answering until the simulator stops (or an hour: past any client
time-out);
in the next ``malformed_rate`` it answers 200 with truncated JSON. ``stats`` counts the
outcomes.

It is a simulator, not a vendor: ``GET /v1/info`` says ``origin: simulator``, and what
it answers is the wrapped model's prediction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gai_research.models.adapters.http import (
    DICOM_MULTIPART,
    MultipartError,
    content_type_params,
    parse_multipart,
)
from gai_research.models.errors import ModelConfigError, ModelError, ModelInputError
from gai_research.models.simulators._serve import run_until_stopped
from gai_research.models.types import Model, StudyInput

__all__ = ["OUTCOMES", "HttpVendorSimulator", "fate_draw", "roll_fate", "serve"]

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "failure", "timeout", "malformed")
MAX_BODY = 4 * 1024**3  # 4 GiB: larger uploads are refused with 413
HANG_S = 3600.0  # a "time-out" request is held this long at most (or until stop)
VENDOR = "gai-research simulated vendor"


def fate_draw(seed: int, study_uid: str, attempt: int) -> float:
    """A number in [0, 1) fixed by (seed, study, attempt): the simulator's dice."""
    digest = hashlib.sha256(f"{seed}\x1f{study_uid}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def roll_fate(
    seed: int,
    study_uid: str,
    attempts: Counter[str],
    lock: threading.Lock,
    rates: Iterable[tuple[str, float]],
) -> str:
    """The fate of this attempt for ``study_uid``: one of ``rates``' names, or "ok".

    Counts the attempt in ``attempts`` (under ``lock``) and draws :func:`fate_draw`;
    each ``(name, rate)`` takes its share of [0, 1) in order.
    """
    with lock:
        attempt = attempts[study_uid]
        attempts[study_uid] += 1
    draw = fate_draw(seed, study_uid, attempt)
    for name, rate in rates:
        if draw < rate:
            return name
        draw -= rate
    return "ok"


class _HttpError(Exception):
    """An error answer: HTTP status and the message for the JSON ``error`` field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpVendorSimulator:
    """A vendor HTTP service wrapping ``model``; see the module docstring.

    ``port=0`` takes a free port (``.url`` says which). ``dicomweb_fetch=False`` makes
    it a vendor that accepts uploads only (DICOMweb references get 415).
    ``fetch_timeout_s`` bounds each WADO-RS retrieval.
    """

    def __init__(
        self,
        model: Model,
        *,
        port: int = 0,
        delay_s: float = 0.0,
        failure_rate: float = 0.0,
        timeout_rate: float = 0.0,
        malformed_rate: float = 0.0,
        seed: int = 0,
        dicomweb_fetch: bool = True,
        fetch_timeout_s: float = 60.0,
    ) -> None:
        rates = {
            "failure_rate": failure_rate,
            "timeout_rate": timeout_rate,
            "malformed_rate": malformed_rate,
        }
        bad = [k for k, v in rates.items() if not 0.0 <= float(v) <= 1.0]
        if bad or sum(rates.values()) > 1.0 + 1e-9 or delay_s < 0:
            raise ModelConfigError(
                "simulator rates must each be in [0, 1] and sum to at most 1; delay_s >= 0",
                hint=f"got {rates}, delay_s={delay_s}",
            )
        self.model = model
        self.port = int(port)
        self.delay_s = float(delay_s)
        self.failure_rate = float(failure_rate)
        self.timeout_rate = float(timeout_rate)
        self.malformed_rate = float(malformed_rate)
        self.seed = int(seed)
        self.dicomweb_fetch = bool(dicomweb_fetch)
        self.fetch_timeout_s = float(fetch_timeout_s)
        self.stats: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise ModelConfigError("the simulator is not running", hint="call start() first")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpVendorSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        try:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        except OSError as exc:
            raise ModelConfigError(
                f"the HTTP vendor simulator cannot listen on 127.0.0.1:{self.port}: {exc.strerror}",
                hint="choose another port, or 0 for a free one",
            ) from None
        server.daemon_threads = True
        server.simulator = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll at most
            name=f"http-sim-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("HTTP vendor simulator for %s on %s", self.model.info.name, self.url)
        return self

    def stop(self) -> None:
        """Stop serving; requests held open (time-outs, delays) are released."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> HttpVendorSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- behaviour ------------------------------------------------------------------------
    def fate(self, study_uid: str) -> str:
        """The outcome of this request for ``study_uid`` (one of :data:`OUTCOMES`)."""
        return roll_fate(
            self.seed,
            study_uid,
            self._attempts,
            self._lock,
            (
                ("failure", self.failure_rate),
                ("timeout", self.timeout_rate),
                ("malformed", self.malformed_rate),
            ),
        )

    def count(self, outcome: str) -> None:
        with self._lock:
            self.stats[outcome] += 1

    def info(self) -> dict[str, Any]:
        info = self.model.info
        return {
            "name": info.name,
            "version": info.version,
            "vendor": VENDOR,
            "origin": "simulator",
            "wraps": {"name": info.name, "vendor": info.vendor, "origin": str(info.origin)},
            "task": info.task,
            "kind": str(info.kind),
            "modalities": list(info.modalities),
            "accepts": [DICOM_MULTIPART] + (["application/json"] if self.dicomweb_fetch else []),
        }

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def wait(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (None: until stopped); True when the simulator stopped meanwhile."""
        return self._stopping.wait(seconds)

    def receive(self, content_type: str, body: bytes, folder: Path) -> StudyInput:
        """The study in a request body (uploaded, or fetched by WADO-RS), as files in ``folder``."""
        media_type, params = content_type_params(content_type)
        if media_type == "multipart/related":
            part_type = params.get("type", "application/dicom").lower()
            if part_type != "application/dicom":
                raise _HttpError(415, f"parts must be application/dicom, not {part_type}")
            return _study_from_parts(body, content_type, folder, expected=None)
        if media_type == "application/json":
            if not self.dicomweb_fetch:
                raise _HttpError(415, f"this service accepts {DICOM_MULTIPART} uploads only")
            try:
                refs = json.loads(body)
            except ValueError:
                raise _HttpError(400, "the body is not valid JSON") from None
            if not isinstance(refs, dict) or not all(
                isinstance(refs.get(k), str) and refs.get(k) for k in ("study_uid", "wado_rs")
            ):
                raise _HttpError(400, "a reference needs study_uid and wado_rs (strings)")
            return self._fetch(refs["study_uid"], refs["wado_rs"], folder)
        raise _HttpError(415, f"unsupported Content-Type {media_type or '(none)'}")

    def _fetch(self, study_uid: str, wado_rs: str, folder: Path) -> StudyInput:
        import requests

        if not wado_rs.startswith(("http://", "https://")):
            raise _HttpError(400, "wado_rs must be an http(s) URL")
        accept = f"{DICOM_MULTIPART}; transfer-syntax=*"
        try:
            answer = requests.get(
                wado_rs, headers={"Accept": accept}, timeout=(10.0, self.fetch_timeout_s)
            )
        except requests.RequestException as exc:
            raise _HttpError(502, f"WADO-RS retrieve failed: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise _HttpError(502, f"WADO-RS retrieve answered HTTP {answer.status_code}")
        content_type = answer.headers.get("Content-Type", "")
        return _study_from_parts(answer.content, content_type, folder, expected=study_uid)

    def answer(self, study: StudyInput) -> dict[str, Any]:
        """Wait ``delay_s``, run the model, and shape its prediction as the contract's JSON."""
        if self.wait(self.delay_s):
            raise _HttpError(503, "the service is shutting down")
        started = time.perf_counter()
        try:
            prediction = self.model.predict(study)
        except ModelInputError as exc:
            raise _HttpError(422, exc.message) from None
        except ModelError as exc:
            raise _HttpError(500, f"the model failed: {exc.message}") from None
        except Exception as exc:
            log.exception("the wrapped model raised")
            raise _HttpError(500, f"internal error ({type(exc).__name__})") from None
        body = prediction.to_dict()
        body["study_uid"] = study.study_uid
        body["masks"] = []  # masks are not carried by this contract (see the doc)
        body["model"] = {"name": self.model.info.name, "version": self.model.info.version}
        body["timing"] = {
            **{k: float(v) for k, v in prediction.timing.items()},
            "inference_s": time.perf_counter() - started,
            "delay_s": self.delay_s,
        }
        return body


def _study_from_parts(
    body: bytes, content_type: str, folder: Path, *, expected: str | None
) -> StudyInput:
    from gai_research.models.inputs import study_input_from_files

    try:
        parts = parse_multipart(body, content_type)
    except MultipartError as exc:
        raise _HttpError(400, f"bad multipart body: {exc}") from None
    paths = []
    for index, (headers, content) in enumerate(parts, start=1):
        part_type = headers.get("content-type", "application/dicom").split(";")[0].strip()
        if part_type.lower() != "application/dicom":
            raise _HttpError(415, f"part {index} is {part_type}, not application/dicom")
        path = folder / f"{index:05d}.dcm"
        path.write_bytes(content)
        paths.append(path)
    try:
        study = study_input_from_files(paths)
    except ModelInputError as exc:
        raise _HttpError(422, exc.message) from None
    if expected is not None and study.study_uid != expected:
        raise _HttpError(422, "the retrieved instances belong to another study")
    return study


class _Handler(BaseHTTPRequestHandler):
    """One request to the simulator (``self.server.simulator`` holds the behaviour)."""

    protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses connections
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall
    server_version = "gai-vendor-simulator/1"
    timeout = 120  # an idle kept-alive connection (or a stalled upload) is closed after this

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if self.sim.stopped:  # a stopped vendor answers nothing more on kept-alive connections
            self.close_connection = True

    @property
    def sim(self) -> HttpVendorSimulator:
        return self.server.simulator  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, default=str).encode("utf-8"))

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _refuse_when_stopped(self) -> bool:
        """True (and the connection closed unanswered) once the simulator has stopped."""
        if self.sim.stopped:
            self.close_connection = True
            return True
        return False

    def do_GET(self) -> None:
        if self._refuse_when_stopped():
            return
        if self.path == "/health":
            self._send_json(200, {"status": "ok"})
        elif self.path == "/v1/info":
            self._send_json(200, self.sim.info())
        else:
            self._send_json(404, {"error": f"no such resource {self.path}"})

    def do_POST(self) -> None:
        if self._refuse_when_stopped():
            return
        if self.path != "/v1/studies":
            self.close_connection = True
            self._send_json(404, {"error": f"no such resource {self.path}"})
            return
        try:
            body = self._read_body()
            with tempfile.TemporaryDirectory(prefix="gai-vendor-sim-") as tmp:
                study = self.sim.receive(self.headers.get("Content-Type", ""), body, Path(tmp))
                del body
                outcome = self.sim.fate(study.study_uid)
                if outcome == "ok":
                    answer = self.sim.answer(study)
        except _HttpError as exc:
            self.sim.count(f"http_{exc.status}")
            self._send_json(exc.status, {"error": exc.message})
            return
        except OSError as exc:  # the client went away, or the temporary folder failed
            log.warning("simulator request failed: %s", type(exc).__name__)
            self.close_connection = True
            return
        self.sim.count(outcome)
        if outcome == "failure":
            self._send_json(500, {"error": "simulated internal error (failure_rate)"})
        elif outcome == "timeout":
            self.sim.wait(HANG_S)  # past any client time-out, or until the simulator stops
            self.close_connection = True
        elif outcome == "malformed":
            broken = f'{{"study_uid": "{study.study_uid}", "score": 0.5, "findings": [{{'
            self._send(200, broken.encode("ascii"))
        else:
            self._send_json(200, answer)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise _HttpError(411, "a Content-Length header is required")
        size = int(length)
        if size > MAX_BODY:
            self.close_connection = True
            raise _HttpError(413, f"the body is larger than {MAX_BODY} bytes")
        body = self.rfile.read(size)
        if len(body) != size:
            self.close_connection = True
            raise _HttpError(400, f"the body ended after {len(body)} of {size} bytes")
        return body


def serve(
    model_name: str,
    port: int = 0,
    delay_s: float = 0.0,
    failure_rate: float = 0.0,
    timeout_rate: float = 0.0,
    malformed_rate: float = 0.0,
    seed: int = 0,
    *,
    settings: Any = None,
    on_ready: Callable[[HttpVendorSimulator], None] | None = None,
) -> None:
    """Run a simulator wrapping the registry's model ``model_name`` until SIGTERM or SIGINT.

    ``on_ready(simulator)`` is called once it listens (the CLI prints ``simulator.url``).
    Signal handlers are installed only when called from the main thread.
    """
    from gai_research.models.registry import load_model

    model = load_model(model_name, settings=settings)
    run_until_stopped(
        model,
        lambda: HttpVendorSimulator(
            model,
            port=port,
            delay_s=delay_s,
            failure_rate=failure_rate,
            timeout_rate=timeout_rate,
            malformed_rate=malformed_rate,
            seed=seed,
        ),
        on_ready=on_ready,
    )
