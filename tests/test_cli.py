"""The `gai` command: fast start-up, settings output, one-line errors for bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gai_research.cli import build_parser, main
from tests.conftest import free_ports, require_tool

HEAVY = ("torch", "monai", "mlflow", "pydicom", "pynetdicom", "pandas", "numpy", "pydantic")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from gai_research.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", ["config", "init", "synth", "pacs"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_init_then_config_json_masks_the_key(
    gai_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    assert "created" in capsys.readouterr().out
    key = (gai_home / "secrets" / "pseudonym.key").read_text().strip()
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert key not in out
    assert data["home"] == str(gai_home)
    assert data["key"].startswith("fingerprint ")
    assert data["sites"]["ANSEONG"]["base_center"] is True
    assert main(["config"]) == 0
    assert "SUWON_PACS@127.0.0.1" in capsys.readouterr().out


def test_config_json_masks_a_password_in_the_tracking_uri(
    gai_home: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GAI_MLFLOW_URI", "postgresql://mlflow:s3cret@127.0.0.1/mlflow")
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "mlflow:***@" in out


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pacs", "seed", "no-such-folder"], "does not exist"),
        (["pacs", "up", "--site", "busan"], "unknown site 'busan'"),
        (["pacs", "status", "--site", "seoul"], "use one of SUWON, ANSEONG, ICHEON"),
        (["--config", "missing.toml", "config"], "configuration file missing.toml not found"),
        (["pacs", "up"], "run `gai init`"),
        (["synth", "out", "--patients", "0"], "patients"),
    ],
)
def test_bad_input_gives_one_line_error(
    gai_home: Path, capsys, argv: list[str], expected: str
) -> None:
    assert expected in one_line_error(capsys, argv)


def test_synth_into_a_foreign_folder_is_refused(gai_home: Path, capsys) -> None:
    (gai_home.parent / "mine").mkdir()
    (gai_home.parent / "mine" / "thesis.docx").write_text("not a cohort")
    assert "mine" in one_line_error(capsys, ["synth", "mine"])
    assert (gai_home.parent / "mine" / "thesis.docx").read_text() == "not a cohort"


def test_orthanc_not_installed(gai_home: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GAI_ORTHANC_BINARY", "/nonexistent/Orthanc")
    assert main(["init"]) == 0
    err = one_line_error(capsys, ["pacs", "up"])
    assert "Orthanc is not installed" in err and "make setup" in err


def test_port_in_use(gai_home: Path, monkeypatch, capsys) -> None:
    require_tool("Orthanc")
    dicom, http = free_ports(2)
    monkeypatch.setenv("GAI_SITES__SUWON__PACS__DICOM_PORT", str(dicom))
    monkeypatch.setenv("GAI_SITES__SUWON__PACS__HTTP_PORT", str(http))
    assert main(["init"]) == 0
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", dicom))
        squatter.listen()
        err = one_line_error(capsys, ["pacs", "up", "--site", "SUWON"])
    assert f"port {dicom} (DICOM) is in use" in err and "GAI_SITES__SUWON__PACS__DICOM_PORT" in err


def test_parser_lists_commands_in_order() -> None:
    text = build_parser().format_help()
    assert text.index("config") < text.index("init") < text.index("synth") < text.index("pacs")
