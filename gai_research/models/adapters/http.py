"""A vendor's HTTP inference service as a :class:`~gai_research.models.types.Model`.

The wire contract is ``docs/vendor-http-api.md``: ``POST {url}/v1/studies`` with the study
as ``multipart/related; type="application/dicom"`` (one instance per part) or as JSON
DICOMweb references the vendor fetches itself, answered by a JSON prediction.

What the adapter promises the runner:

- time-outs: a connect time-out (``min(connect_timeout_s, timeout_s)``) and a read
  time-out (``timeout_s``: the longest the vendor may stay silent);
- retries, with exponential back-off, only where sending again is safe and may help:
  connection failures and HTTP 500/502/503/504 (``retry_statuses``); never on 4xx, a
  read time-out (the vendor may still be working on the study) or a malformed answer;
- failures as :mod:`gai_research.models.errors` classes whose message says the HTTP
  status and what the vendor said, naming the study only by its pseudonymous UID;
- ``raw`` of the returned prediction is the vendor's JSON as received (for audit);
  ``timing`` adds ``http_s`` (the answered request), ``total_s`` (with retries and
  back-off), ``attempts``, and the vendor's own ``timing`` keys prefixed ``vendor_``.

The multipart encoder and decoder live here too, so the vendor simulator
(:mod:`gai_research.models.simulators.http`) speaks exactly the documented format.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from email.message import Message
from pathlib import Path
from typing import Any, Literal

from gai_research.models.errors import (
    MalformedResultError,
    ModelConfigError,
    ModelError,
    ModelInputError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from gai_research.models.types import (
    Finding,
    Mask,
    ModelInfo,
    Prediction,
    StudyInput,
    VolumeMeasurement,
)

__all__ = [
    "DICOM_MULTIPART",
    "HttpModel",
    "MultipartBody",
    "MultipartError",
    "parse_multipart",
    "vendor_prediction",
]

log = logging.getLogger(__name__)

Mode = Literal["multipart", "dicomweb-refs"]
MODES: tuple[str, ...] = ("multipart", "dicomweb-refs")
DICOM_MULTIPART = 'multipart/related; type="application/dicom"'
RETRY_STATUSES = (500, 502, 503, 504)
BLOCK = 256 * 1024
MAX_VENDOR_TEXT = 300  # characters of a vendor's error message kept in ours
MAX_BACKOFF_S = 30.0


# --- multipart/related ------------------------------------------------------------------
class MultipartError(ValueError):
    """A multipart/related body that cannot be split into its parts."""


class MultipartBody:
    """A ``multipart/related`` body streamed from files, its length known before sending.

    ``requests`` sends an object with ``read`` and ``__len__`` with a Content-Length
    header (not chunked), reading it block by block: a 300-slice CT is never held in
    memory. Each instance is one part with ``Content-Type: application/dicom``. A body is
    read once; build a new one per attempt.
    """

    def __init__(
        self,
        files: Iterable[Path | str],
        *,
        part_type: str = "application/dicom",
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or f"gai-{uuid.uuid4().hex}"
        self.part_type = part_type
        self._pieces: list[bytes | Path] = []
        size = 0
        head = f"--{self.boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode("ascii")
        for path in map(Path, files):
            self._pieces += [head, path, b"\r\n"]
            size += len(head) + path.stat().st_size + 2
        if not self._pieces:
            raise ModelInputError("the study has no files to send")
        tail = f"--{self.boundary}--\r\n".encode("ascii")
        self._pieces.append(tail)
        self._size = size + len(tail)
        self._blocks = self._iter_blocks()
        self._buffer = bytearray()

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="{self.part_type}"; boundary={self.boundary}'

    def __len__(self) -> int:
        return self._size

    def _iter_blocks(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            with piece.open("rb") as handle:
                while block := handle.read(BLOCK):
                    yield block

    def __iter__(self) -> Iterator[bytes]:
        if self._buffer:
            yield bytes(self._buffer)
            self._buffer.clear()
        yield from self._blocks

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(self)
        while len(self._buffer) < size:
            block = next(self._blocks, None)
            if block is None:
                break
            self._buffer += block
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def content_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    """Media type (lower case) and parameters of a Content-Type header value."""
    message = Message()
    message["content-type"] = content_type or ""
    params = {k.lower(): v for k, v in message.get_params(header="content-type")[1:]}
    return message.get_content_type(), params


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/related`` body: (headers with lower-case names, content).

    Follows RFC 2046: a part ends at CRLF + ``--boundary``; the body ends at
    ``--boundary--``; a preamble and an epilogue are ignored. A missing boundary, no
    parts, or no closing delimiter (a truncated upload) is a :class:`MultipartError`.
    """
    media_type, params = content_type_params(content_type)
    if not media_type.startswith("multipart/"):
        raise MultipartError(f"expected a multipart body, got {media_type!r}")
    boundary = params.get("boundary")
    if not boundary:
        raise MultipartError("the multipart Content-Type has no boundary parameter")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    pieces = (b"\r\n" + body).split(delimiter)
    parts: list[tuple[dict[str, str], bytes]] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            if not parts:
                raise MultipartError("the multipart body has no parts")
            return parts
        line_end = piece.find(b"\r\n")
        head_end = piece.find(b"\r\n\r\n", max(line_end, 0))
        if line_end < 0 or head_end < 0:
            raise MultipartError(f"part {len(parts) + 1} has no header block")
        headers: dict[str, str] = {}
        for line in piece[line_end + 2 : head_end].split(b"\r\n"):
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, piece[head_end + 4 :]))
    raise MultipartError(
        f"the multipart body ends without its closing boundary after {len(parts)} part(s)"
    )


