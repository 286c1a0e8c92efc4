"""Shared fixtures: a private platform home, tool checks, and real services on loopback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gai_research.config import Settings, load_settings

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str) -> str:
    """Path of a command-line tool that ``make setup`` installs.

    Missing on a developer's machine: the test is skipped with the install hint.
    Missing in CI: the test fails, because CI must exercise the real tool.
    """
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed: run `make setup` (it installs Debian's packages as root)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def gai_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty platform home of this test's own; GAI_* variables of the caller are ignored."""
    for name in list(os.environ):
        if name.startswith("GAI_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("GAI_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def settings(gai_home: Path) -> Settings:
    return load_settings()


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (bound on every interface, as Orthanc binds)."""
    import socket

    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("0.0.0.0", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


def settings_on_free_ports(home: Path) -> Settings:
    """Settings for a private home whose three site PACS and platform AE use free ports."""
    ports = free_ports(7)
    sites = {
        site: {"pacs": {"dicom_port": ports[2 * i], "http_port": ports[2 * i + 1]}}
        for i, site in enumerate(("SUWON", "ANSEONG", "ICHEON"))
    }
    return load_settings(home=home, sites=sites, platform_dicom_port=ports[6])


@pytest.fixture(scope="module")
def site_pacs(tmp_path_factory: pytest.TempPathFactory):
    """Three running site PACS (real Orthanc) on free loopback ports, in a private home.

    Yields the settings; the servers are stopped afterwards.
    """
    from gai_research.home import init_home
    from gai_research.pacs import pacs_down, pacs_up

    require_tool("Orthanc")
    settings = settings_on_free_ports(tmp_path_factory.mktemp("pacs-home") / "home")
    init_home(settings)
    pacs_up(settings)
    try:
        yield settings
    finally:
        pacs_down(settings)
