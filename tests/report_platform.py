"""A platform home for the report's data-platform section (no tests here).

:func:`build_platform_home` copies the shared test catalog (``tests/data_fixtures.py``;
its store is linked, read-only) and adds, each through the platform's own functions,
what the section reads: ingest runs in the catalog (one failed), files in the
quarantine with their reasons, an audit record of a ``gai deid`` run, a saved cohort
with its data card, and a training-data export with its card.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PlatformHome:
    """A home with the shared catalog's snapshot plus what the platform records around it."""

    home: Path
    snapshot: str
    ingest_counts: dict[str, dict[str, int]]  # site -> counts recorded in ingest_runs
    quarantined: dict[tuple[str, str], int]  # (site, reason) -> reason files
    deid_written: dict[str, int]  # site -> written, from the audit trail's deid.run
    cohort: str
    export_items: int

    def settings(self, **overrides):
        from gai_research.config import load_settings

        return load_settings(
            home=self.home, key_file=self.home / "secrets" / "pseudonym.key", **overrides
        )


INGEST_COUNTS = {
    "SUWON": {
        "processed": 362,
        "stored_new": 361,
        "duplicates": 0,
        "quarantined": 1,
        "quarantined_truncated": 1,
    },
    "ANSEONG": {
        "processed": 362,
        "stored_new": 360,
        "duplicates": 0,
        "quarantined": 2,
        "quarantined_burned_in_text": 2,
    },
    "ICHEON": {"processed": 400, "stored_new": 362, "duplicates": 38, "quarantined": 0},
}


def build_platform_home(catalog_home: Path, root: Path) -> PlatformHome:
    """Copy the shared catalog (its store is linked, read-only) and add ingest runs, a
    quarantine, an audit trail, a cohort with its data card and a training-data export,
    each through the platform's own functions."""
    import datetime as dt

    from gai_research.data import Cohort, export, open_catalog
    from gai_research.deid.audit import append_audit
    from gai_research.deid.files import quarantine_file
    from gai_research.home import init_home
    from gai_research.store import CatalogWriter, IngestRun

    home = root / "home"
    home.mkdir(parents=True)
    shutil.copytree(catalog_home / "catalog", home / "catalog")
    shutil.copytree(catalog_home / "secrets", home / "secrets")
    (home / "store").symlink_to(catalog_home / "store", target_is_directory=True)
    platform = PlatformHome(home, "", INGEST_COUNTS, {}, {"ICHEON": 9}, "report-dx", 0)
    settings = platform.settings()
    init_home(settings)
    started = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
    with CatalogWriter(settings) as writer:
        for i, (site, counts) in enumerate(INGEST_COUNTS.items()):
            writer.record_run(
                IngestRun(
                    site,
                    "dimse",
                    started + dt.timedelta(hours=i),
                    started + dt.timedelta(hours=i, minutes=5),
                    "ok",
                    counts,
                )
            )
        writer.record_run(IngestRun("SUWON", "dicomweb", started, started, "failed", {}))
    for n, (site, reason) in enumerate(
        (("SUWON", "truncated"), ("ANSEONG", "burned_in_text"), ("ANSEONG", "burned_in_text"))
    ):
        junk = root / f"junk{n}.dcm"
        junk.write_bytes(b"not really DICOM " + bytes([n]) * 64)
        quarantine_file(junk, settings.quarantine_dir, {"reason": reason, "site": site})
        platform.quarantined[(site, reason)] = platform.quarantined.get((site, reason), 0) + 1
    append_audit(
        settings.audit_dir,
        {
            "event": "deid.run",
            "site": "ICHEON",
            "read": 10,
            "written": 9,
            "quarantined": {"burned_in_text": 1},
        },
    )
    with open_catalog(settings=settings) as catalog:
        platform.snapshot = catalog.snapshot
        cohort = Cohort.from_filters(
            platform.cohort,
            catalog,
            modality="DX",
            task="lung_nodule_dx",
            purpose="report test cohort",
        )
        cohort.save(settings=settings)
        cohort.card(home / "data_cards")
        result = export(
            cohort,
            home / "exports" / platform.cohort,
            task="lung_nodule_dx",
            settings=settings,
            progress=False,
        )
    platform.export_items = sum(result.items.values())
    return platform
