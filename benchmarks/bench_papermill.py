"""What papermill costs per evaluation notebook, against the same computation in-process.

Measured in one run (median of --repeat runs each) for one protocol (--task) on a
hand-made per-case table of --n studies (``gai_research.evaluation.samples``):

- floor: the notebook's own work done in this process (``evaluate_cases``, the plots,
  ``write_outputs``), after a warm-up, so imports are paid already;
- papermill on an empty notebook (a parameters cell and one print): starting a kernel
  and papermill's bookkeeping, nothing else;
- papermill on the real evaluation notebook (``notebooks/eval_<kind>.ipynb``): a fresh
  kernel that imports pandas, scipy, statsmodels and matplotlib and does the work;
- the HTML export of the executed notebook (nbconvert), which the runner uploads too;
- a whole job as the runner runs it (``execute_job``: papermill, HTML, files collected);
- --jobs such jobs in a local process pool of --workers, per job of wall-clock time.

The overhead of a notebook is its job time minus the floor; both are printed with the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(function: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def empty_notebook(path: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(
        cells=[
            new_code_cell("output_dir = 'out'", metadata={"tags": ["parameters"]}),
            new_code_cell("print(output_dir)"),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default="lung_nodule_dx", help="protocol in evaluation/")
    parser.add_argument("--n", type=int, default=500, help="studies in the table (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs for the pool run (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="pool workers (default 2)")
    args = parser.parse_args(argv)

    import papermill

    from gai_research.evaluation.cases import check_case_table
    from gai_research.evaluation.context import make_context
    from gai_research.evaluation.endpoints import evaluate_cases
    from gai_research.evaluation.jobs import NotebookJob, execute_job, notebook_to_html, run_jobs
    from gai_research.evaluation.notebook_lib import (
        plot_bland_altman,
        plot_froc,
        plot_latency,
        plot_roc,
        write_outputs,
    )
    from gai_research.evaluation.protocol import load_protocol
    from gai_research.evaluation.samples import sample_case_table, sample_model_info

    protocol = load_protocol(ROOT / "evaluation" / f"{args.task}.yaml")
    context = make_context(protocol, sample_model_info(protocol), snapshot="0" * 64)
    cases = sample_case_table(protocol, n=args.n, seed=1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-papermill-"))

    def in_process() -> None:
        checked = check_case_table(cases, protocol)
        evaluation = evaluate_cases(checked, context)
        out = tmp / "floor"
        for plot in (plot_roc, plot_froc, plot_latency, plot_bland_altman):
            plot(evaluation, context, out)
        write_outputs(evaluation, context, out)

    rows: list[tuple[str, float, str]] = []
    empty = empty_notebook(tmp / "empty.ipynb")

    def run_empty() -> None:
        papermill.execute_notebook(
            str(empty),
            str(tmp / "empty-out.ipynb"),
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp),
        )

    seconds, _ = timed(run_empty, args.repeat)
    rows.append(
        (
            "papermill, empty notebook (kernel start + bookkeeping)",
            seconds,
            "",
        )
    )

    buffer = io.BytesIO()
    cases.to_parquet(buffer, index=False)
    (tmp / "cases.parquet").write_bytes(buffer.getvalue())
    context.write(tmp / "context.json")
    notebook = ROOT / "notebooks" / protocol.notebook_name

    def run_real() -> None:
        papermill.execute_notebook(
            str(notebook),
            str(tmp / "real-out.ipynb"),
            parameters={
                "per_case_path": str(tmp / "cases.parquet"),
                "context_path": str(tmp / "context.json"),
                "output_dir": str(tmp / "real"),
            },
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp),
        )

    real, _ = timed(run_real, args.repeat)
    rows.append((f"papermill, {protocol.notebook_name}", real, ""))
    html, _ = timed(lambda: notebook_to_html(tmp / "real-out.ipynb"), args.repeat)
    rows.append(("nbconvert HTML of the executed notebook", html, ""))

    job = NotebookJob(
        key="bench / ALL",
        model="bench",
        site="ALL",
        notebook_name=protocol.notebook_name,
        notebook_text=notebook.read_text("utf-8"),
        cases_parquet=buffer.getvalue(),
        context_json=json.dumps(context.to_dict()),
    )
    whole, result = timed(lambda: execute_job(job), args.repeat)
    assert result.ok, result.error
    rows.append(("execute_job (papermill + HTML + files)", whole, ""))

    jobs = [NotebookJob(**{**job.__dict__, "key": f"bench / {i}"}) for i in range(args.jobs)]
    start = time.perf_counter()
    results = list(run_jobs(jobs, workers=args.workers))
    pooled = (time.perf_counter() - start) / args.jobs
    assert all(r.ok for r in results)
    rows.append(
        (
            f"pool of {args.workers}: {args.jobs} jobs, wall time per job",
            pooled,
            "",
        )
    )

    # the floor last, after a warm-up (it pays no imports), so the kernels above ran in a
    # process that had not yet loaded pandas, scipy and matplotlib itself
    in_process()
    floor, _ = timed(in_process, args.repeat)
    rows.insert(0, ("floor: the same work in this process", floor, "1.0x"))
    rows = [
        (name, sec, ratio if name.startswith("floor") else f"{sec / floor:.1f}x")
        for name, sec, ratio in rows
    ]

    width = max(len(r[0]) for r in rows)
    print(f"task {args.task}, {args.n} studies; median of {args.repeat}")
    print(f"{'measurement':<{width}}  {'seconds':>8}  vs floor")
    for name, seconds, ratio in rows:
        print(f"{name:<{width}}  {seconds:>8.2f}  {ratio}")
    print(f"overhead per notebook job: {whole - floor:.2f} s ({whole / floor:.1f}x the floor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
