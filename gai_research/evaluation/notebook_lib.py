"""What the evaluation notebooks call: load the inputs, compute, plot, write the outputs.

The notebooks (``notebooks/eval_*.ipynb``) stay thin: a parameters cell, an environment
print-out, then one call per step. Everything they compute lives here and in
:mod:`~gai_research.evaluation.endpoints` and :mod:`~gai_research.evaluation.plots`, so a
notebook and a test compute the same numbers.

    >>> env = environment(); print(environment_report(env))
    >>> cases, context = load_inputs(per_case_path, context_path, kind="classification")
    >>> evaluation = evaluate(cases, context)
    >>> write_outputs(evaluation, context, output_dir, env=env)

Outputs in ``output_dir``: ``metrics.json`` (stable text: an identical rerun writes the
same bytes), ``per_case.csv`` (the table as evaluated, with each study's call and
outcome), ``environment.json`` and ``plots/*.png``.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.evaluation.cases import read_case_table
from gai_research.evaluation.context import EvalContext
from gai_research.evaluation.endpoints import Evaluation, evaluate_cases
from gai_research.evaluation.errors import EvaluationError
from gai_research.evaluation.plots import plot_bland_altman, plot_froc, plot_latency, plot_roc

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PACKAGES",
    "code_version",
    "environment",
    "environment_report",
    "evaluate",
    "load_inputs",
    "plot_bland_altman",
    "plot_froc",
    "plot_latency",
    "plot_roc",
    "provenance_report",
    "show_plot",
    "write_outputs",
]

#: distributions whose versions an evaluation records (MLflow params ``pkg.<name>``)
PACKAGES = (
    "gai-research",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "statsmodels",
    "matplotlib",
    "papermill",
    "nbconvert",
    "mlflow",
    "pydicom",
    "highdicom",
    "monai",
    "torch",
)


def _git_commit() -> str | None:
    """The commit of the repository the package runs from, ``+dirty`` when changed."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def code_version() -> str:
    """``gai-research <version>`` plus the git commit when running from a checkout."""
    from gai_research import __version__

    commit = _git_commit()
    return f"{__version__} ({commit})" if commit else __version__


def environment() -> dict[str, Any]:
    """Python, platform, package versions and code version of this process."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": Path(sys.executable).name,
        "code_version": code_version(),
        "git_commit": _git_commit(),
        "packages": versions,
    }


def environment_report(env: dict[str, Any] | None = None) -> str:
    """The environment as a few lines of text, for a notebook's first output."""
    env = env if env is not None else environment()
    lines = [
        f"python {env['python']} ({env['implementation']}) on {env['platform']}",
        f"code {env['code_version']}",
        "packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
    ]
    return "\n".join(lines)


def load_inputs(
    per_case_path: str | Path, context_path: str | Path, *, kind: str | None = None
) -> tuple[pd.DataFrame, EvalContext]:
    """The checked per-case table and the context; ``kind`` guards against the wrong notebook."""
    context = EvalContext.read(context_path)
    if kind is not None and context.protocol.kind.value != kind:
        raise EvaluationError(
            f"this notebook evaluates {kind} protocols, and {context.protocol.name} is "
            f"{context.protocol.kind.value}",
            hint=f"use notebook {context.protocol.notebook_name}",
        )
    return read_case_table(per_case_path, context.protocol), context


def provenance_report(context: EvalContext) -> str:
    """Protocol, model, site and data of a run, in two lines (hashes shortened)."""
    protocol, model = context.protocol, context.model
    return (
        f"protocol {protocol.name} {protocol.version} (hash {context.protocol_hash[:12]}), "
        f"site {context.site}\n"
        f"model {model.name} {model.version} by {model.vendor} ({model.origin.value}); "
        f"snapshot {context.snapshot[:12] or '-'}, cohort {context.cohort_name or '-'} "
        f"(hash {context.cohort_hash[:12] or '-'})"
    )


def evaluate(cases: pd.DataFrame, context: EvalContext) -> Evaluation:
    """Every endpoint of the protocol, overall and per subgroup (see endpoints.evaluate_cases)."""
    return evaluate_cases(cases, context)


_ALT = {
    "roc": "ROC curve with its bootstrap band and the threshold's operating point",
    "froc": "FROC curve with the sensitivities at the CPM rates and their intervals",
    "latency": "histogram and box plot of the latency per study",
}


