"""``gai models``: list, show and run models; the simulated vendors of the demo.

The handlers call :mod:`gai_research.models.registry`, :mod:`~gai_research.models.runner`
and :mod:`~gai_research.models.simulators.daemon`; pydantic, pandas and the models'
own libraries load inside them only.
"""

from __future__ import annotations

import argparse
import json

from gai_research.cli._common import print_table, settings_from

EPILOG = """\
examples:
  gai models list                                   # entry points and GAI_HOME/models.yaml
  gai models show baseline-lung-nodule-ct
  gai models run baseline-lung-nodule-ct --cohort demo-lung-ct --workers 2
  gai models install-demo                           # simulated vendors -> GAI_HOME/models.yaml
  gai models simulators up                          # start them on 127.0.0.1
  gai models run simulated-vendor-lung-ct --cohort demo-lung-ct --timeout 60
  gai models simulators down

Predictions are stored in the catalog (table predictions) keyed by model, version,
snapshot and study; a second run reuses the ok ones unless --force.
Baselines and simulated vendors are labelled by origin; neither is a vendor's result.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models",
        help="list, show and run models (vendor adapters, baselines, simulated vendors)",
        description="Models are found by name: installed entry points (group "
        "gai_research.models, e.g. the baseline-* models) and GAI_HOME/models.yaml "
        "(python, monai-bundle, http and dicom adapters).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", title="actions")
    parser.set_defaults(handler=lambda args: _usage(parser))

    listing = actions.add_parser("list", help="every known model, one line each")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="everything declared about one model")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.set_defaults(handler=run_show)

    run = actions.add_parser(
        "run",
        help="run a model over a saved cohort and store its predictions",
        description="Run MODEL over every study of a saved cohort (on the cohort's snapshot), "
        "with parallel workers and a progress bar; each study's prediction, or the reason "
        "it has none, is stored in the catalog. Exit code 1 when no study has a prediction.",
    )
    run.add_argument("model", metavar="MODEL", help="a name from `gai models list`")
    run.add_argument("--cohort", required=True, metavar="NAME", help="a saved cohort")
    run.add_argument("--workers", type=int, default=2, metavar="N", help="parallel studies (2)")
    run.add_argument("--force", action="store_true", help="recompute stored predictions")
    run.add_argument(
        "--timeout", type=float, metavar="S", help="give up on a study after S seconds"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="the summary as JSON")
    run.set_defaults(handler=run_run)

    demo = actions.add_parser(
        "install-demo",
        help="copy the demo's models file (simulated vendors) to GAI_HOME/models.yaml",
    )
    demo.add_argument("--force", action="store_true", help="replace an existing models file")
    demo.set_defaults(handler=run_install_demo)

    sims = actions.add_parser(
        "simulators",
        help="start, check or stop the simulated vendors of GAI_HOME/models.yaml",
        description="Each models-file entry with a simulator: block runs as a background "
        "process on 127.0.0.1 (pid, log and address under GAI_HOME/run/).",
    )
    sim_actions = sims.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    for name, text, handler in (
        ("up", "start those not running and wait until they answer", run_sim_up),
        ("status", "state and address of each", run_sim_status),
        ("down", "stop them", run_sim_down),
    ):
        action = sim_actions.add_parser(name, help=text)
        action.add_argument(
            "--name", action="append", help="only this simulated vendor; repeatable"
        )
        action.set_defaults(handler=handler)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


# --- list / show ---------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    from gai_research.models.registry import list_models

    rows = [spec.row() for spec in list_models(settings_from(args))]
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    for row in rows:
        row["threshold"] = "" if row["threshold"] is None else f"{row['threshold']:g}"
    print_table(
        rows,
        [
            "name",
            "adapter",
            "task",
            "kind",
            "origin",
            "vendor",
            "version",
            "threshold",
            "regulatory",
        ],
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from gai_research.models.registry import get_spec

    spec = get_spec(args.name, settings_from(args))
    data = {
        "name": spec.name,
        "adapter": spec.adapter,
        "source": spec.source,
        **({"entry_point": spec.target} if spec.target else {}),
        "info": spec.info.to_dict(),
        "options": spec.options,
        "simulator": spec.simulator.model_dump() if spec.simulator is not None else None,
    }
    if args.json:
        print(json.dumps(data, indent=1, ensure_ascii=False, default=str))
        return 0
    info = data.pop("info")
    for key in ("name", "adapter", "source", "entry_point"):
        if key in data:
            print(f"{key + ':':<14}{data[key]}")
    for key, value in info.items():
        if key == "name":
            continue
        if key == "regulatory":
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v)
        elif isinstance(value, list):
            value = ", ".join(value)
        print(f"{key + ':':<14}{'' if value is None else value}")
    if data["options"]:
        print("options:      " + ", ".join(f"{k}={v}" for k, v in data["options"].items()))
    if data["simulator"]:
        print("simulator:    " + ", ".join(f"{k}={v}" for k, v in data["simulator"].items()))
    return 0


# --- run -------------------------------------------------------------------------------------
def run_run(args: argparse.Namespace) -> int:
    from gai_research.models.runner import run_model

    summary = run_model(
        args.model,
        args.cohort,
        settings=settings_from(args),
        workers=args.workers,
        force=args.force,
        progress=not args.quiet,
        timeout_s=args.timeout,
    )
    latency = summary.latency()
    if args.json:
        print(
            json.dumps(
                {
                    "model": summary.model,
                    "version": summary.info.version,
                    "origin": str(summary.info.origin),
                    "cohort": summary.cohort,
                    "cohort_hash": summary.cohort_hash,
                    "snapshot": summary.snapshot,
                    "studies": summary.n_studies,
                    "ok": summary.n_ok,
                    "failed": summary.n_failed,
                    "cached": summary.n_cached,
                    "by_reason": summary.by_reason(),
                    "latency": latency,
                    "wall_s": round(summary.wall_s, 3),
                },
                indent=1,
            )
        )
    else:
        _print_summary(summary, latency)
    return 0 if summary.n_ok + summary.n_cached > 0 or summary.n_studies == 0 else 1


def _print_summary(summary, latency: dict) -> None:
    info = summary.info
    print(
        f"{summary.model} {info.version} ({info.origin}) on cohort {summary.cohort} "
        f"(snapshot {summary.snapshot[:12]}): {summary.n_studies} studies in "
        f"{summary.wall_s:.1f} s"
    )
    rows = [
        {"outcome": "ok", "studies": summary.n_ok},
        {"outcome": "cached (ok earlier)", "studies": summary.n_cached},
    ]
    statuses = {}
    for record in summary.records:
        if not record.ok:
            key = (record.status, record.reason or record.status)
            statuses[key] = statuses.get(key, 0) + 1
    for (status, reason), count in sorted(statuses.items()):
        rows.append({"outcome": f"{status}: {reason}", "studies": count})
    rows.append({"outcome": "total", "studies": summary.n_studies})
    print_table(rows, ["outcome", "studies"])
    if latency["n"]:
        print(
            f"latency of ok studies (n={latency['n']}): median {_number(latency['median_s'])} s, "
            f"p95 {_number(latency['p95_s'])} s, max {_number(latency['max_s'])} s"
        )


# --- the demo's simulated vendors -----------------------------------------------------------
def run_install_demo(args: argparse.Namespace) -> int:
    from gai_research.models.registry import install_demo, read_models_file

    settings = settings_from(args)
    path = install_demo(settings, force=args.force)
    names = [e.name for e in read_models_file(settings)]
    print(f"wrote {path}: {', '.join(names)}")
    print("start the simulated vendors with `gai models simulators up`")
    return 0


def run_sim_up(args: argparse.Namespace) -> int:
    from gai_research.models.simulators.daemon import simulators_status, simulators_up

    settings = settings_from(args)
    for name, started in simulators_up(settings, args.name).items():
        print(f"{name:<32} {'started' if started else 'already running'}")
    _print_sims(simulators_status(settings, args.name))
    return 0


def run_sim_status(args: argparse.Namespace) -> int:
    from gai_research.models.simulators.daemon import simulators_status

    rows = simulators_status(settings_from(args), args.name)
    _print_sims(rows)
    return 0 if rows and all(r.state == "running" for r in rows) else 3


def run_sim_down(args: argparse.Namespace) -> int:
    from gai_research.models.simulators.daemon import simulators_down

    for name, was_running in simulators_down(settings_from(args), args.name).items():
        print(f"{name:<32} {'stopped' if was_running else 'was not running'}")
    return 0


def _print_sims(rows) -> None:
    print_table(
        [
            {
                "name": r.name,
                "kind": r.kind,
                "wraps": r.wraps,
                "state": r.state,
                "pid": r.pid or "",
                "address": r.address,
                "delay s": f"{r.delay_s:g}",
            }
            for r in rows
        ],
        ["name", "kind", "wraps", "state", "pid", "address", "delay s"],
    )
