"""AUC, DeLong intervals and the paired DeLong test against pROC's published values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gai_research.evaluation.metrics import MetricsError, auc_ci, delong_test
from gai_research.evaluation.metrics import bootstrap as bootstrap_module
from gai_research.evaluation.metrics.roc import _MannWhitney

# pROC's aSAH data (Turck et al. 2010; /work/shared/reference/asah.csv, pROC package data):
# 113 patients, outcome Poor (1) / Good (0), WFNS score, serum S100B; in file order.
ASAH_POOR = np.array(
    [int(c) for c in (
        "00001101001011001011101000000000100110110000000001100010001010011101101111000110"
        "100000010000000000001111110001000"
    )]
)  # fmt: skip
ASAH_WFNS = np.array(
    [int(c) for c in (
        "11113254125255125225211112121134214541425511241125521251222151125214524414121421"
        "232421451154221113125225552445111"
    )]
)  # fmt: skip
ASAH_S100B = np.array(
    [
        0.13, 0.14, 0.1, 0.04, 0.13, 0.1, 0.47, 0.16, 0.18, 0.1, 0.12, 0.1, 0.44, 0.71, 0.04, 0.08,
        0.49, 0.04, 0.07, 0.33, 0.09, 0.09, 0.07, 0.11, 0.07, 0.17, 0.07, 0.11, 0.13, 0.19, 0.05,
        0.16, 0.41, 0.14, 0.34, 0.35, 0.48, 0.09, 0.96, 0.25, 0.5, 0.46, 0.16, 0.07, 0.43, 0.45,
        0.11, 0.08, 0.09, 0.86, 0.52, 0.08, 0.06, 0.13, 2.07, 0.1, 0.14, 0.15, 0.07, 0.06, 0.77,
        0.05, 0.09, 0.3, 0.03, 0.09, 0.04, 0.23, 0.7, 0.09, 0.27, 0.71, 0.08, 0.26, 0.08, 0.16,
        0.09, 0.13, 0.1, 0.08, 0.11, 0.33, 0.11, 0.28, 0.07, 0.1, 0.32, 0.22, 0.07, 0.05, 0.24,
        0.38, 0.1, 0.15, 0.08, 0.14, 0.1, 0.07, 0.04, 0.19, 0.56, 0.14, 0.58, 0.32, 0.82, 0.74,
        0.15, 0.47, 0.17, 0.44, 0.15, 0.5, 0.48,
    ]
)  # fmt: skip


def test_embedded_asah_matches_the_reference_file() -> None:
    """The copy above is the shared reference file, where that file is present."""
    from pathlib import Path

    path = Path("/work/shared/reference/asah.csv")
    if not path.exists():
        pytest.skip("shared reference data not mounted")
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert [r[0] == "Poor" for r in rows] == ASAH_POOR.astype(bool).tolist()
    assert [int(r[1]) for r in rows] == ASAH_WFNS.tolist()
    assert [float(r[2]) for r in rows] == ASAH_S100B.tolist()


# pROC tests/testthat/test-auc.R: auc(r.wfns) = 0.823678861788618; print output of
# roc(aSAH$outcome, aSAH$s100b): "Area under the curve: 0.7314" (0.731368563685637).
@pytest.mark.parametrize(
    ("scores", "auc"), [(ASAH_WFNS, 0.823678861788618), (ASAH_S100B, 0.731368563685637)]
)
def test_auc_matches_proc(scores: np.ndarray, auc: float) -> None:
    assert auc_ci(ASAH_POOR, scores).estimate == pytest.approx(auc, abs=1e-12)


def test_delong_ci_of_s100b_matches_proc_documentation() -> None:
    # pROC: ci.auc(aSAH$outcome, aSAH$s100b) -> "95% CI: 0.6301-0.8326 (DeLong)"
    auc, low, high = auc_ci(ASAH_POOR, ASAH_S100B)
    assert (round(auc, 4), round(low, 4), round(high, 4)) == (0.7314, 0.6301, 0.8326)
    # and exactly: AUC +/- qnorm(0.975) * sqrt(var(r.s100b)), var from test-var.R
    half = 1.959963984540054 * math.sqrt(0.00266868245717244)
    assert (low, high) == pytest.approx(
        (0.731368563685637 - half, 0.731368563685637 + half), abs=1e-12
    )


def test_delong_variances_and_covariance_match_proc() -> None:
    # pROC tests/testthat/test-var.R and test-cov.R
    result = delong_test(ASAH_POOR, ASAH_WFNS, ASAH_S100B)
    assert result.var_a == pytest.approx(0.00146991470882363, rel=1e-12)
    assert result.var_b == pytest.approx(0.00266868245717244, rel=1e-12)
    assert result.covariance == pytest.approx(0.00119615567376754, rel=1e-12)


def test_paired_delong_test_matches_proc_roc_test() -> None:
    # pROC tests/testthat/test-roc.test.R, t1 <- roc.test(r.wfns, r.s100b):
    # Z = 2.20898359144091, p = 0.0271757822291882,
    # conf.int = [0.0104061769564846, 0.174214419249478]
    result = delong_test(ASAH_POOR, ASAH_WFNS, ASAH_S100B)
    assert result.z == pytest.approx(2.20898359144091, rel=1e-12)
    assert result.p_value == pytest.approx(0.0271757822291882, rel=1e-10)
    assert result.ci_low == pytest.approx(0.0104061769564846, rel=1e-10)
    assert result.ci_high == pytest.approx(0.174214419249478, rel=1e-12)
    assert result.difference == pytest.approx(0.823678861788618 - 0.731368563685637, abs=1e-12)
    assert (result.n_positive, result.n_negative) == (41, 72)


def test_delong_test_of_identical_predictors() -> None:
    # pROC test-roc.test.R: roc.test(r.wfns, r.wfns) gives p = 1, Z = 0
    result = delong_test(ASAH_POOR, ASAH_WFNS, ASAH_WFNS)
    assert (result.z, result.p_value, result.ci_low, result.ci_high) == (0.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_scikit_learn(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.random(500) < 0.3
    scores = np.round(rng.normal(size=500) + y, 1)  # with ties
    assert auc_ci(y, scores).estimate == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_resample_auc_from_counts_equals_auc_of_the_resample(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    positives = np.round(rng.normal(1, 1, 40), 1)
    negatives = np.round(rng.normal(0, 1, 70), 1)
    pos_idx = rng.integers(0, 40, 40)
    neg_idx = rng.integers(0, 70, 70)
    w_pos = np.bincount(pos_idx, minlength=40)[None, :].astype(float)
    w_neg = np.bincount(neg_idx, minlength=70)[np.argsort(negatives, kind="stable")][None, :]
    got = _MannWhitney(positives, negatives).aucs(w_pos, w_neg.astype(float))[0]
    labels = np.r_[np.ones(40), np.zeros(70)]
    expected = roc_auc_score(labels, np.r_[positives[pos_idx], negatives[neg_idx]])
    assert got == pytest.approx(expected, abs=1e-12)


def test_bootstrap_ci_is_close_to_delong_and_reproducible() -> None:
    first = auc_ci(ASAH_POOR, ASAH_S100B, method="bootstrap", n_bootstrap=2000, seed=7)
    again = auc_ci(ASAH_POOR, ASAH_S100B, method="bootstrap", n_bootstrap=2000, seed=7)
    delong = auc_ci(ASAH_POOR, ASAH_S100B)
    assert first == again
    assert first.estimate == delong.estimate
    assert first.low == pytest.approx(delong.low, abs=0.02)
    assert first.high == pytest.approx(delong.high, abs=0.02)


def test_bootstrap_does_not_depend_on_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = auc_ci(ASAH_POOR, ASAH_S100B, method="bootstrap", n_bootstrap=300)
    monkeypatch.setattr(bootstrap_module, "_BATCH_ELEMENTS", 1000)
    assert auc_ci(ASAH_POOR, ASAH_S100B, method="bootstrap", n_bootstrap=300) == whole


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [1, 0, 0], "y_score": [0.3, 0.2, 0.1]}, "at least 2 positive"),
        ({"y_true": [1, 1, 0, 0], "y_score": [1, 2, 3, 4], "method": "hanley"}, "unknown AUC"),
        (
            {
                "y_true": [1, 1, 0, 0],
                "y_score": [1, 2, 3, 4],
                "method": "bootstrap",
                "n_bootstrap": 0,
            },
            "positive integer",
        ),
    ],
)
def test_bad_input_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        auc_ci(**kwargs)


labelled_scores = st.lists(
    st.tuples(st.booleans(), st.integers(-20, 20)), min_size=4, max_size=80
).filter(lambda rows: 2 <= sum(label for label, _ in rows) <= len(rows) - 2)

MONOTONE = {
    "affine": lambda s: 3.0 * s + 7.0,
    "cubic": lambda s: s**3 + s,
    "exp": lambda s: np.exp(s / 4.0),
    "logistic": lambda s: 1.0 / (1.0 + np.exp(-s / 5.0)),
}


@settings(max_examples=60, deadline=None)
@given(rows=labelled_scores, transform=st.sampled_from(sorted(MONOTONE)))
def test_auc_and_delong_interval_invariant_to_monotone_transforms(
    rows: list, transform: str
) -> None:
    y = np.array([label for label, _ in rows])
    s = np.array([score for _, score in rows], dtype=float)
    before = auc_ci(y, s)
    after = auc_ci(y, MONOTONE[transform](s))
    assert after == pytest.approx(before, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 9)), min_size=6, max_size=80
    )
)
def test_delong_test_is_antisymmetric(rows: list) -> None:
    y = np.array([r[0] for r in rows])
    assume(2 <= y.sum() <= len(y) - 2)
    a = np.array([r[1] for r in rows], dtype=float)
    b = np.array([r[2] for r in rows], dtype=float)
    ab, ba = delong_test(y, a, b), delong_test(y, b, a)
    assert ba.z == pytest.approx(-ab.z, abs=1e-9)
    assert ba.p_value == pytest.approx(ab.p_value, abs=1e-9)
    assert (ba.ci_low, ba.ci_high) == pytest.approx((-ab.ci_high, -ab.ci_low), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(rows=labelled_scores)
def test_delong_interval_contains_auc(rows: list) -> None:
    y = np.array([label for label, _ in rows])
    s = np.array([score for _, score in rows], dtype=float)
    assert auc_ci(y, s).contains(auc_ci(y, s).estimate)
