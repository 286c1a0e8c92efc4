"""FROC analysis and the competition performance metric (CPM) by the LUNA16 rules.

Rules, as in LUNA16's evaluation script (``noduleCADEvaluationLUNA16.py``, Setio et al.
2017):

- a candidate hits a nodule when its distance to the nodule's centre is below the
  nodule's radius (``distance < diameter_mm / 2``, world millimetres; the script's
  ``dist < radiusSquared`` test, so a candidate exactly on the sphere is a miss);
- of the candidates hitting a nodule, the one with the highest probability is the
  nodule's true positive; the other hits on it are ignored (neither TP nor FP);
- candidates that hit no nodule are false positives, except those hitting an *excluded*
  finding (LUNA16's ``annotations_excluded.csv``; a negative diameter there means 10 mm),
  which are ignored;
- missed nodules count in the number of nodules; every scan evaluated counts in the
  number of scans, including scans without nodules or without candidates;
- the FROC curve has one point per distinct probability (plus (0, 0)); the sensitivity
  at a false-positive rate is interpolated linearly on it (``np.interp``, as the script),
  and beyond the curve's last point it stays at the curve's highest sensitivity;
- CPM is the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan;
- confidence intervals: percentile intervals of a bootstrap that resamples scans with
  replacement (the script's ``computeFROC_bootstrap``), 1,000 resamples by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from gai_research.evaluation.metrics._validate import check_alpha
from gai_research.evaluation.metrics.bootstrap import (
    batch_size,
    check_resamples,
    percentile_interval,
    resample_counts,
)
from gai_research.evaluation.metrics.errors import MetricsError
from gai_research.evaluation.metrics.types import Estimate, FrocResult

__all__ = ["LUNA16_FPS_PER_SCAN", "froc", "sensitivity_at_fps"]

LUNA16_FPS_PER_SCAN: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

# LUNA16's CSV headers, accepted as aliases of ours
_ALIASES = {"seriesuid": "scan_id", "coordX": "x", "coordY": "y", "coordZ": "z"}
_EXCLUDED_DEFAULT_DIAMETER_MM = 10.0


def _table(rows: Any, last: str, what: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """``(scan ids, (n, 3) coordinates, last column)`` from a DataFrame or row tuples."""
    columns = ("scan_id", "x", "y", "z", last)
    if hasattr(rows, "columns"):
        frame = rows.rename(columns=_ALIASES)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MetricsError(
                f"{what} table lacks columns {missing}",
                hint=f"give columns {list(columns)} (or LUNA16's seriesuid/coordX/coordY/coordZ)",
            )
        ids = frame["scan_id"].tolist()
        xyz = frame[["x", "y", "z"]].to_numpy(dtype=float).reshape(-1, 3)
        value = frame[last].to_numpy(dtype=float)
    else:
        rows = list(rows)
        if any(len(row) != 5 for row in rows):
            raise MetricsError(
                f"each {what} row must be (scan_id, x, y, z, {last})",
                hint="or pass a DataFrame with those columns",
            )
        ids = [row[0] for row in rows]
        numbers = np.asarray([row[1:] for row in rows], dtype=float).reshape(-1, 4)
        xyz, value = numbers[:, :3], numbers[:, 3]
    if not (np.isfinite(xyz).all() and np.isfinite(value).all()):
        raise MetricsError(f"{what} table has missing or infinite numbers")
    return ids, xyz, value


def _codes(ids: Sequence[Any], index: dict[Any, int], what: str) -> np.ndarray:
    try:
        return np.fromiter((index[i] for i in ids), dtype=np.intp, count=len(ids))
    except KeyError as error:
        raise MetricsError(
            f"{what} refer to scan {error.args[0]!r}, which is not among the scans evaluated",
            hint="list every evaluated scan in `scans`, or drop rows of other scans",
        ) from None


def _hits(
    c_scan: np.ndarray,
    c_xyz: np.ndarray,
    n_scan: np.ndarray,
    n_xyz: np.ndarray,
    n_radius: np.ndarray,
    n_scans: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (candidate, nodule) of the same scan with distance < radius."""
    order = np.argsort(n_scan, kind="stable")
    per_scan = np.bincount(n_scan, minlength=n_scans)
    starts = np.cumsum(per_scan) - per_scan
    per_candidate = per_scan[c_scan]
    candidate = np.repeat(np.arange(c_scan.size), per_candidate)
    offset = np.arange(candidate.size) - np.repeat(
        np.cumsum(per_candidate) - per_candidate, per_candidate
    )
    nodule = order[starts[c_scan[candidate]] + offset]
    distance2 = ((c_xyz[candidate] - n_xyz[nodule]) ** 2).sum(axis=1)
    hit = distance2 < n_radius[nodule] ** 2
    return candidate[hit], nodule[hit]


