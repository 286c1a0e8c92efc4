"""``gai receive``: the platform's C-STORE SCP; what site PACS push goes through the pipeline.

The SCP answers once an object is safe in the restricted spool; a drainer thread then
pseudonymizes, stores and catalogs it (``--spool-only`` leaves it in the spool for a
later ``gai ingest --spool``).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "receive",
        help="receive images pushed by the site PACS (C-STORE) into the restricted spool",
        description="Run the platform's DICOM receiver (C-STORE SCP and C-ECHO) until Ctrl-C or "
        "SIGTERM. Every storage SOP class is accepted, in any transfer syntax (uncompressed, "
        "deflate, JPEG, JPEG-LS, JPEG 2000, RLE). The site of an association comes from the "
        "calling AE title (the site PACS AE titles of `gai config`); unknown callers are "
        "rejected. Objects that cannot be decoded or lack their UIDs are refused with a "
        "failure status and counted. Each object is answered once it is safe in the restricted "
        "spool; a background pipeline then pseudonymizes it, stores and catalogs it, and "
        "publishes a snapshot after each burst (unusable objects go to the quarantine with a "
        "reason). One line is printed per association and per pipeline burst.",
    )
    parser.add_argument(
        "--port", type=int, help="port to listen on (default: platform_dicom_port of the settings)"
    )
    parser.add_argument(
        "--ae-title", help="our AE title (default: platform_ae_title of the settings)"
    )
    parser.add_argument(
        "--site",
        help="assign every association to this site (SUWON, ANSEONG, ICHEON) and accept any "
        "calling AE title",
    )
    parser.add_argument(
        "--bind", default="0.0.0.0", metavar="ADDRESS", help="address to listen on (default all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per association")
    parser.add_argument(
        "--spool-only",
        action="store_true",
        help="only spool what arrives (process it later with `gai ingest --spool`)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="pseudonymization worker processes (default 1; 0: a thread of the receiver)",
    )
    parser.set_defaults(handler=run_receive)


def run_receive(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gai_research.cli._common import settings_from
    from gai_research.errors import GaiError
    from gai_research.ingest import AssociationClosed, ObjectReceived, Spool, StorageSCP
    from gai_research.ingest.logs import redact_dicom_logs
    from gai_research.ingest.scp import site_ae_titles

    redact_dicom_logs()
    settings = settings_from(args)
    spool = Spool(settings)
    if args.workers < 0:
        raise GaiError(
            f"--workers {args.workers} is not a number of processes",
            hint="use 0 (in this process) or more",
        )
    drainer = None
    if not args.spool_only:
        from gai_research.ingest.drain import SpoolDrainer

        def burst(counts, snapshot: str) -> None:
            if not args.quiet:
                print(f"pipeline: {counts.summary()}; snapshot {snapshot[:12]}", flush=True)

        drainer = SpoolDrainer(settings, workers=args.workers, on_cycle=burst)

    def report(event) -> None:
        if isinstance(event, ObjectReceived) and drainer is not None:
            drainer.notify()
        elif isinstance(event, AssociationClosed) and not args.quiet:
            print(event.summary(), flush=True)

    scp = StorageSCP.for_settings(
        settings,
        spool,
        site=args.site,
        port=args.port,
        ae_title=args.ae_title,
        host=args.bind,
        on_event=report,
    )
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        if drainer is not None:
            drainer.start()
            drainer.notify()  # what an earlier receiver left in the spool
        scp.start()
        if scp.site is not None:
            who = f"any caller as {scp.site.value}"
        else:
            who = ", ".join(
                f"{ae} -> {site.value}" for ae, site in site_ae_titles(settings).items()
            )
        then = "the spool only" if drainer is None else "the pipeline (store + catalog)"
        print(
            f"receiving as {scp.ae_title} on {args.bind}:{scp.port} ({who}) into {spool.root}, "
            f"then {then}; Ctrl-C to stop",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        scp.stop()
        if drainer is not None:
            drainer.stop()  # drains what is left first
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    totals = scp.totals
    line = (
        f"stopped: {totals.associations} association(s), {totals.received} object(s) received "
        f"({totals.received - totals.new} already spooled), {totals.failed} refused"
    )
    if totals.rejected_associations:
        line += f", {totals.rejected_associations} association(s) rejected"
    print(line, flush=True)
    if drainer is not None:
        left = len(spool)
        print(
            f"pipeline: {drainer.counts.summary()}"
            + (f"; snapshot {drainer.snapshot[:12]}" if drainer.snapshot else "")
            + (f"; {left} object(s) left in the spool: run `gai ingest --spool`" if left else ""),
            flush=True,
        )
    return 0
