"""MLflow records of an evaluation, written to a real SQLite store and read back with MlflowClient."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gai_research.config import Settings, load_settings
from gai_research.evaluation.cases import check_case_table
from gai_research.evaluation.context import make_context
from gai_research.evaluation.endpoints import evaluate_cases
from gai_research.evaluation.jobs import NotebookResult
from gai_research.evaluation.notebook_lib import plot_latency, plot_roc, write_outputs
from gai_research.evaluation.protocol import load_protocol, parse_protocol
from gai_research.evaluation.samples import sample_case_table, sample_model_info
from gai_research.evaluation.tracking import EvaluationTracker, mlflow_ui_command, redact_uri

ROOT = Path(__file__).resolve().parents[1]
CHILD_TAGS = {
    "gai.role": "model",
    "gai.task": "breast_mg",
    "gai.kind": "classification",
    "gai.site": "ALL",
    "gai.origin": "simulator",
    "gai.vendor": "gai-research (hand-made sample)",
    "gai.model_version": "1.0",
}
CHILD_PARAMS = {
    "protocol_hash",
    "snapshot",
    "cohort_hash",
    "model_name",
    "model_vendor",
    "model_version",
    "code_version",
    "pkg.numpy",
    "pkg.gai-research",
    "threshold",
}


def protocol_with_comparison():
    data = load_protocol(ROOT / "evaluation" / "breast_mg.yaml").canonical()
    data["models"] = ["model-a", "model-b"]
    data["comparisons"] = [{"models": ["model-a", "model-b"]}]
    data["ci"]["bootstrap_n"] = 200
    return parse_protocol(data)


def context_for(protocol, name: str):
    return make_context(
        protocol,
        sample_model_info(protocol, name=name),
        snapshot="5" * 64,
        cohort_hash="c" * 64,
        cohort_name="hand-made",
        code_version="test",
    )


def in_process_result(protocol, name: str, tmp: Path, seed: int) -> tuple[NotebookResult, object]:
    """What a notebook job returns, computed here with the same library calls."""
    context = context_for(protocol, name)
    cases = check_case_table(sample_case_table(protocol, n=40, seed=seed), protocol)
    evaluation = evaluate_cases(cases, context)
    out = tmp / name
    write_outputs(evaluation, context, out)
    plot_roc(evaluation, context, out)
    plot_latency(evaluation, context, out)
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    files["notebook.ipynb"] = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    return NotebookResult(f"{name} / ALL", name, "ALL", ok=True, files=files), context


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One evaluation with a finished and a failed child run, logged to SQLite."""
    tmp = tmp_path_factory.mktemp("tracking")
    settings = load_settings(home=tmp / "home")
    protocol = protocol_with_comparison()
    tracker = EvaluationTracker.from_settings(settings)
    parent = tracker.start_evaluation(
        protocol,
        snapshot="5" * 64,
        cohort_hash="c" * 64,
        cohort_name="hand-made",
        code_version="test",
        models=protocol.models,
        sites=["ALL"],
    )
    good, good_context = in_process_result(protocol, "model-a", tmp, seed=1)
    bad_context = context_for(protocol, "model-b")
    bad = NotebookResult(
        "model-b / ALL",
        "model-b",
        "ALL",
        ok=False,
        error="cell 6 (In [4]): CaseTableError: y_true must be 0 or 1 in every row",
        files={"notebook.ipynb": b'{"cells": []}', "notebook.html": b"<!DOCTYPE html>"},
    )
    good_id = tracker.log_model_run(parent, good_context, good)
    bad_id = tracker.log_model_run(parent, bad_context, bad)
    tracker.log_comparisons(parent, {"cmp.model-a.vs.model-b.delong_p": 0.25}, [])
    tracker.finish_evaluation(parent, {"n_failed_jobs": 1}, ok=False)
    return {
        "settings": settings,
        "parent": parent,
        "good": good_id,
        "bad": bad_id,
        "protocol": protocol,
        "document": json.loads(good.files["metrics.json"]),
        "cwd": Path.cwd(),
    }


