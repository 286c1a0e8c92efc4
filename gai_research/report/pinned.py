"""Pinned runs: the exact MLflow runs of an official edition of the report.

    # pinned.yaml
    edition: "November 2026 results-sharing session"
    runs:
      - 3f2a9c1b0d...        # an evaluation (parent) run: all of its model runs
      - id: 8e7d6c5b4a...    # or one model / operations run
        note: "re-run after the vendor's fix"

A plain YAML list of run ids works too. Without a pinned file the report takes the
latest finished run per task, model and site, which changes when someone runs again;
with one, the same file gives the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gai_research.report.errors import PinnedRunsError

__all__ = ["PinnedRuns", "read_pinned"]

_RUN_ID = re.compile(r"^[0-9a-fA-F]{8,64}$")


@dataclass(frozen=True)
class PinnedRuns:
    path: str
    run_ids: tuple[str, ...]
    edition: str | None = None
    notes: tuple[tuple[str, str], ...] = ()  # (run id, note)


def _entry(item: object, where: str) -> tuple[str, str]:
    if isinstance(item, str | int):
        run_id, note = str(item), ""
    elif isinstance(item, dict) and "id" in item:
        run_id, note = str(item["id"]), str(item.get("note") or "")
    else:
        raise PinnedRunsError(
            f"{where}: each entry is a run id or a mapping with 'id'",
            hint="write `- <run id>` or `- id: <run id>` (note: optional)",
        )
    run_id = run_id.strip()
    if not _RUN_ID.match(run_id):
        raise PinnedRunsError(
            f"{where}: {run_id!r} is not an MLflow run id",
            hint="copy the 32-hex-digit run id from the MLflow UI or `mlflow runs list`",
        )
    return run_id.lower(), note


def read_pinned(path: str | Path) -> PinnedRuns:
    """Read and check a pinned-runs file (every problem is one :class:`PinnedRunsError`)."""
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PinnedRunsError(
            f"pinned-runs file {file} not found", hint="check the path given to --runs"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PinnedRunsError(f"cannot read {file}: {exc}", hint="check the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PinnedRunsError(
            f"{file} is not valid YAML{where}", hint="see the format in docs/report.md"
        ) from None
    edition = None
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"edition", "runs"})
        if unknown:
            raise PinnedRunsError(
                f"{file}: unknown key {unknown[0]!r}", hint="the keys are 'edition' and 'runs'"
            )
        edition = str(data["edition"]) if data.get("edition") else None
        data = data.get("runs")
    if not isinstance(data, list) or not data:
        raise PinnedRunsError(
            f"{file} names no runs", hint="list run ids under 'runs:' (see docs/report.md)"
        )
    entries = [_entry(item, f"{file} entry {i + 1}") for i, item in enumerate(data)]
    ids = [run_id for run_id, _ in entries]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise PinnedRunsError(f"{file} names run {twice[0]} twice", hint="keep one entry per run")
    return PinnedRuns(
        path=str(file),
        run_ids=tuple(ids),
        edition=edition,
        notes=tuple((run_id, note) for run_id, note in entries if note),
    )
