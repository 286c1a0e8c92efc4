"""Simulated vendors as background processes: ``gai models simulators up|status|down``.

Each models-file entry with a ``simulator:`` block becomes one detached process
``python -m gai_research.models.simulators http|dicom --name NAME ...`` (its own session,
so it outlives the command that started it), with three files under ``HOME/run/``:

- ``sim-<name>.pid``: the process id (a stale file is ignored: the pid must still run
  our module for that name);
- ``sim-<name>.log``: its log (counts and ports, never a patient identifier);
- ``sim-<name>.json``: its state, written by the process once it listens: kind, port,
  url or AE title, the model it wraps. The registry reads it to reach the simulator.

``up`` waits until each simulator answers (HTTP ``GET /health``; DICOM a TCP connect to
its port), as ``gai pacs up`` does for Orthanc.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_research.errors import ServiceError
from gai_research.models.errors import ModelConfigError
from gai_research.processes import last_log_line, read_pid, terminate

if TYPE_CHECKING:
    from gai_research.config import Settings
    from gai_research.models.registry import SimulatorSpec

__all__ = [
    "SimulatorProcess",
    "SimulatorStatus",
    "declared_simulators",
    "run_dir",
    "running_simulator",
    "simulators_down",
    "simulators_status",
    "simulators_up",
]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # the wrapped baseline imports numpy/pydicom first
MODULE = "gai_research.models.simulators"


def run_dir(settings: Settings) -> Path:
    """``HOME/run``: pid, log and state files of background processes."""
    return settings.home / "run"


@dataclass(frozen=True)
class SimulatorStatus:
    name: str
    kind: str
    wraps: str
    state: str  # running | stopped
    pid: int | None
    address: str  # url, or AE@127.0.0.1:port
    delay_s: float


@dataclass(frozen=True)
class SimulatorProcess:
    """One simulated vendor of the models file: its spec, files and process."""

    name: str
    spec: SimulatorSpec
    folder: Path  # HOME/run

    @property
    def pid_path(self) -> Path:
        return self.folder / f"sim-{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.folder / f"sim-{self.name}.log"

    @property
    def state_path(self) -> Path:
        return self.folder / f"sim-{self.name}.json"

    # --- state -------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our running simulator, or None (stale pid files are ignored)."""
        return read_pid(self.pid_path, MODULE, str(self.state_path))

    def state(self) -> dict[str, Any] | None:
        """The state the running process wrote (None when it is not running)."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if state.get("pid") == pid else None

    def answers(self, state: dict[str, Any]) -> bool:
        if state.get("kind") == "http":
            try:
                with urllib.request.urlopen(state["url"] + "/health", timeout=2.0) as answer:
                    return answer.status == 200
            except (OSError, ValueError):
                return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            return probe.connect_ex(("127.0.0.1", int(state["port"]))) == 0

    def command(self, settings: Settings) -> list[str]:
        s = self.spec
        argv = [
            sys.executable,
            "-m",
            MODULE,
            s.kind,
            "--name",
            self.name,
            "--wraps",
            s.wraps,
            "--port",
            str(s.port),
            "--delay-s",
            repr(s.delay_s),
            "--failure-rate",
            repr(s.failure_rate),
            "--timeout-rate",
            repr(s.timeout_rate),
            "--malformed-rate",
            repr(s.malformed_rate),
            "--seed",
            str(s.seed),
            "--state-file",
            str(self.state_path),
        ]
        if s.kind == "dicom":  # results go to the platform's AE, where the adapter listens
            argv += [
                "--ae-title",
                s.ae_title,
                "--return-host",
                "127.0.0.1",
                "--return-port",
                str(s.return_port or settings.platform_dicom_port),
                "--return-ae",
                settings.platform_ae_title,
            ]
        return argv

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, settings: Settings, timeout: float = START_TIMEOUT_S) -> bool:
        """Start the simulator unless it runs; True when this call started it."""
        if self.pid() is not None:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_path.unlink(missing_ok=True)
        env = {**os.environ, "GAI_HOME": str(settings.home), "TCP_NODELAY": "1"}
        if settings.config_file is not None:
            env["GAI_CONFIG"] = str(settings.config_file)
        with open(self.log_path, "ab") as log_file:
            process = subprocess.Popen(
                self.command(settings),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `gai models simulators up`
                env=env,
                cwd=str(settings.home),
            )
        self.pid_path.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_path.unlink(missing_ok=True)
                raise ServiceError(
                    f"simulated vendor {self.name} exited at start with code "
                    f"{process.returncode}: {self.last_log_line()}",
                    hint=f"see {self.log_path}",
                )
            state = self.state()
            if state is not None and self.answers(state):
                log.info("simulated vendor %s up (pid %d)", self.name, process.pid)
                return True
            time.sleep(0.1)
        self.stop()
        raise ServiceError(
            f"simulated vendor {self.name} did not answer within {timeout:.0f} s",
            hint=f"see {self.log_path}",
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the simulator; True when one was running."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout)
        self.pid_path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
        return pid is not None

    def last_log_line(self) -> str:
        return last_log_line(self.log_path)

    def status(self) -> SimulatorStatus:
        state = self.state()
        if state is None:
            address = ""
        elif state.get("kind") == "http":
            address = state["url"]
        else:
            address = f"{state['ae_title']}@127.0.0.1:{state['port']}"
        return SimulatorStatus(
            name=self.name,
            kind=self.spec.kind,
            wraps=self.spec.wraps,
            state="running" if state is not None else "stopped",
            pid=state["pid"] if state is not None else None,
            address=address,
            delay_s=self.spec.delay_s,
        )


# --- the declared simulators -------------------------------------------------------------------
def declared_simulators(
    settings: Settings, names: list[str] | None = None
) -> list[SimulatorProcess]:
    """The simulated vendors of ``HOME/models.yaml`` (or only ``names``)."""
    from gai_research.models.registry import models_file, read_models_file

    folder = run_dir(settings)
    found = [
        SimulatorProcess(e.name, e.simulator, folder)
        for e in read_models_file(settings)
        if e.simulator is not None
    ]
    if names:
        known = {p.name for p in found}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ModelConfigError(
                f"{unknown[0]!r} is not a simulated vendor in {models_file(settings)}",
                hint=f"simulated vendors: {', '.join(sorted(known)) or 'none'}",
            )
        found = [p for p in found if p.name in names]
    return found


def running_simulator(settings: Settings, name: str) -> dict[str, Any] | None:
    """The state of the running simulator ``name`` (None when it is not running)."""
    from gai_research.models.registry import SimulatorSpec

    spec = SimulatorSpec(kind="http", wraps="")  # only the files matter here
    return SimulatorProcess(name, spec, run_dir(settings)).state()


def simulators_up(settings: Settings, names: list[str] | None = None) -> dict[str, bool]:
    """Start the declared simulators that are not running; name -> started now."""
    from gai_research.models.registry import models_file

    chosen = declared_simulators(settings, names)
    if not chosen:
        raise ModelConfigError(
            f"{models_file(settings)} declares no simulated vendor",
            hint="install the demo's: `gai models install-demo`",
        )
    return {p.name: p.start(settings) for p in chosen}


def simulators_down(settings: Settings, names: list[str] | None = None) -> dict[str, bool]:
    """Stop the declared simulators; name -> was running."""
    return {p.name: p.stop() for p in declared_simulators(settings, names)}


def simulators_status(settings: Settings, names: list[str] | None = None) -> list[SimulatorStatus]:
    return [p.status() for p in declared_simulators(settings, names)]
