"""Run an evaluation protocol: predictions, per-case tables, notebooks, MLflow.

    >>> outcome = evaluate("evaluation/lung_nodule_ct.yaml", workers=2)
    >>> outcome.ok, outcome.parent_run_id, outcome.child_runs

For a protocol, :func:`evaluate`

1. builds the cohort (a saved one by name, or the protocol's filters on the latest
   snapshot), restricted to one site when asked;
2. runs every model over it with :func:`gai_research.models.runner.run_model` (stored
   predictions of the same model version and snapshot are reused unless
   ``force_predictions``); a model that cannot run is recorded and the others go on;
3. builds each model's per-case table (:mod:`~gai_research.evaluation.cases`);
4. executes the protocol's notebook with papermill once per model for ALL sites and, when
   the protocol splits by site, once per site, in a local process pool or on Dask
   (:mod:`~gai_research.evaluation.jobs`);
5. records a parent run and one child run per notebook in MLflow
   (:mod:`~gai_research.evaluation.tracking`), and the pre-specified comparisons on the
   parent.

A failed notebook is a FAILED child run with its error; nothing stops the other jobs;
``outcome.ok`` is False and ``outcome.failures`` says what failed.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.errors import GaiError
from gai_research.evaluation.context import ALL_SITES, EvalContext
from gai_research.evaluation.errors import EvaluationError
from gai_research.evaluation.jobs import DEFAULT_KERNEL, NotebookJob, run_jobs
from gai_research.evaluation.protocol import Protocol, list_protocols, load_protocol
from gai_research.evaluation.scrub import scrub
from gai_research.sites import Site

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.config import Settings
    from gai_research.data.cohort import Cohort
    from gai_research.evaluation.tracking import EvaluationTracker

__all__ = ["EvaluationOutcome", "default_notebooks_dir", "evaluate", "evaluate_all"]


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (the evaluation notebooks live there)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class EvaluationOutcome:
    """What an evaluation did, with the MLflow ids to find it again."""

    protocol: Protocol
    tracking_uri: str
    experiment_name: str
    experiment_id: str = ""
    parent_run_id: str = ""
    snapshot: str = ""
    cohort_hash: str = ""
    child_runs: dict[str, str] = field(default_factory=dict)  # "<model> / <site>" -> run id
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def _select_models(protocol: Protocol, models: list[str] | None) -> list[str]:
    if not models:
        return list(protocol.models)
    unknown = [m for m in models if m not in protocol.models]
    if unknown:
        raise EvaluationError(
            f"model {unknown[0]} is not in protocol {protocol.name}",
            hint=f"its models: {', '.join(protocol.models)}; add it to the protocol's models "
            "list to evaluate it (that changes the protocol's hash)",
        )
    return [m for m in protocol.models if m in models]


def build_cohort(protocol: Protocol, settings: Settings, site: Site | None = None) -> Cohort:
    """The protocol's cohort on the latest snapshot (or the saved cohort's own snapshot)."""
    from gai_research.data.catalog import open_catalog
    from gai_research.data.cohort import Cohort

    spec = protocol.cohort
    if spec.filters is not None:
        filters = spec.filters.as_kwargs()
        if site is not None:
            if filters.get("site") and site.value not in filters["site"]:
                raise EvaluationError(
                    f"site {site.value} is not in protocol {protocol.name}'s cohort",
                    hint=f"its sites: {', '.join(filters['site'])}",
                )
            filters["site"] = [site.value]
        name = f"eval-{protocol.name}" + (f"-{site.value.lower()}" if site else "")
        return Cohort.from_filters(name, open_catalog(settings=settings), **filters)
    cohort = Cohort.load(spec.name, settings=settings)
    if site is None:
        return cohort
    studies = cohort.studies
    chosen = studies.loc[studies["site"] == site.value, "study_uid"].tolist()
    if not chosen:
        raise EvaluationError(
            f"cohort {cohort.name} has no study at {site.value}", hint="choose another --site"
        )
    series = cohort.series
    return Cohort(
        f"{cohort.name}-{site.value.lower()}",
        query={"cohort": cohort.name, "cohort_hash": cohort.content_hash, "site": site.value},
        snapshot=cohort.snapshot,
        studies=chosen,
        series=series.loc[series["study_uid"].isin(chosen), "series_uid"].tolist(),
        settings=settings,
    )


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _job_sites(protocol: Protocol, table: pd.DataFrame, site: Site | None) -> list[str]:
    if site is not None:
        return [site.value]
    sites = [ALL_SITES]
    if protocol.split_by_site:
        present = set(table["site"])
        sites += [s.value for s in Site if s.value in present]
    return sites


def evaluate(
    protocol: Protocol | str | Path,
    *,
    settings: Settings | None = None,
    models: list[str] | None = None,
    site: Site | str | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    dask_client: Any = None,
    force_predictions: bool = False,
    notebooks_dir: str | Path | None = None,
    kernel_name: str = DEFAULT_KERNEL,
    tracker: EvaluationTracker | None = None,
) -> EvaluationOutcome:
    """Run one protocol end to end (see the module docstring); never raises for one model."""
    from gai_research.config import load_settings
    from gai_research.evaluation.notebook_lib import code_version
    from gai_research.evaluation.tracking import EvaluationTracker

    started = time.perf_counter()
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    settings = settings if settings is not None else load_settings()
    chosen_site = Site.parse(site) if site is not None else None
    chosen_models = _select_models(protocol, models)
    notebook_path = Path(notebooks_dir or default_notebooks_dir()) / protocol.notebook_name
    if not notebook_path.is_file():
        raise EvaluationError(
            f"notebook {protocol.notebook_name} of protocol {protocol.name} not found in "
            f"{notebook_path.parent}",
            hint="check the protocol's notebook: key (files in notebooks/)",
        )
    notebook_text = notebook_path.read_text(encoding="utf-8")
    cohort = build_cohort(protocol, settings, chosen_site)
    version = code_version()
    tracker = tracker or EvaluationTracker.from_settings(settings)
    outcome = EvaluationOutcome(
        protocol=protocol,
        tracking_uri=tracker.tracking_uri,
        experiment_name=protocol.experiment_name,
        snapshot=cohort.snapshot,
        cohort_hash=cohort.content_hash,
    )
    parent = tracker.start_evaluation(
        protocol,
        snapshot=cohort.snapshot,
        cohort_hash=cohort.content_hash,
        cohort_name=cohort.name,
        code_version=version,
        models=chosen_models,
        sites=[chosen_site.value] if chosen_site else [ALL_SITES],
    )
    outcome.experiment_id, outcome.parent_run_id = parent.experiment_id, parent.run_id
    try:
        tables: dict[str, pd.DataFrame] = {}
        jobs: list[NotebookJob] = []
        contexts: dict[str, EvalContext] = {}
        for name in chosen_models:
            table, info = _predict(
                name, protocol, cohort, settings, workers, force_predictions, outcome
            )
            if table is None:
                continue
            tables[name] = table
            for job_site in _job_sites(protocol, table, chosen_site):
                part = table if job_site == ALL_SITES else table[table["site"] == job_site]
                context = EvalContext(
                    protocol=protocol,
                    model=info,
                    site=job_site,
                    snapshot=cohort.snapshot,
                    cohort_hash=cohort.content_hash,
                    cohort_name=cohort.name,
                    code_version=version,
                )
                key = f"{name} / {job_site}"
                contexts[key] = context
                jobs.append(
                    NotebookJob(
                        key=key,
                        model=name,
                        site=job_site,
                        notebook_name=protocol.notebook_name,
                        notebook_text=notebook_text,
                        cases_parquet=_parquet(part),
                        context_json=_context_json(context),
                        timeout_s=protocol.timeout.notebook_s,
                        kernel_name=kernel_name,
                    )
                )
        for result in run_jobs(
            jobs, workers=workers, dask_address=dask_address, dask_client=dask_client
        ):
            run_id = tracker.log_model_run(parent, contexts[result.key], result)
            outcome.child_runs[result.key] = run_id
            outcome.jobs[result.key] = {
                "ok": result.ok,
                "error": result.error,
                "seconds": round(result.seconds, 3),
                "run_id": run_id,
            }
            if not result.ok:
                outcome.failures.append(f"notebook {result.key}: {result.error}")
        if protocol.comparisons:
            from gai_research.evaluation.comparisons import compare_models

            metrics, notes = compare_models(tables, protocol)
            tracker.log_comparisons(parent, metrics, notes)
    except BaseException as exc:
        outcome.failures.append(f"evaluation stopped: {scrub(f'{type(exc).__name__}: {exc}')}")
        _finish(tracker, parent, outcome, cohort, started)
        raise
    _finish(tracker, parent, outcome, cohort, started)
    return outcome


def _context_json(context: EvalContext) -> str:
    import json

    return json.dumps(context.to_dict(), ensure_ascii=False)


def _predict(
    name: str,
    protocol: Protocol,
    cohort: Cohort,
    settings: Settings,
    workers: int,
    force: bool,
    outcome: EvaluationOutcome,
) -> tuple[pd.DataFrame | None, Any]:
    """Run (or reuse) one model's predictions and build its per-case table."""
    from gai_research.evaluation.cases import build_case_table
    from gai_research.models.runner import run_model

    try:
        summary = run_model(
            name,
            cohort,
            settings=settings,
            workers=max(1, workers),
            force=force,
            progress=False,
            timeout_s=protocol.timeout.prediction_s,
        )
    except GaiError as exc:
        message = scrub(str(exc), keep_paths=True)
        outcome.models[name] = {"error": message}
        outcome.failures.append(f"model {name}: {message}")
        return None, None
    if summary.info.task != protocol.task:
        message = f"model {name} is for task {summary.info.task}, not {protocol.task}"
        outcome.models[name] = {"error": message}
        outcome.failures.append(f"model {name}: {message}")
        return None, None
    table = build_case_table(protocol, cohort, summary.records)
    outcome.models[name] = {
        "version": summary.info.version,
        "origin": summary.info.origin.value,
        "n_studies": summary.n_studies,
        "n_ok": summary.n_ok,
        "n_cached": summary.n_cached,
        "n_failed": summary.n_failed,
        "n_timeout": summary.n_timeout,
        "by_reason": summary.by_reason(),
        "n_cases": len(table),
        "n_no_reference": int(table.attrs.get("n_no_reference", 0)),
        "prediction_wall_s": round(summary.wall_s, 3),
    }
    return table, summary.info


