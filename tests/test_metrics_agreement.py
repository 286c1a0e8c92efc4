"""Dice against MONAI, ICC against Shrout & Fleiss, Bland-Altman against its Lancet example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gai_research.evaluation.metrics import MetricsError, bland_altman, dice, icc

# Shrout PE, Fleiss JL (1979) Intraclass correlations: uses in assessing rater reliability.
# Psychol Bull 86:420-428, Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


# Published ICCs (Table 4 of the paper: .17, .29, .71) and the 95% limits that R's
# psych::ICC prints for these data (ICC1 -0.13 to 0.72, ICC2 0.019 to 0.76, ICC3 0.34 to
# 0.95, F = 11.03 on 5 and 15 df for ICC2/ICC3, 1.79 on 5 and 18 df for ICC1).
@pytest.mark.parametrize(
    ("kind", "value", "low", "high", "f_value", "df2"),
    [
        ("ICC(1,1)", 0.17, -0.13, 0.72, 1.79, 18),
        ("ICC(2,1)", 0.29, 0.02, 0.76, 11.03, 15),
        ("ICC(3,1)", 0.71, 0.34, 0.95, 11.03, 15),
    ],
)
def test_shrout_fleiss_worked_example(
    kind: str, value: float, low: float, high: float, f_value: float, df2: int
) -> None:
    result = icc(SHROUT_FLEISS, kind=kind)
    assert round(result.icc.estimate, 2) == value
    assert (round(result.icc.low, 2), round(result.icc.high, 2)) == (low, high)
    assert round(result.f_value, 2) == f_value
    assert (result.df1, result.df2) == (5, df2)
    assert (result.n_targets, result.n_raters) == (6, 4)


def test_two_raters_as_two_arguments_equal_the_matrix_form() -> None:
    a, b = SHROUT_FLEISS[:, 0], SHROUT_FLEISS[:, 3]
    assert icc(a, b) == icc(np.column_stack([a, b]))


def test_consistency_ignores_a_constant_offset_but_agreement_does_not() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(1000, 200, 50)
    a, b = truth + rng.normal(0, 20, 50), truth + rng.normal(0, 20, 50)
    shifted = b + 300
    assert icc(a, shifted, kind="ICC(3,1)").icc.estimate == pytest.approx(
        icc(a, b, kind="ICC(3,1)").icc.estimate
    )
    assert (
        icc(a, shifted, kind="ICC(2,1)").icc.estimate
        < icc(a, b, kind="ICC(2,1)").icc.estimate - 0.3
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((1, 3)),), "at least 2 targets"),
        ((np.array([[1.0, np.nan], [2.0, 3.0]]),), "missing"),
        ((SHROUT_FLEISS, None, "ICC(2,k)"), "unknown ICC kind"),
    ],
)
def test_icc_bad_input_raises(args: tuple, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        icc(*args)


# Bland JM, Altman DG (1986) Statistical methods for assessing agreement between two
# methods of clinical measurement. Lancet i:307-310, Table 1: PEFR (l/min), first reading
# with the Wright and with the mini Wright meter. Published: mean difference -2.1, SD 38.8,
# limits -2.1 -/+ 2 SD = -79.7 to 75.5; 95% CI of the lower limit -114.3 to -45.1 and of the
# upper 40.9 to 110.1 (t = 2.12, SE approximated by sqrt(3 s^2 / n) = 16.3).
WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
MINI = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]


def test_bland_altman_lancet_1986_example() -> None:
    result = bland_altman(WRIGHT, MINI, multiplier=2.0)
    assert round(result.bias.estimate, 1) == -2.1
    assert round(result.sd, 1) == 38.8
    # the paper's limits are computed from the rounded bias and SD (-2.1 -/+ 77.6)
    assert result.lower_loa.estimate == pytest.approx(-79.7, abs=0.1)
    assert result.upper_loa.estimate == pytest.approx(75.5, abs=0.1)
    # The paper's SE sqrt(3 s^2 / n) = 16.3 approximates the SE used here,
    # s sqrt(1/n + 2^2 / (2 (n - 1))) = 16.6 (Bland & Altman 1999), hence the 1 l/min tolerance.
    assert (result.lower_loa.low, result.lower_loa.high) == pytest.approx((-114.3, -45.1), abs=1.0)
    assert (result.upper_loa.low, result.upper_loa.high) == pytest.approx((40.9, 110.1), abs=1.0)


def test_bland_altman_bias_interval_is_the_one_sample_t_interval() -> None:
    from scipy.stats import ttest_1samp

    expected = ttest_1samp(np.subtract(WRIGHT, MINI), 0.0).confidence_interval(0.95)
    result = bland_altman(WRIGHT, MINI)
    assert (result.bias.low, result.bias.high) == pytest.approx((expected.low, expected.high))
    assert result.multiplier == pytest.approx(1.959963984540054)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0, 2.0], [1.0], "equal length"),
        ([1.0], [2.0], "at least 2"),
        ([1.0, np.nan], [1.0, 2.0], "missing"),
    ],
)
def test_bland_altman_bad_input_raises(a: list, b: list, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        bland_altman(a, b)


# --- Dice against MONAI's DiceMetric -------------------------------------------------------
@pytest.fixture(scope="module")
def monai_dice():
    metrics = pytest.importorskip("monai.metrics")
    import torch

    def reference(a: np.ndarray, b: np.ndarray) -> float:
        metric = metrics.DiceMetric(include_background=True, reduction="none")
        as_tensor = lambda m: torch.as_tensor(m[None, None].astype(np.float32))  # noqa: E731
        return float(metric(as_tensor(a), as_tensor(b))[0, 0])

    return reference


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(32, 32), (16, 24, 20)])
def test_dice_matches_monai(monai_dice, seed: int, shape: tuple) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random(shape) < 0.3
    b = a ^ (rng.random(shape) < 0.1)
    assert dice(a, b) == pytest.approx(monai_dice(a, b), rel=1e-6)


def test_dice_of_identical_masks_is_one_and_of_disjoint_masks_zero() -> None:
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:5, 2:5] = 1
    assert dice(mask, mask) == 1.0
    assert dice(mask, np.roll(mask, 4, axis=0)) == 0.0


@pytest.mark.parametrize(("empty", "expected"), [(math.nan, math.nan), (1.0, 1.0)])
def test_dice_of_two_empty_masks(empty: float, expected: float) -> None:
    value = dice(np.zeros((4, 4)), np.zeros((4, 4)), empty=empty)
    assert value == expected or (math.isnan(value) and math.isnan(expected))


def test_dice_shape_mismatch_raises() -> None:
    with pytest.raises(MetricsError, match="differ in shape"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))
