"""How fast the evaluation metrics are on report-sized data, against floors and peers.

Measured in one run (median of --repeat runs each):

- ``binary_metrics`` and ``auc_ci`` (DeLong) on --n cases, with scikit-learn's
  ``roc_auc_score`` on the same cases as the floor (an AUC without any interval);
- ``auc_ci`` with a stratified bootstrap of --resamples resamples on --n cases (our
  vectorised multiplicity-count bootstrap) against the straightforward loop that resamples
  and calls ``roc_auc_score`` per resample (timed on --loop-resamples resamples and
  scaled up to --resamples);
- DeLong's variance by Sun & Xu's midrank algorithm (ours, O(n log n)) against the
  original O(m n) placement matrix written out here (the floor), at each of the
  --n-quadratic sizes, reported as ratios, checking that both give the same AUC and
  variance;
- ``froc`` with its scan-level bootstrap on a LUNA16-sized study (--scans scans,
  --froc-candidates candidates, 1,000 resamples).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def timed(function: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    return y, np.round(rng.normal(size=n) + 1.2 * y, 3)  # rounded: ties, as real scores have


def delong_quadratic(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) as written: the m x n matrix of pairwise comparisons."""
    positives, negatives = score[y], score[~y]
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (
        positives[:, None] == negatives[None, :]
    )
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    variance = v10.var(ddof=1) / positives.size + v01.var(ddof=1) / negatives.size
    return float(psi.mean()), float(variance)


def delong_fast(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    from gai_research.evaluation.metrics.roc import delong_covariance

    aucs, covariance = delong_covariance(score[None, y], score[None, ~y])
    return float(aucs[0]), float(covariance[0, 0])


def bootstrap_loop(y: np.ndarray, score: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The straightforward stratified bootstrap: resample indices, call roc_auc_score."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(y), np.flatnonzero(~y)
    out = np.empty(resamples)
    for i in range(resamples):
        index = np.concatenate(
            [rng.choice(positives, positives.size), rng.choice(negatives, negatives.size)]
        )
        out[i] = roc_auc_score(y[index], score[index])
    return out


def froc_study(n_scans: int, n_candidates: int, seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(seed)
    scans = [f"scan{i}" for i in range(n_scans)]
    nodules = [
        (scans[i], *rng.uniform(-150, 150, 3), float(rng.uniform(3, 30)))
        for i in rng.integers(0, n_scans, int(1.3 * n_scans))
    ]
    candidates = [  # false candidates: mostly low probabilities, as after FP reduction
        (scans[i], *rng.uniform(-150, 150, 3), float(rng.beta(0.3, 12)))
        for i in rng.integers(0, n_scans, n_candidates)
    ]
    for scan, x, y, z, _ in nodules[: int(0.9 * len(nodules))]:
        candidates.append((scan, x + 1.0, y, z, float(rng.uniform(0.3, 1.0))))
    return candidates, nodules, scans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=100_000, help="cases for the large runs (default 100,000)"
    )
    parser.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples (default 2,000)"
    )
    parser.add_argument(
        "--loop-resamples",
        type=int,
        default=40,
        help="resamples timed for the loop peer (default 40)",
    )
    parser.add_argument(
        "--n-quadratic",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[1000, 5000, 15000],
        help="case counts for fast vs O(n^2) DeLong, comma-separated (default 1000,5000,15000)",
    )
    parser.add_argument(
        "--scans", type=int, default=888, help="scans in the FROC study (default 888)"
    )
    parser.add_argument(
        "--froc-candidates", type=int, default=100_000, help="false candidates in the FROC study"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from gai_research.evaluation.metrics import auc_ci, binary_metrics, froc

    y, score = cases(args.n, args.seed)
    auc_ci(y[:1000], score[:1000])  # load scipy/statsmodels before timing
    binary_metrics(y[:10], score[:10], 0.5)
    rows: list[tuple[str, str, float, str]] = []

    floor, _ = timed(lambda: roc_auc_score(y, score), args.repeat)
    rows.append(("floor: sklearn roc_auc_score (no CI)", f"n={args.n:,}", floor, "1.0x floor"))
    seconds, _ = timed(lambda: binary_metrics(y, score, 0.5), args.repeat)
    rows.append(
        ("binary_metrics (5 Wilson CIs)", f"n={args.n:,}", seconds, f"{seconds / floor:.2f}x floor")
    )
    seconds, _ = timed(lambda: auc_ci(y, score), args.repeat)
    rows.append(("auc_ci delong", f"n={args.n:,}", seconds, f"{seconds / floor:.1f}x floor"))

    ours, _ = timed(
        lambda: auc_ci(y, score, method="bootstrap", n_bootstrap=args.resamples, seed=args.seed),
        args.repeat,
    )
    loop, _ = timed(lambda: bootstrap_loop(y, score, args.loop_resamples, args.seed), 1)
    loop_scaled = loop * args.resamples / args.loop_resamples
    size = f"n={args.n:,}, B={args.resamples:,}"
    rows.append(
        ("auc_ci bootstrap (vectorised)", size, ours, f"{loop_scaled / ours:.1f}x faster than loop")
    )
    rows.append(
        (
            f"peer: loop of roc_auc_score (x{args.resamples // args.loop_resamples} of {args.loop_resamples})",
            size,
            loop_scaled,
            "",
        )
    )

    same = True
    for n_quadratic in args.n_quadratic:
        yq, sq = cases(n_quadratic, args.seed + 1)
        fast, (auc_f, var_f) = timed(lambda yq=yq, sq=sq: delong_fast(yq, sq), args.repeat)
        slow, (auc_s, var_s) = timed(lambda yq=yq, sq=sq: delong_quadratic(yq, sq), args.repeat)
        agree = np.isclose(auc_f, auc_s, rtol=1e-12, atol=0) and np.isclose(
            var_f, var_s, rtol=1e-9, atol=0
        )
        same = same and bool(agree)
        rows.append(
            (
                "DeLong fast (Sun & Xu midranks)",
                f"n={n_quadratic:,}",
                fast,
                f"{slow / fast:.1f}x the speed of the O(m n) floor",
            )
        )
        rows.append(
            (
                "floor: DeLong O(m n) placement matrix",
                f"n={n_quadratic:,}",
                slow,
                f"same AUC and variance: {bool(agree)}",
            )
        )

    candidates, nodules, scans = froc_study(args.scans, args.froc_candidates, args.seed)
    seconds, result = timed(
        lambda: froc(candidates, nodules, scans, n_bootstrap=1000, seed=args.seed), 1
    )
    rows.append(
        (
            "froc with 1,000 scan resamples",
            f"{args.scans} scans, {len(candidates):,} candidates",
            seconds,
            f"CPM {result.cpm.estimate:.3f}",
        )
    )

    width = max(len(r[0]) for r in rows)
    size_width = max(len(r[1]) for r in rows)
    print(f"{'measurement':<{width}}  {'size':<{size_width}}  {'seconds':>9}  ratio")
    for name, size, seconds, ratio in rows:
        print(f"{name:<{width}}  {size:<{size_width}}  {seconds:>9.4f}  {ratio}")
    print(f"AUC {auc_f:.6f} / {auc_s:.6f}, DeLong variance {var_f:.6e} / {var_s:.6e}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
