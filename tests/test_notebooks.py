"""Every notebook runs end to end with papermill, and is committed with outputs stripped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data_fixtures import CatalogFixture, copy_home, pseudonymized_catalog

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="session")
def data_catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogFixture:
    return pseudonymized_catalog(tmp_path_factory)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_without_outputs_and_with_parameters(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), (
        "first code cell is the parameters cell"
    )


@pytest.mark.slow
def test_tutorial_runs_end_to_end(data_catalog: CatalogFixture, tmp_path: Path) -> None:
    import papermill

    settings = copy_home(data_catalog, tmp_path)
    out = tmp_path / "executed.ipynb"
    export_dir = tmp_path / "export"
    papermill.execute_notebook(
        str(NOTEBOOKS / "01_explore_store.ipynb"),
        str(out),
        parameters={"gai_home": str(settings.home), "export_dir": str(export_dir)},
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    executed = json.loads(out.read_text(encoding="utf-8"))
    text = json.dumps(executed["cells"])
    assert "Cohort('tutorial-lung-ct'" in text
    assert (export_dir / "datalist.json").is_file()
    assert (settings.home / "cohorts" / "tutorial-lung-ct.json").is_file()
    assert "training items" in text
