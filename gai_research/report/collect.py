"""Read the evaluation and operations runs from MLflow (the report's only input of results).

Two ways to choose runs:

- **latest** (default): per task (experiment ``gai-<task>``), model and site, the most
  recent run that FINISHED. Failed runs newer than it are kept to be reported, and a
  model x site with failed runs only becomes a row that says it failed;
- **pinned** (:mod:`gai_research.report.pinned`): exactly the listed runs (an
  evaluation run brings all of its model runs), for an official edition.

A tracking store that does not exist yet (no SQLite file) is an empty MLflow, not an
error: the report then says there are no runs. Nothing here writes to MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from gai_research.report import conventions as cv
from gai_research.report.errors import PinnedRunsError, ReportError
from gai_research.report.records import Collected, Plot, RunRecord, TaskRuns

if TYPE_CHECKING:
    from gai_research.report.pinned import PinnedRuns
    from mlflow import MlflowClient

__all__ = ["collect_runs", "redact_uri", "sqlite_path"]

log = logging.getLogger(__name__)

MAX_PLOT_BYTES = 4 << 20  # a PNG bigger than this is listed, not embedded
MAX_FAILURES = 10  # failures of one evaluation shown, each cut at
MAX_FAILURE_CHARS = 300
_ORIGIN_ORDER = {o: i for i, o in enumerate(cv.ORIGINS)}
_SITE_ORDER = {s: i for i, s in enumerate(cv.SITES)}


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (reports are shared)."""
    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _record(run: Any, experiment: str) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        experiment=experiment,
        status=str(info.status),
        start_time=int(info.start_time or 0),
        end_time=int(info.end_time) if info.end_time else None,
        tags=dict(data.tags),
        params=dict(data.params),
        metrics={k: float(v) for k, v in data.metrics.items()},
    )


