"""``gai gateway``: the real-time PACS-to-AI gateway, its status, its rules.

Thin: the work is in :mod:`gai_research.gateway`; DICOM, pydantic, MLflow and the
models load inside the handlers only.
"""

from __future__ import annotations

import argparse
import json

from gai_research.cli._common import print_table, settings_from

EPILOG = """\
examples:
  gai gateway rules validate my-rules.yaml     # schema, regular expressions, model names
  gai gateway explain var/synth/SUWON/2.25.123...   # which rules a study matches, and why
  gai gateway run --link-pacs                  # listen; declare it in the simulated site PACS
  gai gateway status                           # queue, recent latencies (study keys only)
  gai gateway status --log-mlflow              # operations metrics to each task's experiment

Rules: GAI_GATEWAY__RULES_FILE or --rules (default: the packaged rules.default.yaml).
Studies are shown by their study key (GS...), never by patient or original UID.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gateway",
        help="real-time gateway: site PACS -> AI models (by rules) -> SR back to the PACS",
        description="Receive studies from the site PACS by C-STORE, decide when each is "
        "complete, route it to models by rules, send it (pseudonymized for vendors outside "
        "the hospital), and store each result as a DICOM SR back into the originating PACS, "
        "with a durable queue and a latency log.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="gateway_command", metavar="ACTION", title="actions")
    parser.set_defaults(handler=lambda args: _usage(parser))

    run = actions.add_parser(
        "run",
        help="run the gateway until Ctrl-C or SIGTERM",
        description="Listen for C-STORE from the site PACS (their AE titles from `gai config`), "
        "route complete studies by the rules, run the models, store results back. What was "
        "in progress when it stopped is resumed at the next start. Operations metrics go to "
        "MLflow every gateway.mlflow_interval_s and at stop.",
    )
    run.add_argument("--rules", metavar="FILE", help="rules file (default: settings)")
    run.add_argument("--port", type=int, help="DICOM port (default: gateway.dicom_port)")
    run.add_argument("--ae-title", help="our AE title (default: gateway.ae_title)")
    run.add_argument(
        "--stow-port",
        type=int,
        help="also accept STOW-RS on this port (default: gateway.stow_port)",
    )
    run.add_argument(
        "--bind", metavar="ADDRESS", help="address to listen on (default: gateway.host)"
    )
    run.add_argument(
        "--quiet-period", type=float, metavar="S", help="seconds without news that complete a study"
    )
    run.add_argument(
        "--link-pacs",
        action="store_true",
        help="declare the gateway in the simulated site PACS of `gai pacs up` (REST)",
    )
    run.add_argument("--no-mlflow", action="store_true", help="do not log operations metrics")
    run.set_defaults(handler=run_gateway)

    status = actions.add_parser(
        "status",
        help="the queue by state, recent jobs with their latencies, studies without jobs",
    )
    status.add_argument("--limit", type=int, default=20, help="recent jobs shown (default 20)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--log-mlflow",
        action="store_true",
        help="also log operations metrics of the last --hours to MLflow",
    )
    status.add_argument(
        "--hours", type=float, default=24.0, help="window of the latency summary (default 24)"
    )
    status.set_defaults(handler=run_status)

    explain = actions.add_parser(
        "explain",
        help="which rules a study matches and why, without sending anything",
        description="TARGET is a folder (or files) of a study's DICOM images, or a study the "
        "gateway received: its study key (GS...) or Study Instance UID.",
    )
    explain.add_argument("target", nargs="+", metavar="STUDY_DIR_OR_UID")
    explain.add_argument("--rules", metavar="FILE", help="rules file (default: settings)")
    explain.add_argument("--site", help="the sending site, for rules limited to sites")
    explain.add_argument("--checks", action="store_true", help="show every check, passed too")
    explain.set_defaults(handler=run_explain)

    rules = actions.add_parser("rules", help="check a rules file")
    rules_actions = rules.add_subparsers(dest="rules_command", metavar="ACTION", title="actions")
    rules.set_defaults(handler=lambda args: _usage(rules))
    validate = rules_actions.add_parser(
        "validate",
        help="validate a rules file: schema, regular expressions, model names",
        description="Exit code 0 when FILE (default: the effective rules) is valid and every "
        "model it names is known to the registry (`gai models list`), else 1 with the "
        "place of the first problem (e.g. rules[2] (chest-ct).match.modalty: unknown key).",
    )
    validate.add_argument("file", nargs="?", metavar="FILE")
    validate.add_argument(
        "--no-models", action="store_true", help="do not check model names against the registry"
    )
    validate.set_defaults(handler=run_validate)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _settings(args: argparse.Namespace, **gateway_overrides):
    settings = settings_from(args)
    given = {k: v for k, v in gateway_overrides.items() if v is not None}
    if given:
        gateway = settings.gateway.model_copy(update=given)
        settings = settings.model_copy(update={"gateway": gateway})
    return settings


def _unknown_models(rules, settings) -> list[str]:
    from gai_research.models.registry import model_names

    known = set(model_names(settings))
    return [name for name in rules.model_names if name not in known]


def run_validate(args: argparse.Namespace) -> int:
    from gai_research.gateway.errors import RulesError
    from gai_research.gateway.rules import load_rules

    settings = settings_from(args)
    rules = load_rules(args.file or settings.gateway.rules_file)
    if not args.no_models:
        unknown = _unknown_models(rules, settings)
        if unknown:
            raise RulesError(
                f"rules file {rules.source}: unknown model(s) {', '.join(unknown)}",
                hint="register them in HOME/models.yaml (`gai models list` shows what is known)",
            )
    enabled = [r for r in rules.rules if r.enabled]
    print(
        f"{rules.source}: valid; {len(enabled)} rule(s) enabled of {len(rules.rules)}, "
        f"models: {', '.join(rules.model_names)}"
    )
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gai_research.gateway.explain import explain_db, explain_paths, format_explanation
    from gai_research.gateway.rules import load_rules
    from gai_research.gateway.service import open_db
    from gai_research.home import read_key

    settings = settings_from(args)
    rules = load_rules(args.rules or settings.gateway.rules_file)
    secret = read_key(settings.key_path)
    site = None
    if args.site:
        from gai_research.sites import Site

        site = Site.parse(args.site).value
    paths = [t for t in args.target if Path(t).exists()]
    explanations = []
    if paths:
        explanations += explain_paths(paths, rules, secret, site=site)
    for target in (t for t in args.target if not Path(t).exists()):
        db = open_db(settings, create=False)
        try:
            explanations.append(explain_db(db, target, rules, secret))
        finally:
            db.close()
    for index, explanation in enumerate(explanations):
        if index:
            print()
        print(format_explanation(explanation, verbose=args.checks))
    return 0


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_status(args: argparse.Namespace) -> int:
    import time

    from gai_research.gateway.service import open_db
    from gai_research.gateway.status import gateway_status

    settings = settings_from(args)
    db = open_db(settings, create=False)
    try:
        status = gateway_status(db, limit=args.limit, window_s=args.hours * 3600)
        runs = []
        if args.log_mlflow:
            from gai_research.gateway.operations import log_operations

            runs = log_operations(settings, db, since=time.time() - args.hours * 3600)
    finally:
        db.close()
    if args.json:
        status["mlflow_runs"] = runs
        print(json.dumps(status, indent=2, default=str))
        return 0
    print("studies: " + ", ".join(f"{k} {v}" for k, v in status["studies"].items()))
    print("jobs:    " + ", ".join(f"{k} {v}" for k, v in status["jobs"].items()))
    lat = status["latency"]
    print(
        f"time to result, last {args.hours:g} h: {lat['n_returned']} returned; median "
        f"{_seconds(lat['ttr_median_s'])} s, p95 {_seconds(lat['ttr_p95_s'])} s; gateway "
        f"overhead median {_seconds(lat['overhead_median_s'])} s"
    )
    if status["recent_jobs"]:
        print("\nrecent jobs (newest first; seconds):")
        rows = [
            {
                "study": r["study"],
                "site": r["site"],
                "model": r["model"],
                "state": r["state"],
                "reason": r["reason"] or "",
                "tries": r["attempts"],
                "complete": _seconds(r["complete_s"]),
                "queue": _seconds(r["queue_s"]),
                "model_s": _seconds(r["model_s"]),
                "answer": _seconds(r["answer_s"]),
                "return": _seconds(r["return_s"]),
                "ttr": _seconds(r["ttr_s"]),
                "overhead": _seconds(r["overhead_s"]),
            }
            for r in status["recent_jobs"]
        ]
        print_table(rows, list(rows[0]))
    if status["studies_without_jobs"]:
        print("\nstudies without jobs:")
        rows = [
            {
                "study": s["study"],
                "site": s["site"],
                "state": s["state"],
                "reason": s["reason"] or "",
                "instances": s["instances"],
            }
            for s in status["studies_without_jobs"]
        ]
        print_table(rows, list(rows[0]))
    if runs:
        print(f"\nlogged {len(runs)} operations run(s) to MLflow ({settings.tracking_uri})")
    return 0


def run_gateway(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time
    from pathlib import Path

    from gai_research.gateway.errors import RulesError
    from gai_research.gateway.rules import load_rules
    from gai_research.gateway.service import Gateway
    from gai_research.ingest.logs import redact_dicom_logs

    redact_dicom_logs()
    settings = _settings(
        args,
        rules_file=Path(args.rules) if args.rules else None,
        quiet_period_s=args.quiet_period,
    )
    rules = load_rules(settings.gateway.rules_file)
    unknown = _unknown_models(rules, settings)
    if unknown:
        raise RulesError(
            f"rules file {rules.source}: unknown model(s) {', '.join(unknown)}",
            hint="register them in HOME/models.yaml, or fix the rules "
            "(`gai gateway rules validate FILE`)",
        )
    gateway = Gateway(settings, rules=rules, port=args.port, ae_title=args.ae_title, host=args.bind)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    started = time.time()
    last_logged = started
    try:
        gateway.start()
        if args.link_pacs:
            from gai_research.gateway.pacs_link import link_site_pacs

            linked = link_site_pacs(
                settings, ae_title=gateway.ae_title, port=gateway.port, skip_unreachable=True
            )
            missing = [s.value for s in settings.sites if s not in linked]
            print(
                f"declared in the simulated PACS of {', '.join(s.value for s in linked) or 'none'}"
                + (f" (not running: {', '.join(missing)})" if missing else "")
            )
        if gateway.stow is not None:
            stow = gateway.stow
            print(f"STOW-RS: POST http://{stow.host}:{stow.port}/sites/<SITE>/studies")
        print(
            f"gateway {gateway.ae_title} on {gateway.receiver.host}:{gateway.port}; "
            f"rules {rules.source} ({len(rules.rules)}) -> {', '.join(rules.model_names)}; "
            "Ctrl-C to stop",
            flush=True,
        )
        shown = None
        interval = settings.gateway.mlflow_interval_s
        while not stop.wait(1.0):
            counts = gateway.db.counts()
            if counts != shown:
                shown = counts
                print(_counts_line(counts), flush=True)
            if interval and not args.no_mlflow and time.time() - last_logged >= interval:
                _log_mlflow(settings, gateway, last_logged)
                last_logged = time.time()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not args.no_mlflow and gateway.started_at is not None:
            _log_mlflow(settings, gateway, last_logged)
        gateway.stop()
    print("stopped; what was in progress resumes at the next start", flush=True)
    return 0


def _counts_line(counts: dict) -> str:
    studies = ", ".join(f"{k} {v}" for k, v in sorted(counts["studies"].items()))
    jobs = ", ".join(f"{k} {v}" for k, v in sorted(counts["jobs"].items()))
    return f"studies: {studies or 'none'} | jobs: {jobs or 'none'}"


def _log_mlflow(settings, gateway, since: float) -> None:
    import logging

    from gai_research.gateway.operations import log_operations

    try:
        runs = log_operations(settings, gateway.db, since=since)
    except Exception as exc:  # MLflow down must not stop the gateway
        logging.getLogger(__name__).warning("operations metrics not logged: %s", exc)
        return
    if runs:
        print(f"operations metrics: {len(runs)} MLflow run(s)", flush=True)
