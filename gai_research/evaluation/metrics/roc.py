"""Area under the ROC curve: DeLong variance (Sun & Xu's fast algorithm), CIs, paired test.

Scores are oriented so that a higher score means "more likely positive"; unlike pROC's
``direction="auto"``, the orientation is never flipped, so a model worse than chance
shows an AUC below 0.5. Ties count one half (the Mann-Whitney convention).

DeLong et al. (1988) estimate the covariance of correlated AUCs from the structural
components ("placements") of each case. Sun & Xu (2014) showed those components come
from three midrank computations (positives alone, negatives alone, all cases), so the
whole covariance costs O(n log n) instead of the O(m n) comparisons of the original.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gai_research.evaluation.metrics._validate import (
    as_binary,
    as_scores,
    check_alpha,
    check_same_length,
    z_critical,
)
from gai_research.evaluation.metrics.bootstrap import (
    batch_size,
    check_resamples,
    percentile_interval,
    resample_counts,
)
from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.types import DelongTest, Estimate

__all__ = ["auc_ci", "delong_covariance", "delong_test"]


def _split_classes(y_true: Any, *scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative scores as ``(k, m)`` and ``(k, n)`` arrays, k = len(scores)."""
    y = as_binary(y_true, "y_true")
    arrays = [
        as_scores(s, f"scores[{i}]" if len(scores) > 1 else "y_score") for i, s in enumerate(scores)
    ]
    check_same_length(y_true=y, **{f"scores_{i}": a for i, a in enumerate(arrays)})
    stacked = np.vstack(arrays)
    positives, negatives = stacked[:, y], stacked[:, ~y]
    if positives.shape[1] < 2 or negatives.shape[1] < 2:
        raise MetricsError(
            f"an AUC confidence interval needs at least 2 positive and 2 negative cases, "
            f"got {positives.shape[1]} and {negatives.shape[1]}",
            hint="check y_true, or report the AUC as not estimable for this subgroup",
        )
    return positives, negatives


