"""Ingest sources against real site PACS (Orthanc): C-FIND + C-MOVE / C-GET, QIDO-RS + WADO-RS,
and media import from a folder or a DICOMDIR. Every pulled object must land in the spool."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from gai_research.config import Settings, Site
from gai_research.errors import ServiceError
from gai_research.home import init_home
from gai_research.ingest import (
    DicomWebSource,
    DimseSource,
    FolderSource,
    ObjectReceived,
    ReceiverError,
    Source,
    SourceError,
    Spool,
)
from gai_research.ingest.types import parse_da
from gai_research.pacs import pacs_down, pacs_up, seed_cohort, servers
from tests.conftest import require_tool, settings_on_free_ports

pytestmark = pytest.mark.services

# synthetic studies up to this size keep seeding quick (a 64-slice CT or an 80-slice MR
# would add ~15 s while net.store_files runs with Nagle's algorithm on)
MAX_SYNTH_INSTANCES = 40

# Studies built from pydicom's own test files (on disk with pydicom), one instance per
# file, so every site has studies on several dates and in compressed transfer syntaxes.
FILE_STUDIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("SUWON", "20190110", ("CT_small.dcm",) * 3),
    ("SUWON", "20190615", ("JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm")),
    ("ANSEONG", "20200301", ("MR_small_jp2klossless.dcm", "JPEG-lossy.dcm")),
    ("ICHEON", "20200920", ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm")),
    ("ICHEON", "20210105", ("MR_small_implicit.dcm", "image_dfl.dcm")),
)


@dataclass(frozen=True)
class CohortStudy:
    study_uid: str
    site: Site
    n_instances: int
    study_date: date | None


@dataclass
class Cohort:
    out_dir: Path
    studies: list[CohortStudy] = field(default_factory=list)
    sop_uids: dict[Site, set[str]] = field(default_factory=dict)
    transfer_syntaxes: dict[str, str] = field(default_factory=dict)  # by SOP Instance UID

    def of(self, site: Site) -> list[CohortStudy]:
        return [s for s in self.studies if s.site == site]


def _file_studies(out_dir: Path) -> list[CohortStudy]:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    made = []
    for number, (site, study_date, files) in enumerate(FILE_STUDIES):
        study_uid = generate_uid(entropy_srcs=["ingest-test-study", str(number)])
        folder = out_dir / site / f"files-{number}"
        folder.mkdir(parents=True)
        for index, name in enumerate(files):
            ds = dcmread(get_testdata_file(name))
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = generate_uid(entropy_srcs=[study_uid, str(index), "series"])
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[study_uid, str(index), "instance"])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.StudyDate = study_date
            ds.PatientID = f"FILES{number}"
            ds.save_as(folder / f"{index}.dcm")
        made.append(CohortStudy(study_uid, Site.parse(site), len(files), parse_da(study_date)))
    return made


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """A small cohort: one synthetic patient (when ``gai_research.synth`` imports) plus
    studies made from pydicom's test files at every site."""
    from pydicom import dcmread

    out_dir = tmp_path_factory.mktemp("ingest-cohort") / "out"
    out_dir.mkdir()
    cohort = Cohort(out_dir)
    try:
        from gai_research.synth import generate_cohort
    except ImportError:
        generate_cohort = None
    if generate_cohort is not None:
        summary = generate_cohort(out_dir / "synth", patients=1, seed=5)
        kept = [s for s in summary.studies if s.n_instances <= MAX_SYNTH_INSTANCES]
        keep = {s.study_uid for s in kept}
        for path in sorted((out_dir / "synth").rglob("*.dcm")):
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
            if str(ds.StudyInstanceUID) in keep:
                target = out_dir / path.relative_to(out_dir / "synth")
                target.parent.mkdir(parents=True, exist_ok=True)
                path.rename(target)
        cohort.studies += [
            CohortStudy(s.study_uid, Site.parse(s.site), s.n_instances, parse_da(s.study_date))
            for s in kept
        ]
    cohort.studies += _file_studies(out_dir)
    for site in Site:
        cohort.sop_uids[site] = set()
        for path in (out_dir / site.value).rglob("*.dcm"):
            ds = dcmread(path, stop_before_pixels=True)
            cohort.sop_uids[site].add(str(ds.SOPInstanceUID))
            cohort.transfer_syntaxes[str(ds.SOPInstanceUID)] = str(ds.file_meta.TransferSyntaxUID)
    return cohort


