"""``gai evaluate``: run evaluation protocols, list and validate them.

The command calls :func:`gai_research.evaluation.runner.evaluate`; pydantic, pandas,
papermill and MLflow load inside the handler only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gai_research.cli._common import print_table, settings_from
from gai_research.errors import GaiError

EPILOG = """\
examples:
  gai evaluate evaluation/lung_nodule_ct.yaml            every model of the protocol
  gai evaluate evaluation/stroke_ct.yaml --model baseline-hemorrhage-ct --site SUWON
  gai evaluate --all --workers 4                         every protocol in evaluation/
  gai evaluate evaluation/breast_mg.yaml --dask tcp://127.0.0.1:8786
  gai evaluate --list                                    protocols with their content hashes
  gai evaluate validate evaluation/*.yaml                check protocol files
  gai evaluate schema --out evaluation/protocol.schema.json

Each evaluation is a parent MLflow run in experiment gai-<task> with one child run per
model (and per site when the protocol splits by site): metrics with confidence intervals,
the executed notebook and its HTML, plots, the per-case table. Predictions already stored
for the same model version and snapshot are reused (--force-predictions runs them again).
The exit code is non-zero when any model or notebook failed; the others still run.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="run evaluation protocols (papermill notebooks, MLflow runs); list, validate",
        description="Run an evaluation protocol (evaluation/TASK.yaml): predictions for "
        "each model, the protocol's notebook per model and site, MLflow records.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="FILE",
        help="protocol file(s); or `validate FILE...`; or `schema`",
    )
    parser.add_argument("--all", action="store_true", help="run every protocol in evaluation/")
    parser.add_argument(
        "--list", action="store_true", help="list the protocols with their content hashes"
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="evaluate only this model of the protocol (repeatable)",
    )
    parser.add_argument("--site", metavar="S", help="evaluate only this site's studies")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="parallel notebooks (local process pool) and prediction threads (default 2)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the notebooks on this Dask scheduler (e.g. tcp://127.0.0.1:8786)",
    )
    parser.add_argument(
        "--force-predictions",
        action="store_true",
        help="run the models again instead of reusing stored predictions",
    )
    parser.add_argument(
        "--protocols",
        metavar="DIR",
        help="folder of protocols for --all and --list (default ./evaluation)",
    )
    parser.add_argument("--out", metavar="FILE", help="with `schema`: write it to FILE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    targets = list(args.targets)
    if targets[:1] == ["validate"]:
        return _validate(targets[1:])
    if targets[:1] == ["schema"]:
        return _schema(args.out)
    if args.list:
        return _list(args.protocols)
    if not targets and not args.all:
        raise GaiError(
            "name a protocol file, or use --all, --list, validate FILE or schema",
            hint="e.g. gai evaluate evaluation/lung_nodule_ct.yaml",
        )
    if args.workers < 1:
        raise GaiError(f"--workers must be at least 1 (got {args.workers})", hint="e.g. 2")
    return _run(args, targets)


def _validate(files: list[str]) -> int:
    from gai_research.evaluation.protocol import load_protocol

    if not files:
        raise GaiError("validate needs protocol file(s)", hint="gai evaluate validate FILE...")
    bad = 0
    for name in files:
        try:
            protocol = load_protocol(name)
        except GaiError as exc:
            bad += 1
            print(f"{name}: invalid: {exc}")
            continue
        print(f"{name}: ok ({protocol.name} {protocol.version}, hash {protocol.content_hash})")
    return 1 if bad else 0


def _schema(out: str | None) -> int:
    from gai_research.evaluation.protocol import protocol_json_schema, write_protocol_schema

    if out:
        print(f"wrote {write_protocol_schema(out)}")
    else:
        print(json.dumps(protocol_json_schema(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _list(folder: str | None) -> int:
    from gai_research.evaluation.protocol import default_protocol_dir, list_protocols

    folder_path = Path(folder) if folder else default_protocol_dir()
    rows = []
    for path, protocol in list_protocols(folder_path):
        if isinstance(protocol, GaiError):
            rows.append({"file": path.name, "name": "INVALID", "hash": str(protocol)[:80]})
            continue
        rows.append(
            {
                "file": path.name,
                "name": protocol.name,
                "version": protocol.version,
                "task": protocol.task,
                "kind": protocol.kind.value,
                "models": ", ".join(protocol.models),
                "hash": protocol.content_hash,
            }
        )
    if not rows:
        print(f"no protocols (*.yaml) in {folder_path}")
        return 1
    print_table(rows, ["file", "name", "version", "task", "kind", "models", "hash"])
    return 0


def _run(args: argparse.Namespace, targets: list[str]) -> int:
    from gai_research.evaluation.protocol import default_protocol_dir, load_protocol
    from gai_research.evaluation.runner import evaluate
    from gai_research.evaluation.tracking import mlflow_ui_command

    settings = settings_from(args)
    if args.all:
        folder = Path(args.protocols) if args.protocols else default_protocol_dir()
        targets += [str(p) for p in sorted(folder.glob("*.yaml"))]
    options = {
        "settings": settings,
        "models": args.model,
        "site": args.site,
        "workers": args.workers,
        "dask_address": args.dask or getattr(settings, "dask_address", None),
        "force_predictions": args.force_predictions,
    }
    failed = 0
    for target in targets:
        try:
            protocol = load_protocol(target)
            if args.all and args.model:  # --all --model M: the protocols that list M
                chosen = [m for m in args.model if m in protocol.models]
                if not chosen:
                    continue
                options["models"] = chosen
            print(f"== {target}: {protocol.name} {protocol.version} ({protocol.content_hash[:12]})")
            outcome = evaluate(protocol, **options)
        except GaiError as exc:
            failed += 1
            print(f"{target}: error: {exc}", file=sys.stderr)
            continue
        _report(outcome)
        failed += not outcome.ok
    print(f"\nopen the MLflow UI: {mlflow_ui_command(settings)}")
    if failed:
        print(f"{failed} evaluation(s) had failures (see above)", file=sys.stderr)
    return 1 if failed else 0


def _report(outcome) -> None:
    print(
        f"experiment {outcome.experiment_name} (id {outcome.experiment_id}), "
        f"parent run {outcome.parent_run_id}, snapshot {outcome.snapshot[:12]}, "
        f"cohort {outcome.cohort_hash[:12]}, {outcome.seconds:.1f} s"
    )
    for name, facts in outcome.models.items():
        if "error" in facts:
            print(f"  model {name}: FAILED: {facts['error']}")
        else:
            print(
                f"  model {name} {facts['version']} ({facts['origin']}): {facts['n_cases']} cases; "
                f"predictions {facts['n_ok']} new, {facts['n_cached']} reused, "
                f"{facts['n_failed']} failed"
            )
    rows = [
        {"run": key, "status": "ok" if job["ok"] else "FAILED", "run id": job["run_id"]}
        for key, job in sorted(outcome.jobs.items())
    ]
    if rows:
        print_table(rows, ["run", "status", "run id"])
    for failure in outcome.failures:
        print(f"  failed: {failure}", file=sys.stderr)
