"""Vectorised bootstrap: resamples as multiplicity counts, drawn in memory-bounded batches.

A bootstrap resample of ``n`` items is fully described by how often each item was drawn
(a multinomial count vector summing to ``n``). Statistics that are weighted sums over
items sorted once (AUC, ROC points, FROC curves) can then be evaluated for a whole batch
of resamples with a few array operations, without re-sorting or copying the data per
resample; this is what makes 2,000 resamples of 100,000 cases practical on 2 cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gai_research.evaluation.metrics.errors import MetricsError

__all__ = ["batch_size", "check_resamples", "percentile_interval", "resample_counts"]

# about 16 MiB of float64 per batch array: measured fastest on 2 cores (cache-sized)
_BATCH_ELEMENTS = 2_000_000


def check_resamples(n_resamples: int) -> int:
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise MetricsError(
            f"the number of bootstrap resamples must be a positive integer, got {n_resamples!r}",
            hint="2,000 resamples is the usual choice (pROC's default)",
        )
    return int(n_resamples)


def batch_size(n_items: int, n_resamples: int) -> int:
    """How many resamples of ``n_items`` items fit one batch of about 16 MiB."""
    return max(1, min(n_resamples, _BATCH_ELEMENTS // max(n_items, 1)))


def resample_counts(
    rng: np.random.Generator, n_items: int, n_resamples: int, batch: int
) -> Iterator[np.ndarray]:
    """Yield ``(b, n_items)`` float arrays: how often each item is drawn in each resample.

    Every row sums to ``n_items`` (sampling with replacement, the ordinary bootstrap);
    the rows over all batches number ``n_resamples``.
    """
    done = 0
    while done < n_resamples:
        b = min(batch, n_resamples - done)
        counts = np.empty((b, n_items))
        for row in counts:  # one bincount per row stays in cache; a single big one does not
            row[:] = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items)
        yield counts
        done += b


def percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The percentile bootstrap interval (linear interpolation, R's type 7), NaNs ignored.

    Returns NaNs when no resample gave a finite value.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)