# --- the vendor's JSON ------------------------------------------------------------------
_KNOWN = {
    "findings": {f.name for f in fields(Finding)},
    "volumes": {f.name for f in fields(VolumeMeasurement)},
    "masks": {f.name for f in fields(Mask)},
}


def vendor_prediction(
    data: Any, study_uid: str, *, timing: Mapping[str, float] | None = None
) -> Prediction:
    """The prediction in a vendor's JSON answer; ``raw`` is the whole answer.

    Tolerant on read: extra fields (at the top or inside findings, volumes, masks) are
    kept in ``raw`` only; a missing ``study_uid`` is taken to be the one sent. Strict
    where it matters: an answer for another study, a non-object, or fields of the wrong
    type are a :class:`MalformedResultError`.
    """
    if not isinstance(data, Mapping):
        raise MalformedResultError(
            f"the answer is JSON but not an object (a {type(data).__name__})",
            hint="the vendor must answer a JSON object (docs/vendor-http-api.md)",
        )
    answered = data.get("study_uid")
    if answered is not None and str(answered) != study_uid:
        raise MalformedResultError(
            f"the answer is for another study ({answered!r}), not {study_uid}",
            hint="the vendor must echo the study_uid it was sent",
        )
    shaped: dict[str, Any] = {"study_uid": study_uid}
    for key in ("score", "scores"):
        if data.get(key) is not None:
            shaped[key] = data[key]
    for key, known in _KNOWN.items():
        items = data.get(key)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise MalformedResultError(f"{key!r} must be a list, not {type(items).__name__}")
        shaped[key] = [
            {k: v for k, v in item.items() if k in known} if isinstance(item, Mapping) else item
            for item in items
        ]
    vendor_timing = data.get("timing") if isinstance(data.get("timing"), Mapping) else {}
    shaped["timing"] = {
        **{f"vendor_{k}": v for k, v in vendor_timing.items() if _is_number(v)},
        **dict(timing or {}),
    }
    shaped["raw"] = data
    return Prediction.from_dict(shaped)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _vendor_said(response: Any) -> str:
    """The vendor's own words from an error answer: ``error`` of a JSON body, else text."""
    text = ""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, Mapping) and data.get("error") is not None:
        text = str(data["error"])
    elif data is None:
        text = (response.text or "").strip()
    text = " ".join(text.split())
    if len(text) > MAX_VENDOR_TEXT:
        text = text[:MAX_VENDOR_TEXT] + "..."
    return text or "no error message"