def _finish(tracker, parent, outcome: EvaluationOutcome, cohort: Cohort, started: float) -> None:
    outcome.seconds = time.perf_counter() - started
    summary = {
        "protocol": outcome.protocol.name,
        "protocol_hash": outcome.protocol.content_hash,
        "snapshot": outcome.snapshot,
        "cohort": {
            "name": cohort.name,
            "hash": cohort.content_hash,
            "query": cohort.query,
            "n_studies": len(cohort),
        },
        "models": outcome.models,
        "jobs": outcome.jobs,
        "n_failed_jobs": sum(not j["ok"] for j in outcome.jobs.values()),
        "failures": outcome.failures,
        "seconds": round(outcome.seconds, 3),
    }
    tracker.finish_evaluation(parent, summary, outcome.ok)


def evaluate_all(
    folder: str | Path | None = None, **options: Any
) -> list[EvaluationOutcome | EvaluationError]:
    """Every protocol of ``folder`` (default ``evaluation/``), one after the other.

    A protocol that does not validate, or whose evaluation cannot start, is returned as
    its error; the others still run.
    """
    out: list[EvaluationOutcome | EvaluationError] = []
    for path, protocol in list_protocols(folder):
        if isinstance(protocol, GaiError):
            out.append(protocol)
            continue
        try:
            out.append(evaluate(protocol, **options))
        except GaiError as exc:
            error = exc if isinstance(exc, EvaluationError) else EvaluationError(str(exc))
            error.message = f"{path.name}: {error.message}"
            out.append(error)
    return out
