"""``gai hub`` and ``gai mlflow``: help, one-line errors, and the standalone tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gai_research.cli import main
from gai_research.hub.mlflow_server import masked, server_command
from tests.conftest import free_ports


@pytest.mark.parametrize("command", [["hub"], ["hub", "status"], ["hub", "harden"], ["mlflow"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_port_in_use_is_one_line(
    gai_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    others = free_ports(3)
    for name, port in zip(("HUB_PORT", "PROXY_API_PORT", "MLFLOW_PORT"), others, strict=True):
        monkeypatch.setenv(f"GAI_HUB__{name}", str(port))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _one_line_error(capsys, ["hub", "--demo", "--port", str(port)])
    assert f"port {port}" in err and "in use" in err
    assert not (gai_home / "hub" / "admin-gai-admin.password").exists()  # nothing made


def test_a_missing_proxy_is_one_line(
    gai_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAI_HUB__PROXY_COMMAND", str(gai_home / "no-such-proxy"))
    err = _one_line_error(capsys, ["hub"])
    assert "configurable-http-proxy" in err and "make setup" in err


def test_hardening_without_the_groups_is_one_line(
    gai_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, ["hub", "harden", "--research-group", "gaitest-no-such-group"])
    assert "groupadd gaitest-no-such-group" in err


def test_status_of_a_stopped_hub(
    gai_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAI_HUB__PORT", str(free_ports(1)[0]))
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["hub", "status"]) == 3
    out = capsys.readouterr().out
    assert "hub      down" in out and "boundaries hold" in out
    assert main(["hub", "stop"]) == 0
    assert "was not running" in capsys.readouterr().out


def test_store_passwords_are_never_printed() -> None:
    uri = "postgresql://mlflow:s3cret@db.gai.internal/mlflow"
    assert masked(uri) == "postgresql://mlflow:***@db.gai.internal/mlflow"


def test_server_command_uses_the_platform_store(settings) -> None:
    cmd = server_command(settings, port=5123)
    assert cmd[cmd.index("--backend-store-uri") + 1] == (
        f"sqlite:///{settings.home / 'mlflow' / 'mlflow.db'}"
    )
    assert cmd[cmd.index("--artifacts-destination") + 1] == str(
        settings.home / "mlflow" / "artifacts"
    )
    assert "--uds" not in " ".join(cmd)


@pytest.mark.slow
def test_gai_mlflow_serves_the_platform_store(gai_home: Path) -> None:
    """``gai mlflow`` runs a tracking server on SQLite under GAI_HOME and stops cleanly."""
    port = free_ports(1)[0]
    env = {**os.environ, "GAI_HOME": str(gai_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gai_research", "mlflow", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail("gai mlflow did not answer within 120 s")
        created = requests.post(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/create",
            json={"name": "standalone"},
            timeout=30,
        )
        assert created.status_code == 200
        assert (gai_home / "mlflow" / "mlflow.db").is_file()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = proc.stdout.read().decode(errors="replace").splitlines()[0]
    assert (
        first == f"MLflow on http://127.0.0.1:{port}/ (store sqlite:///{gai_home}/mlflow/mlflow.db)"
    )
    with pytest.raises(ProcessLookupError):  # the whole group (uvicorn, workers) is gone
        os.killpg(proc.pid, 0)