@pytest.fixture(scope="module")
def seeded(site_pacs: Settings, cohort: Cohort) -> Settings:
    results = seed_cohort(site_pacs, cohort.out_dir)
    for result in results.values():
        assert result.failed == 0, result.reasons
    return site_pacs


@pytest.fixture
def spool(seeded: Settings, tmp_path: Path) -> Spool:
    """An empty spool of a home of this test's own (the PACS stay shared)."""
    own = seeded.model_copy(update={"home": tmp_path / "home"})
    init_home(own)
    return Spool(own)


def _source(kind: str, settings: Settings, site: Site) -> Source:
    if kind == "dicomweb":
        return DicomWebSource(settings, site, attempts=1)
    return DimseSource(settings, site, retrieve=kind)


def _spooled_uids(spool: Spool, site: Site) -> list[str]:
    from pydicom import dcmread

    return [
        str(dcmread(e.path, stop_before_pixels=True).SOPInstanceUID) for e in spool.entries(site)
    ]


@pytest.mark.parametrize("kind", ["move", "dicomweb"])
@pytest.mark.parametrize("site", list(Site))
def test_find_studies_reports_every_study(seeded, cohort: Cohort, site: Site, kind: str) -> None:
    found = {s.study_uid: s for s in _source(kind, seeded, site).find_studies()}
    expected = {s.study_uid: s for s in cohort.of(site)}
    assert set(found) == set(expected)
    for uid, study in expected.items():
        assert found[uid].n_instances == study.n_instances
        assert found[uid].study_date == study.study_date
        assert found[uid].site == site and found[uid].modalities


@pytest.mark.parametrize("kind", ["move", "get", "dicomweb"])
def test_pull_spools_every_instance_of_every_study(
    seeded, cohort: Cohort, spool: Spool, kind: str
) -> None:
    seen: list[ObjectReceived] = []
    for site in Site:
        source = _source(kind, seeded, site)
        assert isinstance(source, Source)
        for study in source.find_studies():
            result = source.fetch(study, spool, on_instance=seen.append)
            assert result.complete, result.summary()
            assert result.received == result.new == study.n_instances
        uids = _spooled_uids(spool, site)
        assert len(uids) == len(set(uids)) == len(cohort.sop_uids[site])
        assert set(uids) == cohort.sop_uids[site]
    assert len(seen) == sum(len(v) for v in cohort.sop_uids.values())
    # compressed objects arrive as stored, not transcoded
    assert {e.sop_instance_uid: e.transfer_syntax_uid for e in seen} == cohort.transfer_syntaxes
    assert all(e.entry.source.startswith(("c-move", "c-get", "wado-rs")) for e in seen)


@pytest.mark.parametrize("kind", ["move", "get", "dicomweb"])
def test_a_rerun_spools_nothing_twice(seeded, spool: Spool, kind: str) -> None:
    source = _source(kind, seeded, Site.SUWON)
    study = source.find_studies(since=date(2019, 6, 1), until=date(2019, 6, 30))[0]
    first = source.fetch(study, spool)
    again = source.fetch(study, spool)
    assert first.new == first.received == 3
    assert (again.received, again.new, again.already_spooled) == (3, 0, 3)
    assert len(spool.entries()) == 3