def _search(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[Any]:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _sort_key(run: RunRecord) -> tuple:
    return (
        _SITE_ORDER.get(run.site, len(_SITE_ORDER)),
        run.site,
        _ORIGIN_ORDER.get(run.origin or "", len(_ORIGIN_ORDER)),
        run.model,
    )


def _select_latest(task: TaskRuns, runs: Iterable[RunRecord], role: str) -> list[RunRecord]:
    """Latest finished run per model x site; failed/unfinished newer ones go to ``task``."""
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.role == role:
            groups[(run.model, run.site)].append(run)
    chosen: list[RunRecord] = []
    for group in groups.values():
        group.sort(key=lambda r: r.start_time, reverse=True)
        finished = [r for r in group if r.finished]
        cutoff = finished[0].start_time if finished else -1
        newer = [r for r in group if r.start_time > cutoff]
        task.failed.extend(r for r in newer if r.failed)
        task.unfinished.extend(r for r in newer if not r.failed and not r.finished)
        if finished:
            chosen.append(finished[0])
        elif any(r.failed for r in group):
            chosen.append(next(r for r in group if r.failed))
    return sorted(chosen, key=_sort_key)


def _select_pinned(task: TaskRuns, runs: Iterable[RunRecord], role: str) -> list[RunRecord]:
    seen: dict[tuple[str, str], RunRecord] = {}
    for run in runs:
        if run.role != role:
            continue
        other = seen.get((run.model, run.site))
        if other is not None:
            raise PinnedRunsError(
                f"pinned runs {other.run_id} and {run.run_id} are both {run.model} at "
                f"{run.site} for {task.task}",
                hint="pin one run per task, model and site",
            )
        seen[(run.model, run.site)] = run
        if run.failed:
            task.failed.append(run)
        elif not run.finished:
            task.unfinished.append(run)
    return sorted(seen.values(), key=_sort_key)


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No MLflow progress bars on stderr while artifacts are read (library code is quiet)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _attach_artifacts(client: MlflowClient, run: RunRecord, workdir: Path, plots: bool) -> None:
    """List the run's artifacts; with ``plots``, read its ``plots/*.png`` to embed them."""
    try:
        root = client.list_artifacts(run.run_id)
        names = [f.path for f in root if not f.is_dir]
        if any(f.is_dir and f.path == "plots" for f in root):
            inner = client.list_artifacts(run.run_id, "plots")
            names += [f.path for f in inner if not f.is_dir]
    except Exception as exc:  # an unreachable artifact store: the numbers still stand
        log.warning("cannot list the artifacts of run %s: %s", run.run_id, type(exc).__name__)
        return
    run.artifacts = tuple(sorted(names))
    if not plots:
        return
    for name in run.artifacts:
        if not (name.startswith("plots/") and name.lower().endswith(".png")):
            continue
        try:
            with _quiet_downloads():
                local = Path(client.download_artifacts(run.run_id, name, str(workdir)))
        except Exception as exc:
            log.warning("cannot read %s of run %s: %s", name, run.run_id, type(exc).__name__)
            continue
        if local.stat().st_size <= MAX_PLOT_BYTES:
            run.plots.append(Plot(run.run_id, name, local.read_bytes()))


def _attach_failures(client: MlflowClient, run: RunRecord, workdir: Path) -> None:
    """What a failed evaluation's ``summary.json`` says failed (the engine scrubs it)."""
    import json

    try:
        with _quiet_downloads():
            local = Path(client.download_artifacts(run.run_id, "summary.json", str(workdir)))
        summary = json.loads(local.read_text(encoding="utf-8"))
    except Exception:  # no summary (an evaluation that died early): its status still shows
        return
    failures = summary.get("failures") if isinstance(summary, dict) else None
    if isinstance(failures, list):
        run.failures = [str(f)[:MAX_FAILURE_CHARS] for f in failures[:MAX_FAILURES]]


def _attach_history(client: MlflowClient, run: RunRecord) -> None:
    if cv.OPERATIONS_BY_HOUR in run.metrics:
        history = client.get_metric_history(run.run_id, cv.OPERATIONS_BY_HOUR)
        by_step = {int(m.step): float(m.value) for m in sorted(history, key=lambda m: m.timestamp)}
        run.history[cv.OPERATIONS_BY_HOUR] = sorted(by_step.items())


def _wanted_tasks(names: Iterable[str] | None, found: dict[str, str]) -> list[str]:
    """Tasks to report: the known five plus any other gai-* experiment, or those asked for."""
    if not names:
        return list(cv.TASKS) + sorted(t for t in found if t not in cv.TASKS)
    tasks = []
    for name in names:
        task = name[len(cv.EXPERIMENT_PREFIX) :] if name.startswith(cv.EXPERIMENT_PREFIX) else name
        if task not in cv.TASKS and task not in found:
            known = ", ".join(sorted(set(cv.TASKS) | set(found)))
            raise ReportError(
                f"no experiment {cv.EXPERIMENT_PREFIX}{task} and no such task",
                hint=f"give tasks or experiment names; known: {known}",
            )
        if task not in tasks:
            tasks.append(task)
    return tasks


def _fetch(client: MlflowClient, run_id: str, names: dict[str, str]) -> RunRecord:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise PinnedRunsError(
            f"pinned run {run_id} is not in the tracking store",
            hint="check the id and the tracking URI (`gai config` shows it)",
        ) from None
    exp_id = str(run.info.experiment_id)
    if exp_id not in names:
        names[exp_id] = client.get_experiment(exp_id).name
    return _record(run, names[exp_id])


def _pinned_runs(
    client: MlflowClient, pinned: PinnedRuns, names: dict[str, str]
) -> dict[str, RunRecord]:
    runs: dict[str, RunRecord] = {}
    for run_id in pinned.run_ids:
        run = _fetch(client, run_id, names)
        if run.role == cv.ROLE_EVALUATION:
            runs[run.run_id] = run
            children = _search(client, run.experiment_id, f"tags.`{cv.TAG_PARENT}` = '{run_id}'")
            for child in children:
                record = _record(child, run.experiment)
                runs.setdefault(record.run_id, record)
        elif run.role in (cv.ROLE_MODEL, cv.ROLE_OPERATIONS):
            runs[run.run_id] = run
        else:
            raise PinnedRunsError(
                f"pinned run {run_id} has no gai.role of evaluation, model or operations",
                hint="pin the evaluation runs and model runs the evaluation engine logged",
            )
    return runs


def collect_runs(
    tracking_uri: str,
    *,
    experiments: Iterable[str] | None = None,
    pinned: PinnedRuns | None = None,
    workdir: Path | None = None,
    plots: bool = True,
) -> Collected:
    """Read what the report needs from the tracking store at ``tracking_uri``."""
    shown_uri = redact_uri(tracking_uri)
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        if pinned is not None:
            raise PinnedRunsError(
                f"there is no MLflow store at {db}, so the pinned runs cannot be read",
                hint="check GAI_HOME / GAI_MLFLOW_URI",
            )
        tasks = _wanted_tasks(experiments, {})
        return Collected(
            shown_uri, [TaskRuns(t, cv.TASKS.get(t, "classification")) for t in tasks], True
        )
    client = _client(tracking_uri)
    try:
        all_experiments = client.search_experiments(
            filter_string=f"name LIKE '{cv.EXPERIMENT_PREFIX}%'", max_results=1000
        )
    except Exception as exc:
        raise ReportError(
            f"cannot read the MLflow tracking store {shown_uri}: {type(exc).__name__}",
            hint="check GAI_MLFLOW_URI and that the MLflow server answers",
        ) from None
    names = {str(e.experiment_id): e.name for e in all_experiments}
    found = {e.name[len(cv.EXPERIMENT_PREFIX) :]: str(e.experiment_id) for e in all_experiments}
    wanted = _wanted_tasks(experiments, found)

    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    if pinned is not None:
        for run in _pinned_runs(client, pinned, names).values():
            by_task[run.task].append(run)
        if experiments is None:
            wanted += [t for t in sorted(by_task) if t not in wanted]
        else:
            outside = sorted(t for t in by_task if t not in wanted)
            if outside:
                raise PinnedRunsError(
                    f"pinned runs of task {outside[0]} are outside --experiments",
                    hint="drop --experiments or add that task to it",
                )
    else:
        for task in wanted:
            if task in found:
                by_task[task] = [
                    _record(r, names[found[task]]) for r in _search(client, found[task])
                ]

    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="gai-report-"))
    result = []
    for task in wanted:
        entry = TaskRuns(task, cv.TASKS.get(task, "classification"))
        if task in found:
            entry.experiment, entry.experiment_id = cv.EXPERIMENT_PREFIX + task, found[task]
        runs = by_task.get(task, [])
        select = _select_pinned if pinned is not None else _select_latest
        entry.rows = select(entry, runs, cv.ROLE_MODEL)
        entry.operations = select(entry, runs, cv.ROLE_OPERATIONS)
        if entry.rows:
            entry.kind = entry.rows[0].kind
        _attach_parents(client, entry, runs, names, pinned is not None)
        with_all = {r.model for r in entry.rows if r.site == "ALL"}
        for row in entry.rows:
            wanted_plots = plots and (row.site == "ALL" or row.model not in with_all)
            _attach_artifacts(client, row, workdir / row.run_id, wanted_plots)
        for run in entry.failed:
            if run.role == cv.ROLE_EVALUATION:
                _attach_failures(client, run, workdir / run.run_id)
            elif not run.artifacts:
                _attach_artifacts(client, run, workdir / run.run_id, False)
        for run in entry.operations:
            _attach_history(client, run)
        result.append(entry)
    return Collected(
        shown_uri,
        result,
        pinned_file=pinned.path if pinned is not None else None,
        edition=pinned.edition if pinned is not None else None,
    )


