"""Make the results report: collect, build the views and figures, write HTML/JSON/PDF.

    >>> report = build_report(settings, lang="ko")              # latest finished runs
    >>> files = write_report(report, "var/reports/2026-11-20", pdf=True)
    >>> files.html, files.pdf, files.timings

``gai report`` is this, with options. Numbers are never computed here: each is the
value a run logged (or a count read from the catalog), cited by run id.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.report import conventions as cv
from gai_research.report import plots
from gai_research.report.appendix import Appendix, build_appendix, mlflow_ui_base
from gai_research.report.collect import collect_runs
from gai_research.report.dataplatform import PlatformFacts, collect_platform
from gai_research.report.errors import ReportError
from gai_research.report.i18n import LANGUAGES, Translator
from gai_research.report.pinned import PinnedRuns, read_pinned
from gai_research.report.records import Collected
from gai_research.report.results import TaskView, build_task_view

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = ["Report", "ReportFiles", "build_report", "default_out_dir", "write_report"]


@dataclass
class Report:
    lang: str
    generated_at: dt.datetime
    collected: Collected
    views: list[TaskView]
    platform: PlatformFacts
    appendix: Appendix
    figures: dict[str, list[plots.Figure]] = field(default_factory=dict)
    ops_figures: dict[str, list[plots.Figure]] = field(default_factory=dict)
    platform_figure: plots.Figure | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ReportFiles:
    folder: Path
    html: Path
    json: Path
    pdf: Path | None = None
    screenshot: Path | None = None
    n_numbers: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def default_out_dir(settings: Settings, today: dt.date | None = None) -> Path:
    """``HOME/reports/<YYYY-MM-DD>/``."""
    return settings.reports_dir / (today or dt.date.today()).isoformat()


def _task_figures(view: TaskView, tr: Translator) -> list[plots.Figure]:
    figures: list[plots.Figure] = []
    rows = [r for r in view.runs.rows if r.finished]
    for run in rows:
        for plot in run.plots:
            name = plot.path.removeprefix("plots/")
            caption = tr("fig.artifact", model=plots.model_label(run, tr), name=name)
            if run.site != "ALL":
                caption += f" · {tr.label('site', run.site)}"
            figures.append(
                plots.Figure(caption, plots.png_uri(plot.data), (run.run_id,), plot.path)
            )
    overall = [r for r in rows if r.site == "ALL"] or rows
    froc = plots.froc_figure(overall, tr, tr("fig.froc"))
    if froc is not None:
        figures.append(froc)
    latency = plots.latency_figure(rows, tr, tr("fig.latency"))
    if latency is not None:
        figures.append(latency)
    if view.subgroups is not None and view.forest_metric:
        metric = view.forest_metric
        entries = []
        for row in view.subgroups.rows:
            num = row.cells.get(metric)
            if num is not None:
                entries.append(
                    (
                        tr.label("sg", row.group),
                        _level(row, tr),
                        row.run,
                        num.value,
                        num.low,
                        num.high,
                    )
                )
        forest = plots.forest_figure(
            entries, tr.metric(metric), tr, tr("fig.forest", metric=tr.metric(metric))
        )
        if forest is not None:
            figures.append(forest)
    return figures


def _level(row, tr: Translator) -> str:
    return tr.level(row.group, row.label)


def build_report(
    settings: Settings | None = None,
    *,
    experiments: Iterable[str] | None = None,
    runs: PinnedRuns | str | Path | None = None,
    lang: str = "en",
    mlflow_ui: str | None = None,
    card_dirs: list[Path] | None = None,
    export_dirs: list[Path] | None = None,
) -> Report:
    """Read MLflow and the platform home and build the report (nothing is written)."""
    from gai_research.config import load_settings

    if lang not in LANGUAGES:
        raise ReportError(f"unknown language {lang!r}", hint=f"use one of {', '.join(LANGUAGES)}")
    settings = settings if settings is not None else load_settings()
    pinned = read_pinned(runs) if isinstance(runs, str | Path) else runs
    tr = Translator(lang)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gai-report-") as workdir:
        collected = collect_runs(
            settings.tracking_uri,
            experiments=list(experiments) if experiments else None,
            pinned=pinned,
            workdir=Path(workdir),
        )
    timings["collect_runs"] = time.perf_counter() - started
    mark = time.perf_counter()
    platform = collect_platform(settings, card_dirs=card_dirs, export_dirs=export_dirs)
    timings["collect_platform"] = time.perf_counter() - mark
    mark = time.perf_counter()
    views = [build_task_view(task) for task in collected.tasks]
    report = Report(
        lang=lang,
        generated_at=dt.datetime.now(dt.UTC),
        collected=collected,
        views=views,
        platform=platform,
        appendix=build_appendix(
            collected, views, platform, mlflow_ui_base(settings.tracking_uri, mlflow_ui)
        ),
    )
    for view in views:
        report.figures[view.task] = _task_figures(view, tr)
        ops = plots.by_hour_figure(
            view.runs.operations, cv.OPERATIONS_BY_HOUR, tr, tr("fig.by_hour")
        )
        report.ops_figures[view.task] = [ops] if ops is not None else []
    if platform.available and platform.periods:
        report.platform_figure = plots.collection_figure(
            platform.periods, platform.collection_by_site, tr, tr("fig.collection")
        )
    timings["figures"] = time.perf_counter() - mark
    report.timings = timings
    return report


def write_report(
    report: Report,
    out: str | Path,
    *,
    pdf: bool = False,
    screenshot: str | Path | None = None,
) -> ReportFiles:
    """Write ``report.html`` and ``report.json`` (and ``report.pdf``) into ``out``."""
    from gai_research.report.render import render_html, report_json
    from gai_research.store.layout import atomic_write

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    mark = time.perf_counter()
    html, numbers = render_html(report)
    report.timings["render_html"] = time.perf_counter() - mark
    report.timings["html_total"] = sum(
        report.timings[k] for k in ("collect_runs", "collect_platform", "figures", "render_html")
    )
    files = ReportFiles(
        folder, folder / "report.html", folder / "report.json", n_numbers=len(numbers)
    )
    atomic_write(files.html, html.encode("utf-8"))
    if pdf:
        from gai_research.report.chromium import print_pdf

        files.pdf = folder / "report.pdf"
        report.timings["pdf"] = print_pdf(files.html, files.pdf)
    if screenshot is not None:
        from gai_research.report.chromium import screenshot as take

        files.screenshot = Path(screenshot)
        report.timings["screenshot"] = take(files.html, files.screenshot)
    atomic_write(files.json, report_json(report, numbers).encode("utf-8"))
    files.timings = dict(report.timings)
    return files
