"""STOW-RS into the gateway: a PACS that speaks DICOMweb stores studies over HTTP.

``POST /sites/<SITE>/studies`` (or ``.../studies/<StudyInstanceUID>``) with a
``multipart/related; type="application/dicom"`` body, as PS3.18 STOW-RS. HTTP carries
no AE title, so the site is part of the URL (declare the gateway in each PACS's
DICOMweb servers with its own site's URL). Each instance goes through the same path
as a C-STORE (spool, database, completion); one request is one batch, so its studies
are complete when the request ends, as with a released association. The answer is
``200`` when every instance was kept, ``202`` when some were refused, ``409`` when none
was, with counts (and no UIDs) in a small JSON body. Listens on loopback by default.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gai_research.errors import GaiError
from gai_research.gateway.errors import GatewayError
from gai_research.sites import Site

__all__ = ["StowServer"]

log = logging.getLogger(__name__)
MAX_BODY = 4 * 1024**3
_BATCHES = itertools.count(1)


class StowServer:
    """A STOW-RS endpoint feeding a :class:`~gai_research.gateway.receiver.GatewayReceiver`."""

    def __init__(self, receiver, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receiver = receiver
        self.host = host
        self.requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else self.requested_port

    def url(self, site: Site | str) -> str:
        """The STOW-RS base URL a site's PACS posts to."""
        return f"http://{self.host}:{self.port}/sites/{Site.parse(site).value}"

    def start(self) -> StowServer:
        try:
            server = ThreadingHTTPServer((self.host, self.requested_port), _Handler)
        except OSError as exc:
            raise GatewayError(
                f"the gateway's STOW-RS server cannot listen on port {self.requested_port}: "
                f"{exc.strerror or exc}",
                hint="choose another port (GAI_GATEWAY__STOW_PORT)",
            ) from None
        server.daemon_threads = True
        server.stow = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="gai-gateway-stow",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def store(self, site: Site, body: bytes, content_type: str) -> tuple[int, dict]:
        """Keep every part of a STOW-RS body; (HTTP status, JSON answer)."""
        from gai_research.models.adapters.http import MultipartError, parse_multipart

        try:
            parts = parse_multipart(body, content_type)
        except MultipartError as exc:
            return 400, {"error": f"not a multipart/related DICOM body: {exc}"}
        batch = ("stow", next(_BATCHES))
        kept = refused = 0
        try:
            for headers, content in parts:
                kind = headers.get("content-type", "application/dicom").split(";")[0].strip()
                if kind.lower() != "application/dicom":
                    refused += 1
                    continue
                status = self.receiver.accept(
                    content, site=site, sender=f"STOW:{site.value}", batch=batch
                )
                kept += status == 0
                refused += status != 0
        finally:
            self.receiver.end_batch(batch, completed=True, trigger="STOW-RS request ended")
        answer = {"stored": kept, "refused": refused}
        return (200 if not refused else 202 if kept else 409), answer


class _Handler(BaseHTTPRequestHandler):
    server_version = "gai-gateway-stow"

    def log_message(self, format: str, *args) -> None:  # paths hold UIDs: keep them out
        log.debug("stow request answered")

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if len(parts) not in (3, 4) or parts[0] != "sites" or parts[2] != "studies":
            self._answer(404, {"error": "POST /sites/<SITE>/studies[/<study>]"})
            return
        try:
            site = Site.parse(parts[1])
        except GaiError as exc:
            self._answer(404, {"error": exc.message})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._answer(411 if length <= 0 else 413, {"error": "a Content-Length is needed"})
            return
        body = self.rfile.read(length)
        status, answer = self.server.stow.store(  # type: ignore[attr-defined]
            site, body, self.headers.get("Content-Type", "")
        )
        self._answer(status, answer)
