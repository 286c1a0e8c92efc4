"""Methods and reproducibility: what each number rests on, and where to re-run it.

Lists the evaluations (protocol and snapshot hashes), the models (name, origin, vendor
only for vendor products, version), code and package versions, every run cited (linked
to the MLflow UI when its address is known), and the STARD 2015 / CLAIM (2020) items the
report covers with the section that covers each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from gai_research.report.dataplatform import PlatformFacts
from gai_research.report.records import Collected, RunRecord
from gai_research.report.results import TaskView

__all__ = ["Appendix", "ChecklistItem", "build_appendix", "mlflow_ui_base", "run_link"]


@dataclass(frozen=True)
class ChecklistItem:
    topic: str  # i18n key
    stard: str
    claim: str
    anchor: str
    status: str  # covered | partial | none


@dataclass
class Appendix:
    evaluations: list[RunRecord] = field(default_factory=list)
    models: list[dict[str, object]] = field(default_factory=list)
    code_versions: list[str] = field(default_factory=list)
    packages: list[tuple[str, str]] = field(default_factory=list)  # name, versions
    runs: list[RunRecord] = field(default_factory=list)
    checklist: list[ChecklistItem] = field(default_factory=list)
    ui_base: str | None = None
    ci_levels: list[str] = field(default_factory=list)  # as the runs logged them (0.95)

    @property
    def ci_percent(self) -> str:
        """The interval level(s) for the legend: ``95`` (95 when no run said)."""
        shown = []
        for level in self.ci_levels or ["0.95"]:
            try:
                shown.append(f"{float(level) * 100:g}")
            except ValueError:
                shown.append(level)
        return "/".join(dict.fromkeys(shown))


def mlflow_ui_base(tracking_uri: str, configured: str | None) -> str | None:
    """The MLflow UI address for links: the configured one, else an http(s) tracking URI.

    Credentials are dropped: a link in a shared report must not carry a password.
    """
    base = configured or (
        tracking_uri if tracking_uri.startswith(("http://", "https://")) else None
    )
    if not base:
        return None
    parts = urlsplit(base)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def run_link(base: str | None, run: RunRecord) -> str | None:
    if not base:
        return None
    return f"{base}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def _checklist(
    views: list[TaskView], platform: PlatformFacts, appendix: Appendix
) -> list[ChecklistItem]:
    rows = [r for v in views for r in v.runs.rows if r.finished]
    has_rows = bool(rows)
    sites = {r.site for r in rows} - {"ALL"}
    subgroups = any(v.subgroups is not None for v in views)
    comparisons = any(v.comparisons for v in views)
    crosstab = any(t.key == "detail.crosstab" for v in views for t in v.details)

    def status(ok: bool, partial: bool = False) -> str:
        return "covered" if ok and not partial else "partial" if ok else "none"

    return [
        ChecklistItem("cl.title", "1", "1", "#top", "covered"),
        ChecklistItem("cl.sources", "6–8", "7–8", "#platform", status(platform.available)),
        ChecklistItem(
            "cl.deid",
            "—",
            "12",
            "#platform-deid",
            status(bool(platform.ingest or platform.deid_runs or platform.available)),
        ),
        ChecklistItem(
            "cl.reference", "10b, 11", "14–16", "#reference", status(bool(platform.labels))
        ),
        ChecklistItem("cl.index_test", "10a", "22–23", "#models", status(bool(appendix.models))),
        ChecklistItem(
            "cl.cutoffs",
            "12a",
            "—",
            "#models",
            status(any(m["thresholds"] for m in appendix.models)),
        ),
        ChecklistItem("cl.statistics", "14", "28–29", "#statistics", status(has_rows)),
        ChecklistItem("cl.missing", "15–16", "13", "#summary", status(has_rows)),
        ChecklistItem("cl.variability", "17", "30", "#results", status(subgroups)),
        ChecklistItem("cl.flow", "19", "33", "#results", status(has_rows)),
        ChecklistItem(
            "cl.characteristics", "20", "34", "#platform", status(platform.available, True)
        ),
        ChecklistItem("cl.crosstab", "23", "—", "#results", status(crosstab)),
        ChecklistItem("cl.estimates", "24", "35–36", "#summary", status(has_rows)),
        ChecklistItem("cl.comparisons", "14", "29", "#results", status(comparisons)),
        ChecklistItem("cl.sites", "8", "32", "#summary", status(bool(sites))),
        ChecklistItem("cl.failures", "—", "37", "#failures", status(has_rows, True)),
        ChecklistItem("cl.protocol", "29", "41", "#methods", status(bool(appendix.evaluations))),
        ChecklistItem("cl.software", "—", "23", "#environment", status(bool(appendix.packages))),
    ]


def build_appendix(
    collected: Collected, views: list[TaskView], platform: PlatformFacts, ui_base: str | None
) -> Appendix:
    appendix = Appendix(ui_base=ui_base)
    appendix.evaluations = [e for t in collected.tasks for e in t.evaluations]
    models: dict[tuple[str, str, str], dict[str, object]] = {}
    codes: set[str] = set()
    packages: dict[str, set[str]] = defaultdict(set)
    levels: set[str] = set()
    for task in collected.tasks:
        for run in [*task.rows, *task.operations]:
            key = (run.task, run.model, run.model_version)
            entry = models.setdefault(
                key,
                {
                    "task": run.task,
                    "model": run.model,
                    "version": run.model_version,
                    "origin": run.origin,
                    "vendor": run.vendor,
                    "sites": set(),
                    "runs": 0,
                    "thresholds": set(),
                },
            )
            if run.params.get("threshold"):
                entry["thresholds"].add(run.params["threshold"])  # type: ignore[union-attr]
            if run.params.get("ci_level"):
                levels.add(run.params["ci_level"])
            entry["sites"].add(run.site)  # type: ignore[union-attr]
            entry["runs"] = int(entry["runs"]) + 1  # type: ignore[call-overload]
            if run.code_version:
                codes.add(run.code_version)
            for name, version in run.packages.items():
                packages[name].add(version)
    for entry in models.values():
        entry["sites"] = sorted(entry["sites"])  # type: ignore[arg-type]
        entry["thresholds"] = ", ".join(sorted(entry["thresholds"]))  # type: ignore[arg-type]
    appendix.models = list(models.values())
    appendix.code_versions = sorted(codes)
    appendix.packages = [(n, ", ".join(sorted(v))) for n, v in sorted(packages.items())]
    appendix.ci_levels = sorted(levels)
    appendix.runs = collected.all_runs()
    appendix.checklist = _checklist(views, platform, appendix)
    return appendix
