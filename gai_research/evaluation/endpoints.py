"""The endpoints of an evaluation, computed from a per-case table and its protocol.

One function, :func:`evaluate_cases`, computes every metric a protocol's notebook reports,
overall and per subgroup, keyed as MLflow records them (``auc``, ``auc_ci_low``,
``sens_at_spec_0.9``, ``cpm``, ``vol.hippocampus_l.icc``, ``latency_p95_s``,
``sg.site.SUWON.sensitivity``, ...). The statistics are those of
:mod:`gai_research.evaluation.metrics`, with the protocol's CI methods, level, bootstrap
size and seed, so a rerun on the same table gives the same numbers.

A metric the data cannot define (an AUC in a subgroup without positives, a FROC without
nodules) is NaN, with a note saying why; it never stops the other metrics.

Failed and timed-out studies follow ``protocol.missing_predictions``: ``count-as-negative``
gives them a score below every real score (so they are called negative and rank last) and
no findings; ``exclude`` leaves them out of the accuracy metrics. Either way they are
counted (``n_failed``, ``n_timeout``) and left out of latency statistics and volume
agreement.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gai_research.evaluation.cases import volume_columns
from gai_research.evaluation.context import ALL_SITES, EvalContext
from gai_research.evaluation.protocol import AGREEMENT, FROC_RATES
from gai_research.models.types import TaskKind

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.evaluation.metrics import FrocResult
    from gai_research.evaluation.protocol import Protocol

__all__ = ["Evaluation", "age_band_labels", "evaluate_cases", "key_part"]

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- ]+")


def key_part(value: object) -> str:
    """A subgroup value as an MLflow-safe key part (``HOLOGIC, Inc.`` -> ``HOLOGIC_Inc.``)."""
    text = _KEY_UNSAFE.sub("_", str(value).strip()).replace(" ", "_")
    return re.sub("_+", "_", text).strip("_") or "unknown"


def age_band_labels(edges: list[int]) -> list[str]:
    """Labels of the bands cut at ``edges``: [50, 65] -> lt50, 50-64, ge65."""
    if not edges:
        return []
    inner = [f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)]
    return [f"lt{edges[0]}", *inner, f"ge{edges[-1]}"]


@dataclass
class Evaluation:
    """Everything a notebook reports: flat metrics, intervals, subgroups, notes, plot data."""

    metrics: dict[str, float]
    estimates: dict[str, dict[str, Any]]
    subgroups: dict[str, dict[str, dict[str, float]]]
    notes: list[str]
    threshold: float | None
    cases: pd.DataFrame  # the table as evaluated (imputed scores, age bands)
    froc: FrocResult | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def endpoint_table(self, names: list[str]) -> pd.DataFrame:
        """One row per endpoint: estimate and interval (NaN where undefined)."""
        import pandas as pd

        rows = []
        for name in names:
            rows.append(
                {
                    "endpoint": name,
                    "estimate": self.metrics.get(name, math.nan),
                    "ci_low": self.metrics.get(f"{name}_ci_low", math.nan),
                    "ci_high": self.metrics.get(f"{name}_ci_high", math.nan),
                    "method": self.estimates.get(name, {}).get("method", ""),
                }
            )
        return pd.DataFrame(rows)

    def subgroup_table(self, names: list[str]) -> pd.DataFrame:
        """Subgroups as rows (variable, value, n_cases, n_positive, then ``names``)."""
        import pandas as pd

        rows = []
        for variable, values in self.subgroups.items():
            for value, metrics in values.items():
                row = {"variable": variable, "value": value}
                for name in ["n_cases", "n_positive", *names]:
                    row[name] = metrics.get(name, math.nan)
                rows.append(row)
        return pd.DataFrame(rows)


class _Collector:
    """Runs one metric block; a block the data cannot define becomes NaN plus a note."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.estimates: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []

    def run(self, what: str, block: Callable[[], None]) -> None:
        from gai_research.evaluation.metrics import MetricsError

        try:
            block()
        except MetricsError as exc:
            self.notes.append(f"{what}: not computed ({exc.message})")

    def estimate(self, name: str, value: Any, method: str) -> None:
        estimate, low, high = (float(v) for v in value)
        self.metrics[name] = estimate
        self.metrics[f"{name}_ci_low"] = low
        self.metrics[f"{name}_ci_high"] = high
        self.estimates[name] = {
            "estimate": estimate,
            "ci_low": low,
            "ci_high": high,
            "method": method,
        }