def sensitivity_at_fps(
    fps: np.ndarray, sensitivity: np.ndarray, rates: Sequence[float]
) -> np.ndarray:
    """Interpolate FROC curves at ``rates`` false positives per scan.

    ``fps``/``sensitivity`` are ``(p,)`` or ``(b, p)`` arrays whose rows are
    non-decreasing and start at fps = 0. Equal to ``np.interp`` on each row after keeping,
    for repeated fps values, the highest sensitivity (the point reached last), which is
    what ``np.interp`` does on the LUNA16 script's curve; beyond the last point the last
    sensitivity is kept.
    """
    fps2 = np.atleast_2d(fps)
    sens2 = np.atleast_2d(sensitivity)
    rows = np.arange(fps2.shape[0])
    last = fps2.shape[1] - 1
    out = np.empty((fps2.shape[0], len(rates)))
    for j, rate in enumerate(rates):
        right = np.count_nonzero(fps2 <= rate, axis=1)  # first point beyond the rate
        left = right - 1
        inside = right <= last
        nxt = np.minimum(right, last)
        x0, x1 = fps2[rows, left], fps2[rows, nxt]
        y0, y1 = sens2[rows, left], sens2[rows, nxt]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(inside, (y1 - y0) * (rate - x0) / (x1 - x0), 0.0)
        out[:, j] = y0 + step
    return out if np.ndim(fps) == 2 else out[0]


