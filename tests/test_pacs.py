"""The simulated site PACS: real Orthanc servers, real DICOM clients (pynetdicom and DCMTK)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from gai_research.config import Settings, Site
from gai_research.dicom.net import echo, find_studies
from gai_research.errors import ServiceError
from gai_research.pacs import OrthancServer, pacs_status, pacs_up, seed_cohort, servers, site_node
from gai_research.pacs.orthanc import orthanc_config
from tests.conftest import require_tool

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic cohort: every site, every task."""
    from gai_research.synth import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "out", patients=12, seed=7)


@pytest.fixture(scope="module")
def seeded(site_pacs: Settings, cohort):
    results = seed_cohort(site_pacs, cohort.out_dir)
    return site_pacs, cohort, results


def test_all_three_sites_run_and_answer_echo(site_pacs: Settings) -> None:
    rows = pacs_status(site_pacs)
    assert [r.site for r in rows] == list(Site)
    assert all(r.state == "running" and r.version for r in rows)
    for site in Site:
        assert echo(site_node(site_pacs, site), site_pacs.platform_ae_title)


def test_up_again_starts_nothing(site_pacs: Settings) -> None:
    assert pacs_up(site_pacs) == dict.fromkeys(Site, False)


def test_seeding_stores_every_file(seeded) -> None:
    _settings, cohort, results = seeded
    by_site = Counter()
    for study in cohort.studies:
        by_site[Site.parse(study.site)] += study.n_instances
    for site, result in results.items():
        assert result.failed == 0, result.reasons
        assert result.sent == result.offered == by_site[site]


@pytest.mark.parametrize("site", list(Site))
def test_cfind_finds_every_study_back(seeded, site: Site) -> None:
    settings, cohort, _results = seeded
    expected = {s.study_uid: s for s in cohort.studies if s.site == site.value}
    found = {
        s["StudyInstanceUID"]: s
        for s in find_studies(site_node(settings, site), settings.platform_ae_title)
    }
    assert set(found) == set(expected)
    for uid, study in expected.items():
        assert int(found[uid]["NumberOfStudyRelatedInstances"]) == study.n_instances
        assert found[uid]["PatientID"] == study.patient_id


def test_korean_names_survive_the_pacs(seeded) -> None:
    settings, cohort, _ = seeded
    site = Site.parse(cohort.studies[0].site)
    names = [
        s["PatientName"]
        for s in find_studies(site_node(settings, site), settings.platform_ae_title)
    ]
    assert any("=" in name and any("\uac00" <= ch <= "\ud7a3" for ch in name) for name in names), (
        names
    )


def test_seeding_twice_keeps_one_copy(seeded) -> None:
    settings, cohort, _ = seeded
    before = {r.site: r.instances for r in pacs_status(settings)}
    again = seed_cohort(settings, cohort.out_dir, [Site.ICHEON])
    assert again[Site.ICHEON].failed == 0
    assert {r.site: r.instances for r in pacs_status(settings)} == before


def test_dcmtk_findscu_as_platform_sees_studies(seeded) -> None:
    settings, cohort, _ = seeded
    findscu = require_tool("findscu")
    pacs = settings.site("SUWON").pacs
    run = subprocess.run(
        [
            findscu,
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            "-aet",
            settings.platform_ae_title,
            "-aec",
            pacs.ae_title,
            "127.0.0.1",
            str(pacs.dicom_port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    suwon = [s for s in cohort.studies if s.site == "SUWON"]
    assert run.stderr.count("(0020,000d)") == len(suwon)


def test_unknown_calling_ae_is_rejected(site_pacs: Settings) -> None:
    echoscu = require_tool("echoscu")
    pacs = site_pacs.site("ANSEONG").pacs
    run = subprocess.run(
        [echoscu, "-aet", "INTRUDER", "-aec", pacs.ae_title, "127.0.0.1", str(pacs.dicom_port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    assert "Calling AE Title Not Recognized" in run.stderr


def test_our_client_names_the_rejection(site_pacs: Settings) -> None:
    node = site_node(site_pacs, "ICHEON")
    with pytest.raises(ServiceError, match="rejected the association"):
        echo(node, "INTRUDER")


def test_unreadable_files_are_counted_not_lost(site_pacs: Settings, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    folder = tmp_path / "cohort" / "SUWON"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not DICOM")
    (folder / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    (folder / "truncated.dcm").write_bytes(
        Path(get_testdata_file("MR_small.dcm")).read_bytes()[:600]
    )
    result = seed_cohort(site_pacs, tmp_path / "cohort")[Site.SUWON]
    assert (result.offered, result.sent, result.failed) == (3, 1, 2)
    assert sum(result.reasons.values()) == 2
    assert (
        result.reasons["not a readable DICOM file"] >= 1
    )  # the truncated file may reach the PACS and be refused


def test_stopped_pacs_is_a_clear_error(tmp_path: Path, site_pacs: Settings) -> None:
    node = site_node(site_pacs, "SUWON")
    closed = type(node)(node.ae_title, node.host, 1, label="SUWON PACS")
    with pytest.raises(ServiceError, match=r"no DICOM answer|cannot reach"):
        echo(closed, site_pacs.platform_ae_title)


def test_config_locks_orthanc_to_loopback_peers(site_pacs: Settings) -> None:
    server: OrthancServer = servers(site_pacs, [Site.SUWON])[0]
    config = orthanc_config(server.site, server.workdir, "GAI_PLATFORM", 11200)
    assert config["RemoteAccessAllowed"] is False
    assert config["DicomCheckModalityHost"] is True
    assert not any(v for k, v in config.items() if k.startswith("DicomAlwaysAllow"))
    assert {m["Host"] for m in config["DicomModalities"].values()} == {"127.0.0.1"}


def test_down_keeps_the_images(tmp_path: Path) -> None:
    """Start one site alone, store, stop, start again: the study is still there."""
    from pydicom.data import get_testdata_file

    from gai_research.home import init_home
    from gai_research.pacs import pacs_down
    from tests.conftest import settings_on_free_ports

    require_tool("Orthanc")
    settings = settings_on_free_ports(tmp_path / "home")
    init_home(settings)
    folder = tmp_path / "cohort" / "ICHEON"
    folder.mkdir(parents=True)
    (folder / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    try:
        assert pacs_up(settings, ["ICHEON"]) == {Site.ICHEON: True}
        seed_cohort(settings, tmp_path / "cohort")
        assert pacs_down(settings, ["ICHEON"]) == {Site.ICHEON: True}
        assert pacs_status(settings, ["ICHEON"])[0].state == "stopped"
        pacs_up(settings, ["ICHEON"])
        assert pacs_status(settings, ["ICHEON"])[0].studies == 1
    finally:
        pacs_down(settings)
