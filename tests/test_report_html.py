"""The results report from real MLflow runs (a SQLite store logged by tests/report_runs.py)
and a real catalog: every number traced to its run, failures stated, Korean labels, a
well-formed self-contained page; its PDF and a first-page screenshot with Chromium."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gai_research.cli import main
from gai_research.report import conventions as cv
from gai_research.report.build import Report, ReportFiles, build_report, write_report
from gai_research.report.fmt import fmt_estimate
from tests.conftest import require_tool
from tests.data_fixtures import pseudonymized_catalog
from tests.report_platform import PlatformHome, build_platform_home
from tests.report_runs import (
    BASELINE_VENDOR,
    FAILURE,
    SIM_VENDOR,
    VENDOR,
    ReportRuns,
    log_report_runs,
)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
MLFLOW_UI = "http://127.0.0.1:5999"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


# --- a small DOM on html.parser, strict about nesting -------------------------------------------
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None
    children: list[Node | str]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if n.tag == tag
            and all(
                (v in n.attrs.get(k.rstrip("_"), "").split())
                if k == "class_"
                else n.attrs.get(k) == v
                for k, v in attrs.items()
            )
        ]

    def ancestor(self, tag: str) -> Node | None:
        node = self.parent
        while node is not None and node.tag != tag:
            node = node.parent
        return node


class StrictTree(HTMLParser):
    """Builds a tree and records every end tag that does not close the innermost element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None, [])
        self.current = self.root
        self.errors: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current, [])
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current, []))

    def handle_endtag(self, tag) -> None:
        if tag in VOID:
            return
        if self.current.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.current.tag}> at {self.getpos()}")
            return
        self.current = self.current.parent or self.root

    def handle_data(self, data) -> None:
        self.current.children.append(data)


def parse_strictly(html: str) -> Node:
    """Parse with html5lib's strict parser when installed, and always check the nesting."""
    try:
        import html5lib
    except ImportError:
        html5lib = None
    if html5lib is not None:
        html5lib.HTMLParser(strict=True).parse(html)  # raises on any parse error
    tree = StrictTree()
    tree.feed(html)
    tree.close()
    assert tree.doctype, "no <!DOCTYPE html>"
    assert tree.errors == [], tree.errors[:5]
    assert tree.current is tree.root, f"<{tree.current.tag}> never closed"
    return tree.root


# --- fixtures -----------------------------------------------------------------------------------
@dataclass
class Built:
    report: Report
    files: ReportFiles
    html: str
    page: Node
    data: dict

    def nums(self, section: str | None = None) -> list[Node]:
        spans = self.page.find_all("span", class_="num")
        if section is None:
            return spans
        return [
            s
            for s in spans
            if (t := s.ancestor("table")) and t.attrs.get("data-section") == section
        ]


def _build(settings, out: Path, **options) -> Built:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out.parent)  # no data_cards/ or exports/ of the source tree
        report = build_report(settings, **options)
        files = write_report(report, out)
    html = files.html.read_text(encoding="utf-8")
    data = json.loads(files.json.read_text(encoding="utf-8"))
    return Built(report, files, html, parse_strictly(html), data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> ReportRuns:
    return log_report_runs(tmp_path_factory.mktemp("report-mlflow"))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> PlatformHome:
    catalog = pseudonymized_catalog(tmp_path_factory)
    return build_platform_home(catalog.home, tmp_path_factory.mktemp("report-platform"))


@pytest.fixture(scope="module")
def report_en(runs, platform, tmp_path_factory) -> Built:
    settings = platform.settings(mlflow_uri=runs.tracking_uri)
    out = tmp_path_factory.mktemp("report-en") / "out"
    return _build(settings, out, lang="en", mlflow_ui=MLFLOW_UI)


@pytest.fixture(scope="module")
def report_ko(runs, platform, tmp_path_factory) -> Built:
    settings = platform.settings(mlflow_uri=runs.tracking_uri)
    return _build(settings, tmp_path_factory.mktemp("report-ko") / "out", lang="ko")


def _client(runs: ReportRuns):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=runs.tracking_uri)


def _row_key(span: Node) -> tuple[str, str, str]:
    row, table = span.ancestor("tr"), span.ancestor("table")
    return table.attrs["data-task"], row.attrs["data-model"], row.attrs["data-site"]


