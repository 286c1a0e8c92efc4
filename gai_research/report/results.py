"""The results part of the report: per task, the summary table, details, subgroups,
comparisons, operations and failures, built from the collected runs as :class:`Num` cells.

Best and worst are flagged per site and metric only where the 95% intervals separate:
a model is *best* when its lower bound is above every other model's upper bound
(*worst*: its upper bound below every other lower bound), for metrics with a direction
and only when every model compared logged an interval.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from gai_research.report import conventions as cv
from gai_research.report.cells import Num
from gai_research.report.records import Estimate, RunRecord, TaskRuns

__all__ = [
    "Comparison",
    "Note",
    "Row",
    "Table",
    "TaskView",
    "build_task_view",
    "flag_separated",
    "parse_comparisons",
    "parse_subgroups",
]


@dataclass(frozen=True)
class Note:
    """A sentence for the reader: an i18n key and its parameters."""

    key: str
    params: tuple[tuple[str, object], ...] = ()
    level: str = "info"  # info | warn

    @property
    def kwargs(self) -> dict[str, object]:
        return dict(self.params)


@dataclass
class Row:
    run: RunRecord
    cells: dict[str, Num | None]
    label: str = ""  # subgroup value etc.
    group: str = ""  # subgroup variable

    @property
    def site(self) -> str:
        return self.run.site

    @property
    def failed(self) -> bool:
        return not self.run.finished


@dataclass
class Table:
    key: str  # i18n key of its title; also the section name in report.json
    columns: list[str]
    rows: list[Row]
    params: dict[str, object] = field(default_factory=dict)  # of the title


@dataclass
class Comparison:
    parent: RunRecord
    model_a: str
    model_b: str
    diff: Num | None
    p: Num | None


@dataclass
class TaskView:
    task: str
    kind: str
    runs: TaskRuns
    summary: Table | None = None
    details: list[Table] = field(default_factory=list)
    subgroups: Table | None = None
    forest_metric: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    operations: Table | None = None
    notes: list[Note] = field(default_factory=list)
    flags: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # site, metric, model, flag
    origins: dict[str, RunRecord] = field(default_factory=dict)  # model -> a run of it

    @property
    def anchor(self) -> str:
        return f"task-{self.task}"

    @property
    def flag_groups(self) -> list[tuple[str, str, str, list[str]]]:
        """(flag, model, site, metrics): one line per model, site and flag."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for site, metric, model, flag in self.flags:
            groups.setdefault((flag, model, site), []).append(metric)
        return [(f, m, s, metrics) for (f, m, s), metrics in groups.items()]


def _num(
    run: RunRecord, est: Estimate | None, name: str | None = None, **context: object
) -> Num | None:
    """A cited cell of ``run``'s metric (``name``: the metric whose style applies)."""
    if est is None:
        return None
    spec = cv.metric_spec(name or est.key)
    return Num(
        value=est.value,
        low=est.low,
        high=est.high,
        style=spec.style,
        metric=est.key,
        source=run.run_id,
        context={
            "task": run.task,
            "model": run.model,
            "site": run.site,
            "origin": run.origin,
            **context,
        },
    )


def _logged(runs: list[RunRecord]) -> set[str]:
    keys: set[str] = set()
    for run in runs:
        keys.update(run.top_level_metrics())
    return keys


def _expand(columns: tuple[str, ...] | list[str], logged: set[str]) -> list[str]:
    """Column keys with families (``froc_sens_fp_*``) expanded to what the runs logged.

    A family member is a prefix and a number; an operating point is followed by what was
    logged beside it (``sens_at_spec_0.9_specificity``, ``..._threshold``).
    """
    out: list[str] = []
    for col in columns:
        if not col.endswith("*"):
            if col in logged:
                out.append(col)
            continue
        prefix = col[:-1]
        members = sorted((t, k) for k in logged if (t := cv.family_target(k, prefix)) is not None)
        for _, key in members:
            out.append(key)
            if prefix in cv.OPERATING_FAMILIES:
                out += [key + c for c in cv.OPERATING_COMPANIONS if key + c in logged]
    return list(dict.fromkeys(out))


def _structures(logged: set[str]) -> list[str]:
    """Structures with per-structure volume metrics (``vol.<structure>.*``), sorted."""
    return sorted({p[0] for k in logged if (p := cv.volume_parts(k)) is not None})


def summary_columns(kind: str, logged: set[str]) -> list[str]:
    """The summary columns of a task: its kind's, with ICC (and MAE for volumetry) per
    structure where the runs logged volumes per structure."""
    base = list(cv.SUMMARY_COLUMNS.get(kind, cv.SUMMARY_COLUMNS["classification"]))
    structures = _structures(logged)
    if not structures:
        return base
    per_structure = [f"vol.{s}.icc" for s in structures]
    if kind == "volumetry":
        per_structure += [f"vol.{s}.mae_ml" for s in structures]
    cut = base.index("latency_median_s") if "latency_median_s" in base else len(base)
    kept = [c for c in base[:cut] if c not in ("icc", "mae_ml")]
    return [*kept, *per_structure, *base[cut:]]


