"""Ingest runs: from a site's PACS (or a folder, or the spool) into the store and the catalog.

:func:`ingest_site` queries a source, fetches the studies that are not yet complete in
the catalog into the spool, and runs the pipeline on them while the next study
arrives. It is incremental by default: it starts at the last study date the previous
successful run of that site and source synced completely (``sync_state``); studies
of that day that the catalog already holds completely are listed and skipped. Each
run ends with leftover spool entries of the site (an interrupted earlier run), a
catalog snapshot, an ``ingest_runs`` row and an audit record, and returns a
:class:`SiteReport` whose counts must add up:

    found at source  = already in the catalog + received + failed + missing
    processed        = received (distinct objects) + earlier spool entries
                     = stored new + duplicates + quarantined (by reason)

:func:`ingest_spool` drains whatever is in the spool (after ``gai receive``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gai_research.config import Settings, Site
from gai_research.errors import ServiceError
from gai_research.ingest.errors import IngestError, SourceError
from gai_research.ingest.outcomes import PipelineCounts, SourceQueried
from gai_research.ingest.pipeline import Pipeline
from gai_research.ingest.types import FetchResult, Source, StudyRef

__all__ = ["SOURCES", "SiteReport", "ingest_site", "ingest_spool", "make_source"]

log = logging.getLogger(__name__)

SOURCES = ("dimse", "dicomweb", "folder")
SourceKind = Literal["dimse", "dicomweb", "folder"]
Handler = Callable[[object], None]


@dataclass
class SiteReport:
    """The reconciliation of one run for one site and source (counts only, no identifiers)."""

    site: Site
    source: str
    run_id: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    studies_found: int = 0
    studies_skipped: int = 0
    studies_fetched: int = 0
    found: int | None = 0  # instances (or files) the source announced; None: not known
    skipped: int = 0  # instances of studies the catalog already holds completely
    received: int = 0  # objects now in the spool from this run's fetches
    already_spooled: int = 0
    received_distinct: int = 0
    failed: Counter = field(default_factory=Counter)  # transfer failures, by reason
    missing: int = 0
    not_dicom: int = 0
    leftovers: int = 0  # spool entries of earlier runs processed now
    pipeline: PipelineCounts = field(default_factory=PipelineCounts)
    snapshot: str = ""
    latest_study_date: dt.date | None = None
    synced_through: dt.date | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def source_balanced(self) -> bool:
        """found = already in the catalog + received + failed + missing (+ not DICOM)."""
        if self.found is None:
            return True
        return self.found == (
            self.skipped + self.received + self.failed_total + self.missing + self.not_dicom
        )

    @property
    def pipeline_balanced(self) -> bool:
        """processed = received (distinct) + leftovers = new + duplicates + quarantined."""
        p = self.pipeline
        return p.accounted and p.processed == self.received_distinct + self.leftovers

    @property
    def accounted(self) -> bool:
        """Everything is where it should be: nothing failed, missing or unexplained."""
        return (
            not self.error
            and self.source_balanced
            and self.pipeline_balanced
            and self.failed_total == 0
            and self.missing == 0
            and self.pipeline.vanished == 0
        )

    def add_fetch(self, result: FetchResult) -> None:
        self.received += result.received
        self.already_spooled += result.already_spooled
        self.failed.update(result.reasons)
        self.missing += result.missing
        self.not_dicom += result.not_dicom

    def table(self) -> list[dict]:
        """Rows of the reconciliation table: outcome, count, note."""
        p = self.pipeline
        found_note = f"instances in {self.studies_found} studies"
        if self.source == "folder":
            found_note = "files in the folder"
        elif self.source == "spool":
            found_note = "entries waiting in the spool"
        rows = [
            {
                "outcome": "found at source",
                "count": "?" if self.found is None else self.found,
                "note": found_note,
            },
        ]
        if self.source in ("dimse", "dicomweb"):
            rows.append(
                {
                    "outcome": "  already in the catalog",
                    "count": self.skipped,
                    "note": f"{self.studies_skipped} complete studies, not fetched again",
                }
            )
        rows.append(
            {
                "outcome": "  received",
                "count": self.received,
                "note": f"{self.already_spooled} already spooled by an earlier run",
            }
        )
        for reason, count in sorted(self.failed.items()):
            rows.append(
                {"outcome": "  failed in transfer", "count": count, "note": str(reason)[:60]}
            )
        if self.missing:
            rows.append(
                {"outcome": "  missing", "count": self.missing, "note": "announced, never arrived"}
            )
        if self.not_dicom:
            rows.append(
                {"outcome": "  not DICOM", "count": self.not_dicom, "note": "left on the medium"}
            )
        rows.append(
            {
                "outcome": "earlier spool entries",
                "count": self.leftovers,
                "note": "left by an interrupted run or the receiver",
            }
        )
        rows.append(
            {
                "outcome": "processed",
                "count": p.processed,
                "note": "received (distinct) + earlier spool entries",
            }
        )
        rows.append({"outcome": "  stored new", "count": p.new, "note": "new in the catalog"})
        rows.append(
            {
                "outcome": "  duplicates",
                "count": p.duplicates,
                "note": "SOP instance already stored (by pseudonymous UID)",
            }
        )
        for reason, count in sorted(p.quarantined.items()):
            rows.append({"outcome": f"  quarantined: {reason}", "count": count, "note": ""})
        if p.vanished:
            rows.append(
                {"outcome": "  taken elsewhere", "count": p.vanished, "note": "another process"}
            )
        return rows

    def run_counts(self) -> dict[str, int]:
        """Flat counts for the ``ingest_runs`` row."""
        counts = {
            "studies_found": self.studies_found,
            "studies_skipped": self.studies_skipped,
            "studies_fetched": self.studies_fetched,
            "found": -1 if self.found is None else self.found,
            "skipped": self.skipped,
            "received": self.received,
            "failed": self.failed_total,
            "missing": self.missing,
            "not_dicom": self.not_dicom,
            "leftovers": self.leftovers,
        }
        counts.update(self.pipeline.as_dict())
        return counts


def make_source(
    settings: Settings,
    site: Site,
    kind: SourceKind | str,
    *,
    retrieve: str = "move",
    path: Path | str | None = None,
) -> Source:
    """The source of a run: a site PACS over DIMSE or DICOMweb, or a folder."""
    from gai_research.ingest.dicomweb import DicomWebSource
    from gai_research.ingest.dimse import DimseSource
    from gai_research.ingest.folder import FolderSource

    if kind == "dimse":
        return DimseSource(settings, site, retrieve=retrieve)
    if kind == "dicomweb":
        return DicomWebSource(settings, site)
    if kind == "folder":
        if path is None:
            raise IngestError(
                "a folder ingest needs the folder", hint="give PATH after --source folder"
            )
        return FolderSource(path, site)
    raise IngestError(f"unknown source {kind!r}", hint=f"use one of {', '.join(SOURCES)}")


def _catalog_studies(settings: Settings, pseudo_uids: Iterable[str]) -> dict[str, int]:
    """Instances per pseudonymous study in the latest snapshot.

    Every run publishes one at its end. After a crash it may be older than the catalog;
    it never holds more, so the worst case is a study fetched again (and counted as
    duplicates), never one skipped that is not complete.
    """
    from gai_research.store import CatalogMissingError, SnapshotNotFoundError, open_snapshot

    wanted = sorted(set(pseudo_uids))
    if not wanted:
        return {}
    try:
        reader = open_snapshot(settings)
    except (CatalogMissingError, SnapshotNotFoundError):
        return {}
    with reader:
        table = reader.query(
            "SELECT study_uid, n_instances FROM studies WHERE list_contains(?, study_uid)",
            [wanted],
        )
    return dict(zip(table["study_uid"].to_pylist(), table["n_instances"].to_pylist(), strict=True))


def ingest_site(
    settings: Settings,
    site: Site | str,
    *,
    source: SourceKind | str = "dimse",
    retrieve: str = "move",
    path: Path | str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    modality: str | None = None,
    full: bool = False,
    refetch: bool = False,
    workers: int = 0,
    on_event: Handler | None = None,
    lock_wait: float = 60.0,
) -> SiteReport:
    """One ingest run of one site from ``source``; see the module docstring.

    ``full`` ignores the sync state (every study from ``since``, or from the start);
    ``refetch`` fetches even studies the catalog already holds completely. A source
    that fails (a PACS that stops mid-run or does not answer, a receiver port in use)
    ends the run as ``failed``: what arrived is still stored, the sync state does not
    move, and ``report.error`` says why; a rerun fetches the rest.
    """
    from gai_research.store import IngestRun

    site = Site.parse(site)
    if source == "folder" and (since or until or modality):
        raise IngestError(
            "--since, --until and --modality filter PACS queries, not folders",
            hint="import the whole folder, then select in the catalog",
        )
    src = make_source(settings, site, source, retrieve=retrieve, path=path)
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    with Pipeline(settings, workers=workers, on_event=on_event, lock_wait=lock_wait) as pipe:
        report = SiteReport(site, str(source), run_id=pipe.run_id, until=until)
        keys = pipe.processor.job.keys
        if since is None and not full and source != "folder":
            since = pipe.writer.last_sync(site, str(source))
        report.since = since
        seen: set[str] = set()
        before = pipe.counts.copy()
        try:
            if source == "folder":
                if on_event is not None:
                    scan = src.scan()
                    on_event(SourceQueried(site, "folder", len(scan.objects), scan.n_objects))
                result = src.import_all(pipe.spool, on_instance=on_event)
                report.found = (result.expected or 0) + result.not_dicom
                report.studies_found = report.studies_fetched = len(src.scan().objects)
                report.add_fetch(result)
                seen.update(e.digest for e in result.entries)
                pipe.submit(result.entries)
            else:
                _fetch_studies(
                    src, pipe, report, keys, since, until, modality, refetch, seen, on_event
                )
        except ServiceError as exc:  # a PACS that stops or never answers, a busy port
            partial = exc.partial if isinstance(exc, SourceError) else None
            if partial is not None:
                report.add_fetch(partial)
                seen.update(e.digest for e in partial.entries)
                pipe.submit(partial.entries)
            report.error = str(exc)
            log.warning("%s: %s", site.value, exc.message)
        pipe.flush()
        report.received_distinct = len(seen)
        leftover = [e for e in pipe.spool.entries(site) if e.digest not in seen]
        report.leftovers = pipe.submit(leftover)
        pipe.flush()
        report.pipeline = pipe.counts.since(before)
        ok = report.accounted
        if ok and source != "folder":
            report.synced_through = _synced_through(report, since, until)
        snapshot = pipe.publish()
        report.snapshot = snapshot.id
        report.seconds = time.monotonic() - clock
        pipe.record_run(
            IngestRun(
                site=site.value,
                source=str(source),
                started_at=started,
                finished_at=dt.datetime.now(dt.UTC),
                status="ok" if ok else "failed",
                counts=report.run_counts(),
                synced_through=report.synced_through,
                run_id=pipe.run_id,
            )
        )
    return report


def _fetch_studies(
    src: Source,
    pipe: Pipeline,
    report: SiteReport,
    keys,
    since: dt.date | None,
    until: dt.date | None,
    modality: str | None,
    refetch: bool,
    seen: set[str],
    on_event: Handler | None,
) -> None:
    """Query, skip what the catalog holds completely, fetch the rest study by study."""
    import contextlib

    studies = src.find_studies(since=since, until=until, modality=modality)
    report.studies_found = len(studies)
    report.found = sum(s.n_instances or 0 for s in studies)
    if any(s.n_instances is None for s in studies):
        report.found = None
    held = (
        {} if refetch else _catalog_studies(pipe.settings, (keys.uid(s.study_uid) for s in studies))
    )
    todo: list[StudyRef] = []
    for study in studies:
        count = held.get(keys.uid(study.study_uid))
        if count is not None and study.n_instances is not None and count >= study.n_instances:
            report.studies_skipped += 1
            report.skipped += study.n_instances
        else:
            todo.append(study)
    if on_event is not None:
        counts = [s.n_instances for s in todo]
        total = None if None in counts else sum(counts)
        on_event(SourceQueried(report.site, report.source, len(studies), total))
    dates = [s.study_date for s in studies if s.study_date is not None]
    report.latest_study_date = max(dates) if dates else None
    keep_up = contextlib.nullcontext()
    if todo and getattr(src, "retrieve", None) == "move":
        keep_up = src.receiving(pipe.spool)  # one C-MOVE receiver for every study
    with keep_up:
        for study in todo:
            result = src.fetch(study, pipe.spool, on_instance=on_event)
            report.studies_fetched += 1
            report.add_fetch(result)
            seen.update(e.digest for e in result.entries)
            pipe.submit(result.entries)


def _synced_through(
    report: SiteReport, since: dt.date | None, until: dt.date | None
) -> dt.date | None:
    """The last study date this run synced completely: ``until`` (at most today), else the
    latest study date found, else where it started."""
    if until is not None:
        return min(until, dt.date.today())
    return report.latest_study_date or since


def ingest_spool(
    settings: Settings,
    *,
    site: Site | str | None = None,
    workers: int = 0,
    on_event: Handler | None = None,
    lock_wait: float = 60.0,
) -> list[SiteReport]:
    """Process whatever waits in the spool (of one site, or all); one report per site."""
    from gai_research.store import IngestRun

    chosen = [Site.parse(site)] if site is not None else list(Site)
    started = dt.datetime.now(dt.UTC)
    reports = []
    with Pipeline(settings, workers=workers, on_event=on_event, lock_wait=lock_wait) as pipe:
        for one in chosen:
            clock = time.monotonic()
            waiting = pipe.spool.entries(one)
            before = pipe.counts.copy()
            report = SiteReport(one, "spool", run_id=pipe.run_id)
            report.found = report.received = report.received_distinct = len(waiting)
            pipe.submit(waiting)
            pipe.flush()
            extra = pipe.drain(one)  # what arrived meanwhile
            report.leftovers = extra.processed
            report.pipeline = pipe.counts.since(before)
            report.seconds = time.monotonic() - clock
            reports.append(report)
        snapshot = pipe.publish()
        for report in reports:
            report.snapshot = snapshot.id
            if report.pipeline.processed:
                pipe.record_run(
                    IngestRun(
                        site=report.site.value,
                        source="spool",
                        started_at=started,
                        finished_at=dt.datetime.now(dt.UTC),
                        status="ok" if report.accounted else "failed",
                        counts=report.run_counts(),
                        run_id=f"{pipe.run_id}-{report.site.value}",
                    )
                )
    return reports