# --- numbers ------------------------------------------------------------------------------------
def test_summary_numbers_equal_the_logged_metrics_of_the_runs_they_cite(report_en, runs) -> None:
    client = _client(runs)
    chosen = runs.chosen()
    spans = report_en.nums("summary")
    assert len(spans) > 200
    stored: dict[str, dict[str, float]] = {}
    for span in spans:
        run_id, metric = span.attrs["data-run-id"], span.attrs["data-metric"]
        value = float(span.attrs["data-value"])
        if run_id not in stored:
            stored[run_id] = client.get_run(run_id).data.metrics
        assert value == stored[run_id][metric] == runs.by_id(run_id).metrics[metric]
        low, high = span.attrs.get("data-ci-low"), span.attrs.get("data-ci-high")
        if f"{metric}_ci_low" in stored[run_id]:
            assert float(low) == stored[run_id][f"{metric}_ci_low"]
            assert float(high) == stored[run_id][f"{metric}_ci_high"]
        else:
            assert low is None and high is None
        style = cv.metric_spec(metric).style
        assert span.text() == fmt_estimate(
            value, *(float(v) if v else None for v in (low, high)), style
        )
        assert chosen[_row_key(span)].run_id == run_id  # the latest finished run of that row


def test_every_model_and_site_has_a_summary_row(report_en, runs) -> None:
    rows = {
        (t.attrs["data-task"], r.attrs["data-model"], r.attrs["data-site"]): r.attrs["data-run-id"]
        for t in report_en.page.find_all("table", **{"data-section": "summary"})
        for r in t.find_all("tr")
        if "data-run-id" in r.attrs
    }
    assert rows == {key: run.run_id for key, run in runs.chosen().items()}


def test_every_number_cites_a_metric_its_run_logged(report_en, runs) -> None:
    cited = [s for s in report_en.nums() if "data-run-id" in s.attrs]
    sections = {s.ancestor("table").attrs["data-section"] for s in cited}
    assert {"summary", "subgroups", "comparisons", "operations", "detail.froc"} <= sections
    for span in cited:
        logged = runs.by_id(span.attrs["data-run-id"]).metrics
        assert float(span.attrs["data-value"]) == logged[span.attrs["data-metric"]]


def test_report_json_lists_every_number_printed(report_en) -> None:
    spans = report_en.nums()
    numbers = report_en.data["numbers"]
    assert [s.attrs["id"] for s in spans] == [n["id"] for n in numbers]
    for span, number in zip(spans, numbers, strict=True):
        assert span.text() == number["text"]
        assert number["metric"] == span.attrs["data-metric"]
        source = span.attrs.get("data-run-id") or span.attrs.get("data-source")
        assert source == (number.get("run_id") or number.get("source"))
        if number["value"] is not None:
            assert number["value"] == float(span.attrs["data-value"])


def _expected_flags(runs: ReportRuns, report: Report) -> set[tuple[str, str, str, str, str]]:
    """Best/worst computed here from the logged numbers: one interval above (below) all others."""
    expected = set()
    groups: dict[tuple[str, str], list] = {}
    for (task, _model, site), run in runs.chosen().items():
        if run.status == "FINISHED":
            groups.setdefault((task, site), []).append(run)
    columns = {v.task: v.summary.columns for v in report.views if v.summary is not None}
    for (task, site), group in groups.items():
        for metric in columns[task]:
            better = cv.metric_spec(metric).better
            have = [r for r in group if metric in r.metrics]
            if better == 0 or len(have) < 2 or len(have) != len(group):
                continue
            if not all(f"{metric}_ci_low" in r.metrics for r in have):
                continue
            for run in have:
                others = [o for o in have if o is not run]
                low, high = run.metrics[f"{metric}_ci_low"], run.metrics[f"{metric}_ci_high"]
                above = all(low > o.metrics[f"{metric}_ci_high"] for o in others)
                below = all(high < o.metrics[f"{metric}_ci_low"] for o in others)
                if above or below:
                    flag = "best" if (above and better > 0) or (below and better < 0) else "worst"
                    expected.add((task, site, run.model, metric, flag))
    return expected


def test_best_and_worst_are_flagged_exactly_where_intervals_separate(report_en, runs) -> None:
    shown = set()
    for span in report_en.nums("summary"):
        for flag in ("best", "worst"):
            if f"flag-{flag}" in span.attrs["class"].split():
                task, model, site = _row_key(span)
                shown.add((task, site, model, span.attrs["data-metric"], flag))
    expected = _expected_flags(runs, report_en.report)
    assert shown == expected
    assert {f for *_, f in expected} == {"best", "worst"}  # the fixture has both kinds
    assert len(shown) < len(report_en.nums("summary")) / 4  # and most cells have none


