"""The gateway end to end: three real Orthanc site PACS, vendor simulators on loopback.

Each site's Orthanc holds its studies and pushes them to the gateway by C-STORE
(``POST /modalities/gai-gateway/store``, the gateway declared through Orthanc's REST
API). The gateway routes by rules to models reached through the registry and the HTTP
adapter (``HOME/models.yaml`` entries pointing at :class:`HttpVendorSimulator`), and
stores each result as a TID 1500 SR back into the Orthanc it came from. One gateway
run covers every case; each test checks one: result back with original references,
pseudonymized for an outside vendor, no-match, time-out, vendor down, unknown model,
idempotent return, status without identifiers, operations metrics in MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gai_research.config import Settings
from tests.gateway_support import (
    PlacingModel,
    files_of,
    gateway_cohort,
    orthanc_file,
    orthanc_results,
    referenced_sop_uids,
    study_dirs,
    study_uid_of,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

RULES = {
    "version": 1,
    "defaults": {"concurrency": 2, "timeout_s": 20, "retries": 1, "retry_backoff_s": 0.2},
    "models": {
        "sim-outside": {"pseudonymize": True},
        "sim-hanging": {"timeout_s": 1.0, "retries": 0},
    },
    "rules": [
        {
            "name": "chest-ct",
            "match": {"modality": "CT", "body_part": "CHEST"},
            "models": ["sim-inside"],
        },
        {
            "name": "chest-dx",
            "sites": ["ANSEONG"],
            "match": {"modality": "DX"},
            "models": ["sim-outside"],
        },
        {
            "name": "stow-dx",
            "sites": ["SUWON"],
            "match": {"modality": "DX"},
            "models": ["sim-inside"],
        },
        {
            "name": "mammo",
            "match": {"modality": "MG"},
            "study": {"min_instances": 4},
            "models": ["sim-hanging"],
        },
        {
            "name": "head-ct",
            "match": {"modality": "CT", "body_part": "HEAD"},
            "models": ["sim-down"],
        },
        {"name": "typo", "match": {"modality": "MG"}, "models": ["no-such-model"]},
    ],
}
# (site, modality, body part): the study of each case
CASES = {
    "inside": ("SUWON", "CT", "CHEST"),
    "outside": ("ANSEONG", "DX", "CHEST"),
    "timeout": ("ICHEON", "MG", "BREAST"),
    "down": ("SUWON", "CT", "HEAD"),
    "nomatch": ("ICHEON", "MR", "BRAIN"),
    "stow": ("SUWON", "DX", "CHEST"),  # sent by STOW-RS, not by the PACS
}
PUSHED = [case for case in CASES if case != "stow"]


def _models_yaml(urls: dict[str, str]) -> str:
    entries = []
    for name, url in urls.items():
        entries.append(
            {
                "name": name,
                "adapter": "http",
                "vendor": "simulated vendor (test double)",
                "version": "1.0-sim",
                "task": "lung_nodule_dx" if name == "sim-outside" else "lung_nodule_ct",
                "kind": "detection",
                "origin": "simulator",
                "options": {"url": url, "timeout_s": 30, "retries": 0},
            }
        )
    return json.dumps({"models": entries})  # JSON is YAML


def _stow(base: str, files: list[Path]) -> tuple[int, dict]:
    """STOW-RS the files to the gateway as one request; (HTTP status, JSON answer)."""
    import urllib.request

    from gai_research.models.adapters.http import MultipartBody

    body = MultipartBody(files)
    data = body.read(len(body))
    request = urllib.request.Request(f"{base}/studies", data=data, method="POST")
    request.add_header("Content-Type", body.content_type)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status, json.loads(answer.read())


def _pick(cohort: Path, site: str, modality: str, body_part: str) -> Path:
    import pydicom

    for folder in study_dirs(cohort, site, modality):
        header = pydicom.dcmread(next(folder.rglob("*.dcm")), stop_before_pixels=True)
        if str(header.get("BodyPartExamined", "")).upper() == body_part:
            return folder
    raise AssertionError(f"no {modality} {body_part} study at {site}")


@pytest.fixture(scope="module")
def run(site_pacs: Settings, tmp_path_factory: pytest.TempPathFactory):
    """Seed the PACS, start simulators and the gateway, push every case's study, wait."""
    from gai_research.dicom.net import DicomNode, store_files
    from gai_research.gateway.pacs_link import link_site_pacs, push_study
    from gai_research.gateway.rules import parse_rules
    from gai_research.gateway.service import Gateway
    from gai_research.models.simulators.http import HttpVendorSimulator
    from tests.conftest import free_ports

    settings = site_pacs
    cohort = gateway_cohort(tmp_path_factory)
    folders = {case: _pick(cohort, *spec) for case, spec in CASES.items()}
    for case in PUSHED:
        folder = folders[case]
        pacs = settings.site(CASES[case][0]).pacs
        node = DicomNode(pacs.ae_title, "127.0.0.1", pacs.dicom_port)
        assert store_files(node, files_of(folder), settings.platform_ae_title).failed == 0
    inside, outside = PlacingModel("sim-inside"), PlacingModel("sim-outside", task="lung_nodule_dx")
    hanging = PlacingModel("sim-hanging", hang=True)
    sims = [HttpVendorSimulator(m).start() for m in (inside, outside, hanging)]
    (closed_port,) = free_ports(1)  # nobody listens: the vendor is down
    urls = {
        "sim-inside": sims[0].url,
        "sim-outside": sims[1].url,
        "sim-hanging": sims[2].url,
        "sim-down": f"http://127.0.0.1:{closed_port}",
    }
    (settings.home / "models.yaml").write_text(_models_yaml(urls), encoding="utf-8")
    gateway = Gateway(settings, rules=parse_rules(RULES), port=0, stow_port=0).start()
    try:
        link_site_pacs(settings, ae_title=gateway.ae_title, port=gateway.port)
        for case in PUSHED:
            push_study(settings, CASES[case][0], study_uid_of(folders[case]))
        stow_answer = _stow(gateway.stow.url("SUWON"), files_of(folders["stow"]))
        assert gateway.wait_idle(timeout=90), gateway.db.counts()
        keys = {
            case: gateway.db.study_by_uid(study_uid_of(folder)).key
            for case, folder in folders.items()
        }
        yield {
            "settings": settings,
            "gateway": gateway,
            "folders": folders,
            "keys": keys,
            "models": {"inside": inside, "outside": outside, "hanging": hanging},
            "stow": stow_answer,
        }
    finally:
        hanging.release()
        gateway.stop(grace=2.0)
        for sim in sims:
            sim.stop()


