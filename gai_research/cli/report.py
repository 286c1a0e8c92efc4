"""``gai report``: the results report from MLflow runs and the platform catalog."""

from __future__ import annotations

import argparse
from pathlib import Path

from gai_research.cli._common import settings_from

EPILOG = """\
examples:
  gai report                                  # latest finished runs -> HOME/reports/<date>/
  gai report --pdf --lang ko                  # Korean labels, and report.pdf (headless Chromium)
  gai report --experiments lung_nodule_ct gai-breast_mg --out /tmp/r
  gai report --runs pinned.yaml --pdf         # exactly the pinned runs (an official edition)

writes report.html (self-contained: CSS inline, plots embedded), report.json (every
number printed, with the run id it came from) and, with --pdf, report.pdf.
pinned.yaml lists run ids under `runs:` (an evaluation run brings all its model runs);
see docs/report.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="write the results report (HTML, JSON, PDF) from MLflow runs and the catalog",
        description="Per disease area, the accuracy and speed of every model at every site "
        "(each number traced to its MLflow run), how the data platform was used, and a "
        "methods and reproducibility appendix.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--experiments",
        nargs="+",
        metavar="NAME",
        help="only these tasks or experiments (lung_nodule_ct or gai-lung_nodule_ct)",
    )
    parser.add_argument(
        "--runs", metavar="PINNED.yaml", help="use exactly the runs pinned in this file"
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default HOME/reports/<date>)")
    parser.add_argument("--pdf", action="store_true", help="also print report.pdf with Chromium")
    parser.add_argument("--lang", choices=("en", "ko"), default="en", help="labels (default en)")
    parser.add_argument(
        "--mlflow-ui",
        metavar="URL",
        help="MLflow UI address to link run ids to (default: the tracking URI if it is http)",
    )
    parser.add_argument(
        "--cards",
        action="append",
        default=[],
        metavar="DIR",
        help="another folder of data cards to list (data_cards/ and HOME/data_cards always)",
    )
    parser.add_argument(
        "--exports",
        action="append",
        default=[],
        metavar="DIR",
        help="another folder holding training-data exports (HOME/exports and exports/ always)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from gai_research.report.build import build_report, default_out_dir, write_report

    settings = settings_from(args)
    report = build_report(
        settings,
        experiments=args.experiments,
        runs=args.runs,
        lang=args.lang,
        mlflow_ui=args.mlflow_ui,
        card_dirs=[Path(p) for p in args.cards],
        export_dirs=[Path(p) for p in args.exports],
    )
    out = Path(args.out) if args.out else default_out_dir(settings)
    files = write_report(report, out, pdf=args.pdf)
    collected = report.collected
    failed = sum(len(t.failed) for t in collected.tasks)
    empty = [t.task for t in collected.tasks if not t.rows]
    print(
        f"{len(collected.tasks)} tasks, {collected.n_rows} model x site results, "
        f"{failed} failed run(s)" + (f"; no runs for {', '.join(empty)}" if empty else "")
    )
    if collected.store_missing:
        print(f"no MLflow store at {collected.tracking_uri}: the report says there are no runs")
    timing = f"HTML {files.timings['html_total']:.2f} s"
    if files.pdf is not None:
        timing += f", PDF {files.timings['pdf']:.2f} s"
    print(f"{files.n_numbers} numbers cited ({timing})")
    print(f"report: {files.html}")
    if files.pdf is not None:
        print(f"pdf:    {files.pdf}")
    return 0
