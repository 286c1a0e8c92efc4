"""``gai receive``: the platform's C-STORE SCP, writing what site PACS push into the spool."""

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
        "failure status and counted. One line is printed per association.",
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
    parser.set_defaults(handler=run_receive)


def run_receive(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gai_research.cli._common import settings_from
    from gai_research.ingest import AssociationClosed, Spool, StorageSCP
    from gai_research.ingest.scp import site_ae_titles

    settings = settings_from(args)
    spool = Spool(settings)

    def report(event) -> None:
        if isinstance(event, AssociationClosed) and not args.quiet:
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
        scp.start()
        if scp.site is not None:
            who = f"any caller as {scp.site.value}"
        else:
            who = ", ".join(
                f"{ae} -> {site.value}" for ae, site in site_ae_titles(settings).items()
            )
        print(
            f"receiving as {scp.ae_title} on {args.bind}:{scp.port} ({who}) into {spool.root}; "
            "Ctrl-C to stop",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        scp.stop()
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
    return 0
