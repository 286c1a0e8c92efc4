"""MLflow records of an evaluation: a parent run per evaluation, a child run per model x site.

The conventions (docs/evaluation.md, "MLflow records") are what the results report and the
gateway read, so they are written in one place:

- experiment ``gai-<task>``; with a local (SQLite) store its artifacts go under
  ``HOME/mlflow/artifacts``, never into the working directory;
- parent run: tags ``gai.role=evaluation``, ``gai.task``, ``gai.protocol``,
  ``gai.protocol_hash``, ``gai.snapshot``, ``gai.cohort_hash``; comparison metrics
  ``cmp.<A>.vs.<B>.*``; artifacts ``protocol.yaml``, ``protocol.json``, ``summary.json``;
- child run ``<model> / <site|ALL>``: tags ``gai.role=model``, ``gai.task``, ``gai.kind``,
  ``gai.model``, ``gai.model_version``, ``gai.vendor``, ``gai.origin``, ``gai.site``,
  ``gai.protocol_hash``, ``gai.snapshot``, ``mlflow.parentRunId`` (and ``gai.error`` when
  its notebook failed); params ``protocol_hash, snapshot, cohort_hash, model_name,
  model_vendor, model_version, code_version, pkg.<name>``; the notebook's metrics (finite
  values; CI bounds as ``<m>_ci_low``/``<m>_ci_high``); artifacts ``metrics.json``,
  ``per_case.csv``, ``plots/*.png``, ``notebook.ipynb``, ``notebook.html``.

Everything goes through :class:`mlflow.MlflowClient` (no global active run), in batches.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.evaluation.errors import EvaluationError

if TYPE_CHECKING:
    from gai_research.config import Settings
    from gai_research.evaluation.context import EvalContext
    from gai_research.evaluation.jobs import NotebookResult
    from gai_research.evaluation.protocol import Protocol

__all__ = ["EvaluationTracker", "ParentRun", "mlflow_ui_command", "redact_uri"]

_BATCH = 900  # MLflow takes at most 1,000 entities per log_batch
_PARAM_LIMIT = 6000


def redact_uri(uri: str) -> str:
    """A tracking URI with any password replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def mlflow_ui_command(settings: Settings) -> str:
    """The command that opens the MLflow UI on this platform's tracking store."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        return f"open {redact_uri(uri)} in a browser"
    return f"mlflow ui --backend-store-uri {redact_uri(uri)}"


@dataclass(frozen=True)
class ParentRun:
    run_id: str
    experiment_id: str
    experiment_name: str


class EvaluationTracker:
    """Writes the runs of evaluations to one MLflow tracking store."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri)

    @classmethod
    def from_settings(cls, settings: Settings) -> EvaluationTracker:
        """The platform's store; a local SQLite one keeps artifacts under HOME/mlflow."""
        uri = settings.tracking_uri
        root = None
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
            root = settings.mlflow_dir / "artifacts"
        return cls(uri, root)

    # --- experiments ----------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise EvaluationError(
                    f"MLflow experiment {name} is deleted",
                    hint=f"restore it in the MLflow UI or `mlflow experiments restore` ({name})",
                )
            return experiment.experiment_id
        location = (self.artifact_root / name).as_uri() if self.artifact_root else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # created meanwhile by another process
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    # --- writing --------------------------------------------------------------------------
    def _log(
        self,
        run_id: str,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_list = [
            Metric(key, float(value), now, 0)
            for key, value in sorted((metrics or {}).items())
            if value is not None and math.isfinite(float(value))
        ]
        param_list = [
            Param(key, str(value)[:_PARAM_LIMIT])
            for key, value in sorted((params or {}).items())
            if value is not None
        ]
        tag_list = [RunTag(key, str(value)) for key, value in sorted((tags or {}).items())]
        for start in range(0, len(metric_list), _BATCH):
            self.client.log_batch(run_id, metrics=metric_list[start : start + _BATCH])
        for start in range(0, len(param_list), 100):  # at most 100 params per batch
            self.client.log_batch(run_id, params=param_list[start : start + 100])
        if tag_list:
            self.client.log_batch(run_id, tags=tag_list)

    def _artifacts(self, run_id: str, files: dict[str, bytes]) -> None:
        if not files:
            return
        with tempfile.TemporaryDirectory(prefix="gai-mlflow-") as tmp:
            root = Path(tmp)
            for name, data in files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            self.client.log_artifacts(run_id, str(root))

    def start_evaluation(
        self,
        protocol: Protocol,
        *,
        snapshot: str,
        cohort_hash: str,
        cohort_name: str,
        code_version: str,
        models: list[str],
        sites: list[str],
    ) -> ParentRun:
        """Create the evaluation's parent run (status RUNNING) with its tags and params."""
        experiment = self.experiment_id(protocol.experiment_name)
        tags = {
            "gai.role": "evaluation",
            "gai.task": protocol.task,
            "gai.kind": protocol.kind.value,
            "gai.protocol": protocol.name,
            "gai.protocol_version": protocol.version,
            "gai.protocol_hash": protocol.content_hash,
            "gai.snapshot": snapshot,
            "gai.cohort_hash": cohort_hash,
            "gai.cohort": cohort_name,
        }
        run = self.client.create_run(
            experiment, run_name=f"{protocol.name} {protocol.version}", tags=tags
        )
        self._log(
            run.info.run_id,
            params={
                "protocol_name": protocol.name,
                "protocol_version": protocol.version,
                "protocol_hash": protocol.content_hash,
                "snapshot": snapshot,
                "cohort_hash": cohort_hash,
                "cohort_name": cohort_name,
                "code_version": code_version,
                "models": ",".join(models),
                "sites": ",".join(sites),
                "notebook": protocol.notebook_name,
            },
        )
        files = {"protocol.json": _json(protocol.canonical())}
        if protocol.source is not None and protocol.source.is_file():
            files["protocol.yaml"] = protocol.source.read_bytes()
        self._artifacts(run.info.run_id, files)
        return ParentRun(run.info.run_id, experiment, protocol.experiment_name)

    def log_model_run(self, parent: ParentRun, context: EvalContext, result: NotebookResult) -> str:
        """One child run from a notebook job's result (FAILED with ``gai.error`` if it failed)."""
        model = context.model
        tags = {
            "mlflow.parentRunId": parent.run_id,
            "gai.role": "model",
            "gai.task": context.protocol.task,
            "gai.kind": context.protocol.kind.value,
            "gai.protocol": context.protocol.name,
            "gai.protocol_hash": context.protocol_hash,
            "gai.snapshot": context.snapshot,
            "gai.model": model.name,
            "gai.model_version": model.version,
            "gai.vendor": model.vendor,
            "gai.origin": model.origin.value,
            "gai.site": context.site,
        }
        if result.error:
            tags["gai.error"] = result.error
        run = self.client.create_run(parent.experiment_id, run_name=result.key, tags=tags)
        run_id = run.info.run_id
        document = _read_json(result.files.get("metrics.json"))
        env = _read_json(result.files.get("environment.json")) or {}
        packages = env.get("packages") or _local_packages()
        params = {
            "protocol_hash": context.protocol_hash,
            "snapshot": context.snapshot,
            "cohort_hash": context.cohort_hash,
            "model_name": model.name,
            "model_vendor": model.vendor,
            "model_version": model.version,
            "model_origin": model.origin.value,
            "code_version": env.get("code_version") or context.code_version,
            "site": context.site,
            "notebook": context.protocol.notebook_name,
            "ci_level": context.protocol.ci.level,
            "bootstrap_n": context.protocol.ci.bootstrap_n,
            "seed": context.protocol.ci.seed,
            "missing_predictions": context.protocol.missing_predictions,
            **{f"pkg.{name}": version for name, version in packages.items()},
        }
        if document:
            threshold = (document.get("threshold") or {}).get("value")
            params["threshold"] = threshold
            params["threshold_source"] = (document.get("threshold") or {}).get("source")
        self._log(run_id, metrics=(document or {}).get("metrics") or {}, params=params)
        files = dict(result.files)
        files["context.json"] = _json(context.to_dict())
        self._artifacts(run_id, files)
        self.client.set_terminated(run_id, status="FINISHED" if result.ok else "FAILED")
        return run_id

    def log_comparisons(
        self, parent: ParentRun, metrics: dict[str, float], notes: list[str]
    ) -> None:
        self._log(parent.run_id, metrics=metrics)
        self._artifacts(
            parent.run_id, {"comparisons.json": _json({"metrics": metrics, "notes": notes})}
        )

    def finish_evaluation(self, parent: ParentRun, summary: dict[str, Any], ok: bool) -> None:
        """Upload ``summary.json`` and end the parent run (FAILED when any job failed)."""
        self._log(parent.run_id, tags={"gai.n_failed_jobs": str(summary.get("n_failed_jobs", 0))})
        self._artifacts(parent.run_id, {"summary.json": _json(summary)})
        self.client.set_terminated(parent.run_id, status="FINISHED" if ok else "FAILED")


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _read_json(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _local_packages() -> dict[str, str]:
    from gai_research.evaluation.notebook_lib import environment

    return environment()["packages"]