def delong_covariance(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix by Sun & Xu's midrank algorithm.

    ``positives`` is ``(k, m)`` (scores of the m positive cases under k predictors),
    ``negatives`` is ``(k, n)``. Returns ``(aucs, covariance)`` with shapes ``(k,)`` and
    ``(k, k)``; the covariance uses unbiased (n - 1) variances of the placements, as
    pROC does.
    """
    from scipy.stats import rankdata

    m, n = positives.shape[1], negatives.shape[1]
    rank_pos = rankdata(positives, method="average", axis=1)
    rank_neg = rankdata(negatives, method="average", axis=1)
    rank_all = rankdata(np.hstack([positives, negatives]), method="average", axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    # placement of each positive among the negatives, and of each negative among positives
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


class _MannWhitney:
    """The AUC of any resample of fixed cases, from multiplicity counts.

    The negatives are sorted once; for each positive, ``left``/``right`` bracket the
    negatives it beats or ties. With a resample's counts ``w`` (positives, input order)
    and ``v`` (negatives, sorted order) and ``C = [0, cumsum(v)]``, the Mann-Whitney sum
    is ``sum_i w_i (C[left_i] + C[right_i]) / 2``: exactly the AUC of the resampled cases,
    ties counted one half, with no sorting per resample.
    """

    def __init__(self, positives: np.ndarray, negatives: np.ndarray) -> None:
        self.m, self.n = positives.size, negatives.size
        self.sorted_negatives = np.sort(negatives)
        self.left = np.searchsorted(self.sorted_negatives, positives, side="left")
        self.right = np.searchsorted(self.sorted_negatives, positives, side="right")

    def aucs(self, w_pos: np.ndarray, w_neg_sorted: np.ndarray) -> np.ndarray:
        """AUCs of a batch: ``w_pos`` is ``(b, m)``, ``w_neg_sorted`` is ``(b, n)``."""
        b = w_pos.shape[0]
        cumulative = np.zeros((b, self.n + 1))
        np.cumsum(w_neg_sorted, axis=1, out=cumulative[:, 1:])
        wins = np.einsum("ij,ij->i", w_pos, cumulative[:, self.left])
        wins += np.einsum("ij,ij->i", w_pos, cumulative[:, self.right])
        return wins / (2.0 * w_pos.sum(axis=1) * w_neg_sorted.sum(axis=1))


def _bootstrap_aucs(
    positives: np.ndarray, negatives: np.ndarray, n_resamples: int, seed: int | None
) -> np.ndarray:
    """AUCs of ``n_resamples`` stratified bootstrap resamples.

    Positives and negatives are resampled separately, each from its own random stream
    (so the result does not depend on the batch size). Multinomial counts are
    exchangeable, so the negatives' counts are drawn directly for the sorted positions.
    """
    statistic = _MannWhitney(positives, negatives)
    batch = batch_size(2 * (statistic.m + statistic.n), n_resamples)
    rng_pos, rng_neg = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    batches = zip(
        resample_counts(rng_pos, statistic.m, n_resamples, batch),
        resample_counts(rng_neg, statistic.n, n_resamples, batch),
        strict=True,
    )
    return np.concatenate([statistic.aucs(w_pos, w_neg) for w_pos, w_neg in batches])


def auc_ci(
    y_true: Any,
    y_score: Any,
    method: str = "delong",
    alpha: float = 0.05,
    n_bootstrap: int = 2000,
    seed: int | None = 0,
) -> Estimate:
    """The ROC AUC with a two-sided ``1 - alpha`` confidence interval.

    ``method="delong"`` (default): AUC +/- z * sqrt(DeLong variance), clipped to [0, 1],
    as pROC's ``ci.auc``. ``method="bootstrap"``: percentile interval of ``n_bootstrap``
    stratified resamples (positives and negatives resampled separately, pROC's default
    ``boot.stratified=TRUE``), reproducible through ``seed``.
    """
    alpha = check_alpha(alpha)
    positives, negatives = _split_classes(y_true, y_score)
    if method == "delong":
        aucs, covariance = delong_covariance(positives, negatives)
        auc, se = float(aucs[0]), math.sqrt(max(float(covariance[0, 0]), 0.0))
        half = z_critical(alpha) * se
        return Estimate(auc, max(auc - half, 0.0), min(auc + half, 1.0))
    if method == "bootstrap":
        n_resamples = check_resamples(n_bootstrap)
        aucs, _ = delong_covariance(positives, negatives)
        resampled = _bootstrap_aucs(positives[0], negatives[0], n_resamples, seed)
        low, high = percentile_interval(resampled, alpha)
        return Estimate(float(aucs[0]), low, high)
    raise MetricsError(
        f"unknown AUC interval method {method!r}", hint="use 'delong' or 'bootstrap'"
    )


def delong_test(y_true: Any, scores_a: Any, scores_b: Any, alpha: float = 0.05) -> DelongTest:
    """Paired DeLong test of AUC(a) = AUC(b) on the same cases, two-sided.

    ``z = (auc_a - auc_b) / sqrt(var_a + var_b - 2 cov)``; the interval of the difference
    is ``difference +/- z_crit * se``. This reproduces pROC's
    ``roc.test(roc1, roc2, method="delong", paired=TRUE)``. Identical predictors give
    ``z = 0`` and ``p = 1``.
    """
    from scipy.stats import norm

    alpha = check_alpha(alpha)
    positives, negatives = _split_classes(y_true, scores_a, scores_b)
    aucs, covariance = delong_covariance(positives, negatives)
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    if variance <= 1e-15 * max(float(covariance[0, 0]), float(covariance[1, 1]), 1e-300):
        if difference == 0.0:
            z, p_value = 0.0, 1.0
        else:
            z, p_value = math.copysign(math.inf, difference), 0.0
        se = 0.0
    else:
        se = math.sqrt(variance)
        z = difference / se
        p_value = float(2.0 * norm.sf(abs(z)))
    half = z_critical(alpha) * se
    return DelongTest(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        z=float(z),
        p_value=p_value,
        ci_low=difference - half,
        ci_high=difference + half,
        var_a=float(covariance[0, 0]),
        var_b=float(covariance[1, 1]),
        covariance=float(covariance[0, 1]),
        n_positive=int(positives.shape[1]),
        n_negative=int(negatives.shape[1]),
        alpha=alpha,
    )