class _Entries:
    """The FROC list: one entry per detected nodule (TP) and per false positive."""

    def __init__(
        self, tp_prob: np.ndarray, tp_scan: np.ndarray, fp_prob: np.ndarray, fp_scan: np.ndarray
    ) -> None:
        prob = np.concatenate([tp_prob, fp_prob])
        is_tp = np.concatenate([np.ones(tp_prob.size, bool), np.zeros(fp_prob.size, bool)])
        order = np.argsort(-prob, kind="stable")
        self.is_tp = is_tp[order]
        self.scan = np.concatenate([tp_scan, fp_scan])[order]
        sorted_prob = prob[order]
        self.ends = (
            np.append(np.flatnonzero(np.diff(sorted_prob)), prob.size - 1)
            if prob.size
            else np.zeros(0, np.intp)
        )
        self.thresholds = np.append(np.inf, sorted_prob[self.ends])

    def counts(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative TP and FP counts at each threshold, per row of scan weights."""
        w = np.ones((1, self.scan.size)) if weights is None else weights[:, self.scan]
        tp = np.zeros((w.shape[0], self.ends.size + 1))
        fp = np.zeros((w.shape[0], self.ends.size + 1))
        if self.ends.size:
            tp[:, 1:] = np.cumsum(w * self.is_tp, axis=1)[:, self.ends]
            fp[:, 1:] = np.cumsum(w * ~self.is_tp, axis=1)[:, self.ends]
        return tp, fp


def _classify(
    c_scan: np.ndarray,
    c_xyz: np.ndarray,
    c_prob: np.ndarray,
    n_scan: np.ndarray,
    n_xyz: np.ndarray,
    n_diameter: np.ndarray,
    exclusions: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    n_scans: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each nodule's detecting probability (NaN if missed) and each candidate's outcome."""
    cand, nod = _hits(c_scan, c_xyz, n_scan, n_xyz, n_diameter / 2.0, n_scans)
    nodule_probability = np.full(n_diameter.size, np.nan)
    np.fmax.at(nodule_probability, nod, c_prob[cand])
    outcome = np.full(c_prob.size, "fp", dtype="<U7")
    outcome[cand] = "ignored"
    # the true positive of each nodule: its highest-probability hit (first on ties)
    best = np.lexsort((cand, -c_prob[cand], nod))
    first = np.ones(best.size, bool)
    first[1:] = nod[best][1:] != nod[best][:-1]
    outcome[cand[best][first]] = "tp"
    if exclusions is not None:
        e_scan, e_xyz, e_diameter = exclusions
        ignored, _ = _hits(c_scan, c_xyz, e_scan, e_xyz, e_diameter / 2.0, n_scans)
        outcome[ignored[outcome[ignored] == "fp"]] = "ignored"
    return nodule_probability, outcome


def _bootstrap(
    entries: _Entries,
    nodules_per_scan: np.ndarray,
    rates: tuple[float, ...],
    n_resamples: int,
    seed: int | None,
) -> np.ndarray:
    """Sensitivities at ``rates`` for ``n_resamples`` resamples of the scans."""
    n_scans = nodules_per_scan.size
    rng = np.random.default_rng(seed)
    batch = batch_size(4 * (entries.scan.size + n_scans), n_resamples)
    out = []
    for weights in resample_counts(rng, n_scans, n_resamples, batch):
        tp, fp = entries.counts(weights)
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample without nodules
            sensitivity = tp / (weights @ nodules_per_scan)[:, None]
        out.append(sensitivity_at_fps(fp / n_scans, sensitivity, rates))
    return np.concatenate(out)


def froc(
    candidates: Any,
    nodules: Any,
    scans: Iterable[Any],
    fps_per_scan: Sequence[float] = LUNA16_FPS_PER_SCAN,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    excluded: Any = None,
) -> FrocResult:
    """FROC curve, sensitivities at ``fps_per_scan`` and their mean (CPM), LUNA16 rules.

    ``candidates``: rows ``(scan_id, x, y, z, probability)``; ``nodules``: rows
    ``(scan_id, x, y, z, diameter_mm)``; coordinates in world millimetres; tuples or a
    DataFrame with those columns (LUNA16's ``seriesuid``/``coordX``/``coordY``/``coordZ``
    are accepted too). ``scans``: every scan evaluated, including scans without nodules:
    it sets the false-positive rate's denominator. ``excluded``: optional findings whose
    hits are ignored (LUNA16's non-nodules and small nodules), rows as ``nodules``.
    ``n_bootstrap=0`` skips the bootstrap (the intervals are then NaN).
    See the module docstring for the rules.
    """
    alpha = check_alpha(alpha)
    rates = tuple(float(r) for r in fps_per_scan)
    if not rates or min(rates) < 0:
        raise MetricsError("fps_per_scan must be non-negative rates", hint="LUNA16 uses 1/8 to 8")
    scan_list = list(scans)
    index = {scan: i for i, scan in enumerate(scan_list)}
    if len(index) != len(scan_list):
        raise MetricsError("scans lists a scan more than once", hint="pass each scan id once")
    if not scan_list:
        raise MetricsError("no scans to evaluate", hint="pass every evaluated scan id in `scans`")
    c_ids, c_xyz, c_prob = _table(candidates, "probability", "candidate")
    n_ids, n_xyz, n_diameter = _table(nodules, "diameter_mm", "nodule")
    if n_diameter.size == 0:
        raise MetricsError("no nodules: sensitivity is undefined", hint="check the reference table")
    if (n_diameter <= 0).any():
        raise MetricsError(
            "nodule diameters must be positive", hint="give the reference diameter in mm"
        )
    c_scan = _codes(c_ids, index, "candidates")
    n_scan = _codes(n_ids, index, "nodules")
    n_scans, n_nodules = len(scan_list), n_diameter.size
    if excluded is not None:
        e_ids, e_xyz, e_diameter = _table(excluded, "diameter_mm", "excluded finding")
        e_diameter = np.where(e_diameter < 0, _EXCLUDED_DEFAULT_DIAMETER_MM, e_diameter)
        exclusions = (_codes(e_ids, index, "excluded findings"), e_xyz, e_diameter)
    else:
        exclusions = None
    nodule_probability, outcome = _classify(
        c_scan, c_xyz, c_prob, n_scan, n_xyz, n_diameter, exclusions, n_scans
    )

    detected = np.isfinite(nodule_probability)
    is_fp = outcome == "fp"
    entries = _Entries(nodule_probability[detected], n_scan[detected], c_prob[is_fp], c_scan[is_fp])
    tp, fp = entries.counts()
    curve_fps, curve_sens = fp[0] / n_scans, tp[0] / n_nodules
    point = sensitivity_at_fps(curve_fps, curve_sens, rates)

    n_resamples = check_resamples(n_bootstrap) if n_bootstrap else 0
    if n_resamples:
        nodules_per_scan = np.bincount(n_scan, minlength=n_scans).astype(float)
        boot = _bootstrap(entries, nodules_per_scan, rates, n_resamples, seed)
        bounds = [percentile_interval(boot[:, j], alpha) for j in range(len(rates))]
        cpm_bounds = percentile_interval(boot.mean(axis=1), alpha)
    else:
        bounds = [(np.nan, np.nan)] * len(rates)
        cpm_bounds = (np.nan, np.nan)

    for array in (curve_fps, curve_sens, entries.thresholds, nodule_probability, outcome):
        array.setflags(write=False)
    return FrocResult(
        cpm=Estimate(float(point.mean()), *cpm_bounds),
        fps_per_scan=rates,
        sensitivities=tuple(
            Estimate(float(p), float(lo), float(hi))
            for p, (lo, hi) in zip(point, bounds, strict=True)
        ),
        n_scans=n_scans,
        n_nodules=n_nodules,
        n_detected=int(detected.sum()),
        n_candidates=int(c_prob.size),
        n_false_positives=int(is_fp.sum()),
        n_ignored=int(np.count_nonzero(outcome == "ignored")),
        curve_fps=curve_fps,
        curve_sensitivity=curve_sens,
        curve_thresholds=entries.thresholds,
        nodule_probability=nodule_probability,
        candidate_outcome=outcome,
        n_bootstrap=n_resamples,
        alpha=alpha,
    )
