"""The runner's parts that need no catalog: Dask execution, cases tables, counts, scrubbing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gai_research.evaluation.cases import check_case_table
from gai_research.evaluation.comparisons import compare_models
from gai_research.evaluation.context import EvalContext, make_context
from gai_research.evaluation.endpoints import age_band_labels, evaluate_cases, key_part
from gai_research.evaluation.errors import CaseTableError, EvaluationError
from gai_research.evaluation.jobs import run_jobs
from gai_research.evaluation.protocol import load_protocol, parse_protocol
from gai_research.evaluation.runner import _select_models
from gai_research.evaluation.samples import sample_case_table, sample_model_info
from gai_research.evaluation.scrub import scrub
from tests.test_evaluation_notebooks import job_for, small_protocol

ROOT = Path(__file__).resolve().parents[1]


def context_of(task: str, **changes) -> EvalContext:
    protocol = small_protocol(task)
    if changes:
        data = protocol.canonical()
        data.update(changes)
        protocol = parse_protocol(data)
    return make_context(protocol, sample_model_info(protocol))


def test_same_job_on_a_dask_scheduler_address() -> None:
    from distributed import LocalCluster

    task = "lung_nodule_dx"
    cases = sample_case_table(small_protocol(task), n=30, seed=5)
    job, context = job_for(task, cases)
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        results = list(run_jobs([job], dask_address=cluster.scheduler_address))
    assert len(results) == 1 and results[0].ok, results[0].error
    document = json.loads(results[0].files["metrics.json"])
    local = evaluate_cases(check_case_table(cases, context.protocol), context)
    assert document["metrics"]["auc"] == pytest.approx(local.metrics["auc"], abs=0)


def test_unreachable_dask_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_ports

    monkeypatch.setenv("GAI_DASK_TIMEOUT", "2s")
    job, _ = job_for("lung_nodule_dx", sample_case_table(small_protocol("lung_nodule_dx"), n=10))
    with pytest.raises(EvaluationError, match="cannot reach the Dask scheduler") as info:
        list(run_jobs([job], dask_address=f"tcp://127.0.0.1:{free_ports(1)[0]}"))
    assert "dask scheduler" in info.value.hint


def test_rerun_gives_identical_metrics_and_bootstrap_depends_on_the_seed() -> None:
    context = context_of("lung_nodule_ct")
    cases = check_case_table(sample_case_table(context.protocol, n=40, seed=9), context.protocol)
    first, second = evaluate_cases(cases, context), evaluate_cases(cases, context)
    assert first.metrics.keys() == second.metrics.keys()
    assert all(
        a == b or (math.isnan(a) and math.isnan(b))
        for a, b in zip(first.metrics.values(), second.metrics.values(), strict=True)
    )
    other = context_of("lung_nodule_ct", ci={**context.protocol.ci.model_dump(), "seed": 99})
    reseeded = evaluate_cases(cases, other)
    assert reseeded.metrics["cpm"] == first.metrics["cpm"]
    assert reseeded.metrics["cpm_ci_low"] != first.metrics["cpm_ci_low"]


@pytest.mark.parametrize("policy", ["count-as-negative", "exclude"])
def test_failed_studies_follow_the_protocol_and_counts_reconcile(policy: str) -> None:
    context = context_of("lung_nodule_dx", missing_predictions=policy)
    table = sample_case_table(context.protocol, n=30, seed=2, failed=3, timeouts=2, missing=1)
    result = evaluate_cases(check_case_table(table, context.protocol), context)
    m = result.metrics
    assert (m["n_failed"], m["n_timeout"], m["n_missing"]) == (4, 2, 1)  # missing is a failure
    assert m["latency_n"] == 24
    if policy == "exclude":
        assert m["n_cases"] == 24 and m["n_excluded"] == 6
    else:
        assert m["n_cases"] == 30 and m["n_excluded"] == 0
        assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == 30
        imputed = result.cases.loc[~result.cases["scored"], "score"]
        assert (imputed < result.cases.loc[result.cases["scored"], "score"].min()).all()


def test_undefined_metrics_are_notes_not_errors() -> None:
    context = context_of("lung_nodule_dx")
    table = sample_case_table(context.protocol, n=12, seed=1)
    table["y_true"] = 0  # no positive case: no AUC, no sensitivity
    result = evaluate_cases(check_case_table(table, context.protocol), context)
    assert math.isnan(result.metrics["auc"]) if "auc" in result.metrics else True
    assert any(note.startswith("auc: not computed") for note in result.notes)
    assert result.metrics["specificity"] >= 0  # what can be computed still is


def test_comparison_is_paired_delong_on_the_studies_both_scored() -> None:
    protocol = load_protocol(ROOT / "evaluation" / "lung_nodule_dx.yaml")
    a, b = protocol.comparisons[0].models
    first = sample_case_table(protocol, n=50, seed=4, failed=2)
    second = first.copy()
    second["score"] = np.clip(first["score"] + np.random.default_rng(0).normal(0, 0.3, 50), 0, 1)
    second.loc[5, "status"] = "failed"
    metrics, notes = compare_models({a: first, b: second}, protocol)
    prefix = f"cmp.{a}.vs.{b}."
    both = int(((first["status"] == "ok") & (second["status"] == "ok")).sum())
    assert not notes and metrics[prefix + "n_cases"] == both < 50
    assert 0 <= metrics[prefix + "delong_p"] <= 1
    assert metrics[prefix + "ci_low"] <= metrics[prefix + "auc_diff"] <= metrics[prefix + "ci_high"]
    _, missing = compare_models({a: first}, protocol)
    assert missing and "not compared" in missing[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns=["score"]), "lacks column(s) score"),
        (lambda t: t.assign(y_true=2), "y_true must be 0 or 1"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "repeated study_uid"),
        (lambda t: t.assign(score="high"), "column score holds"),
    ],
    ids=["missing-column", "labels", "duplicates", "not-numbers"],
)
def test_case_table_errors(change, message: str) -> None:
    protocol = small_protocol("lung_nodule_dx")
    with pytest.raises(CaseTableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_case_table(change(sample_case_table(protocol, n=10)), protocol)


def test_models_outside_the_protocol_are_refused() -> None:
    protocol = load_protocol(ROOT / "evaluation" / "stroke_ct.yaml")
    assert _select_models(protocol, None) == protocol.models
    assert _select_models(protocol, [protocol.models[0]]) == [protocol.models[0]]
    with pytest.raises(EvaluationError, match="not in protocol stroke-ct") as info:
        _select_models(protocol, ["vendor-x"])
    assert "changes the protocol's hash" in info.value.hint


def test_key_parts_and_age_bands() -> None:
    assert key_part("HOLOGIC, Inc.") == "HOLOGIC_Inc." and key_part("") == "unknown"
    assert age_band_labels([50, 65, 75]) == ["lt50", "50-64", "65-74", "ge75"]


def test_scrub_masks_identifiers_and_keeps_the_gist() -> None:
    text = (
        "\x1b[31mKeyError\x1b[0m: study 2.25.123456789012345678 of GP27Q3IKC7DH4S6XC5 "
        "(RRN 880101-1234567) in /srv/gai/store/SUWON/x.dcm: sens_at_spec_0.9 numpy 2.4.1"
    )
    out = scrub(text)
    for secret in ("2.25.1234", "GP27Q3IKC7DH4S6XC5", "880101", "/srv/gai", "\x1b"):
        assert secret not in out
    assert out.startswith("KeyError: study <uid>") and "sens_at_spec_0.9 numpy 2.4.1" in out