# --- preparing the table --------------------------------------------------------------------
def _prepare(cases: pd.DataFrame, context: EvalContext) -> tuple[pd.DataFrame, dict[str, int]]:
    import numpy as np

    protocol = context.protocol
    frame = cases.copy()
    ok = (frame["status"] == "ok").to_numpy()
    has_score = np.isfinite(frame["score"].to_numpy(dtype=float))
    counts = {
        "n_studies": len(frame),
        "n_ok": int(ok.sum()),
        "n_timeout": int((frame["status"] == "timeout").sum()),
        "n_missing": int((frame["status"] == "missing").sum()),
    }
    counts["n_failed"] = len(frame) - counts["n_ok"] - counts["n_timeout"]
    scored = ok & has_score
    frame["answered"] = ok
    frame["scored"] = scored
    if protocol.missing_predictions == "exclude":
        keep = scored if scored.any() else ok
        frame = frame[keep].copy()
        counts["n_excluded"] = int((~keep).sum())
    else:
        counts["n_excluded"] = 0
        if scored.any():
            floor = float(frame.loc[scored, "score"].min()) - 1.0
            frame.loc[~scored, "score"] = floor
            if "pred_findings" in frame.columns:
                frame["pred_findings"] = [
                    found if answered else []
                    for found, answered in zip(frame["pred_findings"], ok, strict=True)
                ]
    return frame.reset_index(drop=True), counts


# --- metric blocks ---------------------------------------------------------------------------
def _study_level(out: _Collector, frame: pd.DataFrame, context: EvalContext) -> None:
    import numpy as np

    from gai_research.evaluation.metrics import (
        auc_ci,
        binary_metrics,
        screening_metrics,
        sensitivity_at_specificity,
        specificity_at_sensitivity,
    )

    protocol, ci = context.protocol, context.protocol.ci
    scored = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
    if scored.empty:
        out.notes.append("study-level metrics: not computed (the model gives no study score)")
        return
    y, s = scored["y_true"].to_numpy(), scored["score"].to_numpy(dtype=float)

    def auc() -> None:
        value = auc_ci(
            y, s, method=ci.auc, alpha=ci.alpha, n_bootstrap=ci.bootstrap_n, seed=ci.seed
        )
        out.estimate("auc", value, ci.auc)

    out.run("auc", auc)
    threshold = context.threshold
    if threshold is None:
        out.notes.append("threshold metrics: not computed (no threshold from model or protocol)")
    else:

        def at_threshold() -> None:
            result = binary_metrics(y, s, threshold, ci_method=ci.proportion, alpha=ci.alpha)
            for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
                out.estimate(name, getattr(result, name), ci.proportion)
            for name in ("tp", "fp", "tn", "fn"):
                out.metrics[name] = float(getattr(result, name))
            out.metrics["threshold"] = float(threshold)

        out.run("threshold metrics", at_threshold)
        if protocol.screening:

            def screening() -> None:
                result = screening_metrics(
                    y, s >= threshold, ci_method=ci.proportion, alpha=ci.alpha
                )
                out.estimate("recall_rate", result.recall_rate, ci.proportion)
                out.estimate("cdr_per_1000", result.cancer_detection_rate, ci.proportion)
                out.estimate("ppv1", result.ppv1, ci.proportion)

            out.run("screening", screening)
    n_boot = ci.bootstrap_n if ci.operating_point == "bootstrap" else 0
    method = f"{'bootstrap' if n_boot else ci.proportion} (threshold re-chosen)"
    # sensitivity at a fixed specificity and the mirror image; the threshold is re-chosen
    points = (
        ("sens_at_spec", protocol.operating_points.sens_at_spec, sensitivity_at_specificity,
         "sensitivity", "specificity"),
        ("spec_at_sens", protocol.operating_points.spec_at_sens, specificity_at_sensitivity,
         "specificity", "sensitivity"),
    )  # fmt: skip
    for prefix, targets, find, hit, other in points:
        for target in targets:
            key = f"{prefix}_{target:g}"

            def operating_point(target=target, key=key, find=find, hit=hit, other=other) -> None:
                point = find(
                    y,
                    s,
                    target,
                    n_bootstrap=n_boot,
                    seed=ci.seed,
                    ci_method=ci.proportion,
                    alpha=ci.alpha,
                )
                out.estimate(key, getattr(point, hit), method)
                out.metrics[f"{key}_{other}"] = float(getattr(point, other).estimate)
                out.metrics[f"{key}_threshold"] = float(point.threshold)

            out.run(key, operating_point)


