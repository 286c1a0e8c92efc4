"""``python -m gai_research.models.simulators http|dicom --wraps MODEL ...``: one simulated vendor.

Runs in the foreground until SIGTERM or SIGINT. ``gai models simulators up`` starts one
per simulated vendor of the models file, detached, with ``--state-file`` under
``HOME/run/``: the process writes its pid, port and address there once it listens (the
registry reads it to reach the simulator) and removes it when it stops. Without
``--state-file`` it prints the address on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gai_research.errors import GaiError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gai_research.models.simulators",
        description="Run a simulated vendor (a test double wrapping a model, e.g. a baseline) "
        "on 127.0.0.1 until SIGTERM.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in (
        ("http", "an HTTP inference service (POST /v1/studies)"),
        ("dicom", "a DICOM node: C-STORE in, results (SR) sent back to the caller"),
    ):
        sub = kinds.add_parser(kind, help=text)
        sub.add_argument("--wraps", required=True, metavar="MODEL", help="registry model name")
        sub.add_argument("--name", help="the simulated vendor's models-file name (for logs)")
        sub.add_argument("--port", type=int, default=0, help="0: a free port")
        sub.add_argument("--delay-s", type=float, default=0.0, help="added before every answer")
        sub.add_argument("--failure-rate", type=float, default=0.0)
        sub.add_argument("--timeout-rate", type=float, default=0.0)
        sub.add_argument("--malformed-rate", type=float, default=0.0)
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--state-file", type=Path, help="where to write pid and address")
        if kind == "dicom":
            sub.add_argument("--ae-title", default="GAI-SIM-DICOM", help="its own AE title")
            sub.add_argument("--return-host", help="where results go (with port and AE)")
            sub.add_argument("--return-port", type=int, help="default: the calling AE's route")
            sub.add_argument("--return-ae", help="AE title results are sent to")
    return parser


def _write_state(path: Path | None, state: dict[str, Any]) -> None:
    if path is None:
        print(json.dumps(state), flush=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def _state(args: argparse.Namespace, **address: Any) -> dict[str, Any]:
    return {
        "name": args.name or args.wraps,
        "kind": args.kind,
        "pid": os.getpid(),
        "wraps": args.wraps,
        "delay_s": args.delay_s,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **address,
    }


def _run_http(args: argparse.Namespace, settings: Any) -> None:
    from gai_research.models.simulators.http import serve

    serve(
        args.wraps,
        port=args.port,
        delay_s=args.delay_s,
        failure_rate=args.failure_rate,
        timeout_rate=args.timeout_rate,
        malformed_rate=args.malformed_rate,
        seed=args.seed,
        settings=settings,
        on_ready=lambda sim: _write_state(
            args.state_file, _state(args, port=sim.port, url=sim.url)
        ),
    )


def _run_dicom(args: argparse.Namespace, settings: Any) -> None:
    from gai_research.models.simulators.dicom_node import serve

    def ready(sim: Any) -> None:
        _write_state(
            args.state_file,
            _state(
                args,
                port=sim.port,
                ae_title=args.ae_title,
                return_port=args.return_port,
                return_ae=args.return_ae,
            ),
        )

    serve(
        args.wraps,
        port=args.port,
        ae_title=args.ae_title,
        delay_s=args.delay_s,
        return_host=args.return_host,
        return_port=args.return_port,
        return_ae=args.return_ae,
        settings=settings,
        on_ready=ready,
        failure_rate=args.failure_rate,
        timeout_rate=args.timeout_rate,
        malformed_rate=args.malformed_rate,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from gai_research.config import load_settings
    from gai_research.ingest.logs import RedactDicomRecords

    for handler in logging.root.handlers:
        handler.addFilter(RedactDicomRecords())
    # pydicom's and highdicom's warnings quote element values (names, UIDs): not in our log
    warnings.filterwarnings("ignore", module=r"(pydicom|highdicom)(\..*)?$")
    try:
        settings = load_settings()
        if args.kind == "http":
            _run_http(args, settings)
        else:
            _run_dicom(args, settings)
    except GaiError as exc:
        print(f"simulator {args.name or args.wraps}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.state_file is not None:
            args.state_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
