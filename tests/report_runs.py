"""Realistic MLflow runs for the report tests, logged by the conventions of the evaluation
engine (no tests here).

:func:`log_report_runs` writes into a fresh SQLite tracking store, through the real
MLflow client, what evaluations of five disease tasks would leave behind:

- per task an experiment ``gai-<task>``, a parent run (``gai.role=evaluation``: protocol,
  protocol hash, snapshot, cohort hash, and the pre-specified DeLong comparisons
  ``cmp.<A>.vs.<B>.*``) and one child run per model and site (ALL, SUWON, ANSEONG,
  ICHEON) with the tags, params and metric keys of the conventions, CIs as ``_ci_low`` /
  ``_ci_high``, subgroups ``sg.<variable>.<value>.<metric>`` and operating points;
- metrics computed with the platform's own metric functions from synthetic per-case
  scores (so every interval is a real one), and artifacts: ``metrics.json``,
  ``per_case.csv``, ``plots/*.png`` and ``notebook.html``;
- baselines (origin ``baseline``), simulated vendors (origin ``simulator``, with a made-up
  vendor name the report must never show) and one vendor product (origin ``vendor``);
- a failed run newer than a finished one (simulator at ICHEON), a model x site with a
  failed run only (the vendor at ANSEONG), a run still RUNNING (breast_mg), a gateway
  ``operations`` run with turnaround by hour, and a task with an experiment but no runs
  (``stroke_ct``).

Before anything is logged, the freshly migrated database is copied to ``empty.db``: an
MLflow store that exists but holds no runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SITES = ("SUWON", "ANSEONG", "ICHEON")
T0 = 1_790_000_000_000  # ms; runs are started in order from here
FAILURE = "cell 7: ModelTimeoutError: the model did not answer within 60 s"
SIM_VENDOR = "Simulated Vendor Inc."  # the report must never print this
VENDOR = "ACME Medical AI (test fixture)"
BASELINE_VENDOR = "gai-research (baseline)"
CODE_VERSION = "0.1.0+g5bb32bb"
PACKAGES = {"numpy": np.__version__, "scikit-learn": "1.9.0", "mlflow": "3.17.0"}
FROC_RATES = (0.125, 0.25, 0.5, 1, 2, 4, 8)
SEXES = ("F", "M")
AGE_BANDS = ("lt65", "65-74", "ge75")  # as the engine labels bands cut at [65, 75]
MANUFACTURERS = ("SIEMENS", "GE MEDICAL SYSTEMS")


@dataclass(frozen=True)
class ModelDef:
    name: str
    origin: str
    vendor: str
    version: str
    separation: float  # how far positives' scores sit above negatives'
    latency_s: float  # median seconds per study


@dataclass
class LoggedRun:
    run_id: str
    task: str
    role: str
    model: str | None
    site: str | None
    status: str
    start_time: int
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportRuns:
    """What was logged, for the tests to compare the report with."""

    root: Path
    tracking_uri: str
    empty_uri: str
    runs: list[LoggedRun]
    task_without_runs: str = "stroke_ct"

    def by_id(self, run_id: str) -> LoggedRun:
        return next(r for r in self.runs if r.run_id == run_id)

    def children(self, task: str | None = None) -> list[LoggedRun]:
        return [r for r in self.runs if r.role == "model" and (task is None or r.task == task)]

    def chosen(self) -> dict[tuple[str, str, str], LoggedRun]:
        """Per (task, model, site): the latest FINISHED run, else the latest failed one."""
        out: dict[tuple[str, str, str], LoggedRun] = {}
        for run in sorted(self.children(), key=lambda r: r.start_time):
            key = (run.task, run.model or "", run.site or "")
            current = out.get(key)
            replaces = run.status == "FINISHED" or current is None or current.status != "FINISHED"
            if replaces and run.status in ("FINISHED", "FAILED"):
                out[key] = run
        return out

    @property
    def failed(self) -> list[LoggedRun]:
        return [r for r in self.runs if r.status == "FAILED"]

    @property
    def unfinished(self) -> list[LoggedRun]:
        return [r for r in self.runs if r.status == "RUNNING"]


# --- synthetic cases ---------------------------------------------------------------------------
@dataclass
class Cases:
    site: np.ndarray
    label: np.ndarray
    sex: np.ndarray
    age_band: np.ndarray
    manufacturer: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


def _cases(rng: np.random.Generator, per_site: int, prevalence: float) -> Cases:
    n = per_site * len(SITES)
    return Cases(
        site=np.repeat(np.array(SITES), per_site),
        label=(rng.random(n) < prevalence).astype(int),
        sex=rng.choice(SEXES, n),
        age_band=rng.choice(AGE_BANDS, n, p=[0.3, 0.5, 0.2]),
        manufacturer=rng.choice(MANUFACTURERS, n),
    )


def _scores(rng: np.random.Generator, cases: Cases, model: ModelDef) -> np.ndarray:
    raw = cases.label * model.separation + rng.normal(0.0, 1.0, len(cases))
    return 1.0 / (1.0 + np.exp(-(raw - model.separation / 2)))


def _latencies(rng: np.random.Generator, n: int, model: ModelDef) -> list[float | None]:
    values: list[float | None] = list(rng.lognormal(np.log(model.latency_s), 0.35, n))
    for i in rng.choice(n, 3, replace=False):  # a few failed calls
        values[int(i)] = None
    return values


# --- metric keys by the conventions ---------------------------------------------------------------
def _est(out: dict[str, float], key: str, estimate) -> None:
    value, low, high = (float(v) for v in estimate)
    out[key] = value
    if not (np.isnan(low) or np.isnan(high)):
        out[f"{key}_ci_low"] = low
        out[f"{key}_ci_high"] = high


def _classification(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    from gai_research.evaluation.metrics import auc_ci, binary_metrics

    out: dict[str, float] = {}
    bm = binary_metrics(y, s, threshold)
    out["n_cases"] = float(bm.n)
    out["n_positive"] = float(bm.tp + bm.fn)
    out["n_negative"] = float(bm.tn + bm.fp)
    out["prevalence"] = float(bm.prevalence)
    for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        _est(out, name, getattr(bm, name))
    for name in ("tp", "fp", "tn", "fn"):
        out[name] = float(getattr(bm, name))
    out["threshold"] = threshold
    if 0 < y.sum() < len(y) - 1 and y.sum() > 1:
        _est(out, "auc", auc_ci(y, s))
    return out


def _latency(values: list[float | None]) -> dict[str, float]:
    from gai_research.evaluation.metrics import latency_summary

    lat = latency_summary(values)
    return {
        "n_failed": float(lat.failures),
        "n_timeout": float(lat.timeouts),
        "latency_median_s": lat.median,
        "latency_p25_s": lat.q1,
        "latency_p75_s": lat.q3,
        "latency_p95_s": lat.p95,
        "latency_max_s": lat.max,
    }


def _operating_points(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from gai_research.evaluation.metrics import sensitivity_at_specificity

    out: dict[str, float] = {}
    op = sensitivity_at_specificity(y, s, 0.9)
    _est(out, "sens_at_spec_0.9", op.sensitivity)
    return out


def _froc(rng: np.random.Generator, y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from gai_research.evaluation.metrics import froc

    scans = [f"scan{i}" for i in range(len(y))]
    nodules, candidates = [], []
    for i, (label, score) in enumerate(zip(y, s, strict=True)):
        for k in range(int(rng.integers(0, 3))):  # false-positive candidates
            candidates.append((scans[i], 100.0 + k * 30, 0.0, 0.0, float(rng.random() * 0.7)))
        if label:
            nodules.append((scans[i], 0.0, 0.0, 0.0, 8.0))
            if rng.random() < 0.2 + 0.75 * score:
                candidates.append((scans[i], 1.0, 0.5, 0.0, float(score)))
    result = froc(candidates, nodules, scans, fps_per_scan=FROC_RATES, n_bootstrap=100, seed=0)
    out: dict[str, float] = {}
    _est(out, "cpm", result.cpm)
    for rate, estimate in zip(FROC_RATES, result.sensitivities, strict=True):
        _est(out, f"froc_sens_fp_{rate:g}", estimate)
    return out


def _screening(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from gai_research.evaluation.metrics import screening_metrics

    sm = screening_metrics(y, (s >= 0.5).astype(int))
    out: dict[str, float] = {}
    _est(out, "recall_rate", sm.recall_rate)
    _est(out, "cdr_per_1000", sm.cancer_detection_rate)
    _est(out, "ppv1", sm.ppv1)
    return out


def _volumes(rng: np.random.Generator, n: int, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = rng.normal(3.2, 0.35, n) - 0.6 * label
    measured = reference + 0.08 + rng.normal(0.0, 0.12, n)
    return measured, reference


STRUCTURES = ("hippocampus_l", "hippocampus_r")


def _agreement(volumes: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Per structure ``vol.<s>.*``; the first structure also under the plain keys."""
    from gai_research.evaluation.metrics import bland_altman, icc

    out: dict[str, float] = {}
    for index, (structure, (measured, reference)) in enumerate(volumes.items()):
        mine: dict[str, float] = {"n_pairs": float(len(measured))}
        _est(mine, "icc", icc(reference, measured).icc)
        ba = bland_altman(measured, reference)
        _est(mine, "ba_bias_ml", ba.bias)
        _est(mine, "ba_loa_low_ml", ba.lower_loa)
        _est(mine, "ba_loa_high_ml", ba.upper_loa)
        mine["mae_ml"] = float(np.mean(np.abs(measured - reference)))
        out.update({f"vol.{structure}.{k}": v for k, v in mine.items()})
        if index == 0:
            out.update({k: v for k, v in mine.items() if k != "n_pairs"})
    return out