def metric_table(
    key: str,
    columns: list[str],
    runs: list[RunRecord],
    *,
    core: tuple[str, ...] = (),
    params: dict[str, object] | None = None,
) -> Table | None:
    logged = _logged(runs)
    cols = [c for c in columns if c in logged or c in core]
    if not cols or not any(r.finished for r in runs):
        return None
    rows = [
        Row(run, {c: _num(run, run.estimate(c)) if run.finished else None for c in cols})
        for run in runs
    ]
    return Table(key, cols, rows, dict(params or {}))


def flag_separated(estimates: dict[str, Estimate], better: int) -> dict[str, str]:
    """``{name: "best"|"worst"}`` where one interval separates from all the others."""
    if better == 0 or len(estimates) < 2 or not all(e.has_ci for e in estimates.values()):
        return {}
    flags: dict[str, str] = {}
    for name, est in estimates.items():
        others = [e for n, e in estimates.items() if n != name]
        above = all(est.low > o.high for o in others)
        below = all(est.high < o.low for o in others)
        if above or below:
            flags[name] = "best" if (above and better > 0) or (below and better < 0) else "worst"
    return flags


def _apply_flags(view: TaskView, table: Table) -> None:
    by_site: dict[str, list[Row]] = defaultdict(list)
    for row in table.rows:
        if not row.failed:
            by_site[row.site].append(row)
    for site, rows in by_site.items():
        for col in table.columns:
            spec = cv.metric_spec(col)
            estimates = {
                r.run.run_id: est for r in rows if (est := r.run.estimate(col)) is not None
            }
            for run_id, flag in flag_separated(estimates, spec.better).items():
                row = next(r for r in rows if r.run.run_id == run_id)
                cell = row.cells.get(col)
                if cell is not None:
                    cell.flag = flag
                    view.flags.append((site, col, row.run.model, flag))


def parse_subgroups(run: RunRecord) -> dict[tuple[str, str], dict[str, Estimate]]:
    """``sg.<variable>.<value>.<metric>`` keys as {(variable, value): {metric: Estimate}}."""
    known = sorted(set(cv.METRICS) | set(run.top_level_metrics()), key=len, reverse=True)
    out: dict[tuple[str, str], dict[str, Estimate]] = defaultdict(dict)
    for key, value in run.metrics.items():
        if not key.startswith("sg.") or key.endswith((cv.CI_LOW, cv.CI_HIGH)):
            continue
        variable, _, rest = key[3:].partition(".")
        metric = next((m for m in known if rest.endswith("." + m)), None)
        if metric is None:
            if "." not in rest:
                continue
            level, metric = rest.rsplit(".", 1)
        else:
            level = rest[: -len(metric) - 1]
        out[(variable, level)][metric] = Estimate(
            key, value, run.metrics.get(key + cv.CI_LOW), run.metrics.get(key + cv.CI_HIGH)
        )
    return dict(out)


_CMP = re.compile(
    r"^cmp\.(?P<a>.+?)\.vs\.(?P<b>.+?)[._]"
    r"(?P<stat>delong_p|auc_diff_ci_low|auc_diff_ci_high|auc_diff|ci_low|ci_high|p_value)$"
)
_CMP_STAT = {
    "delong_p": "p",
    "p_value": "p",
    "auc_diff": "diff",
    "ci_low": "low",
    "auc_diff_ci_low": "low",
    "ci_high": "high",
    "auc_diff_ci_high": "high",
}


def parse_comparisons(run: RunRecord) -> dict[tuple[str, str], dict[str, tuple[str, float]]]:
    """``cmp.<A>.vs.<B>.<stat>`` as {(A, B): {p|diff|low|high: (key, value)}}."""
    out: dict[tuple[str, str], dict[str, tuple[str, float]]] = defaultdict(dict)
    for key, value in run.metrics.items():
        match = _CMP.match(key)
        if match:
            out[(match["a"], match["b"])][_CMP_STAT[match["stat"]]] = (key, value)
    return dict(out)


def _comparisons(view: TaskView) -> None:
    for parent in view.runs.evaluations:
        for (a, b), stats in sorted(parse_comparisons(parent).items()):
            diff = p = None
            ctx = {"task": view.task, "model_a": a, "model_b": b}
            if "diff" in stats:
                key, value = stats["diff"]
                low = stats.get("low", (None, None))[1]
                high = stats.get("high", (None, None))[1]
                diff = Num(value, "diff", key, parent.run_id, low=low, high=high, context=ctx)
            if "p" in stats:
                key, value = stats["p"]
                p = Num(value, "p", key, parent.run_id, context=ctx)
            view.comparisons.append(Comparison(parent, a, b, diff, p))


