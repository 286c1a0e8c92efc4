"""The MLflow tracking server: its command line, its stores, and a process group to stop.

By default the store is SQLite under ``HOME/mlflow`` (the same database the platform's
jobs log to with ``settings.tracking_uri``) and artifacts go to ``HOME/mlflow/artifacts``,
served by the server itself. PostgreSQL and object storage are configuration:
``GAI_HUB__MLFLOW_BACKEND_STORE=postgresql://mlflow@db/mlflow`` and
``GAI_HUB__MLFLOW_ARTIFACTS_DESTINATION=s3://gai-mlflow`` (with the usual
``MLFLOW_S3_ENDPOINT_URL`` / ``AWS_*`` variables in the server's environment).

Behind the hub the server listens on a unix socket only (``uvicorn --uds``) with the
hub's URL prefix as its ``--static-prefix``; ``gai mlflow`` runs it on a TCP port for a
single user. Its background job runner (GenAI features) is switched off, and so is
telemetry: the platform has no internet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.hub.errors import HubError

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = [
    "MlflowServer",
    "artifacts_destination",
    "backend_store",
    "masked",
    "server_command",
    "server_env",
]

_DB_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


def backend_store(settings: Settings) -> str:
    """The server's backend store URI: configured, the platform's DB URI, or SQLite."""
    if settings.hub.mlflow_backend_store:
        return settings.hub.mlflow_backend_store
    if settings.mlflow_uri and settings.mlflow_uri.startswith(_DB_SCHEMES):
        return settings.mlflow_uri
    return f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"


def masked(uri: str) -> str:
    """A store URI safe to print: a password in it becomes ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        return urlunsplit(
            parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
        )
    return uri


def artifacts_destination(settings: Settings) -> str:
    return settings.hub.mlflow_artifacts_destination or str(settings.mlflow_dir / "artifacts")


def server_command(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    unix_socket: Path | None = None,
    static_prefix: str = "",
    allowed_hosts: tuple[str, ...] = (),
    cors_origins: tuple[str, ...] = (),
) -> list[str]:
    """``mlflow server ...`` for these settings (TCP, or a unix socket when given)."""
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store(settings),
        "--artifacts-destination",
        artifacts_destination(settings),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(settings.hub.mlflow_workers),
    ]
    if static_prefix:
        cmd += ["--static-prefix", "/" + static_prefix.strip("/")]
    if allowed_hosts:
        cmd += ["--allowed-hosts", ",".join(allowed_hosts)]
    if cors_origins:
        cmd += ["--cors-allowed-origins", ",".join(cors_origins)]
    # long-lived keep-alive connections must not hold up a stop
    uvicorn = "--timeout-graceful-shutdown 3"
    if unix_socket is not None:
        uvicorn += f" --uds {unix_socket}"
    return [*cmd, "--uvicorn-opts", uvicorn]


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
    )
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask the kernel to stop the server if the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class MlflowServer:
    """One ``mlflow server`` in a process group of its own (uvicorn and its workers)."""

    def __init__(self, command: list[str], *, log_file: Path | None = None) -> None:
        self.command = command
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for path in (Path(self.command[self.command.index("--artifacts-destination") + 1]),):
            if "://" not in str(path):
                path.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command,
                env=server_env(),
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise HubError(f"cannot start MLflow: {exc}", hint="check the virtualenv") from None
        finally:
            if out:
                out.close()

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left."""
        if self.proc is None or self.proc.poll() is not None:
            return
        group = self.proc.pid
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not _group_alive(group):
                    return
                time.sleep(0.1)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