# --- the adapter --------------------------------------------------------------------------
class HttpModel:
    """A model behind a vendor's HTTP endpoint (see ``docs/vendor-http-api.md``).

    ``url`` is the service's base URL (``/v1/studies`` etc. are appended).
    ``mode="multipart"`` uploads the study's files; ``mode="dicomweb-refs"`` sends
    ``{"study_uid", "wado_rs": "{dicomweb_base}/studies/{uid}", "series": [...]}`` and
    the vendor retrieves the study from ``dicomweb_base`` (a DICOMweb server it can reach,
    e.g. the site PACS). ``headers`` are added to every request (e.g. an API key).
    One ``requests.Session`` per thread keeps connections alive between studies.
    """

    def __init__(
        self,
        info: ModelInfo,
        *,
        url: str,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        mode: Mode = "multipart",
        dicomweb_base: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float = 10.0,
        retry_statuses: Iterable[int] = RETRY_STATUSES,
    ) -> None:
        self.info = info
        if not str(url).startswith(("http://", "https://")):
            raise ModelConfigError(
                f"{info.name}: url {url!r} is not an http(s) URL",
                hint="give the vendor service's base URL, e.g. http://127.0.0.1:8800",
                model=info.name,
            )
        if mode not in MODES:
            raise ModelConfigError(
                f"{info.name}: unknown mode {mode!r}",
                hint=f"use one of {', '.join(MODES)}",
                model=info.name,
            )
        if mode == "dicomweb-refs" and not dicomweb_base:
            raise ModelConfigError(
                f"{info.name}: mode dicomweb-refs needs dicomweb_base",
                hint="set dicomweb_base to the DICOMweb root the vendor fetches from, "
                "e.g. http://127.0.0.1:8042/dicom-web",
                model=info.name,
            )
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ModelConfigError(
                f"{info.name}: timeout_s must be > 0, retries and backoff_s >= 0",
                model=info.name,
            )
        self.url = str(url).rstrip("/")
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = min(float(connect_timeout_s), self.timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.mode: Mode = mode
        self.dicomweb_base = dicomweb_base.rstrip("/") if dicomweb_base else None
        self.headers = dict(headers or {})
        self.retry_statuses = frozenset(int(s) for s in retry_statuses)
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpModel({self.info.name!r}, url={self.url!r}, mode={self.mode!r})"

    # --- plumbing ---------------------------------------------------------------------
    @property
    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers.update({"Accept": "application/json", **self.headers})
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __enter__(self) -> HttpModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, cls: type[ModelError], message: str, study_uid: str | None, hint: str):
        where = f" for study {study_uid}" if study_uid else ""
        return cls(
            f"{self.info.name} ({self.url}){where}: {message}",
            hint=hint,
            model=self.info.name,
            study_uid=study_uid,
        )

    # --- service calls ------------------------------------------------------------------
    def health(self) -> bool:
        """Whether ``GET /health`` answers 200 (one try, connect time-out only)."""
        import requests

        try:
            answer = self._session.get(
                f"{self.url}/health", timeout=(self.connect_timeout_s, self.connect_timeout_s)
            )
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def vendor_info(self) -> dict[str, Any]:
        """``GET /v1/info``: the name, version and vendor the service says it runs."""
        answer = self._request("GET", "/v1/info", None, body=None)
        self._check_status(answer, None, 1)
        data = self._json(answer, None)
        if not isinstance(data, dict):
            raise self._error(
                MalformedResultError, "/v1/info is not a JSON object", None, "see the contract"
            )
        return data

    def predict(self, study: StudyInput) -> Prediction:
        """Send the study, wait for the vendor's JSON, return it as a Prediction."""
        started = time.perf_counter()
        uid = study.study_uid
        if self.mode == "multipart":
            files = study.files
            if not files:
                raise self._error(
                    ModelInputError, "the study has no files", uid, "check the study's series"
                )

            def body():
                return MultipartBody(files)

        else:
            refs = self.references(study)

            def body():
                return refs

        answer, attempts, http_s = self._send(body, uid)
        data = self._json(answer, uid)
        timing = {"http_s": http_s, "total_s": time.perf_counter() - started, "attempts": attempts}
        try:
            return vendor_prediction(data, uid, timing=timing)
        except MalformedResultError as exc:
            raise self._error(
                MalformedResultError,
                f"the answer does not fit the prediction schema: {exc.message}",
                uid,
                "see docs/vendor-http-api.md (response schema); the vendor must fix its output",
            ) from None

    def references(self, study: StudyInput) -> dict[str, Any]:
        """The JSON body of ``mode="dicomweb-refs"``: where the vendor fetches the study."""
        base = f"{self.dicomweb_base}/studies/{study.study_uid}"
        return {
            "study_uid": study.study_uid,
            "wado_rs": base,
            "series": [
                {
                    "series_uid": s.series_uid,
                    "modality": s.modality,
                    "instances": len(s.files),
                    "wado_rs": f"{base}/series/{s.series_uid}",
                }
                for s in study.series
            ],
        }

    def _send(self, body_factory, uid: str) -> tuple[Any, int, float]:
        """POST /v1/studies with retries; the successful answer, attempts, its seconds."""
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            try:
                body = body_factory()
            except OSError as exc:  # a file of the study vanished or is unreadable
                raise self._error(
                    ModelInputError,
                    f"the study's files cannot be read ({type(exc).__name__})",
                    uid,
                    "check the store: the files the catalog lists must exist",
                ) from None
            last = attempt == attempts
            sent = time.perf_counter()
            try:
                answer = self._request("POST", "/v1/studies", uid, body=body)
            except ModelUnavailableError as exc:
                if last and attempt > 1:
                    raise type(exc)(
                        f"{exc.message} after {attempt} attempts",
                        hint=exc.hint,
                        model=exc.model,
                        study_uid=exc.study_uid,
                    ) from None
                if last:
                    raise
                self._back_off(attempt, uid, "no connection")
                continue
            if answer.status_code in self.retry_statuses and not last:
                self._back_off(attempt, uid, f"HTTP {answer.status_code}")
                continue
            self._check_status(answer, uid, attempt)
            return answer, attempt, time.perf_counter() - sent
        raise AssertionError("unreachable")  # pragma: no cover

    def _back_off(self, attempt: int, uid: str, why: str) -> None:
        pause = min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        log.info("%s: %s (attempt %d), retrying in %.2f s", self.info.name, why, attempt, pause)
        time.sleep(pause)

    def _request(self, method: str, path: str, uid: str | None, *, body: Any):
        """One HTTP exchange; transport failures become ModelTimeout/Unavailable errors."""
        import requests

        kwargs: dict[str, Any] = {"timeout": (self.connect_timeout_s, self.timeout_s)}
        if isinstance(body, MultipartBody):
            kwargs["data"] = body
            kwargs["headers"] = {"Content-Type": body.content_type}
        elif body is not None:
            kwargs["json"] = body
        try:
            return self._session.request(method, self.url + path, **kwargs)
        except requests.ConnectTimeout:
            raise self._error(
                ModelUnavailableError,
                f"no connection within {self.connect_timeout_s:g} s",
                uid,
                "is the vendor service up and the URL right?",
            ) from None
        except requests.ReadTimeout:
            raise self._error(
                ModelTimeoutError,
                f"no answer within {self.timeout_s:g} s",
                uid,
                "the vendor is slow or stuck; raise timeout_s if its documented time is longer",
            ) from None
        except requests.ConnectionError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else "connection failed"
            raise self._error(
                ModelUnavailableError,
                f"{why} ({type(exc).__name__})",
                uid,
                "is the vendor service running, and are its host and port right?",
            ) from None
        except requests.RequestException as exc:
            raise self._error(
                ModelUnavailableError,
                f"the request failed ({type(exc).__name__})",
                uid,
                "check the vendor service's URL and its log",
            ) from None

    def _check_status(self, answer: Any, uid: str, attempt: int) -> None:
        status = answer.status_code
        if status == 200:
            return
        said = _vendor_said(answer)
        tries = f" after {attempt} attempts" if attempt > 1 else ""
        message = f"the vendor answered HTTP {status}{tries}: {said}"
        if status in (400, 413, 415, 422):
            cls, hint = ModelInputError, "the vendor refused this study; see its message"
        elif status in (401, 403):
            cls, hint = ModelConfigError, "check the credentials in the model's headers"
        elif status in (404, 405):
            cls, hint = ModelConfigError, "check the model's url (the service root, no path)"
        elif status in (408, 504):
            cls, hint = ModelTimeoutError, "the vendor timed out; retry later or raise its limits"
        elif status >= 500 or status == 429:
            cls, hint = ModelUnavailableError, "the vendor service failed; check its status"
        else:
            cls, hint = MalformedResultError, "the contract allows 200 or a 4xx/5xx error"
        raise self._error(cls, message, uid, hint)

    def _json(self, answer: Any, uid: str | None) -> Any:
        try:
            return json.loads(answer.content)
        except ValueError as exc:
            kind = answer.headers.get("Content-Type", "no Content-Type")
            raise self._error(
                MalformedResultError,
                f"HTTP {answer.status_code} but the body is not valid JSON "
                f"({kind}, {len(answer.content)} bytes: {exc})",
                uid,
                "the vendor must answer application/json (docs/vendor-http-api.md)",
            ) from None
