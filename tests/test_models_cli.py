"""`gai models`: list, show, run, install-demo and the simulated vendors, run in-process.

The simulated vendors are real background processes (``python -m
gai_research.models.simulators``) on loopback, reached through the http and dicom
adapters by the runner, as in the demo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import gai_research.cli as cli
from gai_research.config import Settings
from gai_research.data.catalog import open_catalog
from gai_research.data.cohort import Cohort
from gai_research.home import init_home
from gai_research.models import ModelUnavailableError
from gai_research.models.registry import load_model, models_file
from gai_research.models.store import load_predictions
from tests.conftest import free_ports
from tests.data_fixtures import CatalogFixture, copy_home, pseudonymized_catalog

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "monai", "mlflow", "pydicom", "pynetdicom", "pandas", "numpy", "pydantic")
BASELINES = {
    "baseline-lung-nodule-ct",
    "baseline-chest-xray",
    "baseline-mammography",
    "baseline-hippocampal-volume",
    "baseline-hemorrhage-ct",
}


@pytest.fixture
def gai(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``gai ARGS`` through the real ``main``; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def catalog_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the shared catalog home with two saved cohorts."""
    fixture: CatalogFixture = pseudonymized_catalog(tmp_path_factory)
    settings = copy_home(fixture, tmp_path_factory.mktemp("models-cli"))
    with open_catalog(settings=settings) as catalog:
        Cohort.from_filters("lung-ct", catalog, modality="CT", task="lung_nodule_ct").save(
            settings=settings
        )
        stroke = catalog.labels("stroke_ct")["study_uid"].drop_duplicates().sort_values()
        Cohort.from_sql(
            "stroke-2",
            catalog,
            "SELECT study_uid FROM studies WHERE study_uid IN ("
            + ", ".join(f"'{u}'" for u in stroke.iloc[:2])
            + ")",
        ).save(settings=settings)
    return settings