def _subgroups(view: TaskView, runs: list[RunRecord], summary: list[str]) -> None:
    skip = {"prevalence", "latency_median_s", "latency_p95_s"}
    wanted = [m for m in dict.fromkeys(("n_cases", "n_positive", *summary)) if m not in skip]
    rows: list[tuple[tuple, Row]] = []
    present: set[str] = set()
    var_order = {v: i for i, v in enumerate(cv.SUBGROUP_VARIABLES)}
    site_order = {s: i for i, s in enumerate(cv.SITES)}
    model_order = {r.model: i for i, r in enumerate(runs)}
    for run in runs:
        for (variable, level), metrics in parse_subgroups(run).items():
            present.update(m for m in metrics if m in wanted)
            cells = {
                m: _num(run, metrics.get(m), m, subgroup=f"{variable}={level}") for m in wanted
            }
            order = (
                var_order.get(variable, len(var_order)),
                variable,
                site_order.get(level, len(site_order)) if variable == "site" else 0,
                level,
                model_order[run.model],
            )
            rows.append((order, Row(run, cells, label=level, group=variable)))
    if not rows:
        return
    columns = [m for m in wanted if m in present]
    for _, row in rows:
        row.cells = {c: row.cells[c] for c in columns}
    view.subgroups = Table("subgroups", columns, [r for _, r in sorted(rows, key=lambda x: x[0])])
    preferred = [
        *cv.FOREST_METRICS.get(view.kind, ()),
        *(c for c in columns if c.startswith(cv.VOLUME_PREFIX) and c.endswith(".icc")),
    ]
    view.forest_metric = next((m for m in preferred if m in present), None)


def _notes(view: TaskView) -> None:
    runs = view.runs
    if runs.experiment is None:
        view.notes.append(Note("note.no_experiment", (("experiment", f"gai-{view.task}"),), "warn"))
    elif not runs.rows:
        view.notes.append(Note("note.no_runs", (("experiment", runs.experiment),), "warn"))
    elif not runs.has_results:
        view.notes.append(Note("note.only_failed", (), "warn"))
    n_failed = len(runs.failed)
    if n_failed:
        view.notes.append(Note("note.failed_runs", (("n", n_failed),), "warn"))
    if runs.unfinished:
        view.notes.append(Note("note.unfinished", (("n", len(runs.unfinished)),), "warn"))
    finished = [r for r in runs.rows if r.finished]
    snapshots = {r.snapshot for r in finished if r.snapshot}
    if len(snapshots) > 1:
        view.notes.append(Note("note.mixed_snapshots", (("n", len(snapshots)),), "warn"))
    protocols = {r.protocol_hash for r in finished if r.protocol_hash}
    if len(protocols) > 1:
        view.notes.append(Note("note.mixed_protocols", (("n", len(protocols)),), "warn"))
    if any(r.origin is None for r in runs.rows):
        view.notes.append(Note("note.origin_unknown", (), "warn"))


def _details(view: TaskView, finished: list[RunRecord]) -> None:
    logged = _logged(finished)
    covered: set[str] = set()
    for key, cols in cv.DETAIL_TABLES:
        if key == "detail.agreement" and _structures(logged):
            for structure in _structures(logged):
                names = [f"vol.{structure}.{m}" for m in cv.AGREEMENT_METRICS]
                covered.update(names)
                table = metric_table(
                    "detail.agreement_of", names, finished, params={"structure": structure}
                )
                if table is not None:
                    view.details.append(table)
            covered.update(cv.AGREEMENT_METRICS)  # the first structure again, plain keys
            continue
        expanded = _expand(cols, logged)
        covered.update(expanded)
        table = metric_table(key, expanded, finished)
        if table is not None:
            view.details.append(table)
    other = sorted(logged - covered)
    if other:
        table = metric_table("detail.other", other, finished)
        if table is not None:
            view.details.append(table)


def build_task_view(runs: TaskRuns) -> TaskView:
    """Everything the report shows of one task, as tables of cited numbers."""
    view = TaskView(runs.task, runs.kind, runs)
    rows = runs.rows
    view.origins = {r.model: r for r in rows}
    _notes(view)
    if rows:
        finished = [r for r in rows if r.finished]
        columns = summary_columns(runs.kind, _logged(finished))
        view.summary = metric_table("summary", columns, rows, core=cv.SUMMARY_CORE)
        if view.summary is not None:
            _apply_flags(view, view.summary)
        _details(view, finished)
        _subgroups(view, [r for r in finished if r.site == "ALL"] or finished, columns)
        _comparisons(view)
    if runs.operations:
        view.operations = metric_table("operations", list(cv.OPERATIONS_METRICS), runs.operations)
    return view
