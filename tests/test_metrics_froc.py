"""FROC/CPM: LUNA16's rules by hand, LUNA16's computeFROC and MONAI's FROC functions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gai_research.evaluation.metrics import LUNA16_FPS_PER_SCAN, MetricsError, froc

# --- a scenario small enough to count by hand --------------------------------------------
SCANS = ["A", "B", "C", "D"]  # D: no nodules and no candidates, still counts as a scan
NODULES = [
    ("A", 0.0, 0.0, 0.0, 10.0),  # radius 5
    ("A", 50.0, 0.0, 0.0, 6.0),  # radius 3
    ("B", 0.0, 0.0, 0.0, 8.0),  # missed
]
CANDIDATES = [
    ("A", 1.0, 0.0, 0.0, 0.9),  # hits nodule 0: its true positive
    ("A", 0.0, 2.0, 0.0, 0.6),  # second hit on nodule 0: ignored
    ("A", 53.0, 0.0, 0.0, 0.8),  # exactly on nodule 1's sphere: LUNA16 counts a miss -> FP
    ("A", 51.0, 0.0, 0.0, 0.4),  # hits nodule 1
    ("B", 10.0, 0.0, 0.0, 0.7),  # far from nodule 2: FP
    ("C", 0.0, 0.0, 0.0, 0.5),  # scan without nodules: FP
    ("C", 20.0, 20.0, 20.0, 0.3),  # on an excluded finding: ignored
]
EXCLUDED = [("C", 20.0, 20.0, 20.0, -1.0)]  # LUNA16: no diameter -> 10 mm


def scenario(**kwargs: object):
    return froc(CANDIDATES, NODULES, SCANS, excluded=EXCLUDED, n_bootstrap=0, **kwargs)


def test_candidate_outcomes_follow_luna16_rules() -> None:
    result = scenario()
    assert result.candidate_outcome.tolist() == ["tp", "ignored", "fp", "tp", "fp", "fp", "ignored"]
    np.testing.assert_array_equal(result.nodule_probability, [0.9, 0.4, np.nan])
    assert (result.n_scans, result.n_nodules, result.n_detected) == (4, 3, 2)
    assert (result.n_candidates, result.n_false_positives, result.n_ignored) == (7, 3, 2)


def test_curve_by_hand() -> None:
    # entries by probability: 0.9 TP, 0.8 FP, 0.7 FP, 0.5 FP, 0.4 TP; 4 scans, 3 nodules
    result = scenario()
    np.testing.assert_allclose(result.curve_fps, [0, 0, 0.25, 0.5, 0.75, 0.75])
    np.testing.assert_allclose(result.curve_sensitivity, [0, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_array_equal(result.curve_thresholds, [np.inf, 0.9, 0.8, 0.7, 0.5, 0.4])


def test_sensitivities_and_cpm_by_hand() -> None:
    result = scenario()
    expected = [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3]
    assert [s.estimate for s in result.sensitivities] == pytest.approx(expected)
    assert result.cpm.estimate == pytest.approx(11 / 21)
    assert all(math.isnan(s.low) for s in result.sensitivities)  # no bootstrap asked


def test_without_excluded_findings_the_hit_is_a_false_positive() -> None:
    result = froc(CANDIDATES, NODULES, SCANS, n_bootstrap=0)
    assert result.candidate_outcome[6] == "fp"
    assert result.n_false_positives == 4


def test_dataframe_with_luna16_headers_equals_tuples() -> None:
    import pandas as pd

    candidates = pd.DataFrame(
        CANDIDATES, columns=["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    )
    nodules = pd.DataFrame(
        NODULES, columns=["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    )
    excluded = pd.DataFrame(EXCLUDED, columns=["scan_id", "x", "y", "z", "diameter_mm"])
    from_frames = froc(candidates, nodules, SCANS, excluded=excluded, n_bootstrap=0)
    assert from_frames.cpm == scenario().cpm
    np.testing.assert_array_equal(from_frames.candidate_outcome, scenario().candidate_outcome)


# --- against the LUNA16 script and MONAI on random data -----------------------------------
def random_study(seed: int, n_scans: int = 30) -> tuple[list, list, list]:
    """Scans with 0-3 nodules, hits at random distances inside the radius, random FPs.

    Nodule 0 of scan 0 is never hit, so at least one nodule is missed (MONAI's curve
    drops its lowest threshold, which is then the missed nodules' probability 0).
    """
    rng = np.random.default_rng(seed)
    scans = [f"1.2.840.{seed}.{i}" for i in range(n_scans)]
    nodules, candidates = [], []
    for i, scan in enumerate(scans):
        for j in range(rng.integers(0, 4)):
            centre, diameter = rng.uniform(-150, 150, 3), rng.uniform(3, 30)
            nodules.append((scan, *centre, diameter))
            for _ in range(0 if (i, j) == (0, 0) else rng.integers(0, 3)):
                direction = rng.normal(size=3)
                offset = direction / np.linalg.norm(direction) * rng.uniform(0, 0.99 * diameter / 2)
                candidates.append((scan, *(centre + offset), float(rng.uniform(0.05, 1))))
        if i == 0:
            nodules.append((scan, 0.0, 0.0, 0.0, 5.0))
        for _ in range(rng.integers(0, 8)):
            candidates.append((scan, *rng.uniform(-150, 150, 3), float(rng.uniform(0.01, 0.9))))
    return candidates, nodules, scans


def luna16_compute_froc(result, candidates: list) -> tuple[np.ndarray, np.ndarray]:
    """LUNA16 noduleCADEvaluationLUNA16.py computeFROC: sklearn's ROC curve rescaled."""
    from sklearn.metrics import roc_curve

    detected = np.isfinite(result.nodule_probability)
    fp_probs = [
        c[4] for c, o in zip(candidates, result.candidate_outcome, strict=True) if o == "fp"
    ]
    gt = [1.0] * int(detected.sum()) + [0.0] * len(fp_probs)
    probs = list(result.nodule_probability[detected]) + fp_probs
    fpr, tpr, _ = roc_curve(gt, probs)
    fps = fpr * (len(probs) - detected.sum()) / result.n_scans
    sens = tpr * detected.sum() / result.n_nodules
    return fps, sens


@pytest.mark.parametrize("seed", range(5))
def test_matches_luna16_compute_froc(seed: int) -> None:
    candidates, nodules, scans = random_study(seed)
    result = froc(candidates, nodules, scans, n_bootstrap=0)
    fps, sens = luna16_compute_froc(result, candidates)
    expected = np.interp(LUNA16_FPS_PER_SCAN, fps, sens)
    assert [s.estimate for s in result.sensitivities] == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def monai_froc():
    return pytest.importorskip("monai.metrics.froc")


@pytest.mark.parametrize("seed", range(5))
def test_matches_monai_compute_froc_score(monai_froc, seed: int) -> None:
    candidates, nodules, scans = random_study(seed)
    result = froc(candidates, nodules, scans, n_bootstrap=0)
    fp_probs = np.array(
        [c[4] for c, o in zip(candidates, result.candidate_outcome, strict=True) if o == "fp"]
    )
    tp_probs = np.nan_to_num(result.nodule_probability, nan=0.0)  # MONAI: 0 for a missed target
    fps, sens = monai_froc.compute_froc_curve_data(fp_probs, tp_probs, len(nodules), len(scans))
    score = monai_froc.compute_froc_score(fps, sens, eval_thresholds=LUNA16_FPS_PER_SCAN)
    assert result.cpm.estimate == pytest.approx(score, abs=1e-12)
    for rate, estimate in zip(LUNA16_FPS_PER_SCAN, result.sensitivities, strict=True):
        assert estimate.estimate == pytest.approx(
            monai_froc.compute_froc_score(fps, sens, eval_thresholds=(rate,)), abs=1e-12
        )


@pytest.mark.parametrize("seed", range(3))
def test_hit_rule_matches_monai_on_voxel_masks(monai_froc, seed: int) -> None:
    """MONAI's compute_fp_tp_probs_nd on label masks whose spheres are voxels at
    distance < radius: same true-positive probabilities and false positives per scan."""
    rng = np.random.default_rng(seed)
    scans, nodules, candidates, masks = [], [], [], {}
    grid = np.indices((48, 48, 48)).reshape(3, -1).T
    for s in range(4):
        scan = f"scan{s}"
        scans.append(scan)
        mask = np.zeros(grid.shape[0], dtype=np.int64)
        for label, centre in enumerate(
            [(12, 12, 12), (34, 30, 14), (20, 34, 36)][: rng.integers(1, 4)], 1
        ):
            diameter = float(rng.integers(4, 15))
            nodules.append((scan, *map(float, centre), diameter))
            mask[((grid - centre) ** 2).sum(axis=1) < (diameter / 2) ** 2] = label
        masks[scan] = mask.reshape(48, 48, 48)
        for _ in range(25):
            voxel = (
                rng.integers(0, 48, 3)
                if rng.random() < 0.5
                else np.clip(np.array(centre) + rng.integers(-6, 7, 3), 0, 47)
            )
            candidates.append((scan, *map(float, voxel), float(np.float32(rng.uniform(0.01, 1)))))
    result = froc(candidates, nodules, scans, n_bootstrap=0)
    outcome = result.candidate_outcome
    for scan in scans:
        rows = [i for i, c in enumerate(candidates) if c[0] == scan]
        probs = np.array([candidates[i][4] for i in rows], dtype=np.float32)
        coords = np.array([candidates[i][1:4] for i in rows], dtype=np.int64)
        fp_probs, tp_probs, n_targets = monai_froc.compute_fp_tp_probs_nd(
            probs, coords, masks[scan]
        )
        ours_tp = [
            p for n, p in zip(nodules, result.nodule_probability, strict=True) if n[0] == scan
        ]
        assert n_targets == len(ours_tp)
        np.testing.assert_allclose(tp_probs, np.nan_to_num(ours_tp, nan=0.0), rtol=1e-7)
        ours_fp = sorted(candidates[i][4] for i in rows if outcome[i] == "fp")
        np.testing.assert_allclose(np.sort(fp_probs), ours_fp, rtol=1e-7)


# --- bootstrap ------------------------------------------------------------------------------
def test_bootstrap_intervals_are_reproducible_and_bracket_the_estimate() -> None:
    candidates, nodules, scans = random_study(11, n_scans=80)
    first = froc(candidates, nodules, scans, n_bootstrap=400, seed=5)
    assert first.cpm == froc(candidates, nodules, scans, n_bootstrap=400, seed=5).cpm
    assert first.cpm.low < first.cpm.estimate < first.cpm.high
    for estimate in first.sensitivities:
        assert 0.0 <= estimate.low <= estimate.estimate <= estimate.high <= 1.0
    assert first.n_bootstrap == 400


def test_to_dict_names_each_rate() -> None:
    logged = scenario().to_dict()
    assert logged["sensitivity_at_0.125_fps"] == pytest.approx(1 / 3)
    assert logged["sensitivity_at_8_fps"] == pytest.approx(2 / 3)
    assert logged["cpm"] == pytest.approx(11 / 21)
    assert all(isinstance(v, int | float) for v in logged.values())


@pytest.mark.parametrize(
    ("candidates", "nodules", "scans", "message"),
    [
        ([("X", 0, 0, 0, 0.5)], NODULES, SCANS, "not among the scans"),
        (CANDIDATES, NODULES, ["A", "A", "B", "C"], "more than once"),
        (CANDIDATES, [], SCANS, "no nodules"),
        (CANDIDATES, [("A", 0, 0, 0, 0.0)], SCANS, "positive"),
        ([("A", 0, 0, 0)], NODULES, SCANS, "each candidate row"),
        (CANDIDATES, NODULES, [], "no scans"),
    ],
)
def test_bad_input_raises(candidates: list, nodules: list, scans: list, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        froc(candidates, nodules, scans, n_bootstrap=0)


coordinate = st.integers(0, 40).map(float)
study = st.tuples(
    st.lists(
        st.tuples(
            st.integers(0, 3), coordinate, coordinate, coordinate, st.integers(2, 16).map(float)
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(
        st.tuples(st.integers(0, 3), coordinate, coordinate, coordinate, st.floats(0.0, 1.0)),
        max_size=40,
    ),
)


@settings(max_examples=80, deadline=None)
@given(data=study, rates=st.lists(st.floats(0, 20), min_size=1, max_size=6))
def test_sensitivity_never_decreases_with_the_false_positive_rate(data: tuple, rates: list) -> None:
    nodule_rows, candidate_rows = data
    scans = [0, 1, 2, 3]
    rates = sorted(rates)
    result = froc(candidate_rows, nodule_rows, scans, fps_per_scan=rates, n_bootstrap=0)
    values = [s.estimate for s in result.sensitivities]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert np.all(np.diff(result.curve_fps) >= 0) and np.all(np.diff(result.curve_sensitivity) >= 0)
    assert result.cpm.estimate == pytest.approx(np.mean(values))


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([], [0.0] * 7),  # no candidates: nothing detected
        ([("A", 0.0, 0.0, 0.0, 0.9), ("A", 50.0, 0.0, 0.0, 0.8)], [2 / 3] * 7),  # no FP at all
    ],
)
def test_degenerate_candidate_lists(candidates: list, expected: list) -> None:
    result = froc(candidates, NODULES, SCANS, n_bootstrap=20)
    assert [s.estimate for s in result.sensitivities] == pytest.approx(expected)


def test_result_arrays_are_read_only() -> None:
    result = scenario()
    with pytest.raises(ValueError, match="read-only"):
        result.curve_fps[0] = 1.0
