"""``gai synth``: write the synthetic three-hospital cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from gai_research.cli._common import print_table


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "synth",
        help="write a synthetic three-hospital DICOM cohort with known ground truth",
        description="Write a deterministic synthetic cohort for the four disease areas "
        "(chest CT and X-ray nodules, mammography, brain MRI volumetry, brain CT hemorrhage) "
        "as valid DICOM with Korean-hospital headers: OUT/SUWON, OUT/ANSEONG, OUT/ICHEON, and "
        "the ground truth in OUT/labels/*.csv keyed by the original study UID. Everything is "
        "synthetic; the output is still handled as identified data.",
    )
    parser.add_argument(
        "out",
        metavar="OUT",
        type=Path,
        help="output folder (created; an earlier synth output is replaced)",
    )
    parser.add_argument(
        "--patients", type=int, default=None, help="number of patients (default: small demo size)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; the same seed gives byte-identical files (default 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gai_research.synth import DEFAULT_PATIENTS, generate_cohort

    patients = DEFAULT_PATIENTS if args.patients is None else args.patients
    summary = generate_cohort(args.out, patients=patients, seed=args.seed, progress=not args.quiet)
    print(
        f"wrote {len(summary.studies)} studies of {summary.patients} patients to {summary.out_dir} (seed {summary.seed})"
    )
    print_table(summary.table(), ["site", "task", "patients", "studies", "positive", "instances"])
    return 0