# --- failures, gaps, origins ----------------------------------------------------------------------
def test_failed_and_unfinished_runs_and_tasks_without_runs_are_stated(report_en, runs) -> None:
    expected = {r.run_id for r in [*runs.failed, *runs.unfinished]}
    section = report_en.page.find_all("section", id="failures")[0]
    listed = {tr.attrs["data-run-id"]: tr for tr in section.find_all("tr", class_="failed-run")}
    assert set(listed) == expected
    for run in runs.failed:  # each with its error, or the failures its evaluation recorded
        assert FAILURE in listed[run.run_id].text()
    assert {r.status for r in runs.runs if r.run_id in listed} == {"FAILED", "RUNNING"}
    vendor_row = next(
        tr
        for tr in report_en.page.find_all(
            "tr", **{"data-model": "acme-cxr", "data-site": "ANSEONG"}
        )
        if tr.ancestor("table").attrs["data-section"] == "summary"
    )
    assert "ModelTimeoutError" in vendor_row.find_all("td", class_="failed")[0].text()
    summary = {
        s.attrs["id"]: s.text() for s in report_en.page.find_all("section", class_="task-summary")
    }
    assert "holds no evaluation runs" in summary[f"summary-{runs.task_without_runs}"]
    assert "4 failed run(s)" in summary["summary-lung_nodule_dx"]  # 2 evaluations, 2 models
    assert "still running or scheduled" in summary["summary-breast_mg"]
    tasks = {t["task"]: t for t in report_en.data["tasks"]}
    assert tasks[runs.task_without_runs]["rows"] == []
    assert tasks[runs.task_without_runs]["notes"] == ["note.no_runs"]


def test_vendor_names_appear_only_for_vendor_products(report_en) -> None:
    html = report_en.html
    assert SIM_VENDOR not in html and BASELINE_VENDOR not in html
    assert VENDOR in html
    for row in report_en.page.find_all("tr"):
        model = row.attrs.get("data-model")
        if not model or not row.find_all("td", class_="name"):
            continue
        badges = row.find_all("span", class_="badge")
        assert len(badges) == 1, model
        expected = {"acme-cxr": VENDOR}.get(model) or (
            "baseline" if model.startswith("baseline-") else "simulator"
        )
        assert badges[0].text() == expected


def test_appendix_traces_protocols_snapshots_models_and_guidelines(report_en, runs) -> None:
    methods = report_en.page.find_all("section", id="methods")[0]
    text = methods.text()
    parents = [r for r in runs.runs if r.role == "evaluation" and r.tags["gai.protocol"]]
    for parent in parents:
        assert parent.tags["gai.protocol_hash"] in text and parent.tags["gai.snapshot"] in text
    links = {a.attrs["href"] for a in methods.find_all("a", class_="run-id")}
    assert f"{MLFLOW_UI}/#/experiments/" in next(iter(links))
    cited = {r.attrs["data-run-id"] for r in methods.find_all("tr") if "data-run-id" in r.attrs}
    assert {r["run_id"] for r in report_en.data["runs"]} <= cited
    assert "0.1.0+g5bb32bb" in text  # the code version the runs logged
    checklist = methods.find_all("table", **{"data-section": "methods-checklist"})[0].text()
    for item in (
        "STARD 2015",
        "CLAIM 2020",
        "Reference standard",
        "Flow of cases",
        "Subgroup analyses",
    ):
        assert item in checklist


# --- the page -------------------------------------------------------------------------------------
def test_page_is_self_contained_and_shows_no_identifier(report_en, platform) -> None:
    page = report_en.page
    metas = page.find_all("meta", **{"http-equiv": "Content-Security-Policy"})
    assert metas and "default-src 'none'" in metas[0].attrs["content"]
    images = page.find_all("img")
    assert len(images) >= 10
    assert all(i.attrs["src"].startswith("data:image/png;base64,") for i in images)
    assert not page.find_all("script") and not page.find_all("link")
    for a in page.find_all("a"):
        assert a.attrs["href"].startswith(("#", MLFLOW_UI)), a.attrs["href"]
    html = report_en.html
    assert "2.25." not in html  # no (pseudonymous) UID
    from gai_research.data import open_catalog

    with open_catalog(settings=platform.settings()) as catalog:
        pseudonyms = catalog.sql("SELECT patient_pseudonym FROM patients")["patient_pseudonym"]
    assert not [p for p in pseudonyms if p in html]


