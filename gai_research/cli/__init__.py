"""The ``gai`` command: a thin parser over library functions.

Each command group lives in its own module with ``register(subparsers)``, which
adds a parser whose ``handler`` takes the parsed arguments and returns an exit
code. Heavy libraries (torch, monai, mlflow, even pydicom) are imported inside the
handlers, so ``gai --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gai_research import __version__
from gai_research.errors import GaiError

# command modules, in the order --help lists them
COMMAND_MODULES = (
    "gai_research.cli.home",
    "gai_research.cli.synth",
    "gai_research.cli.pacs",
    "gai_research.cli.deid",
    "gai_research.cli.vault",
    "gai_research.cli.receive",
    "gai_research.cli.ingest",
    "gai_research.cli.catalog",
    "gai_research.cli.data",
    "gai_research.cli.models",
    "gai_research.cli.evaluate",
    "gai_research.cli.gateway",
    "gai_research.cli.hub",
    "gai_research.cli.report",
)

EPILOG = """\
Settings come from GAI_* environment variables and an optional gai.toml
(see `gai config`). Everything the platform owns lives under GAI_HOME
(default ./var). Start with `gai init`, then `gai synth`, `gai pacs up`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gai",
        description="gai-research: imaging-AI research platform for the Suwon, Anseong and "
        "Icheon provincial medical centers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gai-research {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="settings file (default: $GAI_CONFIG or ./gai.toml)"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    # pydicom and pynetdicom quote identifiers (names, IDs, UIDs) in their records:
    # the handler drops those records for every command, at every verbosity
    from gai_research.ingest.logs import RedactDicomRecords

    for log_handler in logging.root.handlers:
        log_handler.addFilter(RedactDicomRecords())
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except GaiError as exc:
        print(f"gai {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gai {args.command}: interrupted", file=sys.stderr)
        return 130