def test_move_receiver_stays_up_across_fetches(seeded, spool: Spool) -> None:
    source = DimseSource(seeded, Site.ICHEON)
    with source.receiving(spool):
        results = [source.fetch(study, spool) for study in source.find_studies()]
    assert all(r.complete for r in results)
    assert len(spool.entries(Site.ICHEON)) == sum(r.received for r in results)


RANGES = [
    # (since, until, dates expected among the pydicom-file studies)
    (date(2019, 1, 1), date(2019, 12, 31), {"20190110", "20190615"}),
    (date(2020, 3, 1), date(2020, 9, 20), {"20200301", "20200920"}),
    (date(2020, 9, 21), None, {"20210105"}),
    (None, date(2019, 1, 10), {"20190110"}),
]


@pytest.mark.parametrize("kind", ["move", "dicomweb"])
@pytest.mark.parametrize(("since", "until", "dates"), RANGES)
def test_date_range_returns_only_studies_in_range(
    seeded, cohort: Cohort, kind: str, since, until, dates
) -> None:
    found = []
    for site in Site:
        found += _source(kind, seeded, site).find_studies(since=since, until=until)
    expected = {
        s.study_uid
        for s in cohort.studies
        if s.study_date
        and (since is None or s.study_date >= since)
        and (until is None or s.study_date <= until)
    }
    assert {s.study_uid for s in found} == expected
    assert {d.strftime("%Y%m%d") for d in (s.study_date for s in found) if d.year < 2022} == dates


@pytest.mark.parametrize("kind", ["move", "dicomweb"])
@pytest.mark.parametrize(
    ("modality", "site", "count"), [("NM", "SUWON", 1), ("OT", "SUWON", 1), ("MR", "ICHEON", 2)]
)
def test_modality_filter(seeded, kind: str, modality: str, site: str, count: int) -> None:
    found = _source(kind, seeded, Site.parse(site)).find_studies(
        since=date(2019, 1, 1), until=date(2021, 12, 31), modality=modality
    )
    assert len(found) == count
    assert all(modality in s.modalities for s in found)


def test_move_needs_the_platform_port(seeded, spool: Spool) -> None:
    source = DimseSource(seeded, Site.SUWON)
    study = source.find_studies()[0]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("0.0.0.0", seeded.platform_dicom_port))
        squatter.listen()
        with pytest.raises(ReceiverError, match=f"port {seeded.platform_dicom_port}"):
            source.fetch(study, spool)
    assert spool.entries() == []


@pytest.mark.parametrize("kind", ["move", "get", "dicomweb"])
def test_a_pacs_that_is_not_running_is_a_clear_error(
    seeded, spool: Spool, tmp_path: Path, kind: str
) -> None:
    away = settings_on_free_ports(tmp_path / "nowhere")
    with pytest.raises(ServiceError, match=r"no DICOM answer|cannot reach|no answer"):
        _source(kind, away, Site.SUWON).find_studies()