@pytest.fixture
def home(catalog_home: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The catalog home as GAI_HOME (GAI_* of the caller ignored)."""
    for name in list(os.environ):
        if name.startswith("GAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GAI_HOME", str(catalog_home.home))
    monkeypatch.chdir(tmp_path)
    return catalog_home


def test_models_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from gai_research import cli\n"
        "for argv in (['--help'], ['models', '--help'], ['models', 'run', '--help'],\n"
        "             ['models', 'simulators', 'up', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: cli.main(argv)\n"
        "        except SystemExit: pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


# --- list / show --------------------------------------------------------------------------
def test_list_shows_the_baselines(settings: Settings, gai: Callable) -> None:
    code, out, _ = gai("models", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) >= BASELINES
    for name in BASELINES:
        assert rows[name]["origin"] == "baseline" and rows[name]["adapter"] == "python"
        assert rows[name]["regulatory"] == "research-only"
    code, out, _ = gai("models", "list")
    header = out.splitlines()[0].split()
    assert code == 0 and header[:5] == ["name", "adapter", "task", "kind", "origin"]
    assert "regulatory" in header and "baseline-hemorrhage-ct" in out


def test_show_tells_everything_declared(settings: Settings, gai: Callable) -> None:
    code, out, _ = gai("models", "show", "baseline-lung-nodule-ct")
    assert code == 0
    assert "origin:       baseline" in out and "kind:         detection" in out
    assert "entry_point:  gai_research.models.baselines.lung_ct:create" in out
    code, out, _ = gai("models", "show", "baseline-lung-nodule-ct", "--json")
    data = json.loads(out)
    assert data["info"]["task"] == "lung_nodule_ct" and data["source"] == "entry-point"


def test_an_unknown_model_is_a_one_line_error(settings: Settings, gai: Callable) -> None:
    code, out, err = gai("models", "show", "vendor-x")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "no model named 'vendor-x'" in err and "baseline-lung-nodule-ct" in err


def test_a_bad_models_file_is_a_one_line_error(settings: Settings, gai: Callable) -> None:
    init_home(settings)
    models_file(settings).write_text(
        "models:\n  - {name: v, adapter: http, vendor: V, version: '1', task: t, kind: dx}\n"
    )
    code, _, err = gai("models", "list")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "entry 1 (v), field kind" in err


def test_install_demo_refuses_to_overwrite(settings: Settings, gai: Callable) -> None:
    init_home(settings)
    code, out, _ = gai("models", "install-demo")
    assert code == 0 and "simulated-vendor-lung-ct" in out and "simulators up" in out
    code, _, err = gai("models", "install-demo")
    assert code == 1 and "--force" in err
    code, _, _ = gai("models", "install-demo", "--force")
    assert code == 0
    code, out, _ = gai("models", "list", "--json")
    demo = [r for r in json.loads(out) if r["name"].startswith("simulated-vendor-")]
    assert len(demo) >= 2
    assert {r["origin"] for r in demo} == {"simulator"}
    assert {r["vendor"] for r in demo} == {"simulated vendor (test double)"}
    assert {r["adapter"] for r in demo} == {"http", "dicom"}


# --- run --------------------------------------------------------------------------------
def test_run_prints_a_summary_and_reuses_stored_predictions(home: Settings, gai: Callable) -> None:
    lung = Cohort.load("lung-ct", settings=home)
    failing = lung.study_uids[0]
    models_file(home).write_text(
        "models:\n  - name: cli-double\n    adapter: python\n"
        f"    options: {{entry_point: 'tests.models_doubles:create', fail_on: ['{failing}']}}\n"
    )
    code, out, err = gai("models", "run", "cli-double", "--cohort", "lung-ct", "--workers", "2")
    assert code == 0
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in out.splitlines()[1:]}
    assert lines["ok"] == str(len(lung) - 1) and lines["failed: unavailable"] == "1"
    assert lines["cached (ok earlier)"] == "0" and lines["total"] == str(len(lung))
    assert "latency of ok studies" in out and "median" in out and "p95" in out
    assert "cli-double" in err  # the progress bar, on stderr
    assert failing not in out + err
    code, out, err = gai("models", "run", "cli-double", "--cohort", "lung-ct", "--quiet", "--json")
    summary = json.loads(out)
    assert code == 0 and err == ""
    assert (summary["ok"], summary["failed"], summary["cached"]) == (0, 1, len(lung) - 1)
    assert summary["by_reason"] == {"unavailable": 1}
    assert summary["snapshot"] == lung.snapshot and summary["origin"] == "simulator"
    code, out, _ = gai(
        "models", "run", "cli-double", "--cohort", "lung-ct", "--quiet", "--json", "--force"
    )
    assert json.loads(out)["cached"] == 0
    assert len(load_predictions(home, "cli-double")) == len(lung)


def test_run_with_an_unknown_cohort_names_the_saved_ones(home: Settings, gai: Callable) -> None:
    code, _, err = gai("models", "run", "baseline-lung-nodule-ct", "--cohort", "nope")
    assert code == 1 and "no cohort named 'nope'" in err and "lung-ct" in err


# --- the simulated vendors, as in the demo ---------------------------------------------------
SIM_MODELS = """\
models:
  - name: sim-double
    adapter: python
    options: {{entry_point: "tests.models_doubles:create"}}
  - name: sim-http-fast
    adapter: http
    vendor: simulated vendor (test double)
    version: "1"
    task: lung_nodule_ct
    kind: detection
    modalities: [CT]
    options: {{timeout_s: 30, retries: 0}}
    simulator: {{kind: http, wraps: sim-double, delay_s: 0.05}}
  - name: sim-http-slow
    adapter: http
    vendor: simulated vendor (test double)
    version: "1"
    task: lung_nodule_ct
    kind: detection
    modalities: [CT]
    options: {{timeout_s: 30, retries: 0}}
    simulator: {{kind: http, wraps: sim-double, delay_s: 0.6}}
  - name: sim-stroke
    adapter: dicom
    vendor: simulated vendor (test double)
    version: "1"
    task: stroke_ct
    kind: triage
    modalities: [CT]
    options: {{timeout_s: 60}}
    simulator: {{kind: dicom, wraps: baseline-hemorrhage-ct, ae_title: SIM-STROKE,
                 return_port: {return_port}, delay_s: 0.3}}
"""


@pytest.mark.slow
def test_simulated_vendors_up_run_down(
    home: Settings, gai: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the simulators wrap the test double of tests/: their processes must import it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    models_file(home).write_text(SIM_MODELS.format(return_port=free_ports(1)[0]))
    try:
        code, out, _ = gai("models", "simulators", "up")
        assert code == 0 and out.count("started") == 3
        code, out, _ = gai("models", "simulators", "up", "--name", "sim-http-fast")
        assert code == 0 and "already running" in out
        code, out, _ = gai("models", "simulators", "status")
        assert code == 0 and out.count("running") == 3 and "SIM-STROKE@127.0.0.1:" in out

        medians = {}
        for name in ("sim-http-fast", "sim-http-slow"):
            code, out, _ = gai("models", "run", name, "--cohort", "lung-ct", "--quiet", "--json")
            summary = json.loads(out)
            assert code == 0 and summary["failed"] == 0 and summary["origin"] == "simulator"
            medians[name] = summary["latency"]["median_s"]
            records = load_predictions(home, name)
            assert records and all(
                r.latency_s >= (0.6 if "slow" in name else 0.05) for r in records
            )
        # the configured delay shows in the measured latency: every slow study took its
        # 0.6 s at least (above), and the slow vendor's median is the higher one
        assert medians["sim-http-slow"] > medians["sim-http-fast"]

        code, out, _ = gai(
            "models", "run", "sim-stroke", "--cohort", "stroke-2", "--quiet", "--json"
        )
        summary = json.loads(out)
        assert code == 0 and summary["ok"] == 2, summary
        for record in load_predictions(home, "sim-stroke"):
            assert record.info.origin == "simulator" and record.latency_s >= 0.3
            assert record.prediction.score is not None
            assert record.prediction.timing  # the adapter measured first C-STORE to last result
    finally:
        code, out, _ = gai("models", "simulators", "down")
    assert code == 0 and out.count("stopped") == 3
    code, out, _ = gai("models", "simulators", "status")
    assert code == 3 and "running" not in out
    assert not list((home.home / "run").glob("*.json"))
    with pytest.raises(ModelUnavailableError):
        load_model("sim-http-fast", home)