def _job(run, case: str, model: str):
    (job,) = [j for j in run["gateway"].db.jobs(study_key=run["keys"][case]) if j.model == model]
    return job


def _sr_of(run, case: str):
    settings, folder = run["settings"], run["folders"][case]
    site = CASES[case][0]
    results = orthanc_results(settings, site, study_uid_of(folder))
    assert len(results) == 1, f"{len(results)} SR in the {site} PACS"
    return orthanc_file(settings, site, results[0]["ID"])


def test_result_comes_back_to_the_same_pacs_referencing_the_original_study(run) -> None:
    import pydicom

    folder = run["folders"]["inside"]
    original = pydicom.dcmread(files_of(folder)[0], stop_before_pixels=True)
    sr = _sr_of(run, "inside")
    assert sr.Modality == "SR"
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert sr.PatientID == original.PatientID and sr.PatientName == original.PatientName
    sent = {
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files_of(folder)
    }
    assert referenced_sop_uids(sr) and referenced_sop_uids(sr) <= sent
    assert "simulator" in str(sr.SeriesDescription)  # never presented as a vendor's result
    job = _job(run, "inside", "sim-inside")
    assert (job.state, job.attempts, job.origin) == ("returned", 1, "simulator")
    for other in ("ANSEONG", "ICHEON"):  # only the originating PACS gets it
        assert orthanc_results(run["settings"], other, original.StudyInstanceUID) == []


def test_outside_vendor_gets_pseudonyms_and_the_result_is_mapped_back(run) -> None:
    import pydicom

    folder = run["folders"]["outside"]
    original = pydicom.dcmread(files_of(folder)[0], stop_before_pixels=True)
    (seen,) = run["models"]["outside"].seen
    assert seen.study_uid != original.StudyInstanceUID
    (received,) = run["models"]["outside"].headers
    assert received.PatientID != original.PatientID
    assert str(received.PatientName) != str(original.PatientName)
    assert received.SOPInstanceUID != original.SOPInstanceUID
    sr = _sr_of(run, "outside")
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert sr.PatientID == original.PatientID
    assert referenced_sop_uids(sr) == {str(original.SOPInstanceUID)}
    job = _job(run, "outside", "sim-outside")
    assert job.pseudonymize and job.state == "returned"


@pytest.mark.parametrize(
    ("case", "model", "state", "reason", "attempts"),
    [
        ("timeout", "sim-hanging", "failed", "timeout", 1),
        ("down", "sim-down", "failed", "unavailable", 2),
        ("timeout", "no-such-model", "failed", "not-found", 1),
    ],
)
def test_failures_end_in_a_recorded_state(run, case, model, state, reason, attempts) -> None:
    job = _job(run, case, model)
    assert (job.state, job.reason, job.attempts) == (state, reason, attempts)
    assert job.error and "2.25." not in job.error
    history = [
        h["state"] for h in run["gateway"].db.history(job.study_key) if h["job_id"] == job.id
    ]
    assert history[0] == "complete" and history[-1] == "failed"