# --- a PACS that dies in the middle of a transfer --------------------------------------
@pytest.fixture
def lone_pacs(tmp_path: Path):
    """One private SUWON PACS holding one 40-instance study; stopped afterwards."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    require_tool("Orthanc")
    settings = settings_on_free_ports(tmp_path / "home")
    init_home(settings)
    folder = tmp_path / "cohort" / "SUWON"
    folder.mkdir(parents=True)
    template = dcmread(get_testdata_file("CT_small.dcm"))
    template.StudyInstanceUID = generate_uid()
    for index in range(40):
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = index + 1
        template.save_as(folder / f"{index:03}.dcm")
    pacs_up(settings, ["SUWON"])
    try:
        assert seed_cohort(settings, folder.parent)[Site.SUWON].sent == 40
        yield settings
    finally:
        pacs_down(settings)


def _kill(settings: Settings) -> None:
    server = servers(settings, [Site.SUWON])[0]
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["move", "get"])
def test_pacs_stopped_mid_fetch_then_rerun_resumes(lone_pacs: Settings, kind: str) -> None:
    spool = Spool(lone_pacs)
    source = DimseSource(lone_pacs, Site.SUWON, retrieve=kind, timeout=10)
    (study,) = source.find_studies()
    assert study.n_instances == 40
    arrived = []

    def kill_after_five(event) -> None:
        arrived.append(event)
        if len(arrived) == 5:
            _kill(lone_pacs)

    with pytest.raises(SourceError, match="stopped answering") as failure:
        source.fetch(study, spool, on_instance=kill_after_five)
    partial = failure.value.partial
    assert partial is not None and 5 <= partial.received < 40
    assert "SUWON" in str(failure.value) and "rerun" in str(failure.value)
    kept = len(spool.entries())
    assert kept == partial.received

    pacs_up(lone_pacs, ["SUWON"])
    result = source.fetch(study, spool)
    assert result.complete, result.summary()
    assert (result.received, result.new, result.already_spooled) == (40, 40 - kept, kept)
    assert len(spool.entries()) == 40


# --- media import ----------------------------------------------------------------------
def test_folder_import_counts_what_is_not_dicom(
    cohort: Cohort, settings: Settings, tmp_path: Path
) -> None:
    import shutil

    from pydicom.data import get_testdata_file

    init_home(settings)
    medium = tmp_path / "medium"
    shutil.copytree(cohort.out_dir / "ICHEON", medium / "ICHEON")
    (medium / "README.TXT").write_text("burned by the PACS export tool")
    (medium / "viewer.exe").write_bytes(os.urandom(4096))
    (medium / "broken.dcm").write_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes()[:400])
    shutil.copy(get_testdata_file("ExplVR_LitEndNoMeta.dcm"), medium / "IM0001")  # no file meta
    spool = Spool(settings)
    source = FolderSource(medium, Site.ICHEON)
    result = source.import_all(spool)
    objects = len(cohort.sop_uids[Site.ICHEON]) + 1
    assert (result.received, result.new, result.not_dicom, result.failed) == (
        objects,
        objects,
        2,
        1,
    )
    assert result.reasons == {"unreadable DICOM header": 1}
    assert "2 not DICOM" in result.summary()
    scan = source.scan()
    assert sorted(p.name for p in scan.not_dicom) == ["README.TXT", "viewer.exe"]
    assert len(spool.entries(Site.ICHEON)) == objects
    # the object without file meta is spooled as a Part-10 file
    from pydicom import dcmread

    sop_classes = {str(dcmread(e.path).file_meta.MediaStorageSOPClassUID) for e in spool.entries()}
    assert "1.2.840.10008.5.1.4.1.1.481.8" in sop_classes
    # importing the medium again adds nothing
    assert source.import_all(spool).new == 0


def test_folder_source_finds_and_fetches_by_study(cohort: Cohort, settings: Settings) -> None:
    init_home(settings)
    spool = Spool(settings)
    source = FolderSource(cohort.out_dir / "SUWON", "SUWON")
    studies = source.find_studies(since=date(2019, 1, 1), until=date(2019, 12, 31))
    assert {s.study_uid for s in studies} == {
        s.study_uid for s in cohort.of(Site.SUWON) if s.study_date and s.study_date.year == 2019
    }
    for study in studies:
        assert source.fetch(study, spool).complete
    assert len(spool.entries()) == sum(s.n_instances for s in studies)


def test_dicomdir_import_reads_the_listed_files(settings: Settings) -> None:
    from pydicom.data import get_testdata_file

    init_home(settings)
    dicomdir = Path(get_testdata_file("DICOMDIR"))
    spool = Spool(settings)
    result = FolderSource(dicomdir, Site.ANSEONG).import_all(spool)
    assert result.complete and result.not_dicom == 0
    assert result.received == 31  # the instances the DICOMDIR lists
    assert len(spool.entries(Site.ANSEONG)) == 31
