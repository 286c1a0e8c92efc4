"""Starting, watching and stopping the hub from the ``gai`` command (and from tests).

``gai hub`` checks what would make JupyterHub fail with a traceback (the proxy missing,
a port in use, the wrong account for the chosen spawner), prepares ``HOME/hub`` and the
bootstrap admin, then runs ``jupyterhub -f jupyterhub_config.py`` with the same
settings in its environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.hub.errors import HubError
from gai_research.hub.state import ensure_admin_password, hub_paths, prepare_hub_dir

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = [
    "CONFIG_FILE",
    "AdminAccount",
    "HubStatus",
    "hub_command",
    "hub_environment",
    "hub_status",
    "preflight",
    "prepare_admins",
    "start_hub",
    "stop_hub",
    "wait_until_up",
]

CONFIG_FILE = Path(__file__).resolve().parents[2] / "jupyterhub_config.py"


@dataclass(frozen=True)
class AdminAccount:
    name: str
    password_file: Path
    password: str | None  # set only when created by this call: print it once


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def preflight(settings: Settings) -> None:
    """Raise a :class:`HubError` for what would stop the hub from starting."""
    from gai_research.hub.configure import proxy_command

    hub = settings.hub
    if not CONFIG_FILE.is_file():
        raise HubError(
            f"{CONFIG_FILE} not found", hint="run gai hub from a checkout of the repository"
        )
    proxy = proxy_command(settings)
    if not (Path(proxy).is_file() or _which(proxy)):
        raise HubError(
            "configurable-http-proxy is not installed",
            hint="run `make setup` (npm installs it into ./node_modules)",
        )
    for name in ("port", "hub_port", "proxy_api_port", "mlflow_port"):
        port = getattr(hub, name)
        if not _port_free(port, hub.connect_ip if name == "port" else "127.0.0.1"):
            raise HubError(
                f"port {port} (hub.{name}) is in use",
                hint=f"stop what uses it, or set GAI_HUB__{name.upper()}; `gai hub status`",
            )
    if hub.spawner in ("local-users", "systemd") and os.geteuid() != 0:
        raise HubError(
            f"the {hub.spawner} spawner starts servers as other accounts: the hub must run as root",
            hint="run it as root (a systemd unit), or use GAI_HUB__SPAWNER=demo",
        )


def _which(command: str) -> bool:
    import shutil

    return shutil.which(command) is not None


def prepare_admins(settings: Settings, names: list[str]) -> list[AdminAccount]:
    """Bootstrap password files (0600) for these admins; new passwords are returned once."""
    paths = prepare_hub_dir(settings)
    accounts = []
    for name in names:
        path, password = ensure_admin_password(paths, name)
        accounts.append(AdminAccount(name, path, password))
    return accounts


def hub_environment(settings: Settings, admins: list[str]) -> dict[str, str]:
    """The hub process's environment: these effective settings, whatever their source.

    The hub (and its services) load the settings again from ``GAI_*``; exporting every
    value makes them see exactly what this process saw, including ``--port`` and the like.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_HUB__")}
    env["GAI_HOME"] = str(settings.home)
    for name, value in (
        ("GAI_CONFIG", settings.config_file),
        ("GAI_KEY_FILE", settings.key_file),
        ("GAI_MLFLOW_URI", settings.mlflow_uri),
    ):
        if value is not None:
            env[name] = str(value)
    hub = settings.hub.model_dump(exclude_none=True)
    hub["admin_users"] = sorted(set(hub["admin_users"]) | set(admins))
    for name, value in hub.items():
        env[f"GAI_HUB__{name.upper()}"] = (
            json.dumps(value) if isinstance(value, list) else str(value)
        )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def hub_command() -> list[str]:
    return [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)]


def start_hub(
    settings: Settings,
    admins: list[str],
    *,
    log_file: Path | None = None,
    wrapper: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start JupyterHub in a session of its own; output to ``log_file`` if given.

    Its own session: a Ctrl-C in the terminal reaches only the caller, which then stops
    the hub with one SIGTERM (two signals would start its clean-up twice).
    ``wrapper`` goes before the command (``systemd-run ...``, ``unshare ...``).
    """
    paths = prepare_hub_dir(settings)
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            [*wrapper, *hub_command()],
            env=hub_environment(settings, admins),
            cwd=paths.root,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()


def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_up(
    settings: Settings, *, timeout_s: float = 90.0, proc: subprocess.Popen | None = None
) -> float:
    """Seconds until the hub's API answers through the proxy; raises on timeout or exit.

    It asks the hub itself first, then the proxy, so the proxy does not log a stream of
    404s for the routes the hub has not added yet.
    """
    start = time.monotonic()
    urls = [
        f"http://127.0.0.1:{settings.hub.hub_port}/hub/api/",
        f"{settings.hub.local_url}hub/api/",
    ]
    while time.monotonic() - start < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise HubError(
                f"JupyterHub exited with status {proc.returncode}",
                hint=f"see {hub_paths(settings).log} or run `gai hub` in the foreground",
            )
        try:
            if _get(urls[0])[0] == 200:
                if len(urls) == 1:
                    return time.monotonic() - start
                urls.pop(0)
                continue
        except OSError:
            pass
        time.sleep(0.2)
    raise HubError(
        f"the hub did not answer at {urls[-1]} within {timeout_s:.0f} s", hint="see its log"
    )


@dataclass
class HubStatus:
    url: str
    pid: int | None
    running: bool
    version: str | None = None
    mlflow: str = "unknown"
    problems: list[str] = field(default_factory=list)


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def hub_status(settings: Settings) -> HubStatus:
    """Whether the hub answers, its version, MLflow's health, and permission problems."""
    from gai_research.hub.boundaries import audit_home

    paths = hub_paths(settings)
    status = HubStatus(url=settings.hub.url, pid=_pid(paths.pid), running=False)
    try:
        code, body = _get(f"{settings.hub.local_url}hub/api/")
        if code == 200:
            status.running = True
            status.version = json.loads(body).get("version")
        code, body = _get(f"{settings.hub.local_url}services/mlflow/health")
        status.mlflow = "up" if code == 200 else f"{code} {body.decode(errors='replace')[:60]}"
    except OSError:
        status.mlflow = "down"
    status.problems = [str(f) for f in audit_home(settings)]
    return status


def stop_hub(settings: Settings, timeout_s: float = 60.0) -> bool:
    """Stop a hub started from this home (SIGTERM: it stops servers and services first)."""
    pid = _pid(hub_paths(settings).pid)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise HubError(f"the hub (pid {pid}) did not stop within {timeout_s:.0f} s", hint="kill it")