def _froc_tables(frame: pd.DataFrame) -> tuple[list[tuple], list[tuple], list[str]]:
    candidates, nodules = [], []
    for study_uid, found, reference in zip(
        frame["study_uid"], frame["pred_findings"], frame["ref_lesions"], strict=True
    ):
        for f in found:
            if all(f.get(k) is not None for k in ("x_mm", "y_mm", "z_mm", "score")):
                candidates.append((study_uid, f["x_mm"], f["y_mm"], f["z_mm"], f["score"]))
        for lesion in reference:
            if all(lesion.get(k) is not None for k in ("x_mm", "y_mm", "z_mm", "diameter_mm")):
                nodules.append(
                    (
                        study_uid,
                        lesion["x_mm"],
                        lesion["y_mm"],
                        lesion["z_mm"],
                        lesion["diameter_mm"],
                    )
                )
    return candidates, nodules, frame["study_uid"].tolist()


def _detection(out: _Collector, frame: pd.DataFrame, context: EvalContext) -> FrocResult | None:
    from gai_research.evaluation.metrics import froc

    ci = context.protocol.ci
    holder: list[FrocResult] = []

    def block() -> None:
        candidates, nodules, scans = _froc_tables(frame)
        result = froc(
            candidates,
            nodules,
            scans,
            FROC_RATES,
            n_bootstrap=ci.bootstrap_n,
            seed=ci.seed,
            alpha=ci.alpha,
        )
        out.estimate("cpm", result.cpm, "bootstrap (scans)")
        for rate, estimate in zip(result.fps_per_scan, result.sensitivities, strict=True):
            out.estimate(f"froc_sens_fp_{rate:g}", estimate, "bootstrap (scans)")
        out.metrics["n_nodules"] = float(result.n_nodules)
        out.metrics["n_nodules_detected"] = float(result.n_detected)
        out.metrics["n_candidates"] = float(result.n_candidates)
        out.metrics["n_false_positives"] = float(result.n_false_positives)
        holder.append(result)

    out.run("froc", block)
    return holder[0] if holder else None


def _agreement(out: _Collector, frame: pd.DataFrame, context: EvalContext) -> None:
    import numpy as np

    from gai_research.evaluation.metrics import MetricsError, bland_altman, icc

    ci = context.protocol.ci
    for index, name in enumerate(context.protocol.reference.volumes):
        ref_column, pred_column = volume_columns(name)
        ref = frame[ref_column].to_numpy(dtype=float)
        pred = frame[pred_column].to_numpy(dtype=float)
        pair = np.isfinite(ref) & np.isfinite(pred) & frame["answered"].to_numpy()
        ref, pred = ref[pair], pred[pair]
        prefix = f"vol.{name}."
        out.metrics[f"{prefix}n_pairs"] = float(pair.sum())

        def block(ref: np.ndarray = ref, pred: np.ndarray = pred, prefix: str = prefix) -> None:
            if ref.size < 3:
                raise MetricsError(f"{ref.size} pair(s) of volumes; agreement needs at least 3")
            result = icc(ref, pred, kind="ICC(2,1)", alpha=ci.alpha)
            out.estimate(f"{prefix}icc", result.icc, "ICC(2,1) F-based")
            ba = bland_altman(pred, ref, alpha=ci.alpha)
            out.estimate(f"{prefix}ba_bias_ml", ba.bias, "t")
            out.estimate(f"{prefix}ba_loa_low_ml", ba.lower_loa, "Bland-Altman 1999")
            out.estimate(f"{prefix}ba_loa_high_ml", ba.upper_loa, "Bland-Altman 1999")
            out.estimate(
                f"{prefix}mae_ml", _mae(ref, pred, ci.alpha, ci.bootstrap_n, ci.seed), "bootstrap"
            )

        out.run(f"volume {name}", block)
        if index == 0:  # the first volume is also reported under the plain keys
            for metric in AGREEMENT:
                for suffix in ("", "_ci_low", "_ci_high"):
                    key = f"{prefix}{metric}{suffix}"
                    if key in out.metrics:
                        out.metrics[f"{metric}{suffix}"] = out.metrics[key]
                if f"{prefix}{metric}" in out.estimates:
                    out.estimates[metric] = out.estimates[f"{prefix}{metric}"]


