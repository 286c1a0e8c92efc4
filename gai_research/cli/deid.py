"""``gai deid``: pseudonymize a folder of DICOM files into the research store."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gai_research.cli._common import existing_dir, print_table, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "deid",
        help="pseudonymize every file under a folder (PS3.15 Annex E + Korean identifiers)",
        description="Pseudonymize every file under INPUT_DIR (recursively; DICOM or not) into "
        "OUTPUT_DIR as <StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm, all UIDs keyed pseudonyms. "
        "Files that cannot or must not pass (not DICOM, truncated, unreadable, burned-in text no "
        "rule can clean) are copied unchanged into the quarantine folder with a reason beside "
        "them. The re-identification table goes to the restricted vault, one audit record per "
        "run to HOME/audit. Exit 0 when every input is accounted for.",
    )
    parser.add_argument(
        "input_dir", metavar="INPUT_DIR", type=Path, help="folder to read (recursively)"
    )
    parser.add_argument(
        "output_dir", metavar="OUTPUT_DIR", type=Path, help="folder for pseudonymized DICOM"
    )
    parser.add_argument(
        "--site", required=True, help="hospital the files come from: SUWON, ANSEONG or ICHEON"
    )
    parser.add_argument(
        "--key-file", type=Path, help="secret key file (default: the platform's, GAI_KEY_FILE)"
    )
    parser.add_argument(
        "--quarantine", type=Path, metavar="DIR", help="quarantine folder (default HOME/quarantine)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"worker processes (default: CPU count, {os.cpu_count()})",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="profile TOML (default: the packaged one)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gai_research.config import Site
    from gai_research.deid import load_profile, run_folder
    from gai_research.errors import GaiError
    from gai_research.home import key_fingerprint, read_key

    settings = settings_from(args)
    site = Site.parse(args.site)
    if args.workers is not None and args.workers < 1:
        raise GaiError(
            f"--workers {args.workers} is not a number of processes", hint="use 1 or more"
        )
    input_dir = existing_dir(args.input_dir, "input folder")
    key = read_key(args.key_file or settings.key_path)
    profile = load_profile(args.profile)
    bars: list[tqdm] = []

    def start(total: int) -> None:
        bars.append(
            tqdm(
                total=total,
                unit="file",
                file=sys.stderr,
                disable=args.quiet,
                desc=f"deid {site.value}",
            )
        )

    def step(outcome) -> None:
        bars[0].update(1)

    try:
        summary = run_folder(
            input_dir,
            args.output_dir,
            site=site,
            key=key,
            profile=profile,
            quarantine_dir=args.quarantine or settings.quarantine_dir,
            vault_dir=settings.vault_dir,
            audit_dir=settings.audit_dir,
            workers=args.workers,
            on_start=start,
            on_file=step,
            key_fingerprint=key_fingerprint(key),
        )
    finally:
        for bar in bars:
            bar.close()
    print_table(summary.table(), ["outcome", "files", "note"])
    print(
        f"{summary.patients} patients, {summary.studies} studies in {summary.elapsed_s:.1f} s "
        f"({summary.files_per_s:.1f} files/s); run {summary.run_id}"
    )
    print(
        f"output: {summary.output_dir}  quarantine: {summary.quarantine_dir}  audit: {summary.audit_file}"
    )
    if not summary.reconciles:
        raise GaiError(
            f"{summary.read} files read but {summary.written} written and {summary.quarantined_total} quarantined",
            hint="this is a bug; keep the audit record and report it",
        )
    return 0