def test_study_matching_no_rule_is_recorded_as_no_match(run) -> None:
    study = run["gateway"].db.study(run["keys"]["nomatch"])
    assert (study.state, study.reason) == ("no-match", "no rule matched")
    assert run["gateway"].db.jobs(study_key=study.key) == []


def test_storing_a_result_again_keeps_one_copy_in_the_pacs(run) -> None:
    gateway = run["gateway"]
    job = _job(run, "inside", "sim-inside")
    with gateway.db._tx() as conn:  # as if the gateway died before recording the store
        conn.execute("UPDATE jobs SET state='result' WHERE id=?", (job.id,))
    assert gateway.returner.return_job(gateway.db.job(job.id))
    assert gateway.db.job(job.id).state == "returned"
    assert (
        len(orthanc_results(run["settings"], "SUWON", study_uid_of(run["folders"]["inside"]))) == 1
    )


def test_status_names_studies_by_key_only(
    run, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pydicom

    from gai_research import cli

    monkeypatch.setenv("GAI_HOME", str(run["settings"].home))
    assert cli.main(["gateway", "status"]) == 0
    out = capsys.readouterr().out
    assert "returned 3" in out and "no-match 1" in out and "failed 3" in out
    assert run["keys"]["inside"] in out
    for folder in run["folders"].values():
        header = pydicom.dcmread(files_of(folder)[0], stop_before_pixels=True)
        for identifier in (header.StudyInstanceUID, header.PatientID, str(header.PatientName)):
            assert identifier not in out


def test_operations_metrics_go_to_the_task_experiment(run, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from gai_research.gateway.operations import log_operations

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_ids = log_operations(run["settings"], run["gateway"].db, tracking_uri=uri)
    client = MlflowClient(uri)
    runs = [client.get_run(r) for r in run_ids]
    by = {(r.data.tags["gai.model"], r.data.tags["gai.site"]): r for r in runs}
    inside = by[("sim-inside", "SUWON")]
    assert client.get_experiment(inside.info.experiment_id).name == "gai-lung_nodule_ct"
    assert inside.data.tags["gai.role"] == "operations"
    metrics = inside.data.metrics
    assert metrics["n_studies"] == 2 and metrics["n_failed"] == 0  # CT pushed, DX by STOW-RS
    assert 0 < metrics["ttr_median_s"] <= metrics["ttr_p95_s"]
    assert metrics["gateway_overhead_median_s"] <= metrics["ttr_median_s"]
    assert metrics["throughput_per_h"] > 0
    hourly = client.get_metric_history(inside.info.run_id, "ttr_median_s_by_hour")
    assert len(hourly) == 1 and 0 <= hourly[0].step <= 23
    assert by[("sim-hanging", "ALL")].data.metrics["n_timeout"] == 1


def test_stow_rs_from_a_site_comes_back_to_that_site(run) -> None:
    import pydicom

    assert run["stow"] == (200, {"stored": 1, "refused": 0})
    original = pydicom.dcmread(files_of(run["folders"]["stow"])[0], stop_before_pixels=True)
    sr = _sr_of(run, "stow")
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert referenced_sop_uids(sr) == {str(original.SOPInstanceUID)}
    job = _job(run, "stow", "sim-inside")  # the SUWON rule, not ANSEONG's outside vendor
    assert (job.site, job.state, job.pseudonymize) == ("SUWON", "returned", False)
    study = run["gateway"].db.study(run["keys"]["stow"])
    assert (study.calling_ae, study.trigger) == ("STOW:SUWON", "STOW-RS request ended")


def test_a_study_pushed_again_with_its_result_is_not_processed_again(run) -> None:
    """A PACS that forwards whole studies sends our own SR back with the images."""
    from gai_research.gateway.pacs_link import push_study

    gateway, key = run["gateway"], run["keys"]["inside"]
    before = gateway.db.study(key)
    own = gateway.receiver.counts["own results"]
    push_study(run["settings"], "SUWON", study_uid_of(run["folders"]["inside"]))
    assert gateway.wait_idle(timeout=30)
    after = gateway.db.study(key)
    assert (after.n_instances, after.n_late, after.state) == (
        before.n_instances,
        before.n_late,
        "routed",
    )
    assert gateway.receiver.counts["own results"] == own + 1
    assert [j.attempts for j in gateway.db.jobs(study_key=key)] == [1]
