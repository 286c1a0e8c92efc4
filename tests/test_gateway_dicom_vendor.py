"""The gateway end to end against a vendor reached as a DICOM node.

Three real Orthanc site PACS push brain CT studies to the gateway; a rule routes them to
a model declared in ``HOME/models.yaml`` with ``adapter: dicom`` that points at a
:class:`DicomNodeSimulator` on loopback. The adapter runs inside the gateway's worker
process and receives the node's answers on a listen port of its own (not the gateway's
DICOM port). The node answers each study with its TID 1500 SR and a key-object
selection; the gateway stores its own SR and the vendor's KOS, mapped to the original
study, back into the PACS the study came from. One site's studies go to the vendor
pseudonymized: the mapping is recorded in the vault, and no identifier reaches the
gateway's log or status.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gai_research.config import Settings
from tests.gateway_support import (
    PlacingModel,
    files_of,
    gateway_cohort,
    orthanc_file,
    referenced_sop_uids,
    study_dirs,
    study_uid_of,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

MODEL = "sim-dicom-node"
LISTEN_AE = "GAI_VENDOR_RES"
RULES = {
    "version": 1,
    "defaults": {"concurrency": 2, "timeout_s": 60, "retries": 1, "retry_backoff_s": 0.2},
    "rules": [
        {
            "name": "head-ct-inside",
            "sites": ["SUWON"],
            "match": {"modality": "CT", "body_part": "HEAD"},
            "models": [MODEL],
        },
        {
            "name": "head-ct-outside",
            "sites": ["ANSEONG"],
            "match": {"modality": "CT", "body_part": "HEAD"},
            "models": [{"name": MODEL, "pseudonymize": True}],
        },
    ],
}
CASES = {"inside": "SUWON", "outside": "ANSEONG"}


def _models_yaml(node_port: int, listen_port: int) -> str:
    entry = {
        "name": MODEL,
        "adapter": "dicom",
        "vendor": "simulated vendor (test double)",
        "version": "1.0-sim",
        "task": "stroke_ct",
        "kind": "triage",
        "origin": "simulator",
        "options": {
            "host": "127.0.0.1",
            "port": node_port,
            "ae_title": "GAI-SIM-DICOM",
            "listen_port": listen_port,
            "listen_ae": LISTEN_AE,
            "timeout_s": 30,
            "settle_s": 0.2,
        },
    }
    return json.dumps({"models": [entry]})  # JSON is YAML


def _pick(cohort: Path, site: str) -> Path:
    import pydicom

    for folder in study_dirs(cohort, site, "CT"):
        header = pydicom.dcmread(next(folder.rglob("*.dcm")), stop_before_pixels=True)
        if str(header.get("BodyPartExamined", "")).upper() == "HEAD":
            return folder
    raise AssertionError(f"no head CT at {site}")


@pytest.fixture(scope="module")
def run(site_pacs: Settings, tmp_path_factory: pytest.TempPathFactory):
    """Seed the PACS, start the node and the gateway, push both studies, wait."""
    from gai_research.dicom.net import DicomNode, store_files
    from gai_research.gateway.pacs_link import link_site_pacs, push_study
    from gai_research.gateway.rules import parse_rules
    from gai_research.gateway.service import Gateway
    from gai_research.models.simulators.dicom_node import DicomNodeSimulator
    from tests.conftest import free_ports

    settings = site_pacs
    cohort = gateway_cohort(tmp_path_factory)
    folders = {case: _pick(cohort, site) for case, site in CASES.items()}
    for case, site in CASES.items():
        pacs = settings.site(site).pacs
        node = DicomNode(pacs.ae_title, "127.0.0.1", pacs.dicom_port)
        assert store_files(node, files_of(folders[case]), settings.platform_ae_title).failed == 0
    (listen_port,) = free_ports(1)
    model = PlacingModel(MODEL, task="stroke_ct", delay_s=0.3)
    simulator = DicomNodeSimulator(
        model, return_to=("127.0.0.1", listen_port, LISTEN_AE), send_kos=True
    ).start()
    (settings.home / "models.yaml").write_text(
        _models_yaml(simulator.port, listen_port), encoding="utf-8"
    )
    records = _LogRecords()
    logger = logging.getLogger("gai_research")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    gateway = Gateway(settings, rules=parse_rules(RULES), port=0).start()
    try:
        link_site_pacs(settings, ae_title=gateway.ae_title, port=gateway.port)
        for case, site in CASES.items():  # both at once: two workers, one listen port
            push_study(settings, site, study_uid_of(folders[case]))
        assert gateway.wait_idle(timeout=120), gateway.db.counts()
        keys = {
            case: gateway.db.study_by_uid(study_uid_of(folder)).key
            for case, folder in folders.items()
        }
        yield {
            "settings": settings,
            "gateway": gateway,
            "folders": folders,
            "keys": keys,
            "model": model,
            "simulator": simulator,
            "log": records,
        }
    finally:
        gateway.stop(grace=2.0)
        simulator.stop()
        logger.removeHandler(records)
        logger.setLevel(level)


class _LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _results(run, case: str) -> dict[str, object]:
    """The gateway's result objects in the originating PACS, by modality."""
    from gai_research.gateway.pacs_link import _base, _call

    settings, site = run["settings"], CASES[case]
    found = _call(
        "POST",
        f"{_base(settings, site)}/tools/find",
        {
            "Level": "Instance",
            "Query": {"StudyInstanceUID": study_uid_of(run["folders"][case])},
            "Expand": True,
        },
    )
    out: dict[str, list] = {}
    for item in found or []:
        ds = orthanc_file(settings, site, item["ID"])
        if ds.Modality in ("SR", "KO", "SEG"):
            out.setdefault(ds.Modality, []).append(ds)
    return out


