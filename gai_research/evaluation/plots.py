"""The plots of an evaluation notebook, written as PNG files (no pyplot, no display needed).

Each function draws one figure from an :class:`~gai_research.evaluation.endpoints.Evaluation`
and returns the file it wrote, so a notebook shows it with ``IPython.display.Image`` and the
runner uploads it to MLflow under ``plots/``. Bands and error bars use the protocol's
level, bootstrap size (at most 1,000 for a band) and seed, so a rerun draws the same picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.evaluation.cases import volume_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gai_research.evaluation.context import EvalContext
    from gai_research.evaluation.endpoints import Evaluation

__all__ = ["plot_bland_altman", "plot_froc", "plot_latency", "plot_roc"]

_BAND_RESAMPLES = 1000
_DPI = 110


def _figure(width: float = 5.5, height: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(figure: Figure, output_dir: str | Path, name: str) -> Path:
    folder = Path(output_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    figure.savefig(path, format="png", metadata={"Software": None})  # no version/date: stable
    return path


def _title(context: EvalContext, what: str) -> str:
    return f"{what}: {context.model.name} ({context.model.origin.value}), {context.site}"


def _roc_points(y: Any, s: Any, weights: Any = None) -> tuple[Any, Any]:
    """Empirical ROC vertices (fpr, tpr), one per distinct score, from (0, 0) to (1, 1).

    ``weights`` are case multiplicities (a bootstrap resample without copying the cases).
    """
    import numpy as np

    order = np.argsort(-s, kind="stable")
    w = np.ones(y.size) if weights is None else np.asarray(weights, dtype=float)
    positive = (y[order] == 1) * w[order]
    negative = (y[order] == 0) * w[order]
    ends = np.append(np.flatnonzero(np.diff(s[order])), s.size - 1)
    tp, fp = np.cumsum(positive)[ends], np.cumsum(negative)[ends]
    tpr = np.concatenate([[0.0], tp / max(tp[-1], 1e-12)])
    fpr = np.concatenate([[0.0], fp / max(fp[-1], 1e-12)])
    return fpr, tpr


def plot_roc(evaluation: Evaluation, context: EvalContext, output_dir: str | Path) -> Path | None:
    """Empirical ROC curve with a pointwise percentile bootstrap band (stratified)."""
    import numpy as np

    cases = evaluation.cases
    scored = cases[np.isfinite(cases["score"].to_numpy(dtype=float))]
    y, s = scored["y_true"].to_numpy(), scored["score"].to_numpy(dtype=float)
    if y.sum() == 0 or (1 - y).sum() == 0:
        return None
    ci = context.protocol.ci
    grid = np.linspace(0.0, 1.0, 201)
    rng = np.random.default_rng(ci.seed)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    curves = np.empty((min(ci.bootstrap_n, _BAND_RESAMPLES), grid.size))
    for i in range(curves.shape[0]):
        counts = np.bincount(rng.choice(positives, positives.size), minlength=y.size)
        counts += np.bincount(rng.choice(negatives, negatives.size), minlength=y.size)
        fpr, tpr = _roc_points(y, s, counts)
        curves[i] = np.interp(grid, fpr, tpr)
    alpha = ci.alpha
    low, high = np.quantile(curves, [alpha / 2, 1 - alpha / 2], axis=0)
    fpr, tpr = _roc_points(y, s)
    figure = _figure()
    ax = figure.add_subplot()
    ax.fill_between(grid, low, high, alpha=0.25, label=f"{ci.level:.0%} bootstrap band")
    auc = evaluation.metrics.get("auc", float("nan"))
    ax.plot(fpr, tpr, label=f"ROC, AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    sens, spec = evaluation.metrics.get("sensitivity"), evaluation.metrics.get("specificity")
    if sens is not None and spec is not None and np.isfinite(sens) and np.isfinite(spec):
        ax.plot([1 - spec], [sens], "o", color="black", label=f"threshold {evaluation.threshold:g}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(_title(context, "ROC"), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return _save(figure, output_dir, "roc.png")


def plot_froc(evaluation: Evaluation, context: EvalContext, output_dir: str | Path) -> Path | None:
    """FROC curve (LUNA16), with the sensitivities at the CPM rates and their intervals."""
    import numpy as np

    result = evaluation.froc
    if result is None:
        return None
    figure = _figure()
    ax = figure.add_subplot()
    fps = np.maximum(result.curve_fps, 1e-3)
    ax.step(
        fps, result.curve_sensitivity, where="post", label=f"FROC, CPM {result.cpm.estimate:.3f}"
    )
    rates = np.asarray(result.fps_per_scan)
    estimates = np.asarray([e.estimate for e in result.sensitivities])
    lows = np.asarray([e.low for e in result.sensitivities])
    highs = np.asarray([e.high for e in result.sensitivities])
    errors = np.vstack([estimates - lows, highs - estimates])
    errors = np.where(np.isfinite(errors), errors, 0.0)
    ax.errorbar(
        rates,
        estimates,
        yerr=errors,
        fmt="o",
        capsize=3,
        label=f"{context.protocol.ci.level:.0%} CI",
    )
    ax.set_xscale("log", base=2)
    ax.set(
        xlabel="false positives per scan",
        ylabel="sensitivity",
        ylim=(0, 1.02),
        xlim=(rates[0] / 2, rates[-1] * 2),
    )
    ax.set_title(_title(context, "FROC"), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return _save(figure, output_dir, "froc.png")


def plot_bland_altman(
    evaluation: Evaluation, context: EvalContext, output_dir: str | Path
) -> list[Path]:
    """One Bland-Altman plot per reference volume: difference (model - reference) vs mean."""
    import numpy as np

    paths = []
    cases = evaluation.cases
    for name in context.protocol.reference.volumes:
        ref_column, pred_column = volume_columns(name)
        ref = cases[ref_column].to_numpy(dtype=float)
        pred = cases[pred_column].to_numpy(dtype=float)
        pair = np.isfinite(ref) & np.isfinite(pred)
        if pair.sum() < 3:
            continue
        mean, diff = (ref[pair] + pred[pair]) / 2, pred[pair] - ref[pair]
        prefix = f"vol.{name}."
        metrics = evaluation.metrics
        figure = _figure()
        ax = figure.add_subplot()
        ax.scatter(mean, diff, s=14, alpha=0.7)
        for key, style in (("ba_bias_ml", "-"), ("ba_loa_low_ml", "--"), ("ba_loa_high_ml", "--")):
            value = metrics.get(prefix + key)
            if value is None or not np.isfinite(value):
                continue
            ax.axhline(value, linestyle=style, color="black", linewidth=1)
            low, high = metrics.get(f"{prefix}{key}_ci_low"), metrics.get(f"{prefix}{key}_ci_high")
            if low is not None and np.isfinite(low) and np.isfinite(high):
                ax.axhspan(low, high, alpha=0.12, color="grey")
            ax.annotate(
                f"{key.removeprefix('ba_').removesuffix('_ml')} {value:+.2f}",
                (1.0, value),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=8,
            )
        ax.axhline(0, linestyle=":", color="grey")
        ax.set(xlabel=f"mean of model and reference, {name} (mL)", ylabel="model - reference (mL)")
        ax.set_title(_title(context, f"Bland-Altman {name}"), fontsize=9)
        paths.append(_save(figure, output_dir, f"bland_altman_{name}.png"))
    return paths


def plot_latency(
    evaluation: Evaluation, context: EvalContext, output_dir: str | Path
) -> Path | None:
    """Histogram and box plot of the answered studies' latencies."""
    import numpy as np

    cases = evaluation.cases
    values = cases.loc[cases["status"] == "ok", "latency_s"].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    figure = _figure(8.0, 3.8)
    left, right = figure.subplots(1, 2, width_ratios=[3, 1])
    left.hist(values, bins=min(40, max(5, values.size // 3)))
    median = float(np.median(values))
    left.axvline(median, color="black", linestyle="--", label=f"median {median:.2f} s")
    p95 = float(np.percentile(values, 95))
    left.axvline(p95, color="black", linestyle=":", label=f"p95 {p95:.2f} s")
    left.set(xlabel="seconds per study", ylabel="studies")
    left.legend(fontsize=8)
    right.boxplot(values, widths=0.6)
    right.set(ylabel="seconds", xticks=[])
    counts = evaluation.counts
    figure.suptitle(
        _title(context, "Latency")
        + f" ({values.size} answered, {counts.get('n_failed', 0)} failed, "
        f"{counts.get('n_timeout', 0)} timed out)",
        fontsize=9,
    )
    return _save(figure, output_dir, "latency.png")
