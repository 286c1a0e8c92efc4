"""`gai catalog`: stats, read-only queries, snapshots, reconcile, one-line errors; the docs."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gai_research import cli
from gai_research.config import Settings
from gai_research.home import init_home
from gai_research.store import CatalogWriter
from gai_research.store.schema import TABLES
from tests.test_store_support import ct_series, mg_image

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("duckdb", "pyarrow", "pandas", "pydicom", "numpy")


@pytest.fixture
def gai(capsys: pytest.CaptureFixture[str]) -> Callable:
    """Run ``gai ARGS`` through the real ``main``; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def catalog(settings: Settings) -> Settings:
    init_home(settings)
    with CatalogWriter(settings) as writer, writer.batch():
        for ds in [*ct_series(3), mg_image("L", "CC", patient="PSN-0002", study="mg", series="mg")]:
            writer.add_instance(
                ds, "SUWON" if ds.Modality == "CT" else "ICHEON", writer.store.write_instance(ds)
            )
    return settings


@pytest.fixture
def published(catalog: Settings, gai: Callable) -> str:
    code, out, _ = gai("catalog", "snapshot")
    assert code == 0
    return out.strip()


def test_snapshot_prints_its_hash_and_is_stable(published: str, gai: Callable) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", published)
    code, out, err = gai("catalog", "snapshot")
    assert (code, out.strip()) == (0, published)
    assert "unchanged" in err
    code, out, _ = gai("catalog", "snapshot", "--list")
    assert code == 0 and published in out and "*" in out


def test_stats_show_counts_and_the_snapshot(published: str, gai: Callable) -> None:
    code, out, _ = gai("catalog", "stats")
    assert code == 0
    assert published in out
    assert "2 patients  2 studies  2 series  4 instances" in out
    for word in ("SUWON", "ICHEON", "CT", "MG", "SIEMENS", "HOLOGIC"):
        assert word in out
    code, out, _ = gai("catalog", "stats", "--format", "json", "--snapshot", published[:8])
    stats = json.loads(out)
    assert stats["snapshot"] == published
    assert {r["site"]: r["instances"] for r in stats["by_site"]} == {"ICHEON": 1, "SUWON": 3}
    assert {r["modality"]: r["series"] for r in stats["by_modality"]} == {"CT": 1, "MG": 1}


SQL = "SELECT site, study_date, modalities, n_instances FROM studies ORDER BY site"


def _parse(fmt: str, out: str) -> list[dict]:
    if fmt == "json":
        return json.loads(out)
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(out)))
    lines = out.splitlines()
    header = lines[0].split()
    return [dict(zip(header, line.split(), strict=True)) for line in lines[2:-1]]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_query_formats(published: str, gai: Callable, fmt: str) -> None:
    code, out, err = gai("catalog", "query", SQL, "--format", fmt)
    assert (code, err) == (0, "")
    rows = _parse(fmt, out)
    assert [r["site"] for r in rows] == ["ICHEON", "SUWON"]
    assert [str(r["study_date"]) for r in rows] == ["2026-03-15", "2026-03-15"]
    assert [str(r["n_instances"]) for r in rows] == ["1", "3"]
    modalities = [r["modalities"] if fmt == "json" else json.loads(r["modalities"]) for r in rows]
    assert modalities == [["MG"], ["CT"]]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM studies", "read-only"),
        ("DROP TABLE studies", "read-only"),
        ("SELECT * FROM nowhere", "query failed"),
        ("SELEKT 1", "bad query"),
    ],
)
def test_query_errors_are_one_line(published: str, gai: Callable, sql: str, message: str) -> None:
    code, out, err = gai("catalog", "query", sql)
    assert code == 1 and out == ""
    assert err.startswith("gai catalog: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_query_on_a_pinned_snapshot(published: str, catalog: Settings, gai: Callable) -> None:
    with CatalogWriter(catalog) as writer:
        writer.store_instance(ct_series(1, study="new")[0], "ANSEONG")
    code, newer, _ = gai("catalog", "snapshot")
    assert newer.strip() != published
    sql = "SELECT count(*) AS n FROM studies"
    assert gai("catalog", "query", sql, "--format", "json")[1] == '[\n {\n  "n": 3\n }\n]\n'
    pinned = gai("catalog", "query", sql, "--format", "json", "--snapshot", published[:10])[1]
    assert json.loads(pinned) == [{"n": 2}]
    code, _, err = gai("catalog", "query", sql, "--snapshot", "ffffffff")
    assert code == 1 and "gai catalog snapshot --list" in err


@pytest.mark.parametrize("command", [("stats",), ("query", "SELECT 1"), ("snapshot",)])
@pytest.mark.parametrize("initialised", [False, True])
def test_a_missing_catalog_says_to_ingest(
    settings: Settings, gai: Callable, command: tuple[str, ...], initialised: bool
) -> None:
    if initialised:
        init_home(settings)
    code, _out, err = gai("catalog", *command)
    assert code == 1
    assert "ingest" in err and "gai init" in err
    assert len(err.strip().splitlines()) == 1


def test_reconcile_exit_code(catalog: Settings, gai: Callable) -> None:
    code, out, _ = gai("catalog", "reconcile")
    assert code == 0 and "agree" in out
    next(p for p in catalog.store_dir.rglob("*.dcm")).unlink()
    code, out, _ = gai("catalog", "reconcile")
    assert code == 1 and "1 missing" in out


def test_catalog_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from gai_research import cli\n"
        "for argv in (['--help'], ['catalog', '--help'], ['catalog', 'query', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: cli.main(argv)\n"
        "        except SystemExit: pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_docs_describe_every_column(table: str) -> None:
    docs = (REPO / "docs" / "catalog.md").read_text(encoding="utf-8")
    assert f"`{table}`" in docs
    for column in TABLES[table].columns:
        assert f"`{column.name}`" in docs, f"docs/catalog.md lacks {table}.{column.name}"