@pytest.fixture(scope="module")
def client(logged):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=logged["settings"].tracking_uri)


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_experiment_per_task_with_artifacts_under_the_home(logged, client) -> None:
    settings: Settings = logged["settings"]
    assert (
        settings.tracking_uri.startswith("sqlite:///")
        and str(settings.home) in settings.tracking_uri
    )
    experiment = client.get_experiment_by_name("gai-breast_mg")
    assert experiment.experiment_id == logged["parent"].experiment_id
    assert experiment.artifact_location.startswith((settings.mlflow_dir / "artifacts").as_uri())
    assert not (logged["cwd"] / "mlruns").exists() and not (logged["cwd"] / "mlartifacts").exists()


def test_parent_run(logged, client) -> None:
    run = client.get_run(logged["parent"].run_id)
    tags, protocol = run.data.tags, logged["protocol"]
    assert tags["gai.role"] == "evaluation" and tags["gai.task"] == "breast_mg"
    assert tags["gai.protocol"] == protocol.name
    assert tags["gai.protocol_hash"] == run.data.params["protocol_hash"] == protocol.content_hash
    assert tags["gai.snapshot"] == "5" * 64 and tags["gai.cohort_hash"] == "c" * 64
    assert run.info.status == "FAILED", "a failed child fails the evaluation"
    assert run.data.metrics["cmp.model-a.vs.model-b.delong_p"] == 0.25
    assert {"protocol.json", "summary.json", "comparisons.json"} <= artifact_paths(
        client, run.info.run_id
    )


def test_child_run_tags_params_metrics_artifacts(logged, client) -> None:
    run = client.get_run(logged["good"])
    assert run.info.run_name == "model-a / ALL" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == logged["parent"].run_id
    assert CHILD_TAGS.items() <= tags.items()
    assert (
        tags["gai.model"] == "model-a"
        and tags["gai.protocol_hash"] == logged["protocol"].content_hash
    )
    assert "gai.error" not in tags
    assert set(run.data.params) >= CHILD_PARAMS
    assert run.data.params["threshold"] == "0.5"
    metrics = run.data.metrics
    for key in ("auc", "sensitivity", "specificity", "recall_rate", "cdr_per_1000", "ppv1"):
        assert {key, f"{key}_ci_low", f"{key}_ci_high"} <= set(metrics), key
        assert metrics[f"{key}_ci_low"] <= metrics[key] <= metrics[f"{key}_ci_high"]
    for key in ("n_cases", "n_positive", "prevalence", "n_failed", "n_timeout", "latency_p95_s"):
        assert key in metrics
    assert (
        "sg.site.SUWON.auc" in metrics and "sg.manufacturer.GE_MEDICAL_SYSTEMS.n_cases" in metrics
    )
    assert all(math.isfinite(v) for v in metrics.values())
    finite = {k: v for k, v in logged["document"]["metrics"].items() if v is not None}
    assert metrics == pytest.approx(finite), "MLflow holds metrics.json's finite metrics"
    assert {
        "metrics.json",
        "per_case.csv",
        "environment.json",
        "context.json",
        "notebook.ipynb",
        "plots/roc.png",
        "plots/latency.png",
    } <= artifact_paths(client, run.info.run_id)


def test_failed_child_run_keeps_the_error_and_the_partial_notebook(logged, client) -> None:
    run = client.get_run(logged["bad"])
    assert run.info.status == "FAILED"
    assert run.data.tags["gai.error"].startswith("cell 6 (In [4]): CaseTableError")
    assert not run.data.metrics
    assert {"notebook.ipynb", "notebook.html", "context.json"} <= artifact_paths(
        client, logged["bad"]
    )


def test_ui_command_and_redaction(settings: Settings) -> None:
    assert mlflow_ui_command(settings) == f"mlflow ui --backend-store-uri {settings.tracking_uri}"
    uri = "postgresql://mlflow:s3cret@127.0.0.1/mlflow"
    assert redact_uri(uri) == "postgresql://mlflow:***@127.0.0.1/mlflow"
    remote = load_settings(home=settings.home, mlflow_uri="http://127.0.0.1:5000")
    assert mlflow_ui_command(remote) == "open http://127.0.0.1:5000 in a browser"
