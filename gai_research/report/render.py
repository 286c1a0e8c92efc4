"""HTML and JSON output: the Jinja2 templates (package data) filled with the report model.

The HTML is self-contained: CSS inline, figures as data URIs, no script, and a
Content-Security-Policy that forbids loading anything else. ``report.json`` lists every
number printed (from :class:`~gai_research.report.cells.Ledger`) with its source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research import __version__
from gai_research.report.appendix import run_link
from gai_research.report.cells import Ledger
from gai_research.report.i18n import Translator

if TYPE_CHECKING:
    from gai_research.report.build import Report

__all__ = ["REPORT_FORMAT", "TEMPLATES", "render_html", "report_json"]

TEMPLATES = Path(__file__).parent / "templates"
REPORT_FORMAT = "gai-report/1"


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_html(report: Report) -> tuple[str, list[dict[str, Any]]]:
    """The report page and the numbers it printed, in page order."""
    tr = Translator(report.lang)
    ledger = Ledger()
    flag_titles = {"best": tr("flag.title_best"), "worst": tr("flag.title_worst")}
    failed_runs = [
        run for task in report.collected.tasks for run in [*task.failed, *task.unfinished]
    ]
    context = {
        "lang": report.lang,
        "version": __version__,
        "css": (TEMPLATES / "report.css").read_text(encoding="utf-8"),
        "t": tr,
        "lbl": tr.label,
        "mlabel": tr.metric,
        "mlabels": lambda keys: ", ".join(tr.metric(k) for k in keys),
        "slabel": lambda key: tr.metric(key.rsplit(".", 1)[-1]),  # in a per-structure table
        "sglevel": tr.level,
        "cell": lambda num, section: ledger.cell(num, section, flag_titles),
        "link": lambda run: run_link(report.appendix.ui_base, run),
        "generated_at": report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        "collected": report.collected,
        "views": report.views,
        "n_rows": report.collected.n_rows,
        "n_failed": len(failed_runs),
        "failed_runs": failed_runs,
        "figures": report.figures,
        "ops_figures": report.ops_figures,
        "platform": report.platform,
        "platform_figure": report.platform_figure,
        "appendix": report.appendix,
    }
    html = _environment().get_template("report.html.j2").render(**context)
    return html, ledger.entries


def report_json(report: Report, numbers: list[dict[str, Any]]) -> str:
    """``report.json``: the tasks, the runs cited and every number printed."""
    collected = report.collected
    data = {
        "format": REPORT_FORMAT,
        "generated_at": report.generated_at.isoformat(timespec="seconds"),
        "generator": f"gai-research {__version__}",
        "lang": report.lang,
        "tracking_uri": collected.tracking_uri,
        "store_missing": collected.store_missing,
        "edition": collected.edition,
        "pinned_file": collected.pinned_file,
        "tasks": [
            {
                "task": view.task,
                "kind": view.kind,
                "experiment": view.runs.experiment,
                "rows": [run.run_id for run in view.runs.rows],
                "failed": [run.run_id for run in view.runs.failed],
                "unfinished": [run.run_id for run in view.runs.unfinished],
                "evaluations": [run.run_id for run in view.runs.evaluations],
                "operations": [run.run_id for run in view.runs.operations],
                "notes": [note.key for note in view.notes],
                "flags": [
                    {"site": s, "metric": m, "model": model, "flag": f}
                    for s, m, model, f in view.flags
                ],
            }
            for view in report.views
        ],
        "runs": [run.to_json() for run in collected.all_runs()],
        "platform": {
            "available": report.platform.available,
            "snapshot": report.platform.snapshot or None,
            "notes": [note.key for note in report.platform.notes],
        },
        "numbers": numbers,
        "timings_s": {k: round(v, 3) for k, v in report.timings.items()},
    }
    return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
