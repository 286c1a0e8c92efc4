"""Pre-specified comparisons of two models on the same studies (paired DeLong).

A protocol lists them (``comparisons:``); the runner computes them from the models'
per-case tables and logs them on the evaluation's parent run as
``cmp.<A>.vs.<B>.delong_p``, ``..auc_diff``, ``..ci_low``, ``..ci_high``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.evaluation.protocol import Protocol

__all__ = ["compare_models"]


def compare_models(
    tables: dict[str, pd.DataFrame], protocol: Protocol
) -> tuple[dict[str, float], list[str]]:
    """The protocol's pre-specified comparisons (paired DeLong on the studies both scored).

    Returns the parent-run metrics ``cmp.<A>.vs.<B>.{delong_p, auc_diff, ci_low, ci_high,
    auc_a, auc_b, z, n_cases}`` and notes for comparisons that could not be made.
    """
    import numpy as np

    from gai_research.evaluation.metrics import MetricsError, delong_test

    metrics: dict[str, float] = {}
    notes: list[str] = []
    for comparison in protocol.comparisons:
        a, b = comparison.models
        prefix = f"cmp.{a}.vs.{b}."
        if a not in tables or b not in tables:
            notes.append(f"{a} vs {b}: not compared (a model was not evaluated)")
            continue
        left = tables[a][["study_uid", "y_true", "score", "status"]]
        right = tables[b][["study_uid", "score", "status"]]
        joined = left.merge(right, on="study_uid", suffixes=("_a", "_b"))
        both = (
            (joined["status_a"] == "ok")
            & (joined["status_b"] == "ok")
            & np.isfinite(joined["score_a"].astype(float))
            & np.isfinite(joined["score_b"].astype(float))
        )
        joined = joined[both]
        metrics[f"{prefix}n_cases"] = float(len(joined))
        try:
            test = delong_test(
                joined["y_true"].to_numpy(),
                joined["score_a"].to_numpy(dtype=float),
                joined["score_b"].to_numpy(dtype=float),
                alpha=protocol.ci.alpha,
            )
        except MetricsError as exc:
            notes.append(f"{a} vs {b}: not compared ({exc.message})")
            continue
        metrics.update(
            {
                f"{prefix}delong_p": test.p_value,
                f"{prefix}auc_diff": test.difference,
                f"{prefix}ci_low": test.ci_low,
                f"{prefix}ci_high": test.ci_high,
                f"{prefix}auc_a": test.auc_a,
                f"{prefix}auc_b": test.auc_b,
                f"{prefix}z": test.z,
            }
        )
    return metrics, notes
