"""The gateway's DICOM server: C-STORE from the site PACS into the restricted spool.

Each instance is written under ``HOME/spool/gateway/<study key>/`` (0700: these are
identified images) and recorded in the gateway database before the PACS is told
"success", so an instance acknowledged is an instance the gateway will process, even
if it is killed the next moment. The site is known from the calling AE title (the
site PACS of the settings); other callers are rejected. Which studies an association
carried is remembered, so a study can be declared complete when that association is
released (see :mod:`gai_research.gateway.service`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from io import BytesIO
from pathlib import Path

from gai_research.dicom.server import start_scp, stop_scp
from gai_research.gateway.errors import GatewayError
from gai_research.gateway.facts import HEADER_TAGS, instance_facts
from gai_research.gateway.identity import file_name, study_key
from gai_research.gateway.jobs import GatewayDB
from gai_research.sites import Site

__all__ = ["GatewayReceiver"]

log = logging.getLogger(__name__)

SUCCESS = 0x0000
CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700
NOT_AUTHORISED = 0x0124


class GatewayReceiver:
    """A C-STORE SCP (and C-ECHO) that spools, records and reports each study it gets.

    ``on_instance(key)`` is called after each new instance, ``on_release(keys, trigger)``
    when an association (or STOW-RS request) that carried ``keys`` ended normally.
    """

    def __init__(
        self,
        db: GatewayDB,
        spool: Path,
        secret: bytes,
        *,
        ae_title: str,
        host: str,
        port: int,
        sites: Mapping[str, Site],
        on_instance: Callable[[str], None] | None = None,
        on_release: Callable[[set[str], str], None] | None = None,
    ) -> None:
        self.db = db
        self.spool = Path(spool)
        self.secret = secret
        self.ae_title = ae_title
        self.host = host
        self.requested_port = port
        self.sites = {ae.strip(): Site.parse(s) for ae, s in sites.items()}
        self.on_instance = on_instance
        self.on_release = on_release
        self._lock = threading.Lock()
        self._open: dict[int, set[str]] = {}  # association -> study keys it carried
        self._server = None
        self._thread: threading.Thread | None = None
        self._ae = None
        self.counts = {"received": 0, "duplicate": 0, "late": 0, "refused": 0, "own results": 0}

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else self.requested_port

    def start(self) -> GatewayReceiver:
        from pynetdicom import evt

        from gai_research.ingest.scp import storage_ae

        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        ae = storage_ae(self.ae_title)
        ae.require_called_aet = True
        ae.require_calling_aet = sorted(self.sites)
        ae.maximum_associations = 64
        handlers = [
            (evt.EVT_C_STORE, self._store),
            (evt.EVT_RELEASED, self._released),
            (evt.EVT_ABORTED, self._closed),
            (evt.EVT_CONN_CLOSE, self._closed),
        ]
        try:
            server, thread = start_scp(
                ae,
                (self.host, self.requested_port),
                handlers,
                thread_name="gai-gateway-dicom",
            )
        except OSError as exc:
            raise GatewayError(
                f"the gateway cannot listen on {self.host}:{self.requested_port}: "
                f"{exc.strerror or exc}",
                hint="is another gateway running there? choose another port "
                "(--port or GAI_GATEWAY__DICOM_PORT)",
            ) from None
        self._ae, self._server, self._thread = ae, server, thread
        log.info("gateway %s listening on %s:%d", self.ae_title, self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop listening and abort what is still open (the PACS will send it again)."""
        server, self._server = self._server, None
        if server is None:
            return
        stop_scp(self._ae, server, self._thread)

    def sending(self) -> set[str]:
        """Study keys some open association is still sending."""
        with self._lock:
            return set().union(*self._open.values()) if self._open else set()

    # --- handlers --------------------------------------------------------------------------
    def _store(self, event) -> int:
        calling = str(event.assoc.requestor.ae_title or "").strip()
        site = self.sites.get(calling)
        if site is None:
            return self._refuse(NOT_AUTHORISED, "calling AE title is not a site PACS")
        try:
            data = event.encoded_dataset()
        except Exception as exc:  # a request without a decodable data set
            return self._refuse(
                CANNOT_UNDERSTAND, f"cannot decode the object ({type(exc).__name__})"
            )
        return self.accept(data, site=site, sender=calling, batch=id(event.assoc))

    def accept(self, data: bytes, *, site: Site, sender: str, batch: object) -> int:
        """Keep one Part 10 object (C-STORE or STOW-RS); the DIMSE status to answer.

        ``batch`` names the association (or HTTP request) it came in, so the studies of
        a batch can be completed when the batch ends (:meth:`end_batch`).
        """
        try:
            from pydicom import dcmread

            header = dcmread(
                BytesIO(data),
                stop_before_pixels=True,
                specific_tags=["SpecificCharacterSet", *HEADER_TAGS],
            )
            facts = instance_facts(header)
        except Exception as exc:
            return self._refuse(
                CANNOT_UNDERSTAND, f"cannot decode the object ({type(exc).__name__})"
            )
        if not (facts.study_uid and facts.series_uid and facts.sop_uid and facts.sop_class):
            return self._refuse(CANNOT_UNDERSTAND, "object without its study/series/SOP UIDs")
        if self.db.is_own_result(facts.sop_uid):
            with self._lock:
                self.counts["own results"] += 1
            return SUCCESS
        key = study_key(self.secret, facts.study_uid)
        target = self.spool / key / file_name(facts.sop_uid)
        try:
            _write(target, data)
            outcome = self.db.add_instance(
                key, facts, site=site.value, calling_ae=sender, path=str(target)
            )
        except Exception as exc:
            log.error("cannot keep an instance of %s: %s", key, type(exc).__name__)
            return self._refuse(OUT_OF_RESOURCES, "spool or database write failed")
        with self._lock:
            self._open.setdefault(batch, set()).add(key)
            self.counts["received" if outcome == "new" else outcome] += 1
        if outcome == "late":
            log.warning("study %s: an instance arrived after it was sent to a model (kept)", key)
        if self.on_instance is not None and outcome != "duplicate":
            self.on_instance(key)
        return SUCCESS

    def end_batch(
        self, batch: object, *, completed: bool, trigger: str = "association released"
    ) -> None:
        """A batch ended: normally (``completed``, e.g. released) or aborted."""
        with self._lock:
            keys = self._open.pop(batch, set())
        if completed and keys and self.on_release is not None:
            try:
                self.on_release(keys, trigger)
            except Exception:
                log.exception("completing released studies failed")

    def _refuse(self, status: int, reason: str) -> int:
        with self._lock:
            self.counts["refused"] += 1
        log.warning("refused an object with status 0x%04X: %s", status, reason)
        return status

    def _released(self, event) -> None:
        self.end_batch(id(event.assoc), completed=True)

    def _closed(self, event) -> None:
        self.end_batch(id(event.assoc), completed=False)


def _write(target: Path, data: bytes) -> None:
    """Write a spool file atomically (a reader never sees half an instance)."""
    try:
        target.parent.mkdir(mode=0o700, exist_ok=True)
    except FileNotFoundError:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, target)
