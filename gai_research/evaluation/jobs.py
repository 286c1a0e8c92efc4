"""Notebook jobs: one papermill execution per model (and site), run locally or on Dask.

A :class:`NotebookJob` carries everything its notebook needs (the notebook's text, the
per-case table as Parquet bytes, the context), so the same job function runs in this
process, in a local process pool or on a Dask worker on another machine, and sends back
a :class:`NotebookResult` with its output files as bytes. Only the caller writes to the
tracking store: one writer, whatever the executor.

A notebook that raises is a failed result, not an exception: ``error`` holds the cell
index, the exception name and its message (identifiers scrubbed), and the partial
executed notebook comes back with it. The other jobs go on.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gai_research.evaluation.errors import EvaluationError
from gai_research.evaluation.scrub import scrub

__all__ = [
    "DEFAULT_KERNEL",
    "NotebookJob",
    "NotebookResult",
    "execute_job",
    "notebook_to_html",
    "run_jobs",
]

DEFAULT_KERNEL = "python3"
_INPUT_TABLE = "per_case.parquet"
_INPUT_CONTEXT = "context.json"
_NOTEBOOK_OUT = "notebook.ipynb"


@dataclass(frozen=True)
class NotebookJob:
    """One notebook execution: which model and site, and all its inputs."""

    key: str  # "<model> / <site>": the child run's name
    model: str
    site: str
    notebook_name: str
    notebook_text: str
    cases_parquet: bytes
    context_json: str
    timeout_s: float = 900.0
    kernel_name: str = DEFAULT_KERNEL


@dataclass
class NotebookResult:
    """What a job gave: its output files (``plots/roc.png``, ...) and the error if it failed."""

    key: str
    model: str
    site: str
    ok: bool
    error: str | None = None  # "cell 7: KeyError: ..." (scrubbed), or None
    files: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0

    def file_text(self, name: str) -> str | None:
        data = self.files.get(name)
        return data.decode("utf-8") if data is not None else None


def notebook_to_html(notebook_path: str | Path) -> bytes:
    """The executed notebook as a standalone HTML page (nbconvert, inputs and outputs)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook_path))
    return body.encode("utf-8")


def _collect(folder: Path, prefix: str = "") -> dict[str, bytes]:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            files[prefix + path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def _describe_failure(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # papermill's cell_index counts the executed notebook's cells (with the injected
        # parameters cell); exec_count is the In [n] a reader sees in the HTML
        return scrub(f"cell {exc.cell_index} (In [{exc.exec_count}]): {exc.ename}: {exc.evalue}")
    return scrub(f"{type(exc).__name__}: {exc}")


def execute_job(job: NotebookJob) -> NotebookResult:
    """Execute one job's notebook with papermill in a fresh temporary folder (its cwd)."""
    import papermill

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gai-eval-") as tmp:
        work = Path(tmp)
        source = work / job.notebook_name
        source.write_text(job.notebook_text, encoding="utf-8")
        (work / _INPUT_TABLE).write_bytes(job.cases_parquet)
        (work / _INPUT_CONTEXT).write_text(job.context_json, encoding="utf-8")
        outputs, executed = work / "outputs", work / _NOTEBOOK_OUT
        error = None
        try:
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters={
                    "per_case_path": str(work / _INPUT_TABLE),
                    "context_path": str(work / _INPUT_CONTEXT),
                    "output_dir": str(outputs),
                },
                kernel_name=job.kernel_name,
                cwd=str(work),
                progress_bar=False,
                log_output=False,
                execution_timeout=job.timeout_s,
                # the kernel's own log (a transport warning at start, the interrupt at
                # shutdown) is console noise; what a cell raises comes back in the notebook
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
        except Exception as exc:  # recorded on the job's run; the other jobs go on
            error = _describe_failure(exc)
        files = _collect(outputs) if outputs.is_dir() else {}
        if executed.is_file():
            files["notebook.ipynb"] = executed.read_bytes()
            try:
                files["notebook.html"] = notebook_to_html(executed)
            except Exception as exc:  # a page we cannot render is no reason to lose the run
                files.pop("notebook.html", None)
                error = error or _describe_failure(exc)
        ok = error is None and "metrics.json" in files
        if error is None and not ok:
            error = "the notebook ran but wrote no metrics.json"
    return NotebookResult(
        key=job.key,
        model=job.model,
        site=job.site,
        ok=ok,
        error=error,
        files=files,
        seconds=time.perf_counter() - started,
    )


def _safe_execute(job: NotebookJob) -> NotebookResult:
    """:func:`execute_job`, turning anything unexpected into a failed result."""
    try:
        return execute_job(job)
    except Exception as exc:
        return NotebookResult(job.key, job.model, job.site, ok=False, error=_describe_failure(exc))


def _spawn_context():
    import multiprocessing

    # spawn: a fresh interpreter per worker, no inherited threads or open sqlite handles
    return multiprocessing.get_context("spawn")


def run_jobs(
    jobs: Iterable[NotebookJob],
    *,
    workers: int = 2,
    dask_address: str | None = None,
    dask_client: Any = None,
) -> Iterator[NotebookResult]:
    """Run jobs and yield each result as it completes.

    ``workers <= 1``: one after the other in this process. Otherwise a local process pool
    of ``workers``. With ``dask_address`` (a scheduler such as ``tcp://127.0.0.1:8786``) or
    an existing ``dask_client``, the same job function is submitted to Dask.
    """
    jobs = list(jobs)
    if not jobs:
        return
    if dask_address or dask_client is not None:
        yield from _run_on_dask(jobs, dask_address, dask_client)
        return
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            yield _safe_execute(job)
        return
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=_spawn_context()
    ) as pool:
        futures: dict[Future[NotebookResult], NotebookJob] = {
            pool.submit(_safe_execute, job): job for job in jobs
        }
        for future in as_completed(futures):
            yield _result_of(future.result, futures[future])


def _result_of(get: Callable[[], NotebookResult], job: NotebookJob) -> NotebookResult:
    try:
        return get()
    except Exception as exc:  # a worker that died (killed, out of memory)
        return NotebookResult(job.key, job.model, job.site, ok=False, error=_describe_failure(exc))


def _run_on_dask(
    jobs: list[NotebookJob], address: str | None, client: Any
) -> Iterator[NotebookResult]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise EvaluationError(
            "Dask's distributed package is not installed", hint="pip install distributed"
        ) from exc
    owned = client is None
    if owned:
        try:
            client = Client(address, timeout=os.environ.get("GAI_DASK_TIMEOUT", "20s"))
        except (OSError, TimeoutError) as exc:
            raise EvaluationError(
                f"cannot reach the Dask scheduler at {address} ({type(exc).__name__})",
                hint="start one (`dask scheduler` and `dask worker ADDRESS`) or drop --dask",
            ) from None
    try:
        futures = {client.submit(_safe_execute, job, pure=False): job for job in jobs}
        for future in dask_completed(list(futures)):
            yield _result_of(future.result, futures[future])
    finally:
        if owned:
            client.close()