def _attach_parents(
    client: MlflowClient,
    task: TaskRuns,
    runs: list[RunRecord],
    names: dict[str, str],
    pinned: bool,
) -> None:
    """The evaluation (parent) runs of the chosen rows, and failed evaluations after them."""
    by_id = {r.run_id: r for r in runs}
    parents: dict[str, RunRecord] = {}
    for row in task.rows:
        pid = row.parent_id
        if not pid or pid in parents:
            continue
        parent = by_id.get(pid)
        if parent is None:
            try:
                parent = _fetch(client, pid, names)
            except PinnedRunsError:
                log.warning("parent run %s of run %s is gone", pid, row.run_id)
                continue
        parents[pid] = parent
    if pinned:
        parents.update(
            {r.run_id: r for r in runs if r.role == cv.ROLE_EVALUATION and r.run_id not in parents}
        )
    task.evaluations = sorted(parents.values(), key=lambda r: r.start_time)
    latest = max((r.start_time for r in task.rows if r.finished), default=-1)
    # failed evaluations: those whose model runs are shown (the engine ends an evaluation
    # FAILED when a model failed, even one that never got a run of its own), and newer ones
    for run in runs:
        if run.role != cv.ROLE_EVALUATION:
            continue
        if run.run_id in parents or pinned or run.start_time > latest:
            if run.failed:
                task.failed.append(run)
            elif not run.finished and run.run_id not in parents:
                task.unfinished.append(run)
    task.failed.sort(key=lambda r: r.start_time)
