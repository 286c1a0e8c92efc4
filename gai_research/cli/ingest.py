"""``gai ingest`` and ``gai labels import``: images and reference labels into the catalog.

``gai ingest`` pulls a site's studies (C-FIND + C-MOVE/C-GET, or QIDO-RS + WADO-RS), or
imports a folder, or drains the spool, through the pipeline: pseudonymized, stored,
catalogued, with a reconciliation table at the end (exit 0 only when every object is
accounted for). ``gai labels import`` converts ground-truth tables keyed by original
identifiers to pseudonyms and stores them as catalog labels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from gai_research.cli._common import print_table, settings_from


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (use YYYY-MM-DD or YYYYMMDD)"
        ) from None


def register(sub: argparse._SubParsersAction) -> None:
    _register_ingest(sub)
    _register_labels(sub)


def _register_ingest(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ingest",
        help="pull a site's studies (or a folder, or the spool) into the store and the catalog",
        description="Query a site PACS (C-FIND, or QIDO-RS with --source dicomweb), fetch every "
        "study the catalog does not hold completely (C-MOVE to the platform's AE, or C-GET with "
        "--retrieve get; WADO-RS), and run the pipeline on what arrives: pseudonymize with the "
        "platform key, store under pseudonymous UIDs, catalog, record the vault, remove the spool "
        "entry. Incremental by default: from the last study date the previous successful run of "
        "that site and source synced (--full starts over). Unusable objects go to the quarantine "
        "with a reason. Prints a reconciliation table and exits 0 only when every object found "
        "is accounted for (stored, duplicate or quarantined).",
        epilog="examples:\n"
        "  gai ingest --all-sites\n"
        "  gai ingest --site SUWON --since 2026-05-01 --modality CT\n"
        "  gai ingest --site ICHEON --source dicomweb\n"
        "  gai ingest --site ANSEONG --source folder /media/cdrom\n"
        "  gai ingest --spool                # what `gai receive --spool-only` left",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--site", help="the hospital: SUWON, ANSEONG or ICHEON")
    where.add_argument("--all-sites", action="store_true", help="every site, one after another")
    parser.add_argument(
        "--spool", action="store_true", help="process what waits in the spool (of --site, or all)"
    )
    parser.add_argument(
        "--source",
        choices=("dimse", "dicomweb", "folder"),
        default="dimse",
        help="where from (default dimse: C-FIND + C-MOVE/C-GET)",
    )
    parser.add_argument(
        "--retrieve",
        choices=("move", "get"),
        default="move",
        help="DIMSE retrieve: C-MOVE to our receiver (default) or C-GET (when `gai receive` "
        "holds the port)",
    )
    parser.add_argument(
        "path", nargs="?", type=Path, metavar="PATH", help="folder for --source folder"
    )
    parser.add_argument("--since", type=_date, metavar="DATE", help="first study date (YYYY-MM-DD)")
    parser.add_argument("--until", type=_date, metavar="DATE", help="last study date (YYYY-MM-DD)")
    parser.add_argument(
        "--modality", metavar="M", help="only studies with this modality (CT, MR, ...)"
    )
    parser.add_argument(
        "--full", action="store_true", help="ignore the last sync date (the catalog still dedups)"
    )
    parser.add_argument(
        "--refetch",
        action="store_true",
        help="fetch even the studies the catalog already holds completely",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="pseudonymization worker processes (default 0: in this process)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_ingest)


def _register_labels(sub: argparse._SubParsersAction) -> None:
    labels = sub.add_parser(
        "labels",
        help="reference labels: import ground-truth tables (restricted input) into the catalog",
        description="Reference labels of the disease tasks. Tables keyed by original "
        "identifiers are converted to pseudonyms with the platform key and stored in the "
        "catalog's labels table.",
    )
    actions = labels.add_subparsers(dest="labels_command", metavar="ACTION", title="actions")
    labels.set_defaults(handler=lambda args: _usage(labels))
    imp = actions.add_parser(
        "import",
        help="import label tables keyed by original study UID, accession number or ID + date",
        description="Read CSV tables (identified: keep them in the restricted area) keyed by "
        "study_uid, or accession_number (+ site), or patient_id + study_date (+ site; looked up "
        "in the vault). Label columns: kind, name, value (or label), x_mm, y_mm, z_mm, "
        "diameter_mm, row_px (or row), col_px (or col), frame, laterality, view, volume_ml, "
        "series_uid, sop_uid (original UIDs). Rows whose study, series or image the catalog "
        "does not hold are not imported and are reported by line number. The task's labels of "
        "every study named are replaced, so give all of a task's tables in one call. With "
        "--synthetic, FILE is a `gai synth` output (or its labels/ folder) and every table is "
        "imported under its task. Exits 1 when a row was not imported.",
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE", help="label table(s)")
    imp.add_argument("--task", help="disease task, e.g. lung_nodule_ct (or a task column)")
    imp.add_argument("--site", help="site of accession numbers and patient IDs (or a site column)")
    imp.add_argument(
        "--kind", help="label kind: study, nodule, finding, volume (default: inferred)"
    )
    imp.add_argument(
        "--source", dest="label_source", metavar="NAME", help="who made the labels: reader1, ..."
    )
    imp.add_argument(
        "--extra", action="append", default=[], metavar="COLUMN", help="keep COLUMN in extra"
    )
    imp.add_argument(
        "--synthetic", action="store_true", help="FILE is a `gai synth` cohort: import all of it"
    )
    imp.set_defaults(handler=run_labels_import)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


class _Progress:
    """tqdm bars on stderr fed by the run's typed events (counts only, never identifiers)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, event) -> None:
        from gai_research.ingest import ObjectReceived, ObjectRejected
        from gai_research.ingest.outcomes import BatchCommitted, SourceQueried

        if self.quiet:
            return
        if isinstance(event, SourceQueried):
            self.close()
            from tqdm import tqdm

            self.bar = tqdm(
                total=event.to_fetch,
                unit="obj",
                file=sys.stderr,
                desc=f"{event.site.value} {event.source}",
                dynamic_ncols=True,
            )
            self.stored = self.quarantined = 0
        elif self.bar is not None and isinstance(event, ObjectReceived | ObjectRejected):
            self.bar.update(1)
        elif self.bar is not None and isinstance(event, BatchCommitted):
            self.stored += event.counts.new + event.counts.duplicates
            self.quarantined += event.counts.quarantined_total
            self.bar.set_postfix(stored=self.stored, quarantined=self.quarantined)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_report(report) -> None:
    where = report.source
    if report.since or report.until:
        where += f", study dates {report.since or '...'} to {report.until or '...'}"
    print(f"\n{report.site.value} ({where}): run {report.run_id}, {report.seconds:.1f} s")
    print_table(report.table(), ["outcome", "count", "note"])
    if report.error:
        print(f"error: {report.error}")
    tail = f"snapshot {report.snapshot[:12]}" if report.snapshot else "no snapshot"
    if report.synced_through:
        tail += f"; synced through {report.synced_through}"
    state = "all accounted for" if report.accounted else "NOT all accounted for"
    print(f"{state}; {tail}")


