"""One Orthanc per site, playing that hospital's PACS on this machine.

Orthanc 1.10 listens on every interface and has no bind-address option, so each
server is locked to loopback peers: the HTTP/DICOMweb server refuses remote
clients (``RemoteAccessAllowed: false``) and the DICOM server accepts only the
platform's AE, from 127.0.0.1 (``DicomCheckModalityHost``, no ``DicomAlwaysAllow*``).
The test suite additionally runs inside its own network namespace.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gai_research.config import Settings, Site, SiteSettings
from gai_research.errors import ServiceError
from gai_research.processes import last_log_line, read_pid, terminate

__all__ = ["OrthancServer", "orthanc_binary", "orthanc_config", "servers"]

log = logging.getLogger(__name__)

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_HINT = "run `make setup` (as root it installs Debian's orthanc and orthanc-dicomweb)"
START_TIMEOUT_S = 20.0


def orthanc_binary(name: str = "Orthanc") -> str:
    """Path of the Orthanc executable, or a ServiceError that says how to install it.

    A bare name is looked up on PATH and in /usr/sbin (where Debian puts it, outside a
    normal user's PATH).
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which(name, path=search) if os.sep not in name else shutil.which(name)
    if found is None:
        raise ServiceError(f"Orthanc is not installed (looked for {name!r})", hint=INSTALL_HINT)
    return found


def orthanc_config(site: SiteSettings, workdir: Path, platform_ae: str, platform_port: int) -> dict:
    """The Orthanc configuration of one site's PACS, storing under ``workdir``."""
    pacs = site.pacs
    config: dict = {
        "Name": f"{site.site.value} PACS (gai-research simulated site)",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpServerEnabled": True,
        "HttpPort": pacs.http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": pacs.ae_title,
        "DicomPort": pacs.dicom_port,
        "DicomCheckCalledAeTitle": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomModalities": {
            "platform": {
                "AET": platform_ae,
                "Host": "127.0.0.1",
                "Port": platform_port,
                "AllowEcho": True,
                "AllowStore": True,
                "AllowFind": True,
                "AllowGet": True,
                "AllowMove": True,
            }
        },
        "DefaultEncoding": "Utf8",
        "DeidentifyLogs": True,
        "SaveJobs": False,
        "StableAge": 10,
        "HttpThreadsCount": 8,
        "DicomThreadsCount": 4,
        "ExecuteLuaEnabled": False,
        "RestApiWriteToFileSystemEnabled": False,
        "Plugins": [],
    }
    if DICOMWEB_PLUGIN.exists():
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "Host": f"127.0.0.1:{pacs.http_port}",
            "Ssl": False,
        }
    return config


def orthanc_environment() -> dict[str, str]:
    """Orthanc's environment: ours, with Nagle's algorithm off in its DICOM (DCMTK) layer.

    With Nagle on, every C-STORE waits for a delayed ACK: measured here, 358 CT slices took
    25 s from DCMTK's storescu with it and 1.1 s with TCP_NODELAY=1 on both ends.
    """
    return {**os.environ, "TCP_NODELAY": "1"}


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound on every interface (as Orthanc will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class OrthancServer:
    """One site's Orthanc: its settings, files (config, log, pid) and process."""

    site: SiteSettings
    workdir: Path
    platform_ae: str
    platform_port: int
    binary: str = "Orthanc"

    @property
    def name(self) -> str:
        return self.site.site.value

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.site.pacs.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    @property
    def config_path(self) -> Path:
        return self.workdir / "orthanc.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / "orthanc.log"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "orthanc.pid"

    # --- process state ---------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our running Orthanc, or None (stale pid files are ignored)."""
        return read_pid(self.pid_path, str(self.config_path))

    def rest(self, path: str, timeout: float = 5.0) -> object:
        """GET a path of the REST API as JSON."""
        with urllib.request.urlopen(self.base_url + path, timeout=timeout) as answer:
            return json.load(answer)

    def answers(self) -> bool:
        try:
            return isinstance(self.rest("/system", timeout=2.0), dict)
        except (OSError, ValueError):
            return False

    def statistics(self) -> dict:
        """Orthanc's counts: CountPatients, CountStudies, CountSeries, CountInstances, disk size."""
        data = self.rest("/statistics")
        assert isinstance(data, dict)
        return data

    # --- lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Start Orthanc unless it runs already; True when this call started it."""
        if self.pid() is not None:
            return False
        binary = orthanc_binary(self.binary)
        pacs = self.site.pacs
        for port, what in ((pacs.dicom_port, "DICOM"), (pacs.http_port, "HTTP")):
            if not port_free(port):
                raise ServiceError(
                    f"{self.name} PACS cannot start: port {port} ({what}) is in use",
                    hint=f"stop what holds it, or set GAI_SITES__{self.name}__PACS__{what.upper()}_PORT "
                    "(or [sites.{site}.pacs] in gai.toml) to a free port".replace(
                        "{site}", self.name
                    ),
                )
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = orthanc_config(self.site, self.workdir, self.platform_ae, self.platform_port)
        self.config_path.write_text(json.dumps(config, indent=2))
        with open(self.log_path, "ab") as log_file:
            process = subprocess.Popen(
                [binary, str(self.config_path)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `gai pacs up`
                env=orthanc_environment(),
            )
        self.pid_path.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_path.unlink(missing_ok=True)
                raise ServiceError(
                    f"{self.name} PACS (Orthanc) exited at start with code {process.returncode}: {self.last_log_line()}",
                    hint=f"see {self.log_path}",
                )
            if self.answers() and self._dicom_port_open():
                log.info("%s PACS up (pid %d)", self.name, process.pid)
                return True
            time.sleep(0.1)
        self.stop()
        raise ServiceError(
            f"{self.name} PACS (Orthanc) did not answer within {timeout:.0f} s",
            hint=f"see {self.log_path}",
        )

    def _dicom_port_open(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            return probe.connect_ex(("127.0.0.1", self.site.pacs.dicom_port)) == 0

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop our Orthanc; True when one was running."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout)
        self.pid_path.unlink(missing_ok=True)
        return pid is not None

    def last_log_line(self) -> str:
        return last_log_line(self.log_path)


def servers(settings: Settings, sites: list[Site] | None = None) -> list[OrthancServer]:
    """The site PACS servers of these settings (all three by default)."""
    chosen = sites or list(Site)
    return [
        OrthancServer(
            site=settings.site(site),
            workdir=settings.pacs_dir / Site.parse(site).value,
            platform_ae=settings.platform_ae_title,
            platform_port=settings.platform_dicom_port,
            binary=settings.orthanc_binary,
        )
        for site in chosen
    ]