def show_plot(path: str | Path) -> Any:
    """A plot for ``IPython.display.display``: the PNG inline, with alternative text."""
    import base64
    import html

    from IPython.display import HTML

    path = Path(path)
    stem = path.stem
    alt = _ALT.get(stem) or (
        f"Bland-Altman plot of {stem.removeprefix('bland_altman_')}: model minus reference "
        "against their mean, with bias and limits of agreement"
        if stem.startswith("bland_altman_")
        else stem
    )
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return HTML(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')


def counts_table(evaluation: Evaluation) -> pd.DataFrame:
    """How the studies were counted: cases, positives, failed, timed out, missing, excluded."""
    import pandas as pd

    keys = (
        "n_cases",
        "n_positive",
        "n_negative",
        "n_failed",
        "n_timeout",
        "n_missing",
        "n_excluded",
    )
    return pd.DataFrame([{k: int(evaluation.metrics.get(k, 0)) for k in keys}])


def per_case_outcomes(evaluation: Evaluation) -> pd.DataFrame:
    """The evaluated table with each study's call at the threshold and its outcome."""
    import numpy as np

    frame = evaluation.cases.copy()
    frame["score_imputed"] = ~frame["scored"]
    if evaluation.threshold is not None:
        called = frame["score"].to_numpy(dtype=float) >= evaluation.threshold
        truth = frame["y_true"].to_numpy() == 1
        frame["called_positive"] = called.astype(int)
        frame["outcome"] = np.select(
            [called & truth, called & ~truth, ~called & truth], ["TP", "FP", "FN"], "TN"
        )
    for column in ("ref_lesions", "pred_findings"):
        if column in frame.columns:
            frame[column] = [json.dumps(v, sort_keys=True) for v in frame[column]]
    return frame.drop(columns=["answered", "scored"])


def write_outputs(
    evaluation: Evaluation,
    context: EvalContext,
    output_dir: str | Path,
    *,
    env: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_case.csv`` and ``environment.json``; returns their paths."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": folder / "metrics.json",
        "per_case": folder / "per_case.csv",
        "environment": folder / "environment.json",
    }
    paths["metrics"].write_text(dumps(metrics_document(evaluation, context)), encoding="utf-8")
    per_case_outcomes(evaluation).to_csv(paths["per_case"], index=False, float_format="%.6g")
    env = env if env is not None else environment()
    paths["environment"].write_text(json.dumps(env, indent=1, sort_keys=True), encoding="utf-8")
    return paths


def metrics_document(evaluation: Evaluation, context: EvalContext) -> dict[str, Any]:
    """The ``metrics.json`` of a run: flat metrics (NaN as null), endpoints, CIs, subgroups."""
    protocol = context.protocol

    def clean(value: float) -> float | None:
        return None if value is None or not math.isfinite(value) else float(value)

    def endpoint(name: str) -> dict[str, Any]:
        return {
            "estimate": clean(evaluation.metrics.get(name, math.nan)),
            "ci_low": clean(evaluation.metrics.get(f"{name}_ci_low", math.nan)),
            "ci_high": clean(evaluation.metrics.get(f"{name}_ci_high", math.nan)),
            "method": evaluation.estimates.get(name, {}).get("method", ""),
        }

    return {
        "format": "gai-evaluation-metrics/1",
        "task": protocol.task,
        "kind": protocol.kind.value,
        "protocol": {
            "name": protocol.name,
            "version": protocol.version,
            "hash": context.protocol_hash,
        },
        "model": {
            "name": context.model.name,
            "vendor": context.model.vendor,
            "version": context.model.version,
            "origin": context.model.origin.value,
        },
        "site": context.site,
        "snapshot": context.snapshot,
        "cohort_hash": context.cohort_hash,
        "threshold": {
            "value": clean(evaluation.threshold) if evaluation.threshold is not None else None,
            "source": context.threshold_source,
        },
        "ci": {"level": protocol.ci.level, **protocol.ci.model_dump(mode="json")},
        "counts": evaluation.counts,
        "endpoints": {
            "primary": {n: endpoint(n) for n in protocol.endpoints.primary},
            "secondary": {n: endpoint(n) for n in protocol.endpoints.secondary},
        },
        "estimates": {
            k: {
                **v,
                "estimate": clean(v["estimate"]),
                "ci_low": clean(v["ci_low"]),
                "ci_high": clean(v["ci_high"]),
            }
            for k, v in sorted(evaluation.estimates.items())
        },
        "subgroups": {
            variable: {value: {k: clean(v) for k, v in m.items()} for value, m in values.items()}
            for variable, values in evaluation.subgroups.items()
        },
        "metrics": {k: clean(v) for k, v in sorted(evaluation.metrics.items())},
        "notes": evaluation.notes,
    }


def dumps(document: dict[str, Any]) -> str:
    """Stable JSON text (sorted keys): an identical rerun writes an identical file."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
