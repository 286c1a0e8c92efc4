"""Input checks shared by the metrics: one place that turns user input into clean arrays."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import numpy as np

from gai_research.evaluation.metrics.errors import MetricsError

__all__ = ["as_binary", "as_scores", "check_alpha", "check_same_length", "z_critical"]


def as_binary(values: Any, name: str) -> np.ndarray:
    """A 1-D boolean array from booleans or 0/1 numbers."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise MetricsError(
            f"{name} must be one-dimensional, got shape {array.shape}",
            hint="pass one label per case",
        )
    if array.dtype == bool:
        return array
    if array.dtype.kind not in "iuf":
        raise MetricsError(
            f"{name} must hold booleans or 0/1 numbers, got dtype {array.dtype}",
            hint="map the labels first, e.g. y_true = (outcome == 'Poor')",
        )
    valid = np.isin(array, (0, 1))
    if not valid.all():
        bad = array[~valid][:3].tolist()
        raise MetricsError(
            f"{name} must hold only 0 and 1, found {bad}",
            hint="drop cases without a reference label before computing metrics",
        )
    return array.astype(bool)


def as_scores(values: Any, name: str) -> np.ndarray:
    """A 1-D float array without NaN or infinity."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise MetricsError(
            f"{name} must be numbers", hint="convert the scores to float first"
        ) from error
    if array.ndim != 1:
        raise MetricsError(
            f"{name} must be one-dimensional, got shape {array.shape}",
            hint="pass one score per case",
        )
    bad = ~np.isfinite(array)
    if bad.any():
        raise MetricsError(
            f"{name} has {int(bad.sum())} missing or infinite values",
            hint="cases the model failed on are a separate count (see latency_summary); "
            "drop or impute them explicitly before computing accuracy metrics",
        )
    return array


def check_same_length(**arrays: Sized) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise MetricsError(
            f"inputs differ in length: {described}", hint="pass one value per case in each"
        )


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise MetricsError(
            f"alpha must lie strictly between 0 and 1, got {alpha}",
            hint="alpha=0.05 gives 95% confidence intervals",
        )
    return alpha


def z_critical(alpha: float) -> float:
    """The two-sided standard normal critical value, 1.959963984540054 for alpha = 0.05."""
    from scipy.stats import norm

    return float(norm.isf(alpha / 2.0))
