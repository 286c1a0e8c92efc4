"""``gai pacs up|status|down|seed``: the simulated site PACS (one Orthanc per hospital)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gai_research.cli._common import print_table, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pacs",
        help="run the simulated site PACS (Orthanc) and seed them with a cohort",
        description="Run one Orthanc per site on this machine, playing the Suwon, Anseong and "
        "Icheon PACS (ports and AE titles from `gai config`, storage under GAI_HOME/pacs). "
        "They accept DICOM only from the platform's AE on 127.0.0.1 and HTTP/DICOMweb only "
        "from this machine.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    site_help = "only this site (SUWON, ANSEONG, ICHEON); repeatable; default all three"

    up = actions.add_parser("up", help="start the site PACS that are not running")
    up.add_argument("--site", action="append", help=site_help)
    up.set_defaults(handler=run_up)

    status = actions.add_parser("status", help="state, ports and contents of each site PACS")
    status.add_argument("--site", action="append", help=site_help)
    status.set_defaults(handler=run_status)

    down = actions.add_parser("down", help="stop the site PACS (their stored images are kept)")
    down.add_argument("--site", action="append", help=site_help)
    down.set_defaults(handler=run_down)

    seed = actions.add_parser(
        "seed",
        help="C-STORE a `gai synth` output to the right site PACS",
        description="Send DIR/SUWON, DIR/ANSEONG and DIR/ICHEON to the matching site PACS by "
        "C-STORE, then check with C-FIND that every study arrived.",
    )
    seed.add_argument(
        "dir", metavar="DIR", type=Path, help="a cohort folder written by `gai synth`"
    )
    seed.add_argument("--site", action="append", help=site_help)
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    seed.set_defaults(handler=run_seed)


def run_up(args: argparse.Namespace) -> int:
    from gai_research.pacs import pacs_status, pacs_up

    settings = settings_from(args)
    started = pacs_up(settings, args.site)
    for site, was_started in started.items():
        print(f"{site.value:<8} {'started' if was_started else 'already running'}")
    _print_status(pacs_status(settings, args.site))
    return 0


def run_down(args: argparse.Namespace) -> int:
    from gai_research.pacs import pacs_down

    for site, was_running in pacs_down(settings_from(args), args.site).items():
        print(f"{site.value:<8} {'stopped' if was_running else 'was not running'}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from gai_research.pacs import pacs_status

    rows = pacs_status(settings_from(args), args.site)
    _print_status(rows)
    return 0 if all(r.state == "running" for r in rows) else 3


def _print_status(rows) -> None:
    print_table(
        [
            {
                "site": r.site.value,
                "state": r.state,
                "AE title": r.ae_title,
                "DICOM": r.dicom_port,
                "HTTP": r.http_port,
                "studies": "" if r.studies is None else r.studies,
                "instances": "" if r.instances is None else r.instances,
            }
            for r in rows
        ],
        ["site", "state", "AE title", "DICOM", "HTTP", "studies", "instances"],
    )


def run_seed(args: argparse.Namespace) -> int:
    from gai_research.dicom.net import find_studies
    from gai_research.pacs import seed_cohort, site_node

    settings = settings_from(args)
    results = seed_cohort(settings, args.dir, args.site, progress=not args.quiet)
    rows = []
    for site, result in results.items():
        found = find_studies(site_node(settings, site), settings.platform_ae_title)
        rows.append(
            {
                "site": site.value,
                "files": result.offered,
                "stored": result.sent,
                "failed": result.failed,
                "PACS patients": len({s["PatientID"] for s in found}),
                "PACS studies": len(found),
                "PACS instances": sum(int(s["NumberOfStudyRelatedInstances"] or 0) for s in found),
                "reasons": "; ".join(f"{n} {why}" for why, n in result.reasons.items()),
            }
        )
    print_table(
        rows,
        [
            "site",
            "files",
            "stored",
            "failed",
            "PACS patients",
            "PACS studies",
            "PACS instances",
            "reasons",
        ],
    )
    return 0 if all(r["failed"] == 0 for r in rows) else 1
