"""proportion_ci against published worked values and scipy's binomial intervals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gai_research.evaluation.metrics import CIMethod, MetricsError, proportion_ci

# Newcombe RG (1998) Two-sided confidence intervals for the single proportion: comparison
# of seven methods. Stat Med 17:857-872, Table II (95% limits, 4 decimals): method 1
# (simple asymptotic = Wald), method 3 (score = Wilson), method 5 (exact = Clopper-Pearson).
NEWCOMBE_TABLE_II = [
    (81, 263, "normal", 0.2522, 0.3638),
    (81, 263, "wilson", 0.2553, 0.3662),
    (81, 263, "clopper-pearson", 0.2527, 0.3676),
    (15, 148, "wilson", 0.0624, 0.1605),
    (15, 148, "clopper-pearson", 0.0578, 0.1617),
    (0, 20, "wilson", 0.0, 0.1611),
    (0, 20, "clopper-pearson", 0.0, 0.1684),
    (1, 29, "wilson", 0.0061, 0.1718),
    (1, 29, "clopper-pearson", 0.0009, 0.1776),
]


@pytest.mark.parametrize(("k", "n", "method", "low", "high"), NEWCOMBE_TABLE_II)
def test_newcombe_1998_table_ii(k: int, n: int, method: str, low: float, high: float) -> None:
    estimate = proportion_ci(k, n, method)
    assert estimate.estimate == pytest.approx(k / n)
    assert round(estimate.low, 4) == pytest.approx(low, abs=1e-12)
    assert round(estimate.high, 4) == pytest.approx(high, abs=1e-12)


def test_clopper_pearson_5_of_25_conover_table() -> None:
    # Conover (1999) tables, quoted by influentialpoints.com "Confidence intervals of
    # proportions" worked example: 5 of 25 seedlings survive, exact 95% limits 0.068-0.407.
    _, low, high = proportion_ci(5, 25, "clopper-pearson")
    assert (round(low, 3), round(high, 3)) == (0.068, 0.407)


@pytest.mark.parametrize(
    ("ours", "scipy_method"), [("clopper-pearson", "exact"), ("wilson", "wilson")]
)
@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (41, 113), (999, 1000)]
)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_matches_scipy_binomtest(
    ours: str, scipy_method: str, k: int, n: int, alpha: float
) -> None:
    from scipy.stats import binomtest

    expected = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method=scipy_method)
    _, low, high = proportion_ci(k, n, ours, alpha=alpha)
    assert low == pytest.approx(expected.low, abs=1e-10)
    assert high == pytest.approx(expected.high, abs=1e-10)


@pytest.mark.parametrize(("k", "n"), [(1, 10), (5, 25), (41, 113)])
def test_jeffreys_is_the_beta_half_interval(k: int, n: int) -> None:
    from scipy.stats import beta

    _, low, high = proportion_ci(k, n, "jeffreys")
    assert low == pytest.approx(beta.ppf(0.025, k + 0.5, n - k + 0.5))
    assert high == pytest.approx(beta.ppf(0.975, k + 0.5, n - k + 0.5))


@pytest.mark.parametrize(("k", "n", "bound", "value"), [(0, 20, "low", 0.0), (20, 20, "high", 1.0)])
def test_jeffreys_boundary_modification(k: int, n: int, bound: str, value: float) -> None:
    # Brown, Cai & DasGupta (2001) section 4.1.2: lower limit 0 at x = 0, upper 1 at x = n
    assert getattr(proportion_ci(k, n, "jeffreys"), bound) == value


def test_agresti_coull_adds_z2_over_2() -> None:
    from scipy.stats import norm

    z = norm.isf(0.025)
    n_tilde = 29 + z**2
    p_tilde = (1 + z**2 / 2) / n_tilde
    half = z * math.sqrt(p_tilde * (1 - p_tilde) / n_tilde)
    _, low, high = proportion_ci(1, 29, "agresti-coull")
    assert (low, high) == pytest.approx((max(p_tilde - half, 0.0), p_tilde + half))


@pytest.mark.parametrize("method", list(CIMethod))
def test_zero_total_gives_nan(method: CIMethod) -> None:
    assert all(math.isnan(v) for v in proportion_ci(0, 0, method))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 4), "exceed"),
        ((-1, 4), "negative"),
        ((1.5, 4), "whole number"),
        ((1, 4, "wald"), "unknown confidence-interval method"),
        ((1, 4, "wilson", 0.0), "alpha"),
    ],
)
def test_bad_input_raises(args: tuple, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        proportion_ci(*args)


def test_accepts_numpy_integers_and_integral_floats() -> None:
    import numpy as np

    assert proportion_ci(np.int64(3), 10.0) == proportion_ci(3, 10)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5000),
    fraction=st.floats(min_value=0, max_value=1),
    method=st.sampled_from(list(CIMethod)),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_interval_contains_estimate_and_stays_in_unit_range(
    n: int, fraction: float, method: CIMethod, alpha: float
) -> None:
    k = round(fraction * n)
    estimate, low, high = proportion_ci(k, n, method, alpha)
    assert 0.0 <= low <= estimate <= high <= 1.0