def test_data_platform_section_counts_the_catalog_ingest_quarantine_and_use(
    report_en, platform
) -> None:
    numbers = report_en.data["numbers"]
    by = {}
    for n in numbers:
        if n["source_kind"] != "run":
            by[(n["metric"], n.get("site"), n.get("modality"), n.get("reason"))] = n["value"]
    from gai_research.data import open_catalog

    with open_catalog(settings=platform.settings()) as catalog:
        for table in ("patients", "studies", "series", "instances"):
            count = int(catalog.sql(f"SELECT count(*) AS n FROM {table}")["n"][0])
            assert by[(f"total.{table}", None, None, None)] == count
        per_site = catalog.sql(
            "SELECT st.site, se.modality, count(DISTINCT st.study_uid) AS n FROM series se "
            "JOIN studies st USING (study_uid) GROUP BY ALL"
        )
    for site, modality, n in per_site.itertuples(index=False):
        assert by[("platform.studies", site, modality, None)] == n
    for site, counts in platform.ingest_counts.items():
        assert by[("ingest.stored_new", site, None, None)] == counts["stored_new"]
        assert by[("ingest.quarantined", site, None, None)] == counts["quarantined"]
    assert by[("ingest.quarantined_burned_in_text", "ANSEONG", None, None)] == 2
    assert by[("ingest.failed_runs", "SUWON", None, None)] == 1
    for (site, reason), n in platform.quarantined.items():
        assert by[("quarantine.files", site, None, reason)] == n
    assert by[("deid.written", "ICHEON", None, None)] == platform.deid_written["ICHEON"]
    assert by[("export.items", None, None, None)] == platform.export_items
    section = report_en.page.find_all("section", id="platform")[0].text()
    assert platform.snapshot[:12] in section
    assert section.count(platform.cohort) >= 3  # the cohort, its card, the export's card


def test_korean_report_has_korean_labels_and_the_same_numbers(report_ko, report_en) -> None:
    assert report_ko.page.find_all("html")[0].attrs["lang"] == "ko"
    text = report_ko.page.find_all("body")[0].text()
    for label in (
        "요약",
        "민감도",
        "특이도",
        "전체 병원",
        "수원병원",
        "시뮬레이터",
        "기준 모델",
        "데이터 플랫폼",
    ):
        assert label in text
    for english in ("Executive summary", "Sensitivity", "All sites", "simulator", "Data platform"):
        assert english not in text
    ko = [(n["metric"], n.get("run_id"), n["value"]) for n in report_ko.data["numbers"]]
    en = [(n["metric"], n.get("run_id"), n["value"]) for n in report_en.data["numbers"]]
    assert ko == en


@pytest.mark.parametrize("store", ["empty", "missing"])
def test_an_empty_or_missing_mlflow_gives_a_report_that_says_so(
    runs, platform, tmp_path, store
) -> None:
    uri = runs.empty_uri if store == "empty" else f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"
    built = _build(platform.settings(mlflow_uri=uri), tmp_path / "out")
    note = built.page.find_all("p", id="no-runs" if store == "empty" else "no-store")
    assert note, "the report must say there are no runs"
    assert built.nums("summary") == [] and built.page.find_all("tr", class_="failed-run") == []
    assert [t["rows"] for t in built.data["tasks"]] == [[]] * len(cv.TASKS)
    assert all(t["notes"] == ["note.no_experiment"] for t in built.data["tasks"])
    assert not (tmp_path / "none").exists()  # reading never creates a tracking store
    assert built.data["platform"]["available"]


def test_a_missing_catalog_is_stated(runs, tmp_path) -> None:
    from gai_research.config import load_settings

    settings = load_settings(home=tmp_path / "home", mlflow_uri=runs.tracking_uri)
    built = _build(settings, tmp_path / "out", experiments=["lung_nodule_ct"])
    section = built.page.find_all("section", id="platform")[0].text()
    assert "No catalog to describe" in section
    assert built.data["platform"] == {
        "available": False,
        "snapshot": None,
        "notes": ["platform.no_catalog"],
    }
    assert [t["task"] for t in built.data["tasks"]] == ["lung_nodule_ct"]


