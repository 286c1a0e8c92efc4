"""The evaluation notebooks: thin, stripped, and executed by papermill on hand-made tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from gai_research.evaluation.cases import check_case_table
from gai_research.evaluation.context import make_context
from gai_research.evaluation.endpoints import evaluate_cases
from gai_research.evaluation.jobs import NotebookJob, NotebookResult, run_jobs
from gai_research.evaluation.notebook_lib import dumps, metrics_document
from gai_research.evaluation.protocol import NOTEBOOK_OF_KIND, load_protocol, parse_protocol
from gai_research.evaluation.samples import sample_case_table, sample_model_info

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# one protocol per notebook kind (breast_mg: classification with the screening measures)
BY_KIND = {
    "classification": "breast_mg",
    "detection": "lung_nodule_ct",
    "volumetry": "dementia_mr",
    "triage": "stroke_ct",
}
PLOTS = {
    "classification": {"roc.png", "latency.png"},
    "detection": {"roc.png", "froc.png", "latency.png"},
    "volumetry": {
        "roc.png",
        "latency.png",
        "bland_altman_hippocampus_l.png",
        "bland_altman_hippocampus_r.png",
    },
    "triage": {"roc.png", "latency.png", "bland_altman_hemorrhage.png"},
}


def small_protocol(task: str):
    """The committed protocol with a 200-resample bootstrap (the notebooks run in seconds)."""
    protocol = load_protocol(ROOT / "evaluation" / f"{task}.yaml")
    data = protocol.canonical()
    data["ci"]["bootstrap_n"] = 200
    return parse_protocol(data, f"{task} (test)")


def job_for(task: str, cases: pd.DataFrame, **changes) -> tuple[NotebookJob, object]:
    protocol = small_protocol(task)
    context = make_context(
        protocol,
        sample_model_info(protocol),
        snapshot="5" * 64,
        cohort_hash="c" * 64,
        cohort_name="hand-made",
        code_version="test",
    )
    buffer = io.BytesIO()
    cases.to_parquet(buffer, index=False)
    job = NotebookJob(
        key=f"sample-model / ALL ({task})",
        model="sample-model",
        site="ALL",
        notebook_name=protocol.notebook_name,
        notebook_text=(NOTEBOOKS / protocol.notebook_name).read_text("utf-8"),
        cases_parquet=buffer.getvalue(),
        context_json=json.dumps(context.to_dict()),
        timeout_s=300,
        **changes,
    )
    return job, context


def eval_notebooks() -> list[Path]:
    return [NOTEBOOKS / name for name in NOTEBOOK_OF_KIND.values()]


@pytest.mark.parametrize("path", eval_notebooks(), ids=lambda p: p.name)
def test_committed_thin_and_stripped(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert "environment_report" in "".join(code[1]["source"]), "environment print-out first"
    params = "".join(code[0]["source"])
    assert all(p in params for p in ("per_case_path", "context_path", "output_dir"))
    text = "".join("".join(c["source"]) for c in code)
    for computation in ("import numpy", "import sklearn", "import scipy", "auc_ci(", "catalog"):
        assert computation not in text, f"{computation!r}: computations belong in the library"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


@pytest.fixture(scope="module")
def executed() -> dict[str, tuple[NotebookResult, pd.DataFrame, object]]:
    """Every notebook on its hand-made table, plus one job that must fail, in a process pool."""
    jobs, inputs = [], {}
    for kind, task in BY_KIND.items():
        cases = sample_case_table(small_protocol(task), n=48, seed=3)
        job, context = job_for(task, cases)
        jobs.append(job)
        inputs[job.key] = (kind, cases, context)
    # a classification table handed to the detection notebook: its load cell raises
    job, _ = job_for("lung_nodule_dx", sample_case_table(small_protocol("lung_nodule_dx"), n=20))
    detection = (NOTEBOOKS / "eval_detection.ipynb").read_text("utf-8")
    jobs.append(NotebookJob(**{**job.__dict__, "key": "wrong", "notebook_text": detection}))
    out = {}
    for result in run_jobs(jobs, workers=2):
        kind, cases, context = inputs.get(result.key, ("wrong", None, None))
        out[kind] = (result, cases, context)
    return out


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_notebook_runs_on_a_hand_made_table(executed, kind: str) -> None:
    result, cases, context = executed[kind]
    assert result.ok, result.error
    assert PLOTS[kind] == {n.removeprefix("plots/") for n in result.files if n.startswith("plots/")}
    for name in ("metrics.json", "per_case.csv", "environment.json", "notebook.ipynb"):
        assert name in result.files
    assert result.files["notebook.html"].startswith(b"<!DOCTYPE html>")

    executed_notebook = json.loads(result.files["notebook.ipynb"])
    code = [c for c in executed_notebook["cells"] if c["cell_type"] == "code"]
    tags = [c["metadata"].get("tags", []) for c in code]
    assert "parameters" in tags[0] and "injected-parameters" in tags[1]
    printed = "".join("".join(o.get("text", [])) for o in code[2]["outputs"])
    assert printed.startswith("python 3.") and "packages: gai-research" in printed

    # the notebook computes exactly what the library computes in this process
    checked = check_case_table(cases, context.protocol)
    expected = dumps(metrics_document(evaluate_cases(checked, context), context))
    assert result.files["metrics.json"].decode("utf-8") == expected
    document = json.loads(expected)
    for name in context.protocol.endpoints.primary:
        assert document["endpoints"]["primary"][name]["estimate"] is not None
        assert f"sg.site.SUWON.{name}" in document["metrics"]
    assert {"site", "manufacturer", "age_band"} <= set(document["subgroups"])
    per_case = pd.read_csv(io.BytesIO(result.files["per_case.csv"]), dtype={"study_uid": str})
    assert len(per_case) == len(cases) and set(per_case["outcome"]) <= {"TP", "FP", "TN", "FN"}
    assert per_case["score_imputed"].sum() == (cases["status"] != "ok").sum()


def test_a_failing_notebook_is_a_result_with_cell_and_exception(executed) -> None:
    result, _, _ = executed["wrong"]
    assert not result.ok
    assert result.error.startswith("cell ")
    assert "EvaluationError: this notebook evaluates detection protocols" in result.error
    assert "notebook.ipynb" in result.files and "notebook.html" in result.files  # partial
    assert "metrics.json" not in result.files
    assert all(executed[kind][0].ok for kind in BY_KIND), "the other jobs went on"


@pytest.mark.parametrize(
    ("prefix", "find", "hit", "other"),
    [
        ("sens_at_spec", "sensitivity_at_specificity", "sensitivity", "specificity"),
        ("spec_at_sens", "specificity_at_sensitivity", "specificity", "sensitivity"),
    ],
)
def test_operating_points_are_the_metric_functions_results(prefix, find, hit, other) -> None:
    """Each protocol operating point is logged as its metric function computes it: the
    estimate with its interval, the other measure at that threshold, and the threshold."""
    import numpy as np

    from gai_research.evaluation import metrics

    protocol = small_protocol("breast_mg")
    cases = sample_case_table(protocol, failed=0, timeouts=0)
    _, context = job_for("breast_mg", cases)
    result = evaluate_cases(cases, context)
    scored = result.cases[np.isfinite(result.cases["score"].to_numpy(dtype=float))]
    y, s = scored["y_true"].to_numpy(), scored["score"].to_numpy(dtype=float)
    ci = protocol.ci
    targets = getattr(protocol.operating_points, prefix)
    assert targets, f"the breast_mg protocol declares no {prefix} point"
    for target in targets:
        key = f"{prefix}_{target:g}"
        point = getattr(metrics, find)(
            y, s, target, n_bootstrap=ci.bootstrap_n, seed=ci.seed,
            ci_method=ci.proportion, alpha=ci.alpha,
        )  # fmt: skip
        estimate, low, high = (float(v) for v in getattr(point, hit))
        assert result.metrics[key] == estimate
        assert (result.metrics[f"{key}_ci_low"], result.metrics[f"{key}_ci_high"]) == (low, high)
        assert result.metrics[f"{key}_{other}"] == float(getattr(point, other).estimate)
        assert result.metrics[f"{key}_threshold"] == float(point.threshold)
