"""Data-access boundaries, shown from a researcher's OS account (root: real accounts).

A researcher account (in the research group, not the steward group) tries to read and
write every part of a hardened copy of the pseudonymized test catalog's home.
"""

from __future__ import annotations

import grp
import shutil
import stat
from pathlib import Path

import pytest

from gai_research.config import Settings, load_settings
from gai_research.hub.boundaries import (
    apply_production_layout,
    audit_home,
    probe_access,
    research_dirs,
    restricted_dirs,
)
from gai_research.hub.errors import BoundaryError
from gai_research.store.snapshot import snapshots_dir
from tests.data_fixtures import pseudonymized_catalog
from tests.test_hub_support import PREFIX, is_root, link_home, os_accounts, public_tempdir

RESEARCHER = f"{PREFIX}rita"
STEWARD = f"{PREFIX}stan"
RESEARCH_GROUP = f"{PREFIX}research"
STEWARD_GROUP = f"{PREFIX}steward"

needs_root = pytest.mark.skipif(not is_root(), reason="needs root to create OS accounts")
# the probe needs only the standard library: any interpreter other accounts may run
PROBE_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else None


def probe(user: str, paths: list[Path]) -> dict[Path, dict[str, bool]]:
    return probe_access(user, paths, python=PROBE_PYTHON)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory):
    """A hardened copy of the catalog fixture's home and the accounts that probe it."""
    if not is_root():
        pytest.skip("needs root to create OS accounts")
    fixture = pseudonymized_catalog(tmp_path_factory)
    root = public_tempdir("gai-boundaries-")
    try:
        home = link_home(fixture.home, root / "home")
        settings = load_settings(home=home, key_file=home / "secrets" / "pseudonym.key")
        users = {RESEARCHER: [RESEARCH_GROUP], STEWARD: [RESEARCH_GROUP, STEWARD_GROUP]}
        with os_accounts(users, [RESEARCH_GROUP, STEWARD_GROUP], root / "users"):
            changes = apply_production_layout(
                settings, research_group=RESEARCH_GROUP, steward_group=STEWARD_GROUP
            )
            yield settings, changes
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _snapshot_file(settings: Settings) -> Path:
    snapshot = (snapshots_dir(settings) / "LATEST").read_text().strip()
    return snapshots_dir(settings) / snapshot / "series.parquet"


@needs_root
@pytest.mark.parametrize("name", ["secrets", "vault", "spool", "quarantine", "pacs", "audit"])
def test_researcher_cannot_read_identified_data(hardened, name: str) -> None:
    settings, _ = hardened
    path = settings.home / name
    access = probe(RESEARCHER, [path])[path]
    assert access == {"read": False, "write": False}


@needs_root
def test_researcher_cannot_read_the_key(hardened) -> None:
    settings, _ = hardened
    key = settings.key_path
    assert probe(RESEARCHER, [key])[key]["read"] is False


@needs_root
@pytest.mark.parametrize("name", ["store", "catalog", "reports"])
def test_researcher_reads_but_cannot_write_research_data(hardened, name: str) -> None:
    settings, _ = hardened
    path = settings.home / name
    assert probe(RESEARCHER, [path])[path] == {"read": True, "write": False}


@needs_root
def test_researcher_reads_the_snapshot_parquet_but_cannot_change_it(hardened) -> None:
    settings, _ = hardened
    parquet = _snapshot_file(settings)
    access = probe(RESEARCHER, [parquet, parquet.parent])
    assert access[parquet]["read"] is True
    assert access[parquet.parent]["write"] is False


@needs_root
def test_researcher_can_save_cohorts(hardened) -> None:
    settings, _ = hardened
    cohorts = settings.home / "cohorts"
    assert probe(RESEARCHER, [cohorts])[cohorts]["write"] is True
    assert stat.S_IMODE(cohorts.stat().st_mode) == 0o3770


@needs_root
def test_mlflow_store_is_private_to_the_service(hardened) -> None:
    settings, _ = hardened
    assert probe(RESEARCHER, [settings.mlflow_dir])[settings.mlflow_dir]["read"] is False


@needs_root
def test_restricted_folders_belong_to_the_steward_group(hardened) -> None:
    settings, changes = hardened
    steward_gid = grp.getgrnam(STEWARD_GROUP).gr_gid
    for path in restricted_dirs(settings):
        info = path.stat()
        assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (steward_gid, 0o700)
    research_gid = grp.getgrnam(RESEARCH_GROUP).gr_gid
    assert all(p.stat().st_gid == research_gid for p in research_dirs(settings))
    assert changes  # it said what it changed
    assert audit_home(settings, production=True) == []


@needs_root
def test_hardening_twice_changes_nothing(hardened) -> None:
    settings, _ = hardened
    again = apply_production_layout(
        settings, research_group=RESEARCH_GROUP, steward_group=STEWARD_GROUP
    )
    assert again == []


# --- without root ---------------------------------------------------------------------------
def test_audit_reports_an_open_vault_and_a_writable_store(settings: Settings) -> None:
    from gai_research.home import init_home

    init_home(settings)
    assert audit_home(settings) == []
    settings.vault_dir.chmod(0o755)
    settings.store_dir.chmod(0o777)
    problems = {f.path: f for f in audit_home(settings)}
    assert "chmod 700" in problems[settings.vault_dir].fix
    assert "write" in problems[settings.store_dir].problem


def test_production_audit_wants_mlflow_private(settings: Settings) -> None:
    from gai_research.home import init_home

    init_home(settings)
    assert [f.path for f in audit_home(settings, production=True)] == [settings.mlflow_dir]


def test_hardening_names_a_missing_group(settings: Settings) -> None:
    with pytest.raises(BoundaryError, match="groupadd"):
        apply_production_layout(settings, research_group=f"{PREFIX}absent-group")


@pytest.mark.skipif(is_root(), reason="as root the probe runs")
def test_probing_needs_root(settings: Settings) -> None:
    with pytest.raises(BoundaryError, match="root"):
        probe_access("nobody", [settings.home])
