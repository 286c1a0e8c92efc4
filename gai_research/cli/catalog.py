"""``gai catalog``: counts, read-only SQL and snapshots of the research catalog.

Everything but ``snapshot`` and ``reconcile`` reads a published snapshot, never the
database that ingest writes.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import json
import sys

from gai_research.cli._common import print_table, settings_from

FORMATS = ("table", "csv", "json")


def register(sub: argparse._SubParsersAction) -> None:
    catalog = sub.add_parser(
        "catalog",
        help="query the research catalog (read-only, on immutable snapshots) and publish snapshots",
        description="The catalog lists every pseudonymized patient, study, series, instance "
        "and label in the store. Ingest writes it; readers query published snapshots, each "
        "named by the sha256 of its content, so a result can name exactly the data it used.",
    )
    actions = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", title="actions")
    catalog.set_defaults(handler=lambda args: _usage(catalog))

    stats = actions.add_parser(
        "stats",
        help="counts by site, modality and manufacturer, with the snapshot hash",
        description="Counts of a snapshot (the latest unless --snapshot): patients, studies, "
        "series, instances and labels, by site, by modality and by manufacturer.",
    )
    _snapshot_option(stats)
    stats.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    stats.set_defaults(handler=run_stats)

    query = actions.add_parser(
        "query",
        help="run one read-only SQL statement on a snapshot",
        description="Run one read-only SQL statement (SELECT, WITH ... SELECT, DESCRIBE, "
        "EXPLAIN) on a snapshot. Tables: patients, studies, series, instances, labels "
        '(docs/catalog.md lists their columns). Example: gai catalog query "SELECT site, '
        'count(*) FROM studies GROUP BY site"',
    )
    query.add_argument("sql", metavar="SQL", help="the statement (quote it)")
    query.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default table)"
    )
    _snapshot_option(query)
    query.set_defaults(handler=run_query)

    snapshot = actions.add_parser(
        "snapshot",
        help="publish the catalog as an immutable snapshot and print its hash",
        description="Publish the catalog as a snapshot (Parquet files named by their content "
        "hash) and point LATEST at it. Unchanged content gives the existing hash. With --list, "
        "print the published snapshots instead.",
    )
    snapshot.add_argument("--list", action="store_true", help="list published snapshots")
    snapshot.set_defaults(handler=run_snapshot)

    reconcile = actions.add_parser(
        "reconcile",
        help="check that the catalog and the files in the store agree (data steward)",
        description="Check that every instance row has its file with the right size, every "
        "stored file has a row, no interrupted write left a temporary file, and series counts "
        "are current. Opens the catalog for writing, so run it when no ingest runs. Exits 1 "
        "when something disagrees.",
    )
    reconcile.add_argument(
        "--verify-hashes", action="store_true", help="also re-hash every file (slow)"
    )
    reconcile.set_defaults(handler=run_reconcile)


def _snapshot_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snapshot",
        metavar="HASH",
        help="a snapshot hash or a unique prefix of one (default: the latest)",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _plain(value: object) -> object:
    """A value as JSON-ready data."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: object) -> str:
    if value is None:
        return ""
    value = _plain(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def run_stats(args: argparse.Namespace) -> int:
    from gai_research.store import catalog_stats, open_snapshot

    with open_snapshot(settings_from(args), args.snapshot) as reader:
        stats = catalog_stats(reader)
    if args.format == "json":
        print(json.dumps(_plain(stats), indent=2, ensure_ascii=False))
        return 0
    totals = stats["totals"]
    print(f"snapshot  {stats['snapshot']}  (published {stats['created_at']})")
    print(
        "          "
        + "  ".join(
            f"{totals[k]} {k}" for k in ("patients", "studies", "series", "instances", "labels")
        )
        + f"  {totals['bytes'] / 2**20:.1f} MiB"
    )
    for title, rows in (
        ("by site", stats["by_site"]),
        ("by modality", stats["by_modality"]),
        ("by manufacturer", stats["by_manufacturer"]),
    ):
        print(f"\n{title}")
        if rows:
            print_table(rows, list(rows[0]))
        else:
            print("  (no rows)")
    return 0


def run_query(args: argparse.Namespace) -> int:
    from gai_research.store import open_snapshot

    with open_snapshot(settings_from(args), args.snapshot) as reader:
        table = reader.query(args.sql)
    columns = table.column_names
    rows = table.to_pylist()
    if args.format == "json":
        print(json.dumps([_plain(r) for r in rows], indent=1, ensure_ascii=False))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(r[c]) for c in columns] for r in rows)
    else:
        print_table([{c: _cell(r[c]) for c in columns} for r in rows], columns)
        print(f"({len(rows)} rows)")
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    from gai_research.store import list_snapshots, publish_snapshot
    from gai_research.store.snapshot import latest_snapshot_id

    settings = settings_from(args)
    if args.list:
        latest = latest_snapshot_id(settings)
        rows = [
            {
                "snapshot": s.id,
                "published": s.created_at,
                "studies": s.tables.get("studies", 0),
                "instances": s.tables.get("instances", 0),
                "labels": s.tables.get("labels", 0),
                "latest": "*" if s.id == latest else "",
            }
            for s in list_snapshots(settings)
        ]
        if not rows:
            print("no snapshots published yet (run `gai catalog snapshot`)")
            return 0
        print_table(rows, list(rows[0]))
        return 0
    snapshot = publish_snapshot(settings)
    state = "published" if snapshot.created else "unchanged, already published"
    print(snapshot.id)
    print(
        f"{state}: {snapshot.tables.get('studies', 0)} studies, "
        f"{snapshot.tables.get('instances', 0)} instances, {snapshot.tables.get('labels', 0)} labels",
        file=sys.stderr,
    )
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    from gai_research.store import CatalogWriter

    with CatalogWriter(settings_from(args)) as writer:
        report = writer.reconcile(verify_hashes=args.verify_hashes)
    print(report.summary())
    for name in report.PROBLEMS:
        for item in getattr(report, name)[:20]:
            print(f"  {name.replace('_', ' ')}: {item}")
        if len(getattr(report, name)) > 20:
            print(f"  ... and {len(getattr(report, name)) - 20} more {name.replace('_', ' ')}")
    return 0 if report.ok else 1
