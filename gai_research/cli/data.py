"""``gai cohort`` and ``gai export``: named cohorts, their data cards, training-data export.

The commands call the same functions a notebook does (:mod:`gai_research.data`);
pandas, DuckDB and nibabel load inside the handlers only.
"""

from __future__ import annotations

import argparse
import json
import sys

from gai_research.cli._common import print_table, settings_from
from gai_research.errors import GaiError

FILTER_KINDS_MANY = ("site", "upper", "text", "sex")  # flags that may be repeated

COHORT_EPILOG = """\
examples:
  gai cohort create lung-ct --modality CT --task lung_nodule_ct --purpose "nodule detection"
  gai cohort create suwon-old --site SUWON --age-min 70 --sex F
  gai cohort create pos-mg --task breast_mg --label positive
  gai cohort create sql-ct --sql "SELECT study_uid FROM studies WHERE list_contains(modalities, 'CT')"
  gai cohort list
  gai cohort show lung-ct --studies
  gai cohort card lung-ct            # writes data_cards/lung-ct.md

Repeat a flag for "any of" (--site SUWON --site ICHEON); different flags must all hold.
Dates are the shifted study dates of the pseudonymized images (YYYY-MM-DD).
Cohorts are saved under GAI_HOME/cohorts/NAME.json and pin the snapshot they were built on.
"""

EXPORT_EPILOG = """\
writes into OUT: images/*.nii.gz (one per series; one per image for MG/DX/CR),
labels/*.nii.gz (masks where the task defines them: CT nodules), datalist.json (MONAI
decathlon style: training/validation/test), splits.csv, labels.csv, DATA_CARD.md and
manifest.json (sha256 of every file). Splits are by patient, stratified by site and
class. Run it again to resume: files already written with a matching checksum are kept.

example:
  gai export lung-ct --format nifti --out exports/lung-ct --task lung_nodule_ct --seed 0
"""


def register(sub: argparse._SubParsersAction) -> None:
    _register_cohort(sub)
    _register_export(sub)