def _job(run, case: str):
    (job,) = run["gateway"].db.jobs(study_key=run["keys"][case])
    return job


@pytest.mark.parametrize("case", list(CASES))
def test_dicom_node_result_comes_back_to_the_same_pacs(run, case: str) -> None:
    import pydicom

    folder = run["folders"][case]
    original = pydicom.dcmread(files_of(folder)[0], stop_before_pixels=True)
    job = _job(run, case)
    assert (job.state, job.attempts, job.origin) == ("returned", 1, "simulator"), job.error
    (sr,) = _results(run, case)["SR"]
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert sr.PatientID == original.PatientID and sr.PatientName == original.PatientName
    sent = {
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files_of(folder)
    }
    assert referenced_sop_uids(sr) and referenced_sop_uids(sr) <= sent
    assert "simulator" in str(sr.SeriesDescription)
    for other in set(CASES.values()) - {CASES[case]} | {"ICHEON"}:
        from tests.gateway_support import orthanc_results

        assert orthanc_results(run["settings"], other, original.StudyInstanceUID) == []


def test_both_studies_were_with_the_node_at_once_on_one_listen_port(run) -> None:
    assert run["simulator"].stats["results_sent"] == 2
    assert run["simulator"].stats["refused"] == 0


@pytest.mark.parametrize("case", list(CASES))
def test_vendor_key_objects_are_forwarded_with_the_original_uids(run, case: str) -> None:
    import pydicom

    from gai_research.gateway.identity import result_uid
    from gai_research.home import read_key

    folder = run["folders"][case]
    original = pydicom.dcmread(files_of(folder)[0], stop_before_pixels=True)
    sent = {
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files_of(folder)
    }
    (kos,) = _results(run, case)["KO"]
    assert kos.StudyInstanceUID == original.StudyInstanceUID
    assert (kos.PatientID, kos.PatientName) == (original.PatientID, original.PatientName)
    flagged = {str(i.ReferencedSOPInstanceUID) for i in _content_refs(kos)}
    assert referenced_sop_uids(kos) == flagged and len(flagged) == 1 and flagged <= sent
    secret = read_key(run["settings"].key_path)
    key = run["keys"][case]
    assert kos.SOPInstanceUID == result_uid(secret, key, MODEL, "vendor-instance-0")
    assert json.loads(_job(run, case).prediction)["raw"]["forwarded_objects"] == 1


