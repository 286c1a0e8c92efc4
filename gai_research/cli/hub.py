"""``gai hub [--demo]``, ``gai hub status|stop|harden`` and ``gai mlflow``: the shared services."""

from __future__ import annotations

import argparse

from gai_research.cli._common import settings_from

# `gai hub` options that override hub settings for one run
_OVERRIDES = ("port", "ip")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "hub",
        help="run the shared JupyterHub (notebooks, MLflow behind one login)",
        description="Run the platform's JupyterHub: sign-up with admin approval, groups "
        "(researchers, leads, stewards), user servers with the gai_research kernel, MLflow "
        "at /services/mlflow/ behind the same login, and the idle culler. Settings: the "
        "[hub] table of gai.toml or GAI_HUB__* (docs/hub.md). Runs in the foreground "
        "unless --detach.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="create the demo admin (hub.demo_admin) with a generated password, printed once",
    )
    parser.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="NAME",
        help="create this admin account if missing, with a generated password printed once "
        "(kept 0600 in GAI_HOME/hub/; change it after signing in); repeatable",
    )
    parser.add_argument("--port", type=int, help="public port (default hub.port, 8000)")
    parser.add_argument("--ip", help="address to listen on (default hub.ip, 127.0.0.1)")
    parser.add_argument(
        "--detach", action="store_true", help="run in the background (log in GAI_HOME/hub/)"
    )
    parser.set_defaults(handler=run_hub)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
    status = actions.add_parser("status", help="is the hub up; MLflow; permission problems")
    status.set_defaults(handler=run_status)
    stop = actions.add_parser("stop", help="stop a hub started with --detach")
    stop.set_defaults(handler=run_stop)
    harden = actions.add_parser(
        "harden",
        help="set production owners and modes on GAI_HOME (as root, once)",
        description="Restricted folders to the steward group, 0700; store, catalog and "
        "reports to the research group, 0750; cohorts/ 3770; mlflow/ and hub/ 0700.",
    )
    harden.add_argument("--research-group", help="default hub.research_group (gai-research)")
    harden.add_argument("--steward-group", help="default hub.steward_group (gai-steward)")
    harden.set_defaults(handler=run_harden)

    mlflow = sub.add_parser(
        "mlflow",
        help="run the MLflow tracking server on the platform's store (no login: one user)",
        description="Run `mlflow server` on the platform's store (SQLite under GAI_HOME/mlflow "
        "unless hub.mlflow_backend_store names PostgreSQL) with artifacts in "
        "hub.mlflow_artifacts_destination. It has no login: for one person on this machine. "
        "The shared server is the hub's /services/mlflow/.",
    )
    mlflow.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    mlflow.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    mlflow.set_defaults(handler=run_mlflow)


def _settings(args: argparse.Namespace):
    from gai_research.config import load_settings

    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k, None) is not None}
    settings = load_settings(getattr(args, "config", None))
    if overrides:
        hub = settings.hub.model_copy(update=overrides)
        settings = load_settings(getattr(args, "config", None), hub=hub.model_dump())
    return settings


def run_hub(args: argparse.Namespace) -> int:
    import subprocess

    from gai_research.hub.launch import (
        hub_status,
        preflight,
        prepare_admins,
        start_hub,
        wait_until_up,
    )
    from gai_research.hub.state import hub_paths

    settings = _settings(args)
    running = hub_status(settings)
    if running.running and running.pid:  # this home's hub: nothing to start (make demo twice)
        print(
            f"JupyterHub for gai-research is already running at {running.url} (pid {running.pid})"
        )
        print(f"  admin passwords: {hub_paths(settings).root}/admin-*.password (0600)")
        print("  `gai hub status` checks it, `gai hub stop` stops it")
        return 0
    preflight(settings)
    names = list(dict.fromkeys([*args.admin, *([settings.hub.demo_admin] if args.demo else [])]))
    accounts = prepare_admins(settings, names)
    paths = hub_paths(settings)
    log = paths.log if args.detach else None
    proc = start_hub(settings, names, log_file=log)
    try:
        seconds = wait_until_up(settings, proc=proc)
    except BaseException:
        if proc.poll() is None:
            proc.terminate()
        raise
    _print_welcome(settings, accounts, seconds, log)
    if args.detach:
        return 0
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print("stopping the hub (its servers and services first)...")
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 130


def _print_welcome(settings, accounts, seconds: float, log) -> None:
    url = settings.hub.url
    print(f"JupyterHub for gai-research is up at {url} (started in {seconds:.1f} s)")
    for account in accounts:
        if account.password:
            print(f"  admin {account.name}: password {account.password}")
            print(f"    shown once; kept in {account.password_file} (0600)")
        else:
            print(f"  admin {account.name}: password in {account.password_file} (0600)")
    print(f"  sign in:        {url}hub/login")
    print(f"  researchers:    sign up at {url}hub/signup; an admin approves at {url}hub/authorize")
    print(f"  groups:         {url}hub/admin (researchers, leads, stewards)")
    print(f"  MLflow:         {url}services/mlflow/ (same login)")
    if settings.hub.spawner == "demo":
        print("  mode: demo - every server runs as this account; see docs/hub.md for production")
    if log is not None:
        print(f"  log:            {log}; stop with `gai hub stop`")


def run_status(args: argparse.Namespace) -> int:
    from gai_research.hub.launch import hub_status

    settings = _settings(args)
    status = hub_status(settings)
    state = f"up (JupyterHub {status.version})" if status.running else "down"
    print(f"hub      {state} at {status.url}" + (f", pid {status.pid}" if status.pid else ""))
    print(f"mlflow   {status.mlflow}")
    print(f"spawner  {settings.hub.spawner}, authenticator {settings.hub.authenticator}")
    if status.problems:
        print("permission problems:")
        for problem in status.problems:
            print(f"  {problem}")
    else:
        print("permissions: the boundaries hold")
    return 0 if status.running and not status.problems else 3


def run_stop(args: argparse.Namespace) -> int:
    from gai_research.hub.launch import stop_hub

    stopped = stop_hub(_settings(args))
    print("hub stopped" if stopped else "hub was not running")
    return 0


def run_harden(args: argparse.Namespace) -> int:
    from gai_research.hub.boundaries import apply_production_layout

    changes = apply_production_layout(
        settings_from(args), research_group=args.research_group, steward_group=args.steward_group
    )
    for line in changes:
        print(line)
    print(f"{len(changes)} change(s); `gai hub status` checks the result")
    return 0


def run_mlflow(args: argparse.Namespace) -> int:
    import subprocess

    from gai_research.hub.mlflow_server import MlflowServer, backend_store, masked, server_command

    settings = settings_from(args)
    server = MlflowServer(server_command(settings, host=args.host, port=args.port))
    print(f"MLflow on http://{args.host}:{args.port}/ (store {masked(backend_store(settings))})")
    server.start()
    try:
        return server.wait()
    except (KeyboardInterrupt, subprocess.SubprocessError):
        server.stop()
        return 130
