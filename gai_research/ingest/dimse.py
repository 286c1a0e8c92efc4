"""A site PACS over DIMSE: study-level C-FIND, then C-MOVE to our own SCP or C-GET.

C-MOVE: for the duration of a fetch, a :class:`~gai_research.ingest.scp.StorageSCP`
listens on the platform's port with the platform's AE title (the destination every
site PACS knows as "platform") and accepts only that PACS's AE title. C-GET: the
objects come back on the same association, which proposes the SCP role for the
study's SOP classes (SOPClassesInStudy from the PACS) in their stored transfer
syntaxes, so nothing is transcoded on the way.

Counts come from both sides: what our SCP spooled or refused, and what the PACS
reports as failed sub-operations. A PACS that stops mid-transfer raises a
:class:`~gai_research.ingest.errors.SourceError` carrying the partial result; the
objects already spooled stay, and a rerun adds only what is missing (the spool
keeps one copy of identical bytes).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import Literal

from gai_research.config import Settings, Site
from gai_research.dicom.net import DicomNode, associate, find_studies, release
from gai_research.ingest.errors import SourceError
from gai_research.ingest.scp import MAX_PDU, StorageSCP, StoreHandler
from gai_research.ingest.spool import Spool
from gai_research.ingest.types import (
    EventHandler,
    FetchResult,
    IngestEvent,
    ObjectReceived,
    ObjectRejected,
    StudyRef,
    parse_da,
    parse_int,
)

__all__ = ["DimseSource"]

log = logging.getLogger(__name__)

PENDING = (0xFF00, 0xFF01)
SUCCESS_OR_WARNING = (0x0000, 0xB000)
MAX_CONTEXTS = 127  # 128 minus the C-GET context itself
# transfer syntaxes proposed one per presentation context for C-GET, so the PACS can
# send each object as stored: uncompressed, deflate, JPEG, JPEG-LS, JPEG 2000, RLE
GET_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
)


def _date_range(since: date | None, until: date | None) -> str:
    """A DICOM date range for matching: ``FROM-TO``, either end open."""
    start = f"{since:%Y%m%d}" if since is not None else ""
    end = f"{until:%Y%m%d}" if until is not None else ""
    return f"{start}-{end}" if (start or end) else ""


def _tuple(value: object) -> tuple[str, ...]:
    """A multi-valued attribute (list, pydicom MultiValue or backslash-joined text) as a tuple."""
    if value is None:
        return ()
    items = str(value).split("\\") if isinstance(value, str) else [str(v) for v in value]
    return tuple(v.strip() for v in items if v.strip())


class _Collector:
    """Counts one study's objects as they arrive (from any association thread)."""

    def __init__(self, result: FetchResult, study_uid: str, forward: EventHandler | None) -> None:
        self.result = result
        self.study_uid = study_uid
        self.forward = forward
        self.refused = 0
        self.lock = threading.Lock()

    def __call__(self, event: IngestEvent) -> None:
        if isinstance(event, ObjectReceived):
            if event.study_uid != self.study_uid:
                return  # another study pushed meanwhile: spooled, not ours to count
            with self.lock:
                self.result.add(event.entry)
        elif isinstance(event, ObjectRejected):
            with self.lock:
                self.refused += 1
                self.result.fail(f"refused by the receiver: {event.reason}")
        else:
            return
        if self.forward is not None:
            self.forward(event)


