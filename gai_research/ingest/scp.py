"""The platform's C-STORE SCP: what site PACS and modalities push (or C-MOVE) lands in the spool.

:class:`StorageSCP` accepts every storage SOP class pynetdicom knows, in every
transfer syntax (uncompressed, deflate, JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, RLE, ...) and C-ECHO. The site of each association comes from the
calling AE title (the configured site PACS AE titles) unless one ``site`` is given
for every caller; an unknown caller is rejected with a log line that says why.

An object whose header cannot be decoded, or that lacks its SOP Instance / SOP
Class / Study Instance UID, is answered with a failure status and counted; the
association goes on. Success is answered only once the object is fsynced in the
spool. :class:`StoreHandler` is the per-object logic, shared with C-GET.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from gai_research.config import Settings, Site
from gai_research.dicom.server import start_scp, stop_scp
from gai_research.dicom.sockets import tune_socket
from gai_research.ingest.errors import ReceiverError, SpoolError
from gai_research.ingest.objects import UnusableObject, inspect_part10
from gai_research.ingest.spool import Spool
from gai_research.ingest.types import (
    AssociationClosed,
    AssociationRejected,
    EventHandler,
    IngestEvent,
    ObjectReceived,
    ObjectRejected,
)

__all__ = ["ReceiverTotals", "StorageSCP", "StoreHandler", "site_ae_titles"]

log = logging.getLogger(__name__)

OUT_OF_RESOURCES = 0xA700
NOT_AUTHORISED = 0x0124
MAX_PDU = 1 << 20  # larger PDUs than pynetdicom's 16 kB default: fewer, cheaper reads


def site_ae_titles(settings: Settings) -> dict[str, Site]:
    """The configured site PACS AE titles, each with its site."""
    return {s.pacs.ae_title.strip(): site for site, s in settings.sites.items()}


@dataclass
class _Tally:
    peer: str
    address: str
    site: Site | None
    started: float = field(default_factory=time.monotonic)
    received: int = 0
    new: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    aborted: bool = False


@dataclass
class ReceiverTotals:
    """Running totals of a receiver since it started."""

    associations: int = 0
    rejected_associations: int = 0
    received: int = 0
    new: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)


class StoreHandler:
    """C-STORE requests to spool entries and typed events, with per-association counts.

    ``site_for(calling_ae)`` gives the site of a peer (None: refuse). ``on_event`` is
    called from pynetdicom's association threads; an exception in it is logged and
    does not change the answer (the object is already safe in the spool).
    """

    def __init__(
        self,
        spool: Spool,
        *,
        source: str,
        site_for,
        on_event: EventHandler | None = None,
    ) -> None:
        self.spool = spool
        self.source = source
        self.site_for = site_for
        self.on_event = on_event
        self.totals = ReceiverTotals()
        self._tallies: dict[int, _Tally] = {}
        self._lock = threading.Lock()

    # pynetdicom event bindings
    def handlers(self, *, association_events: bool = True) -> list[tuple]:
        from pynetdicom import evt

        bound = [(evt.EVT_C_STORE, self.handle_store), (evt.EVT_CONN_OPEN, tune_socket)]
        if association_events:
            bound += [
                (evt.EVT_ESTABLISHED, self._established),
                (evt.EVT_ABORTED, self._aborted),
                (evt.EVT_CONN_CLOSE, self._closed),
                (evt.EVT_REJECTED, self._rejected),
            ]
        return bound

    def emit(self, event: IngestEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("an ingest event handler failed on %s", type(event).__name__)

    def _tally(self, assoc) -> _Tally:
        with self._lock:
            tally = self._tallies.get(id(assoc))
            if tally is None:
                peer = str(assoc.remote.get("ae_title", "") or "").strip()
                address = f"{assoc.remote.get('address', '?')}:{assoc.remote.get('port', '?')}"
                tally = _Tally(peer=peer, address=address, site=self.site_for(peer))
                self._tallies[id(assoc)] = tally
            return tally

    def _established(self, event) -> None:
        tally = self._tally(event.assoc)
        with self._lock:
            self.totals.associations += 1
        log.info(
            "association from %s (%s) at %s", tally.peer, _site_name(tally.site), tally.address
        )

    def _aborted(self, event) -> None:
        self._tally(event.assoc).aborted = True

    def _closed(self, event) -> None:
        with self._lock:
            tally = self._tallies.pop(id(event.assoc), None)
        if tally is None:  # never established (rejected, or a bare TCP probe)
            return
        self.emit(
            AssociationClosed(
                peer=tally.peer,
                address=tally.address,
                site=tally.site,
                received=tally.received,
                new=tally.new,
                failed=tally.failed,
                reasons=Counter(tally.reasons),
                seconds=time.monotonic() - tally.started,
                aborted=tally.aborted or not event.assoc.is_released,
            )
        )

    def _rejected(self, event) -> None:
        assoc = event.assoc
        peer = str(assoc.requestor.ae_title or "").strip()
        address = f"{assoc.remote.get('address', '?')}:{assoc.remote.get('port', '?')}"
        called = str(getattr(assoc.requestor.primitive, "called_ae_title", "") or "").strip()
        ours = str(assoc.ae.ae_title).strip()
        if called and called != ours:
            reason = f"called AE title {called!r} is not ours ({ours!r})"
        elif self.site_for(peer) is None:
            reason = "calling AE title is not a configured site PACS (use --site SITE to accept any caller as that site)"
        else:
            reason = "too many associations at once"
        with self._lock:
            self.totals.rejected_associations += 1
        log.warning("rejected association from %r at %s: %s", peer, address, reason)
        self.emit(AssociationRejected(peer=peer, address=address, reason=reason))

    # the object itself
    def handle_store(self, event) -> int:
        tally = self._tally(event.assoc)
        if tally.site is None:
            return self._refuse(tally, NOT_AUTHORISED, "calling AE title not accepted")
        try:
            data = event.encoded_dataset()
            info = inspect_part10(data)
        except UnusableObject as exc:
            return self._refuse(tally, exc.status, exc.reason)
        except Exception as exc:  # a request without a usable data set
            return self._refuse(tally, 0xC000, f"cannot decode the object ({type(exc).__name__})")
        try:
            entry = self.spool.put(data, site=tally.site, source=f"{self.source}:{tally.peer}")
        except SpoolError as exc:
            log.error("spool write failed: %s", exc)
            return self._refuse(tally, OUT_OF_RESOURCES, "spool write failed")
        with self._lock:
            tally.received += 1
            tally.new += int(entry.new)
            self.totals.received += 1
            self.totals.new += int(entry.new)
        self.emit(
            ObjectReceived(
                site=tally.site,
                source=entry.source,
                peer=tally.peer,
                entry=entry,
                sop_class_uid=info.sop_class_uid,
                transfer_syntax_uid=info.transfer_syntax_uid,
                study_uid=info.study_uid,
                sop_instance_uid=info.sop_instance_uid,
            )
        )
        return 0x0000

    def _refuse(self, tally: _Tally, status: int, reason: str) -> int:
        with self._lock:
            tally.failed += 1
            tally.reasons[reason] += 1
            self.totals.failed += 1
            self.totals.reasons[reason] += 1
        log.warning("refused an object from %s with status 0x%04X: %s", tally.peer, status, reason)
        self.emit(
            ObjectRejected(
                site=tally.site, source=self.source, peer=tally.peer, status=status, reason=reason
            )
        )
        return status


def _site_name(site: Site | None) -> str:
    return site.value if site is not None else "no site"


def storage_ae(ae_title: str):
    """A pynetdicom AE that accepts every storage SOP class in every transfer syntax, and C-ECHO."""
    from pynetdicom import (
        AE,
        ALL_TRANSFER_SYNTAXES,
        AllStoragePresentationContexts,
        VerificationPresentationContexts,
    )

    ae = AE(ae_title=ae_title)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    for context in VerificationPresentationContexts:
        ae.add_supported_context(context.abstract_syntax)
    ae.maximum_pdu_size = MAX_PDU
    return ae


class StorageSCP:
    """A running C-STORE SCP writing into the spool. Use as a context manager, or start/stop.

    ``sites`` maps accepted calling AE titles to sites (default: the site PACS of the
    settings); ``site`` instead assigns every association to one site and accepts any
    caller. ``port=0`` picks a free port (see :attr:`port`).
    """

    def __init__(
        self,
        spool: Spool,
        *,
        ae_title: str,
        port: int,
        host: str = "0.0.0.0",
        sites: Mapping[str, Site | str] | None = None,
        site: Site | str | None = None,
        source: str = "c-store",
        on_event: EventHandler | None = None,
    ) -> None:
        self.ae_title = ae_title
        self.host = host
        self.requested_port = port
        self.site = Site.parse(site) if site is not None else None
        self.sites = {ae.strip(): Site.parse(s) for ae, s in (sites or {}).items()}
        if self.site is None and not self.sites:
            raise ReceiverError(
                "the receiver has no calling AE titles to accept",
                hint="configure the site PACS AE titles, or give one site for every caller",
            )
        self.handler = StoreHandler(
            spool, source=source, site_for=self._site_for, on_event=on_event
        )
        self._server = None
        self._thread: threading.Thread | None = None
        self._ae = None

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        spool: Spool | None = None,
        *,
        site: Site | str | None = None,
        port: int | None = None,
        ae_title: str | None = None,
        host: str = "0.0.0.0",
        source: str = "c-store",
        on_event: EventHandler | None = None,
    ) -> StorageSCP:
        """The platform receiver as configured: its AE title and port, the site PACS AE titles."""
        return cls(
            spool if spool is not None else Spool(settings),
            ae_title=ae_title or settings.platform_ae_title,
            port=settings.platform_dicom_port if port is None else port,
            host=host,
            sites=site_ae_titles(settings),
            site=site,
            source=source,
            on_event=on_event,
        )

    def _site_for(self, calling_ae: str) -> Site | None:
        return self.site if self.site is not None else self.sites.get(calling_ae.strip())

    @property
    def totals(self) -> ReceiverTotals:
        return self.handler.totals

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> StorageSCP:
        """Listen (in a background thread) until :meth:`stop`."""
        if self._server is not None:
            return self
        ae = storage_ae(self.ae_title)
        ae.require_called_aet = True
        if self.site is None:
            ae.require_calling_aet = sorted(self.sites)
        try:
            server, thread = start_scp(
                ae,
                (self.host, self.requested_port),
                self.handler.handlers(),
                thread_name=f"gai-receiver-{self.requested_port}",
            )
        except OSError as exc:
            raise ReceiverError(
                f"cannot listen on port {self.requested_port}: {exc.strerror or exc}",
                hint="is `gai receive` (or another DICOM receiver) already running there? "
                "Stop it, or choose another port (--port / GAI_PLATFORM_DICOM_PORT)",
            ) from None
        self._ae, self._server, self._thread = ae, server, thread
        log.info("receiver %s listening on %s:%d", self.ae_title, self.host, self.port)
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; let open associations finish for ``grace`` seconds, then abort them."""
        server, self._server = self._server, None
        if server is None:
            return
        ae = self._ae

        def drain() -> None:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(
                assoc.is_established for assoc in ae.active_associations
            ):
                time.sleep(0.02)
            for assoc in ae.active_associations:
                if assoc.is_established:
                    log.warning(
                        "receiver stopping: aborting the association with %s",
                        assoc.remote.get("ae_title"),
                    )

        stop_scp(ae, server, self._thread, before_abort=drain)

    def __enter__(self) -> StorageSCP:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