def run_ingest(args: argparse.Namespace) -> int:
    from gai_research.config import Site
    from gai_research.errors import GaiError
    from gai_research.ingest.run import ingest_site, ingest_spool

    settings = settings_from(args)
    if args.workers < 0:
        raise GaiError(
            f"--workers {args.workers} is not a number of processes",
            hint="use 0 (in this process) or more",
        )
    if args.spool:
        reports = ingest_spool(settings, site=args.site, workers=args.workers)
        reports = [r for r in reports if r.found or r.pipeline.processed]
        if not reports:
            print("nothing waits in the spool")
    else:
        if not args.site and not args.all_sites:
            raise GaiError("say which site to ingest", hint="give --site SITE or --all-sites")
        if args.source == "folder" and (args.all_sites or args.path is None):
            raise GaiError(
                "a folder ingest needs one site and the folder",
                hint="gai ingest --site SITE --source folder PATH",
            )
        if args.path is not None and args.source != "folder":
            raise GaiError("PATH is only for --source folder", hint="add --source folder")
        sites = list(Site) if args.all_sites else [Site.parse(args.site)]
        reports = []
        for site in sites:
            progress = _Progress(args.quiet)
            try:
                reports.append(
                    ingest_site(
                        settings,
                        site,
                        source=args.source,
                        retrieve=args.retrieve,
                        path=args.path,
                        since=args.since,
                        until=args.until,
                        modality=args.modality,
                        full=args.full,
                        refetch=args.refetch,
                        workers=args.workers,
                        on_event=progress,
                    )
                )
            finally:
                progress.close()
    for report in reports:
        _print_report(report)
    bad = [r for r in reports if not r.accounted]
    if bad:
        names = ", ".join(r.site.value for r in bad)
        print(
            f"gai ingest: {names}: not every object is accounted for; see the table above "
            "(rerun to fetch what is missing; objects already stored are kept once)",
            file=sys.stderr,
        )
        return 1
    return 0


def run_labels_import(args: argparse.Namespace) -> int:
    from gai_research.errors import GaiError
    from gai_research.ingest.labels import import_labels, import_synthetic

    settings = settings_from(args)
    if args.synthetic:
        if len(args.files) != 1:
            raise GaiError("--synthetic takes one folder", hint="gai labels import OUT --synthetic")
        report = import_synthetic(settings, args.files[0])
    else:
        report = import_labels(
            settings,
            args.files,
            task=args.task,
            site=args.site,
            kind=args.kind,
            source=args.label_source,
            extra=args.extra,
        )
    rows = [
        {"task": task, "labels": report.imported[task], "studies": report.studies[task]}
        for task in sorted(report.imported)
    ]
    if rows:
        print_table(rows, ["task", "labels", "studies"])
    print(
        f"{report.rows_read} row(s) read from {len(report.files)} table(s), "
        f"{report.rows_imported} label(s) stored; snapshot {report.snapshot[:12]}"
    )
    for line in report.problem_lines():
        print(f"not imported: {line}", file=sys.stderr)
    if not report.ok:
        print(
            f"gai labels: {report.rows_rejected} row(s) not imported (ingest the missing studies, "
            "or fix the rows, then import again: it replaces, never duplicates)",
            file=sys.stderr,
        )
        return 1
    return 0