class DimseSource:
    """One site's PACS as a DIMSE source (``retrieve="move"`` or ``"get"``)."""

    def __init__(
        self,
        settings: Settings,
        site: Site | str,
        *,
        retrieve: Literal["move", "get"] = "move",
        host: str = "0.0.0.0",
        timeout: float = 60.0,
    ) -> None:
        from gai_research.pacs import site_node

        if retrieve not in ("move", "get"):
            raise SourceError(f"unknown retrieve method {retrieve!r}", hint="use 'move' or 'get'")
        self.settings = settings
        self.site = Site.parse(site)
        self.node: DicomNode = site_node(settings, self.site)
        self.retrieve = retrieve
        self.host = host
        self.timeout = timeout
        self.calling_ae = settings.platform_ae_title
        self._scp: StorageSCP | None = None
        self._collector: _Collector | None = None

    def __repr__(self) -> str:
        return f"DimseSource({self.node}, retrieve={self.retrieve!r})"

    # --- query ---------------------------------------------------------------------
    def find_studies(
        self, since: date | None = None, until: date | None = None, modality: str | None = None
    ) -> list[StudyRef]:
        match: dict[str, str] = {}
        if since is not None or until is not None:
            match["StudyDate"] = _date_range(since, until)
        if modality:
            match["ModalitiesInStudy"] = modality.strip().upper()
        rows = find_studies(self.node, self.calling_ae, extra_keys=("SOPClassesInStudy",), **match)
        refs = [
            StudyRef(
                site=self.site,
                study_uid=str(row["StudyInstanceUID"]),
                study_date=parse_da(row.get("StudyDate")),
                modalities=_tuple(row.get("ModalitiesInStudy")),
                n_instances=parse_int(row.get("NumberOfStudyRelatedInstances")),
                n_series=parse_int(row.get("NumberOfStudyRelatedSeries")),
                sop_classes=_tuple(row.get("SOPClassesInStudy")),
            )
            for row in rows
            if row.get("StudyInstanceUID")
        ]
        # the PACS may ignore a matching key it does not support: filter here too
        kept = [r for r in refs if r.in_range(since, until, modality)]
        return sorted(kept, key=lambda r: (r.study_date or date.min, r.study_uid))

    def sop_classes(self, study: StudyRef) -> tuple[str, ...]:
        """SOPClassesInStudy as the PACS reports it (empty when it does not)."""
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study.study_uid
        query.SOPClassesInStudy = ""
        assoc = self._associate([_context(FIND)])
        found: tuple[str, ...] = ()
        try:
            for status, identifier in assoc.send_c_find(query, FIND):
                if status and status.Status in PENDING and identifier is not None:
                    found = _tuple(identifier.get("SOPClassesInStudy"))
        finally:
            release(assoc)
        return found

    # --- retrieve ------------------------------------------------------------------
    def fetch(
        self, study: StudyRef, spool: Spool, on_instance: EventHandler | None = None
    ) -> FetchResult:
        """Bring every instance of ``study`` into ``spool`` by C-MOVE or C-GET."""
        started = time.monotonic()
        result = FetchResult(
            site=self.site,
            source=f"c-{self.retrieve}:{self.node.ae_title}",
            study=study,
            expected=study.n_instances,
        )
        collect = _Collector(result, study.study_uid, on_instance)
        if self.retrieve == "move":
            final = self._move(study, spool, collect)
        else:
            final = self._get(study, spool, collect)
        # failures the PACS counted that our receiver did not see (e.g. it could not send)
        pacs_failed = parse_int(final.get("NumberOfFailedSuboperations")) or 0
        result.fail("the PACS could not send it", pacs_failed - collect.refused)
        result.seconds = time.monotonic() - started
        log.info(
            "%s: study fetched by C-%s: %s", self.node, self.retrieve.upper(), result.summary()
        )
        return result

    def _identifier(self, study: StudyRef):
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study.study_uid
        return ds

    @contextlib.contextmanager
    def receiving(self, spool: Spool) -> Iterator[DimseSource]:
        """Keep the C-MOVE receiver up across several fetches into ``spool``.

        Without it each C-MOVE fetch starts and stops its own receiver (~0.1 s each,
        plus a new association from the PACS per study).
        """
        if self._scp is not None:
            if self._scp.handler.spool is not spool:
                raise SourceError(
                    "the C-MOVE receiver already writes to another spool",
                    hint="fetch into the spool given to receiving()",
                )
            yield self
            return
        scp = StorageSCP(
            spool,
            ae_title=self.calling_ae,
            port=self.settings.platform_dicom_port,
            host=self.host,
            sites={self.node.ae_title: self.site},
            source="c-move",
            on_event=self._route,
        )
        with scp:
            self._scp = scp
            try:
                yield self
            finally:
                self._scp = None

    def _route(self, event: IngestEvent) -> None:
        collector = self._collector
        if collector is not None:
            collector(event)

    def _move(self, study: StudyRef, spool: Spool, collect: _Collector):
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

        with self.receiving(spool):
            self._collector = collect
            try:
                assoc = self._associate([_context(MOVE)])
                try:
                    responses = assoc.send_c_move(self._identifier(study), self.calling_ae, MOVE)
                    return self._final(responses, collect.result, "C-MOVE")
                finally:
                    release(assoc)
            finally:
                self._collector = None

    def _get(self, study: StudyRef, spool: Spool, collect: _Collector):
        from pynetdicom import build_role
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

        classes = study.sop_classes or self.sop_classes(study)
        if not classes:
            from pynetdicom import StoragePresentationContexts

            classes = tuple(str(cx.abstract_syntax) for cx in StoragePresentationContexts)
        contexts = [_context(GET), *_storage_contexts(classes)]
        roles = [build_role(uid, scp_role=True) for uid in dict.fromkeys(classes)]
        handler = StoreHandler(
            spool, source="c-get", site_for=lambda _ae: self.site, on_event=collect
        )
        assoc = self._associate(
            contexts, ext_neg=roles, evt_handlers=handler.handlers(association_events=False)
        )
        try:
            responses = assoc.send_c_get(self._identifier(study), GET)
            return self._final(responses, collect.result, "C-GET")
        finally:
            release(assoc)

    def _final(self, responses, result: FetchResult, what: str):
        """Walk the retrieve responses; return the final status or raise a SourceError."""
        final = None
        for status, _identifier in responses:
            if not status or "Status" not in status:
                raise SourceError(
                    f"{self.node} stopped answering during {what} "
                    f"({result.received} of {result.expected if result.expected is not None else '?'} objects spooled)",
                    hint="check that the PACS is running; rerun the fetch: objects already spooled are kept once",
                    partial=result,
                )
            if status.Status in PENDING:
                continue
            final = status
            break
        if final is None:
            raise SourceError(
                f"{self.node} ended {what} without a final status ({result.received} objects spooled)",
                hint="check the PACS log; rerun the fetch",
                partial=result,
            )
        code = int(final.Status)
        if code == 0xA801:
            raise SourceError(
                f"{self.node} does not know the move destination {self.calling_ae!r}",
                hint=f"register AE {self.calling_ae!r} at this host, port {self.settings.platform_dicom_port}, in the PACS",
                partial=result,
            )
        if code not in SUCCESS_OR_WARNING and not result.received:
            raise SourceError(
                f"{self.node} refused {what} with status 0x{code:04X}",
                hint="check the PACS log and its permissions for our AE title",
                partial=result,
            )
        if code not in SUCCESS_OR_WARNING:
            result.fail(f"{what} ended with status 0x{code:04X}", max(result.missing, 1))
        return final

    def _associate(self, contexts, **kwargs):
        return associate(
            self.node, self.calling_ae, contexts, timeout=self.timeout, max_pdu=MAX_PDU, **kwargs
        )


def _context(abstract_syntax):
    from pynetdicom import build_context

    return build_context(abstract_syntax)


def _storage_contexts(classes: tuple[str, ...]) -> list:
    """Presentation contexts for receiving ``classes`` by C-GET, within the 128-context limit.

    With room, one context per (SOP class, transfer syntax), so every stored transfer
    syntax is accepted as it is; otherwise one context per class listing them all.
    """
    from pynetdicom import build_context

    unique = list(dict.fromkeys(classes))[:MAX_CONTEXTS]
    if len(unique) * len(GET_TRANSFER_SYNTAXES) <= MAX_CONTEXTS:
        return [build_context(uid, [ts]) for uid in unique for ts in GET_TRANSFER_SYNTAXES]
    return [build_context(uid, list(GET_TRANSFER_SYNTAXES)) for uid in unique]