def _register_cohort(sub: argparse._SubParsersAction) -> None:
    from gai_research.data.filters import FILTERS

    cohort = sub.add_parser(
        "cohort",
        help="build, list and show named cohorts and write their data cards",
        description="A cohort is a named selection of studies on one catalog snapshot, "
        "with a content hash (snapshot + query + members) that names exactly the data used.",
        epilog=COHORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = cohort.add_subparsers(dest="cohort_command", metavar="ACTION", title="actions")
    cohort.set_defaults(handler=lambda args: _usage(cohort))

    create = actions.add_parser(
        "create",
        help="build a cohort from filters or SQL and save it",
        description="Build a cohort from keyword filters or one read-only SQL query "
        "(returning study_uid) on the latest snapshot (or --snapshot), and save it.",
        epilog=COHORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("name", metavar="NAME", help="cohort name: letters, digits, . _ -")
    filters = create.add_argument_group("filters (all optional; all must hold)")
    for spec in FILTERS.values():
        flag = "--" + spec.name.replace("_", "-")
        many = spec.kind in FILTER_KINDS_MANY
        filters.add_argument(
            flag,
            dest=f"filter_{spec.name}",
            metavar=spec.name.upper(),
            action="append" if many else "store",
            type=_whole if spec.kind == "age" else str,
            help=spec.help + (" (repeatable)" if many else ""),
        )
    create.add_argument("--sql", metavar="SQL", help="a read-only query returning study_uid")
    create.add_argument("--purpose", metavar="TEXT", help="purpose and intended use (data card)")
    create.add_argument(
        "--snapshot", metavar="HASH", help="build on this snapshot (default: the latest)"
    )
    create.add_argument(
        "--overwrite", action="store_true", help="replace a different cohort of the same name"
    )
    create.set_defaults(handler=run_create)

    listing = actions.add_parser("list", help="list saved cohorts")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="a saved cohort: query, snapshot, hash, counts")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--studies", action="store_true", help="also list the member studies")
    show.set_defaults(handler=run_show)

    card = actions.add_parser(
        "card",
        help="write the cohort's data card (Markdown)",
        description="Fill data_cards/TEMPLATE.md for a saved cohort: purpose, sources, "
        "selection, population, labels, pseudonymization (profile, key fingerprint), limitations.",
    )
    card.add_argument("name", metavar="NAME")
    card.add_argument(
        "--out", metavar="DIR", default="data_cards", help="folder (default ./data_cards)"
    )
    card.set_defaults(handler=run_card)


def _register_export(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export",
        help="export a saved cohort as training data (NIfTI + MONAI datalist)",
        description="Export a saved cohort as training data: images, label masks, a MONAI "
        "datalist with patient-level splits, a manifest with checksums and a data card.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("name", metavar="COHORT", help="a saved cohort (gai cohort list)")
    export.add_argument("--out", metavar="DIR", required=True, help="output folder")
    export.add_argument("--format", default="nifti", choices=("nifti",), help="image format")
    export.add_argument("--task", metavar="TASK", help="add this task's labels (masks, classes)")
    export.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    export.add_argument(
        "--splits",
        metavar="TRAIN,VAL,TEST",
        default="0.7,0.15,0.15",
        help="patient fractions per split (default 0.7,0.15,0.15)",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace another cohort's export in DIR"
    )
    export.add_argument("--no-card", action="store_true", help="do not write DATA_CARD.md")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(handler=run_export)


def _whole(text: str) -> int | str:
    """A whole number, or the text as given (the filter check then says what is wrong)."""
    try:
        return int(text)
    except ValueError:
        return text


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _label(text: str) -> int | str:
    lowered = text.strip().lower()
    return {"1": 1, "0": 0, "true": 1, "false": 0}.get(lowered, text.strip())


def _filters(args: argparse.Namespace) -> dict:
    from gai_research.data.filters import FILTERS

    found = {}
    for name in FILTERS:
        value = getattr(args, f"filter_{name}", None)
        if value is not None:
            found[name] = _label(value) if name == "label" else value
    return found


def run_create(args: argparse.Namespace) -> int:
    from gai_research.data.catalog import open_catalog
    from gai_research.data.cohort import Cohort

    filters = _filters(args)
    if args.sql and filters:
        raise GaiError(
            "give filters or --sql, not both",
            hint="put the conditions into the SQL, or drop --sql",
        )
    settings = settings_from(args)
    with open_catalog(args.snapshot, settings=settings) as catalog:
        if args.sql:
            cohort = Cohort.from_sql(args.name, catalog, args.sql, purpose=args.purpose)
        else:
            cohort = Cohort.from_filters(args.name, catalog, purpose=args.purpose, **filters)
        path = cohort.save(overwrite=args.overwrite, settings=settings)
        patients = len(cohort.patients)
    print(
        f"cohort {cohort.name}: {len(cohort)} studies, {len(cohort.series_uids)} series, "
        f"{patients} patients"
    )
    print(f"snapshot {cohort.snapshot}")
    print(f"hash     {cohort.content_hash}")
    print(f"saved    {path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from gai_research.data.cohort import list_cohorts

    rows = list_cohorts(settings_from(args))
    if not rows:
        print("no cohorts saved yet (gai cohort create NAME ...)")
        return 0
    print_table(rows, ["name", "studies", "series", "query", "snapshot", "hash", "created"])
    return 0


def run_show(args: argparse.Namespace) -> int:
    from gai_research.data.cohort import Cohort

    cohort = Cohort.load(args.name, settings=settings_from(args))
    studies = cohort.studies
    print(f"cohort   {cohort.name}")
    if cohort.purpose:
        print(f"purpose  {cohort.purpose}")
    query = cohort.query.get("sql") or json.dumps(cohort.query["filters"], ensure_ascii=False)
    print(f"query    {cohort.kind}: {query}")
    print(f"snapshot {cohort.snapshot}")
    print(f"hash     {cohort.content_hash}")
    print(f"created  {cohort.created_at} by {cohort.created_by}")
    print(
        f"members  {len(cohort)} studies, {len(cohort.series_uids)} series, "
        f"{studies['patient_pseudonym'].nunique()} patients"
    )
    counts = (
        studies.assign(modality=studies["modalities"].map(lambda m: ",".join(m)))
        .groupby(["site", "modality"])
        .size()
        .reset_index(name="studies")
    )
    print()
    print_table(counts.to_dict("records"), ["site", "modality", "studies"])
    if args.studies:
        print()
        rows = [
            {
                "study_uid": r.study_uid,
                "site": r.site,
                "date": r.study_date,
                "modalities": ",".join(r.modalities),
                "age": r.age_years,
                "sex": r.sex,
            }
            for r in studies.itertuples()
        ]
        print_table(rows, ["study_uid", "site", "date", "modalities", "age", "sex"])
    return 0


def run_card(args: argparse.Namespace) -> int:
    from gai_research.data.cohort import Cohort

    cohort = Cohort.load(args.name, settings=settings_from(args))
    print(cohort.card(args.out))
    return 0


def _splits(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise GaiError(
            f"--splits {text!r} is not three numbers", hint="e.g. --splits 0.7,0.15,0.15"
        ) from None


def run_export(args: argparse.Namespace) -> int:
    from gai_research.data.training_export import export

    result = export(
        args.name,
        args.out,
        format=args.format,
        task=args.task,
        splits=_splits(args.splits),
        seed=args.seed,
        settings=settings_from(args),
        overwrite=args.overwrite,
        card=not args.no_card,
        progress=not args.quiet,
    )
    items = ", ".join(f"{result.items[k]} {k}" for k in result.items)
    print(f"exported {args.name} to {result.out_dir}: {items}")
    print(
        f"{result.written} files written ({result.bytes_written / 2**20:.1f} MiB), "
        f"{result.reused} already there, {result.removed} stale removed, {result.seconds:.1f} s"
    )
    for reason, count in sorted(result.excluded.items()):
        print(f"excluded: {count} ({reason})")
    for uid, reason in result.failed:
        print(f"failed: {uid}: {reason}", file=sys.stderr)
    print(f"datalist {result.datalist}")
    print(f"manifest {result.manifest}")
    if result.card:
        print(f"card     {result.card}")
    return 0 if result.ok else 1