def test_pinned_runs_make_an_edition_of_exactly_those_runs(runs, platform, tmp_path) -> None:
    dx = [r for r in runs.runs if r.task == "lung_nodule_dx"]
    parent = next(r for r in dx if r.role == "evaluation" and r.status == "FAILED" and r.metrics)
    ops = next(r for r in dx if r.role == "operations")
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(
        f"edition: November 2026 results session\nruns:\n  - {parent.run_id}\n  - id: {ops.run_id}\n",
        encoding="utf-8",
    )
    built = _build(platform.settings(mlflow_uri=runs.tracking_uri), tmp_path / "out", runs=pinned)
    assert "November 2026 results session" in built.page.find_all("header")[0].text()
    tasks = {t["task"]: t for t in built.data["tasks"]}
    children = {
        r.run_id for r in dx if r.role == "model" and r.tags["mlflow.parentRunId"] == parent.run_id
    }
    assert set(tasks["lung_nodule_dx"]["rows"]) == children
    assert tasks["lung_nodule_dx"]["operations"] == [ops.run_id]
    assert all(tasks[t]["rows"] == [] for t in tasks if t != "lung_nodule_dx")
    cited = {n["run_id"] for n in built.data["numbers"] if "run_id" in n}
    assert cited <= children | {parent.run_id, ops.run_id}


# --- the command --------------------------------------------------------------------------------
def _env(monkeypatch, runs: ReportRuns, platform: PlatformHome, cwd: Path) -> None:
    for name in ("GAI_CONFIG", "GAI_SITES__SUWON__PACS__DICOM_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GAI_HOME", str(platform.home))
    monkeypatch.setenv("GAI_MLFLOW_URI", runs.tracking_uri)
    monkeypatch.setenv("GAI_KEY_FILE", str(platform.home / "secrets" / "pseudonym.key"))
    monkeypatch.chdir(cwd)


def test_gai_report_writes_into_home_reports_by_date(
    runs, platform, tmp_path, monkeypatch, capsys
) -> None:
    import datetime as dt

    _env(monkeypatch, runs, platform, tmp_path)
    assert main(["report", "--experiments", "gai-lung_nodule_dx", "stroke_ct", "--lang", "ko"]) == 0
    out = capsys.readouterr().out
    folder = platform.home / "reports" / dt.date.today().isoformat()
    assert f"report: {folder / 'report.html'}" in out
    assert "no runs for stroke_ct" in out and "numbers cited (HTML" in out
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert [t["task"] for t in data["tasks"]] == ["lung_nodule_dx", "stroke_ct"]
    assert data["lang"] == "ko" and data["timings_s"]["html_total"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--experiments", "gai-nosuch"], "no experiment gai-nosuch"),
        (["report", "--runs", "missing.yaml"], "pinned-runs file missing.yaml not found"),
        (["report", "--runs", "pinned.yaml"], "is not in the tracking store"),
    ],
)
def test_gai_report_bad_input_is_one_line(
    runs, platform, tmp_path, monkeypatch, capsys, argv, message
) -> None:
    _env(monkeypatch, runs, platform, tmp_path)
    (tmp_path / "pinned.yaml").write_text(f"runs: [{'ab' * 16}]\n", encoding="utf-8")
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


# --- PDF and screenshot with headless Chromium ------------------------------------------------------
def _variance(png: Path) -> float:
    import numpy as np
    from PIL import Image

    return float(np.asarray(Image.open(png).convert("L"), dtype=float).std())


@pytest.mark.slow
def test_pdf_renders_korean_and_every_page_has_content(report_ko, tmp_path) -> None:
    require_tool("chromium")
    pdftoppm = require_tool("pdftoppm")
    pdftotext = require_tool("pdftotext")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-first-page.png"
    files = write_report(report_ko.report, tmp_path / "out", pdf=True, screenshot=shot)
    assert files.pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(
        [pdftoppm, "-png", "-r", "30", str(files.pdf), str(tmp_path / "page")], check=True
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 8
    blank = [p.name for p in pages if _variance(p) < 2.0]
    assert blank == []
    text = subprocess.run(
        [pdftotext, "-layout", str(files.pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "민감도" in text and "데이터 플랫폼" in text  # Korean glyphs, not boxes
    assert _variance(shot) > 10.0
    from PIL import Image

    assert Image.open(shot).size == (1240, 1754)
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["timings_s"]["pdf"] > 0 and data["timings_s"]["screenshot"] > 0
    (ARTIFACTS / "report-timings.json").write_text(json.dumps(data["timings_s"], indent=1))
    assert not math.isnan(data["timings_s"]["html_total"])
