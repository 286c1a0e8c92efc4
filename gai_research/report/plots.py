"""Figures the report draws from logged numbers, embedded as PNG data URIs.

The evaluation runs' own plots (ROC, FROC, Bland-Altman, ``plots/*.png``) are embedded
as logged. Drawn here, from the metrics alone: latency per model and site, the FROC
points, subgroup forest plots, turnaround by hour, and data collection over time.
matplotlib's object API is used (no pyplot, no global backend), with a CJK font
registered so Korean labels render.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from gai_research.report.i18n import Translator
    from gai_research.report.records import RunRecord

__all__ = ["Figure", "cjk_font_file", "draw_png", "png_uri"]

FONT_FAMILIES = ["Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans KR", "DejaVu Sans"]
_FONT_GLOBS = ("NotoSansCJK-Regular.ttc", "NotoSansCJKkr-Regular.otf", "NotoSansKR-Regular.*")
COLORS = ["#1f5fa8", "#d9822b", "#2e8b57", "#a23b72", "#6c757d", "#8c6d1f", "#17a2b8"]


@dataclass(frozen=True)
class Figure:
    caption: str
    data_uri: str
    run_ids: tuple[str, ...] = ()
    source: str = ""  # the artifact path, for plots a run logged


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@functools.cache
def cjk_font_file() -> str | None:
    """A font file with Hangul glyphs (fontconfig's choice, else a known Noto file)."""
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", "Noto Sans CJK KR:lang=ko"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            found = ""
        if found and ("CJK" in found or "KR" in found):
            return found
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts")):
        for pattern in _FONT_GLOBS:
            for path in sorted(root.rglob(pattern)) if root.is_dir() else []:
                return str(path)
    return None


@functools.cache
def _register_font() -> None:
    from matplotlib import font_manager

    path = cjk_font_file()
    if path:
        font_manager.fontManager.addfont(path)


def draw_png(draw: Callable[[Any], None], size: tuple[float, float], dpi: int = 144) -> bytes:
    """Run ``draw(figure)`` on a fresh matplotlib Figure and return the PNG bytes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    _register_font()
    with matplotlib.rc_context(
        {
            "font.family": "sans-serif",
            "font.sans-serif": FONT_FAMILIES,
            "font.size": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.unicode_minus": True,
        }
    ):
        fig = MplFigure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def model_label(run: RunRecord, tr: Translator) -> str:
    """The model's name with its origin in brackets unless it is a vendor's product."""
    if run.origin == "vendor":
        return run.model
    return f"{run.model} [{tr('origin.' + (run.origin or 'unknown'))}]"


def latency_figure(runs: Sequence[RunRecord], tr: Translator, caption: str) -> Figure | None:
    """Median latency per model x site, p25-p75 as a bar, p95 as a tick."""
    rows = [r for r in runs if r.finished and _finite(r.metrics.get("latency_median_s"))]
    if not rows:
        return None

    def draw(fig: Any) -> None:
        ax: Axes = fig.add_subplot()
        labels = [f"{model_label(r, tr)} · {tr('site.' + r.site)}" for r in rows]
        models = list(dict.fromkeys(r.model for r in rows))
        for i, run in enumerate(rows):
            m = run.metrics
            color = COLORS[models.index(run.model) % len(COLORS)]
            low, high = m.get("latency_p25_s"), m.get("latency_p75_s")
            if _finite(low, high):
                ax.plot([low, high], [i, i], color=color, linewidth=5, alpha=0.35)
            ax.plot(m["latency_median_s"], i, "o", color=color)
            if _finite(m.get("latency_p95_s")):
                ax.plot(m["latency_p95_s"], i, "|", color=color, markersize=10)
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()
        ax.set_xlabel(tr("plot.latency_axis"))
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)

    png = draw_png(draw, (7.0, 0.9 + 0.28 * len(rows)))
    return Figure(caption, png_uri(png), tuple(r.run_id for r in rows))


def froc_figure(runs: Sequence[RunRecord], tr: Translator, caption: str) -> Figure | None:
    """Sensitivity at the logged false-positive rates per scan (the FROC points)."""
    prefix = "froc_sens_fp_"
    curves = []
    for run in runs:
        if not run.finished:
            continue
        points = []
        for key, value in run.metrics.items():
            if key.startswith(prefix) and not key.endswith(("_ci_low", "_ci_high")):
                try:
                    points.append((float(key[len(prefix) :]), value, key))
                except ValueError:
                    continue
        if len(points) >= 2:
            curves.append((run, sorted(points)))
    if not curves:
        return None

    def draw(fig: Any) -> None:
        ax: Axes = fig.add_subplot()
        for i, (run, points) in enumerate(curves):
            color = COLORS[i % len(COLORS)]
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], "o-", color=color, label=model_label(run, tr))
            lows = [run.metrics.get(p[2] + "_ci_low") for p in points]
            highs = [run.metrics.get(p[2] + "_ci_high") for p in points]
            if all(_finite(v) for v in lows + highs):
                ax.fill_between(xs, lows, highs, color=color, alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(tr("plot.froc_x"))
        ax.set_ylabel(tr("m.sensitivity"))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)

    png = draw_png(draw, (6.0, 3.2))
    return Figure(caption, png_uri(png), tuple(run.run_id for run, _ in curves))


def forest_figure(
    entries: Sequence[tuple[str, str, RunRecord, float, float | None, float | None]],
    metric_label: str,
    tr: Translator,
    caption: str,
) -> Figure | None:
    """Subgroup estimates with CIs: entries are (group label, level, run, value, low, high)."""
    entries = [e for e in entries if _finite(e[3])]
    if not entries:
        return None
    models = list(dict.fromkeys(e[2].model for e in entries))

    rows = list(dict.fromkeys((e[0], e[1]) for e in entries))
    step = 0.8 / len(models)

    def draw(fig: Any) -> None:
        ax: Axes = fig.add_subplot()
        for group, level, run, value, low, high in entries:
            k = models.index(run.model)
            y = rows.index((group, level)) + (k - (len(models) - 1) / 2) * step
            color = COLORS[k % len(COLORS)]
            if _finite(low, high):
                ax.plot([low, high], [y, y], color=color, linewidth=1.5)
            ax.plot(value, y, "s", color=color, markersize=4)
        ax.set_yticks(range(len(rows)), [f"{group}: {level}" for group, level in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(metric_label)
        ax.grid(axis="x", alpha=0.3)
        handles = [
            ax.plot([], [], "s", color=COLORS[i % len(COLORS)])[0] for i in range(len(models))
        ]
        by_model = {e[2].model: e[2] for e in entries}
        ax.legend(
            handles,
            [model_label(by_model[m], tr) for m in models],
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12 - 0.6 / max(len(rows), 1)),
            ncols=min(len(models), 3),
            frameon=False,
        )

    png = draw_png(draw, (6.0, 1.4 + 0.3 * len(rows)))
    return Figure(caption, png_uri(png), tuple(dict.fromkeys(e[2].run_id for e in entries)))


def by_hour_figure(
    runs: Sequence[RunRecord], key: str, tr: Translator, caption: str
) -> Figure | None:
    """Turnaround (median, seconds) by hour of day, one line per gateway run."""
    series = [(r, r.history.get(key, [])) for r in runs]
    series = [(r, h) for r, h in series if h]
    if not series:
        return None

    def draw(fig: Any) -> None:
        ax: Axes = fig.add_subplot()
        for i, (run, points) in enumerate(series):
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                "o-",
                color=COLORS[i % len(COLORS)],
                markersize=3,
                label=f"{model_label(run, tr)} · {tr('site.' + run.site)}",
            )
        ax.set_xlim(-0.5, 23.5)
        ax.set_xticks(range(0, 24, 3))
        ax.set_xlabel(tr("plot.hour"))
        ax.set_ylabel(tr("plot.ttr_axis"))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)

    png = draw_png(draw, (6.5, 2.8))
    return Figure(caption, png_uri(png), tuple(r.run_id for r, _ in series))


def collection_figure(
    periods: Sequence[str], by_site: dict[str, list[int]], tr: Translator, caption: str
) -> Figure | None:
    """Studies collected per period, stacked by site."""
    if not periods or not by_site:
        return None

    def draw(fig: Any) -> None:
        ax: Axes = fig.add_subplot()
        bottom = [0] * len(periods)
        for i, (site, counts) in enumerate(by_site.items()):
            ax.bar(
                periods,
                counts,
                bottom=bottom,
                color=COLORS[i % len(COLORS)],
                label=tr("site." + site),
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.set_ylabel(tr("plot.studies"))
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)

    png = draw_png(draw, (6.5, 2.6))
    return Figure(caption, png_uri(png), source="catalog")
