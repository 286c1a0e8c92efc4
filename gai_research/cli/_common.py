"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from gai_research.errors import GaiError


def settings_from(args: argparse.Namespace):
    """The effective settings for a command (honours ``--config``)."""
    from gai_research.config import load_settings

    return load_settings(getattr(args, "config", None))


def existing_dir(path: str | Path, what: str) -> Path:
    """A directory that must exist, or a one-line error saying so."""
    folder = Path(path)
    if not folder.is_dir():
        raise GaiError(f"{what} {folder} does not exist or is not a folder", hint="check the path")
    return folder


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Print rows as a plain aligned text table."""
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
