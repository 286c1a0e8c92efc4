"""Headless Chromium: print the report to PDF and take a screenshot of its first page.

Chromium comes from Debian (``make setup``). It runs with a throw-away profile, no GPU,
no sandbox (containers running as root have none to give), no shared memory, and a host
resolver that resolves nothing, so the only thing it can load is the local, self-contained
report file (whose Content-Security-Policy forbids any other load as well).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gai_research.report.errors import PdfError

__all__ = ["CHROMIUM_FLAGS", "find_chromium", "print_pdf", "screenshot"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
)


def find_chromium() -> str:
    """The Chromium executable: ``$GAI_CHROMIUM``, else the first one on PATH."""
    explicit = os.environ.get("GAI_CHROMIUM")
    if explicit:
        if shutil.which(explicit):
            return shutil.which(explicit) or explicit
        raise PdfError(f"GAI_CHROMIUM={explicit} is not an executable", hint="fix or unset it")
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise PdfError(
        "Chromium is not installed, so no PDF can be printed",
        hint="run `make setup` (Debian package chromium), or leave out --pdf",
    )


def _run(args: list[str], target: Path, timeout_s: float) -> float:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gai-chromium-") as profile:
        command = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise PdfError(
                f"Chromium did not finish {target.name} within {timeout_s:.0f} s",
                hint="try again; a very large report may need a longer timeout",
            ) from None
    if not target.is_file() or target.stat().st_size == 0:
        lines = [ln for ln in (done.stderr or "").splitlines() if "dbus" not in ln.lower()]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise PdfError(f"Chromium wrote no {target.name}: {last}", hint="see chromium's output")
    return time.perf_counter() - started


def print_pdf(html: Path, pdf: Path, *, timeout_s: float = 180) -> float:
    """Print ``html`` to ``pdf`` (A4 by the page CSS, no header/footer); returns seconds."""
    seconds = _run(
        ["--no-pdf-header-footer", f"--print-to-pdf={pdf}", Path(html).resolve().as_uri()],
        Path(pdf),
        timeout_s,
    )
    if not Path(pdf).read_bytes()[:5] == b"%PDF-":
        raise PdfError(f"{pdf} is not a PDF", hint="see chromium's output")
    return seconds


def screenshot(
    html: Path, png: Path, *, width: int = 1240, height: int = 1754, timeout_s: float = 120
) -> float:
    """A PNG of the top of ``html`` at ``width`` x ``height`` (about one A4 page); seconds."""
    return _run(
        [
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            Path(html).resolve().as_uri(),
        ],
        Path(png),
        timeout_s,
    )