def _mae(
    ref: Any, pred: Any, alpha: float, n_bootstrap: int, seed: int
) -> tuple[float, float, float]:
    """Mean absolute error with a seeded percentile bootstrap interval over cases."""
    import numpy as np

    errors = np.abs(np.asarray(pred) - np.asarray(ref))
    rng = np.random.default_rng(seed)
    means = errors[rng.integers(0, errors.size, size=(n_bootstrap, errors.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(errors.mean()), float(low), float(high)


def _latency(out: _Collector, cases: pd.DataFrame) -> None:
    from gai_research.evaluation.metrics import latency_summary

    answered = cases[cases["status"] == "ok"]["latency_s"]
    summary = latency_summary([None if math.isnan(v) else v for v in answered.astype(float)])
    out.metrics["latency_n"] = float(summary.n)
    for key, value in (
        ("latency_median_s", summary.median),
        ("latency_p25_s", summary.q1),
        ("latency_p75_s", summary.q3),
        ("latency_p95_s", summary.p95),
        ("latency_max_s", summary.max),
        ("latency_mean_s", summary.mean),
    ):
        out.metrics[key] = float(value)


# --- the whole evaluation --------------------------------------------------------------------
def _compute(
    cases: pd.DataFrame, context: EvalContext
) -> tuple[_Collector, pd.DataFrame, FrocResult | None, dict[str, int]]:
    frame, counts = _prepare(cases, context)
    out = _Collector()
    n_positive = int(frame["y_true"].sum())
    out.metrics.update(
        {
            "n_cases": float(len(frame)),
            "n_positive": float(n_positive),
            "n_negative": float(len(frame) - n_positive),
            "prevalence": n_positive / len(frame) if len(frame) else math.nan,
            "n_failed": float(counts["n_failed"]),
            "n_timeout": float(counts["n_timeout"]),
            "n_missing": float(counts["n_missing"]),
            "n_excluded": float(counts["n_excluded"]),
        }
    )
    froc_result = None
    if len(frame):
        _study_level(out, frame, context)
        if context.protocol.kind == TaskKind.DETECTION:
            froc_result = _detection(out, frame, context)
        if context.protocol.reference.volumes:
            _agreement(out, frame, context)
    _latency(out, cases)
    return out, frame, froc_result, counts


def _with_age_band(cases: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    import pandas as pd

    edges = protocol.subgroups.age_band
    if not edges or "age_years" not in cases.columns:
        return cases
    bins = [-math.inf, *edges, math.inf]
    bands = pd.cut(
        pd.to_numeric(cases["age_years"], errors="coerce").astype(float),
        bins=bins,
        labels=age_band_labels(edges),
        right=False,
    )
    return cases.assign(age_band=bands.astype(object).where(bands.notna(), ""))


def _subgroup_values(frame: pd.DataFrame, variable: str) -> list[str]:
    if variable not in frame.columns:
        return []
    values = frame[variable].dropna().astype(str)
    return sorted(v for v in values.unique() if v != "")


def evaluate_cases(cases: pd.DataFrame, context: EvalContext) -> Evaluation:
    """Every metric of ``context.protocol`` on ``cases`` (a checked per-case table)."""
    protocol = context.protocol
    cases = _with_age_band(cases, protocol)
    out, frame, froc_result, counts = _compute(cases, context)
    wanted = {"n_cases", "n_positive", "n_failed", "n_timeout"}
    for name in protocol.endpoint_names():
        wanted |= {name, f"{name}_ci_low", f"{name}_ci_high"}
    subgroups: dict[str, dict[str, dict[str, float]]] = {}
    for variable in protocol.subgroups.variables():
        if variable == "site" and context.site != ALL_SITES:
            continue
        for value in _subgroup_values(cases, variable):
            sub, _, _, _ = _compute(cases[cases[variable].astype(str) == value], context)
            kept = {k: v for k, v in sub.metrics.items() if k in wanted}
            subgroups.setdefault(variable, {})[value] = kept
            for key, metric in kept.items():
                out.metrics[f"sg.{variable}.{key_part(value)}.{key}"] = metric
            out.notes += [f"subgroup {variable}={value}: {note}" for note in sub.notes]
    return Evaluation(
        metrics=out.metrics,
        estimates=out.estimates,
        subgroups=subgroups,
        notes=out.notes,
        threshold=context.threshold,
        cases=frame,
        froc=froc_result,
        counts=counts,
    )