def _content_refs(ds):
    for item in ds.get("ContentSequence", []):
        yield from item.get("ReferencedSOPSequence", [])
        yield from _content_refs(item)


def test_storing_again_replaces_the_forwarded_objects(run) -> None:
    gateway = run["gateway"]
    job = _job(run, "inside")
    with gateway.db._tx() as conn:  # as if the gateway died before recording the store
        conn.execute("UPDATE jobs SET state='result' WHERE id=?", (job.id,))
    assert gateway.returner.return_job(gateway.db.job(job.id))
    found = _results(run, "inside")
    assert (len(found["SR"]), len(found["KO"])) == (1, 1)


def test_pseudonymized_dispatch_is_recorded_in_the_vault(run) -> None:
    import stat

    import pydicom

    from gai_research.deid.vault import Vault

    original = pydicom.dcmread(files_of(run["folders"]["outside"])[0], stop_before_pixels=True)
    inside = pydicom.dcmread(files_of(run["folders"]["inside"])[0], stop_before_pixels=True)
    seen = {s.study_uid: s for s in run["model"].seen}
    assert original.StudyInstanceUID not in seen  # the outside route sent pseudonyms
    (pseudo,) = [s for uid, s in seen.items() if uid != inside.StudyInstanceUID]
    vault = Vault(run["settings"].vault_dir)
    assert stat.S_IMODE(vault.path.stat().st_mode) == 0o600
    found = vault.lookup(pseudo.study_uid)
    (study,) = found["studies"]
    assert (study["study_uid"], study["site"]) == (original.StudyInstanceUID, "ANSEONG")
    received = {str(h.PatientID) for h in run["model"].headers}  # what the vendor saw
    assert study["pseudonym"] in received and original.PatientID not in received
    assert study["first_run"] == f"gateway:{run['keys']['outside']}"
    (patient,) = found["patients"]
    assert patient["patient_id"] == original.PatientID
    # the inside route's study left unchanged: nothing to record
    assert vault.lookup(inside.StudyInstanceUID)["studies"] == []


def test_no_identifier_in_the_log_or_status(
    run, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pydicom

    from gai_research import cli

    monkeypatch.setenv("GAI_HOME", str(run["settings"].home))
    assert cli.main(["gateway", "status"]) == 0
    assert cli.main(["gateway", "status", "--json"]) == 0
    out = capsys.readouterr().out
    assert "returned 2" in out and run["keys"]["outside"] in out
    text = out + "\n".join(run["log"].lines)
    assert run["log"].lines  # the gateway did log
    for folder in run["folders"].values():
        header = pydicom.dcmread(files_of(folder)[0], stop_before_pixels=True)
        for identifier in (header.StudyInstanceUID, header.PatientID, str(header.PatientName)):
            assert identifier not in text
    for study in run["model"].seen:  # nor the pseudonyms the vendor saw
        assert study.study_uid not in text


def test_models_on_one_fixed_listen_port_share_one_receiver() -> None:
    """The gateway makes one dicom model per worker, all with the same return address."""
    from gai_research.models.adapters.dicom import DicomNodeModel
    from gai_research.models.errors import ModelConfigError
    from gai_research.models.types import ModelInfo
    from tests.conftest import free_ports

    info = ModelInfo(
        name=MODEL,
        vendor="simulated vendor (test double)",
        version="1.0-sim",
        task="stroke_ct",
        kind="triage",
        origin="simulator",
    )
    (port,) = free_ports(1)
    options = {"host": "127.0.0.1", "port": 1, "ae_title": "NODE", "listen_port": port}
    first = DicomNodeModel(info, listen_ae=LISTEN_AE, **options)
    second = DicomNodeModel(info, listen_ae=LISTEN_AE, **options)
    with first, second:
        assert first.listen_port == second.listen_port == port
        assert first._receiver is second._receiver
        with pytest.raises(ModelConfigError, match="receives results as"):
            DicomNodeModel(info, listen_ae="OTHER_AE", **options).start_listener()
        first.close()
        assert second._receiver.port == port  # still listening for the other
    third = DicomNodeModel(info, listen_ae=LISTEN_AE, **options)  # the port is free again
    with third:
        assert third.listen_port == port