def _subgroups(cases: Cases, s: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for variable in ("site", "sex", "age_band", "manufacturer"):
        column = getattr(cases, variable)
        for level in sorted(set(column.tolist())):
            mask = column == level
            metrics = _classification(cases.label[mask], s[mask])
            for name in ("n_cases", "sensitivity", "specificity", "auc"):
                for suffix in ("", "_ci_low", "_ci_high"):
                    if name + suffix in metrics:
                        key = f"sg.{variable}.{level.replace(' ', '_')}.{name}{suffix}"
                        out[key] = metrics[name + suffix]
    return out


# --- logging ----------------------------------------------------------------------------------------
class _Logger:
    def __init__(self, root: Path) -> None:
        from mlflow import MlflowClient

        self.root = root
        self.db = root / "mlflow.db"
        self.uri = f"sqlite:///{self.db}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.client.search_experiments()  # creates and migrates the database
        shutil.copyfile(self.db, root / "empty.db")
        self.clock = T0
        self.runs: list[LoggedRun] = []
        self.scratch = root / "scratch"
        self.scratch.mkdir(exist_ok=True)

    def experiment(self, task: str) -> str:
        return self.client.create_experiment(
            f"gai-{task}", artifact_location=(self.root / "artifacts" / task).as_uri()
        )

    def start(self, experiment_id: str, name: str, tags: dict[str, str]) -> str:
        self.clock += 60_000
        run = self.client.create_run(experiment_id, start_time=self.clock, tags=tags, run_name=name)
        return run.info.run_id

    def finish(self, run_id: str, status: str) -> None:
        if status != "RUNNING":
            self.client.set_terminated(run_id, status=status, end_time=self.clock + 30_000)

    def log(self, run_id: str, metrics: dict[str, float], params: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param

        items = [Metric(k, float(v), self.clock, 0) for k, v in sorted(metrics.items())]
        assert len(items) + len(params) <= 1000, "one log_batch holds 1000 entities"
        self.client.log_batch(
            run_id, metrics=items, params=[Param(k, v) for k, v in sorted(params.items())]
        )

    def artifact(self, run_id: str, name: str, data: bytes, folder: str | None = None) -> None:
        local = self.scratch / run_id / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        self.client.log_artifact(run_id, str(local), folder)


def _roc_png(y: np.ndarray, s: np.ndarray, title: str) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = np.argsort(-s)
    tpr = np.concatenate([[0], np.cumsum(y[order]) / max(y.sum(), 1)])
    fpr = np.concatenate([[0], np.cumsum(1 - y[order]) / max((1 - y).sum(), 1)])
    fig = Figure(figsize=(3.2, 3.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _per_case_csv(cases: Cases, s: np.ndarray, latencies: list[float | None]) -> bytes:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "site", "label", "score", "latency_s", "status"])
    for i in range(len(cases)):
        lat = latencies[i]
        writer.writerow(
            [
                f"case-{i:04d}",
                cases.site[i],
                int(cases.label[i]),
                f"{s[i]:.6f}",
                "" if lat is None else f"{lat:.4f}",
                "failed" if lat is None else "ok",
            ]
        )
    return buffer.getvalue().encode("utf-8")


TASK_MODELS: dict[str, tuple[str, list[ModelDef]]] = {
    "lung_nodule_ct": (
        "detection",
        [
            ModelDef("baseline-lung-nodule-ct", "baseline", BASELINE_VENDOR, "0.1.0", 1.2, 2.4),
            ModelDef("sim-lung-ct", "simulator", SIM_VENDOR, "2.3.1", 2.6, 1.1),
        ],
    ),
    "lung_nodule_dx": (
        "classification",
        [
            ModelDef("baseline-chest-xray", "baseline", BASELINE_VENDOR, "0.1.0", 0.9, 0.35),
            ModelDef("acme-cxr", "vendor", VENDOR, "4.0.2", 3.4, 0.8),
            ModelDef("sim-cxr", "simulator", SIM_VENDOR, "1.0.0", 2.0, 0.5),
        ],
    ),
    "breast_mg": (
        "classification",
        [
            ModelDef("baseline-mammography", "baseline", BASELINE_VENDOR, "0.1.0", 1.4, 0.9),
            ModelDef("sim-mg", "simulator", SIM_VENDOR, "3.1.0", 2.2, 1.6),
        ],
    ),
    "dementia_mr": (
        "volumetry",
        [ModelDef("baseline-hippocampal-volume", "baseline", BASELINE_VENDOR, "0.1.0", 1.8, 12.5)],
    ),
}
SNAPSHOT = hashlib.sha256(b"report-fixture-snapshot").hexdigest()


def _child_metrics(
    rng: np.random.Generator,
    task: str,
    kind: str,
    cases: Cases,
    s: np.ndarray,
    latencies: list[float | None],
    volumes: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    with_subgroups: bool,
) -> dict[str, float]:
    y = cases.label
    metrics = _classification(y, s)
    metrics.update(_latency(latencies))
    metrics.update(_operating_points(y, s))
    if kind == "detection":
        metrics.update(_froc(rng, y, s))
    if task == "breast_mg":
        metrics.update(_screening(y, s))
    if volumes is not None:
        metrics.update(_agreement(volumes))
    if with_subgroups:
        metrics.update(_subgroups(cases, s))
    return metrics


def _log_task(log: _Logger, rng: np.random.Generator, task: str) -> None:
    kind, models = TASK_MODELS[task]
    exp = log.experiment(task)
    cases = _cases(rng, per_site=120, prevalence=0.3)
    protocol_hash = hashlib.sha256(f"protocol {task} v1".encode()).hexdigest()
    cohort_hash = hashlib.sha256(f"cohort {task}".encode()).hexdigest()
    parent_tags = {
        "gai.role": "evaluation",
        "gai.task": task,
        "gai.kind": kind,
        "gai.protocol": task.replace("_", "-"),
        "gai.protocol_version": "1.0",
        "gai.protocol_hash": protocol_hash,
        "gai.snapshot": SNAPSHOT,
        "gai.cohort_hash": cohort_hash,
    }
    parent = log.start(exp, f"{task} evaluation", parent_tags)
    scores = {m.name: _scores(rng, cases, m) for m in models}
    parent_metrics: dict[str, float] = {}
    if len(models) > 1:
        from gai_research.evaluation.metrics import delong_test

        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                test = delong_test(cases.label, scores[a.name], scores[b.name])
                prefix = f"cmp.{a.name}.vs.{b.name}"
                parent_metrics[f"{prefix}.delong_p"] = test.p_value
                parent_metrics[f"{prefix}.auc_diff"] = test.difference
                parent_metrics[f"{prefix}.ci_low"] = test.ci_low
                parent_metrics[f"{prefix}.ci_high"] = test.ci_high
                parent_metrics[f"{prefix}.auc_a"] = test.auc_a
                parent_metrics[f"{prefix}.auc_b"] = test.auc_b
                parent_metrics[f"{prefix}.z"] = test.z
                parent_metrics[f"{prefix}.n_cases"] = float(len(cases))
    log.log(parent, parent_metrics, {"protocol_hash": protocol_hash, "snapshot": SNAPSHOT})
    parent_index = len(log.runs)
    failed_jobs = 0
    reruns: list[tuple] = []
    log.runs.append(
        LoggedRun(
            parent,
            task,
            "evaluation",
            None,
            None,
            "FINISHED",
            log.clock,
            parent_metrics,
            parent_tags,
        )
    )
    volumes = (
        {name: _volumes(rng, len(cases), cases.label) for name in STRUCTURES}
        if kind == "volumetry"
        else None
    )
    for model in models:
        s = scores[model.name]
        latencies = _latencies(rng, len(cases), model)
        for site in ("ALL", *SITES):
            mask = np.ones(len(cases), bool) if site == "ALL" else cases.site == site
            sub = Cases(
                *(
                    getattr(cases, f)[mask]
                    for f in ("site", "label", "sex", "age_band", "manufacturer")
                )
            )
            lat = [v for v, keep in zip(latencies, mask, strict=True) if keep]
            vol = (
                {k: (m[mask], r[mask]) for k, (m, r) in volumes.items()}
                if volumes is not None
                else None
            )
            status = "FINISHED"
            if task == "lung_nodule_dx" and model.origin == "vendor" and site == "ANSEONG":
                status = "FAILED"  # never finished at this site
            args = (protocol_hash, cohort_hash, rng, sub, s[mask], lat, vol)
            _log_child(log, exp, parent, task, kind, model, site, status, *args)
            failed_jobs += status == "FAILED"
            if task == "lung_nodule_dx" and model.name == "sim-cxr" and site == "ICHEON":
                reruns.append((model, site, "FAILED", args))  # a later re-run failed
            if task == "breast_mg" and model.name == "sim-mg" and site == "SUWON":
                reruns.append((model, site, "RUNNING", args))  # one still running
    # the engine ends an evaluation FAILED when any of its model runs failed, and its
    # summary.json lists the failures
    if failed_jobs:
        failures = [f"acme-cxr / ANSEONG: {FAILURE}"]
        log.artifact(parent, "summary.json", json.dumps({"failures": failures}).encode())
    log.finish(parent, "FAILED" if failed_jobs else "FINISHED")
    log.runs[parent_index].status = "FAILED" if failed_jobs else "FINISHED"
    for model, site, status, args in reruns:  # each re-run is an evaluation of its own
        again = log.start(exp, f"{task} evaluation (re-run)", parent_tags)
        log.runs.append(
            LoggedRun(again, task, "evaluation", None, None, status, log.clock, {}, parent_tags)
        )
        _log_child(log, exp, again, task, kind, model, site, status, *args)
        if status == "FAILED":
            failures = [f"{model.name} / {site}: {FAILURE}"]
            log.artifact(again, "summary.json", json.dumps({"failures": failures}).encode())
        log.finish(again, status)


def _log_child(
    log,
    exp,
    parent,
    task,
    kind,
    model,
    site,
    status,
    protocol_hash,
    cohort_hash,
    rng,
    cases,
    s,
    latencies,
    volumes,
) -> None:
    tags = {
        "gai.role": "model",
        "gai.task": task,
        "gai.kind": kind,
        "gai.model": model.name,
        "gai.model_version": model.version,
        "gai.vendor": model.vendor,
        "gai.origin": model.origin,
        "gai.site": site,
        "gai.protocol_hash": protocol_hash,
        "gai.snapshot": SNAPSHOT,
        "mlflow.parentRunId": parent,
    }
    if status == "FAILED":
        tags["gai.error"] = FAILURE
    run_id = log.start(exp, f"{model.name} / {site}", tags)
    params = {
        "protocol_hash": protocol_hash,
        "snapshot": SNAPSHOT,
        "cohort_hash": cohort_hash,
        "model_name": model.name,
        "model_vendor": model.vendor,
        "model_version": model.version,
        "model_origin": model.origin,
        "code_version": CODE_VERSION,
        "site": site,
        "threshold": "0.5",
        "ci_level": "0.95",
        **{f"pkg.{k}": v for k, v in PACKAGES.items()},
    }
    metrics: dict[str, float] = {}
    if status != "FAILED":
        metrics = _child_metrics(rng, task, kind, cases, s, latencies, volumes, site == "ALL")
    log.log(run_id, metrics, params)
    if site == "ALL" and status == "FINISHED":
        nested = {k: v for k, v in metrics.items() if not k.endswith(("_ci_low", "_ci_high"))}
        cis = {
            k[: -len("_ci_low")]: [metrics[k], metrics[k[: -len("_low")] + "_high"]]
            for k in metrics
            if k.endswith("_ci_low")
        }
        log.artifact(
            run_id, "metrics.json", json.dumps({"metrics": nested, "ci": cis}, indent=1).encode()
        )
        log.artifact(run_id, "per_case.csv", _per_case_csv(cases, s, latencies))
        log.artifact(run_id, "roc.png", _roc_png(cases.label, s, f"ROC {model.name}"), "plots")
        log.artifact(run_id, "notebook.html", b"<html><body>executed notebook</body></html>")
    if status == "FAILED":
        log.artifact(run_id, "notebook.html", b"<html><body>partial notebook</body></html>")
    log.finish(run_id, status)
    log.runs.append(
        LoggedRun(run_id, task, "model", model.name, site, status, log.clock, metrics, tags)
    )


def _log_operations(log: _Logger, rng: np.random.Generator, experiment_id: str) -> None:
    tags = {
        "gai.role": "operations",
        "gai.task": "lung_nodule_dx",
        "gai.site": "SUWON",
        "gai.model": "acme-cxr",
        "gai.model_version": "4.0.2",
        "gai.origin": "vendor",
        "gai.vendor": VENDOR,
    }
    run_id = log.start(experiment_id, "gateway acme-cxr / SUWON", tags)
    metrics = {
        "ttr_median_s": 14.2,
        "ttr_p95_s": 31.7,
        "gateway_overhead_median_s": 0.42,
        "throughput_per_h": 118.0,
        "n_studies": 942.0,
        "n_failed": 3.0,
        "n_timeout": 1.0,
    }
    log.log(run_id, metrics, {"code_version": CODE_VERSION})
    from mlflow.entities import Metric

    hourly = [
        Metric(
            "ttr_median_s_by_hour",
            float(12 + 6 * np.sin(h / 24 * 2 * np.pi) + rng.random()),
            log.clock + h,
            h,
        )
        for h in range(24)
    ]
    log.client.log_batch(run_id, metrics=hourly)
    log.finish(run_id, "FINISHED")
    log.runs.append(
        LoggedRun(
            run_id,
            "lung_nodule_dx",
            "operations",
            "acme-cxr",
            "SUWON",
            "FINISHED",
            log.clock,
            metrics,
            tags,
        )
    )


def log_report_runs(root: Path, seed: int = 20261120) -> ReportRuns:
    """Log the fixture runs under ``root`` (mlflow.db, empty.db, artifacts/)."""
    root.mkdir(parents=True, exist_ok=True)
    log = _Logger(root)
    rng = np.random.default_rng(seed)
    for task in TASK_MODELS:
        _log_task(log, rng, task)
    dx = log.client.get_experiment_by_name("gai-lung_nodule_dx").experiment_id
    _log_operations(log, rng, dx)
    log.experiment("stroke_ct")  # an experiment with no runs
    return ReportRuns(root, log.uri, f"sqlite:///{root / 'empty.db'}", log.runs)
