"""A site PACS over DICOMweb: QIDO-RS search, WADO-RS retrieve of whole studies.

Orthanc-DICOMweb 1.7 transcodes to Explicit VR Little Endian when the Accept header
names no transfer syntax (and answers 500 for objects it cannot transcode, such as
JPEG 2000), so retrieval asks for ``application/dicom`` with ``transfer-syntax=*``:
every object as stored. The multipart answer is streamed, one object at a time.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from io import BytesIO

from gai_research.config import Settings, Site
from gai_research.ingest.errors import SourceError
from gai_research.ingest.objects import UnusableObject, inspect_part10
from gai_research.ingest.spool import Spool
from gai_research.ingest.types import (
    EventHandler,
    FetchResult,
    ObjectReceived,
    ObjectRejected,
    StudyRef,
    parse_da,
    parse_int,
)

__all__ = ["DicomWebSource"]

log = logging.getLogger(__name__)

AS_STORED = (("application/dicom", "*"),)
QIDO_PAGE = 500
QIDO_FIELDS = (
    "StudyDate",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)


def _value(ds, keyword: str):
    value = ds.get(keyword)
    return None if value in (None, "") else value


class DicomWebSource:
    """One site's PACS as a DICOMweb source (``http://HOST:HTTP_PORT/dicom-web`` by default).

    ``attempts`` bounds how often one HTTP request is tried (with exponential back-off).
    """

    def __init__(
        self,
        settings: Settings,
        site: Site | str,
        *,
        url: str | None = None,
        timeout: float = 60.0,
        attempts: int = 3,
    ) -> None:
        self.site = Site.parse(site)
        pacs = settings.site(self.site).pacs
        self.url = url or f"http://{pacs.host}:{pacs.http_port}/dicom-web"
        self.timeout = timeout
        self.attempts = max(int(attempts), 1)
        self.label = f"{self.site.value} PACS DICOMweb ({self.url})"
        self._client = None

    def __repr__(self) -> str:
        return f"DicomWebSource({self.url!r})"

    @property
    def client(self):
        if self._client is None:
            from dicomweb_client import DICOMwebClient

            client = DICOMwebClient(self.url, timeout=self.timeout)
            # dicomweb-client retries 5 times over ~30 s by default, also when nothing listens
            client.set_http_retry_params(
                retry=self.attempts > 1,
                max_attempts=self.attempts,
                wait_exponential_multiplier=250,
            )
            self._client = client
        return self._client

    def _failed(self, what: str, exc: Exception, partial: FetchResult | None = None) -> SourceError:
        import requests

        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, requests.ConnectionError | requests.Timeout) and status is None:
            why = "no answer (stopped, or wrong port?)"
        elif status is not None:
            why = f"HTTP {status}"
        else:
            why = type(exc).__name__
        done = f" ({partial.received} objects spooled)" if partial is not None else ""
        hint = "check that the PACS and its DICOMweb plugin run (`gai pacs status`)"
        if partial is not None:
            hint += "; a rerun fetches only what is missing"
        return SourceError(f"{self.label}: {what} failed: {why}{done}", hint=hint, partial=partial)

    # --- QIDO-RS -------------------------------------------------------------------
    def find_studies(
        self, since: date | None = None, until: date | None = None, modality: str | None = None
    ) -> list[StudyRef]:
        filters: dict[str, str] = {}
        if since is not None or until is not None:
            start = f"{since:%Y%m%d}" if since else ""
            end = f"{until:%Y%m%d}" if until else ""
            filters["StudyDate"] = f"{start}-{end}"
        if modality:
            filters["ModalitiesInStudy"] = modality.strip().upper()
        refs = []
        for ds in self._search_pages(filters):
            uid = str(ds.get("StudyInstanceUID", "") or "")
            modalities = _value(ds, "ModalitiesInStudy") or ()
            if isinstance(modalities, str):
                modalities = (modalities,)
            refs.append(
                StudyRef(
                    site=self.site,
                    study_uid=uid,
                    study_date=parse_da(ds.get("StudyDate")),
                    modalities=tuple(str(m) for m in modalities),
                    n_instances=parse_int(_value(ds, "NumberOfStudyRelatedInstances")),
                    n_series=parse_int(_value(ds, "NumberOfStudyRelatedSeries")),
                )
            )
        kept = [r for r in refs if r.in_range(since, until, modality)]
        return sorted(kept, key=lambda r: (r.study_date or date.min, r.study_uid))

    def _search_pages(self, filters: dict[str, str]):
        """QIDO-RS study search, page by page, each study once.

        dicomweb-client's ``get_remaining`` pages until an empty answer, but
        Orthanc-DICOMweb 1.7 ignores ``offset`` when ModalitiesInStudy is filtered and
        would be asked forever; here a short page or a page of known studies ends it.
        """
        import requests
        from pydicom.dataset import Dataset

        seen: set[str] = set()
        offset = 0
        while True:
            try:
                page = self.client.search_for_studies(
                    fields=list(QIDO_FIELDS),
                    search_filters=filters,
                    limit=QIDO_PAGE,
                    offset=offset,
                )
            except (requests.RequestException, ValueError) as exc:
                raise self._failed("QIDO-RS study search", exc) from None
            fresh = 0
            for item in page:
                ds = Dataset.from_json(item)
                uid = str(ds.get("StudyInstanceUID", "") or "")
                if uid and uid not in seen:
                    seen.add(uid)
                    fresh += 1
                    yield ds
            if len(page) < QIDO_PAGE or not fresh:
                return
            offset += len(page)

    # --- WADO-RS -------------------------------------------------------------------
    def fetch(
        self, study: StudyRef, spool: Spool, on_instance: EventHandler | None = None
    ) -> FetchResult:
        """Retrieve the study's instances (as stored) and spool their Part-10 bytes."""
        import requests
        from pydicom.filewriter import dcmwrite

        started = time.monotonic()
        source = f"wado-rs:{self.site.value}"
        result = FetchResult(site=self.site, source=source, study=study, expected=study.n_instances)
        try:
            for ds in self.client.iter_study(study.study_uid, media_types=AS_STORED):
                buffer = BytesIO()
                try:
                    dcmwrite(buffer, ds)
                    data = buffer.getvalue()
                    info = inspect_part10(data)
                except UnusableObject as exc:
                    result.fail(exc.reason)
                    _emit(
                        on_instance,
                        ObjectRejected(self.site, source, self.url, exc.status, exc.reason),
                    )
                    continue
                except Exception as exc:  # pydicom could not write what it read
                    reason = f"cannot encode the object ({type(exc).__name__})"
                    result.fail(reason)
                    _emit(on_instance, ObjectRejected(self.site, source, self.url, 0xC000, reason))
                    continue
                entry = spool.put(data, site=self.site, source=source)
                result.add(entry)
                _emit(
                    on_instance,
                    ObjectReceived(
                        site=self.site,
                        source=source,
                        peer=self.url,
                        entry=entry,
                        sop_class_uid=info.sop_class_uid,
                        transfer_syntax_uid=info.transfer_syntax_uid,
                        study_uid=info.study_uid,
                        sop_instance_uid=info.sop_instance_uid,
                    ),
                )
        except (requests.RequestException, ValueError, OSError) as exc:
            raise self._failed("WADO-RS retrieve", exc, result) from None
        result.seconds = time.monotonic() - started
        log.info("%s: study fetched by WADO-RS: %s", self.label, result.summary())
        return result


def _emit(handler: EventHandler | None, event) -> None:
    if handler is not None:
        handler(event)
