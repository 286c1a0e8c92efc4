"""The simulated site PACS: one Orthanc per hospital, seeded with a synthetic cohort.

``pacs_up``/``pacs_down``/``pacs_status`` manage the servers under
``GAI_HOME/pacs/<SITE>``; ``seed_cohort`` C-STOREs a ``gai synth`` output to the
right site's PACS; ``site_node`` names a site PACS as a DICOM node for queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gai_research.config import Settings, Site
from gai_research.dicom.net import DicomNode, StoreResult, store_files
from gai_research.errors import GaiError
from gai_research.home import check_home
from gai_research.pacs.orthanc import OrthancServer, orthanc_binary, servers

__all__ = [
    "OrthancServer",
    "SiteStatus",
    "cohort_files",
    "orthanc_binary",
    "pacs_down",
    "pacs_status",
    "pacs_up",
    "seed_cohort",
    "servers",
    "site_node",
]


def _sites(sites: Iterable[Site | str] | None) -> list[Site] | None:
    return [Site.parse(s) for s in sites] if sites else None


def site_node(settings: Settings, site: Site | str) -> DicomNode:
    """The site's PACS as a DICOM node."""
    pacs = settings.site(site).pacs
    return DicomNode(
        pacs.ae_title, pacs.host, pacs.dicom_port, label=f"{Site.parse(site).value} PACS"
    )


def pacs_up(settings: Settings, sites: Iterable[Site | str] | None = None) -> dict[Site, bool]:
    """Start the site PACS that are not running; maps each site to whether this call started it.

    On a failure, the servers this call started are stopped again before the error is raised.
    """
    chosen = _sites(sites)
    check_home(settings)
    started: list[OrthancServer] = []
    result: dict[Site, bool] = {}
    try:
        for server in servers(settings, chosen):
            was_started = server.start()
            result[server.site.site] = was_started
            if was_started:
                started.append(server)
    except GaiError:
        for server in started:
            server.stop()
        raise
    return result


def pacs_down(settings: Settings, sites: Iterable[Site | str] | None = None) -> dict[Site, bool]:
    """Stop the site PACS (in parallel: Orthanc takes seconds to shut down); maps each site to
    whether one was running."""
    from concurrent.futures import ThreadPoolExecutor

    chosen = servers(settings, _sites(sites))
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        stopped = list(pool.map(OrthancServer.stop, chosen))
    return {
        server.site.site: was_running for server, was_running in zip(chosen, stopped, strict=True)
    }


@dataclass(frozen=True)
class SiteStatus:
    site: Site
    ae_title: str
    dicom_port: int
    http_port: int
    state: str  # running | stopped | not answering
    pid: int | None = None
    studies: int | None = None
    instances: int | None = None
    version: str = ""


def pacs_status(settings: Settings, sites: Iterable[Site | str] | None = None) -> list[SiteStatus]:
    """State and contents of each site PACS."""
    rows = []
    for server in servers(settings, _sites(sites)):
        pacs = server.site.pacs
        common = {
            "site": server.site.site,
            "ae_title": pacs.ae_title,
            "dicom_port": pacs.dicom_port,
            "http_port": pacs.http_port,
        }
        pid = server.pid()
        if pid is None:
            rows.append(SiteStatus(state="stopped", **common))
            continue
        try:
            stats = server.statistics()
            version = str(server.rest("/system").get("Version", ""))  # type: ignore[union-attr]
        except (OSError, ValueError):
            rows.append(SiteStatus(state="not answering", pid=pid, **common))
            continue
        rows.append(
            SiteStatus(
                state="running",
                pid=pid,
                studies=int(stats["CountStudies"]),
                instances=int(stats["CountInstances"]),
                version=version,
                **common,
            )
        )
    return rows


def cohort_files(
    cohort_dir: Path, sites: Iterable[Site | str] | None = None
) -> dict[Site, list[Path]]:
    """The DICOM files of a cohort folder (``OUT/<SITE>/...``), per site, in a stable order."""
    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        raise GaiError(
            f"cohort folder {cohort_dir} does not exist", hint="create one with `gai synth DIR`"
        )
    chosen = _sites(sites) or list(Site)
    found = {
        site: sorted(p for p in (cohort_dir / site.value).rglob("*") if p.is_file())
        for site in chosen
    }
    if not any(found.values()):
        names = ", ".join(s.value for s in chosen)
        raise GaiError(
            f"{cohort_dir} has no files under {names}", hint="point at a `gai synth` output folder"
        )
    return found


def seed_cohort(
    settings: Settings,
    cohort_dir: Path,
    sites: Iterable[Site | str] | None = None,
    *,
    progress: bool = False,
) -> dict[Site, StoreResult]:
    """C-STORE each site folder of a cohort to that site's PACS, as the platform's AE."""
    files = cohort_files(cohort_dir, sites)
    total = sum(len(v) for v in files.values())
    results: dict[Site, StoreResult] = {}
    from tqdm import tqdm

    with tqdm(total=total, unit="file", desc="seeding", disable=not progress) as bar:
        for site, paths in files.items():
            if not paths:
                continue
            bar.set_postfix_str(site.value)
            results[site] = store_files(
                site_node(settings, site),
                paths,
                settings.platform_ae_title,
                on_file=lambda _ok: bar.update(),
            )
    return results
