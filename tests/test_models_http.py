"""The vendor HTTP adapter against the HTTP vendor simulator, on real loopback sockets.

The simulator wraps a test double (:class:`FingerprintModel`) whose prediction is a
fingerprint of the instances it received, so a test can tell that the study arrived
whole, by upload or by the vendor's own WADO-RS retrieval from a real Orthanc.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pytest
import requests

from gai_research.models.adapters.http import (
    HttpModel,
    MultipartBody,
    MultipartError,
    parse_multipart,
    vendor_prediction,
)
from gai_research.models.errors import (
    MalformedResultError,
    ModelConfigError,
    ModelInputError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from gai_research.models.inputs import study_input_from_files
from gai_research.models.simulators.http import HttpVendorSimulator, fate_draw
from gai_research.models.types import (
    Finding,
    ModelInfo,
    Origin,
    Prediction,
    StudyInput,
    TaskKind,
    VolumeMeasurement,
)
from tests.conftest import free_ports

INFO = ModelInfo(
    name="sim-fingerprint",
    vendor="gai-research tests",
    version="1.0",
    task="lung_nodule_ct",
    kind=TaskKind.DETECTION,
    origin=Origin.SIMULATOR,
)


class FingerprintModel:
    """A test double: its prediction says which instances (and pixels) it was given."""

    info = INFO

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse = refuse

    def predict(self, study: StudyInput) -> Prediction:
        if set(study.modalities) & set(self.refuse):
            raise ModelInputError(f"this model does not read {', '.join(study.modalities)}")
        digest = hashlib.sha256()
        first = None
        for ds in sorted(
            (ds for s in study.series for ds in s.datasets()), key=lambda d: d.SOPInstanceUID
        ):
            digest.update(str(ds.SOPInstanceUID).encode() + bytes(ds.PixelData))
            first = first or ds
        n = len(study.files)
        position = [float(v) for v in first.get("ImagePositionPatient", (0.0, 0.0, 0.0))]
        return Prediction(
            study.study_uid,
            score=n / 1000,
            scores={"series": float(len(study.series))},
            findings=(Finding(0.9, *position, diameter_mm=8.0, label="first-instance"),),
            volumes=(VolumeMeasurement("instances", float(n)),),
            raw={"fingerprint": digest.hexdigest(), "instances": n},
        )

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    from gai_research.synth import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("http-synth") / "cohort", patients=1, seed=5)


@pytest.fixture(scope="module")
def studies(cohort) -> dict[str, StudyInput]:
    """One StudyInput per task of the one synthetic patient."""
    out = {}
    for info in cohort.studies:
        files = sorted((cohort.out_dir / info.site / info.study_uid).rglob("*.dcm"))
        out[info.task] = study_input_from_files(files)
    return out


@pytest.fixture(scope="module")
def expected(studies) -> dict[str, Prediction]:
    return {task: FingerprintModel().predict(study) for task, study in studies.items()}


def http_model(url: str, **options) -> HttpModel:
    options = {"timeout_s": 30.0, "backoff_s": 0.01, **options}
    return HttpModel(INFO, url=url, **options)


def same_prediction(got: Prediction, want: Prediction) -> None:
    assert got.study_uid == want.study_uid
    assert got.score == pytest.approx(want.score)
    assert dict(got.scores) == dict(want.scores)
    assert got.findings == want.findings
    assert got.volumes == want.volumes
    assert got.raw["raw"] == want.raw  # the model's own raw, inside the vendor's JSON


# --- the happy paths -----------------------------------------------------------------------
@pytest.mark.parametrize("task", ["lung_nodule_ct", "breast_mg", "lung_nodule_dx"])
def test_multipart_upload_round_trip(task: str, studies, expected) -> None:
    with HttpVendorSimulator(FingerprintModel()) as sim, http_model(sim.url) as model:
        got = model.predict(studies[task])
        assert sim.stats == {"ok": 1}
    same_prediction(got, expected[task])
    assert got.raw["model"] == {"name": INFO.name, "version": INFO.version}
    assert got.timing["attempts"] == 1
    assert 0 < got.timing["http_s"] <= got.timing["total_s"]
    assert "vendor_inference_s" in got.timing


def test_parallel_workers_share_one_model(studies, expected) -> None:
    tasks = ["lung_nodule_ct", "breast_mg", "stroke_ct", "lung_nodule_dx"] * 2
    with HttpVendorSimulator(FingerprintModel()) as sim, http_model(sim.url) as model:
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda t: model.predict(studies[t]), tasks))
        assert sim.stats == {"ok": len(tasks)}
    for task, prediction in zip(tasks, got, strict=True):
        same_prediction(prediction, expected[task])


def test_vendor_info_and_health() -> None:
    with HttpVendorSimulator(FingerprintModel()) as sim, http_model(sim.url) as model:
        assert model.health()
        info = model.vendor_info()
    assert info["origin"] == "simulator" and info["name"] == INFO.name
    assert info["version"] == INFO.version and "vendor" in info
    assert not model.health()  # the simulator has stopped


@pytest.mark.slow
def test_dicomweb_references_are_fetched_from_the_site_pacs(site_pacs, cohort, studies, expected):
    """The vendor retrieves the study by WADO-RS from a real Orthanc with DICOMweb."""
    from gai_research.dicom.net import store_files
    from gai_research.pacs import servers, site_node

    info = next(s for s in cohort.studies if s.task == "stroke_ct")
    study = studies["stroke_ct"]
    stored = store_files(site_node(site_pacs, info.site), study.files, site_pacs.platform_ae_title)
    assert stored.sent == len(study.files)
    base = next(s for s in servers(site_pacs) if s.name == info.site).dicomweb_url
    with (
        HttpVendorSimulator(FingerprintModel()) as sim,
        http_model(sim.url, mode="dicomweb-refs", dicomweb_base=base) as model,
    ):
        assert model.references(study)["wado_rs"] == f"{base}/studies/{study.study_uid}"
        got = model.predict(study)
    same_prediction(got, expected["stroke_ct"])

    missing = StudyInput("2.25.1", study.series)  # a study the PACS does not hold
    with (
        HttpVendorSimulator(FingerprintModel()) as sim,
        http_model(sim.url, mode="dicomweb-refs", dicomweb_base=base, retries=1) as model,
    ):
        with pytest.raises(ModelUnavailableError, match=r"HTTP 502.*WADO-RS retrieve answered"):
            model.predict(missing)
        assert sim.stats == {"http_502": 2}


# --- failures ------------------------------------------------------------------------------
def test_server_errors_are_retried_then_unavailable(studies) -> None:
    study = studies["breast_mg"]
    with HttpVendorSimulator(FingerprintModel(), failure_rate=1.0) as sim:
        with http_model(sim.url, retries=2) as model, pytest.raises(ModelUnavailableError) as err:
            model.predict(study)
        assert sim.stats == {"failure": 3}
    message = str(err.value)
    assert "HTTP 500 after 3 attempts" in message and "simulated internal error" in message
    assert study.study_uid in message and err.value.reason == "unavailable"


def test_a_transient_failure_is_retried_and_recovers(studies, expected) -> None:
    study = studies["breast_mg"]
    seed = next(  # the first seed whose first request fails and second succeeds
        s
        for s in range(1000)
        if fate_draw(s, study.study_uid, 0) < 0.5 <= fate_draw(s, study.study_uid, 1)
    )
    with HttpVendorSimulator(FingerprintModel(), failure_rate=0.5, seed=seed) as sim:
        with http_model(sim.url, retries=2) as model:
            got = model.predict(study)
        assert sim.stats == {"failure": 1, "ok": 1}
    same_prediction(got, expected["breast_mg"])
    assert got.timing["attempts"] == 2


def test_a_silent_vendor_times_out_without_a_retry(studies) -> None:
    with HttpVendorSimulator(FingerprintModel(), timeout_rate=1.0) as sim:
        with http_model(sim.url, timeout_s=0.5, retries=2) as model:
            started = time.perf_counter()
            with pytest.raises(ModelTimeoutError, match=r"no answer within 0.5 s") as err:
                model.predict(studies["lung_nodule_dx"])
            waited = time.perf_counter() - started
        assert sim.stats == {"timeout": 1}
    assert waited >= 0.5 and err.value.reason == "timeout"


def test_malformed_json_is_not_retried(studies) -> None:
    with HttpVendorSimulator(FingerprintModel(), malformed_rate=1.0) as sim:
        with http_model(sim.url, retries=2) as model, pytest.raises(MalformedResultError) as err:
            model.predict(studies["lung_nodule_dx"])
        assert sim.stats == {"malformed": 1}
    assert "HTTP 200 but the body is not valid JSON" in str(err.value)


def test_a_refused_study_is_an_input_error_without_a_retry(studies) -> None:
    with HttpVendorSimulator(FingerprintModel(refuse=("DX",))) as sim:
        with http_model(sim.url, retries=2) as model, pytest.raises(ModelInputError) as err:
            model.predict(studies["lung_nodule_dx"])
        assert sim.stats == {"http_422": 1}
    assert "HTTP 422: this model does not read DX" in str(err.value)


def test_nothing_listening_is_unavailable(studies) -> None:
    (port,) = free_ports(1)
    study = studies["lung_nodule_dx"]
    with (
        http_model(f"http://127.0.0.1:{port}", retries=1) as model,
        pytest.raises(ModelUnavailableError, match=r"connection refused.* after 2 attempts") as err,
    ):
        model.predict(study)
    assert str(study.files[0]) not in str(err.value)  # no file paths, only the pseudonymous UID


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"url": "ftp://vendor"}, "not an http"),
        ({"url": "http://127.0.0.1:1", "mode": "dicomweb-refs"}, "needs dicomweb_base"),
        ({"url": "http://127.0.0.1:1", "mode": "stow"}, "unknown mode"),
        ({"url": "http://127.0.0.1:1", "timeout_s": 0}, "timeout_s must be > 0"),
    ],
)
def test_bad_options_are_config_errors(options: dict, problem: str) -> None:
    with pytest.raises(ModelConfigError, match=problem):
        HttpModel(INFO, **options)


# --- latency -------------------------------------------------------------------------------
def test_latency_follows_the_simulator_delay(studies) -> None:
    """The wall time the adapter takes reflects the vendor's delay (0 vs 0.5 s)."""
    study = studies["breast_mg"]
    latency = {}
    for delay in (0.0, 0.5):
        with (
            HttpVendorSimulator(FingerprintModel(), delay_s=delay) as sim,
            http_model(sim.url) as model,
        ):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                model.predict(study)
                times.append(time.perf_counter() - started)
        latency[delay] = min(times)
    assert latency[0.5] >= 0.5
    assert latency[0.5] - latency[0.0] >= 0.4


# --- the wire format -----------------------------------------------------------------------
@pytest.fixture
def three_files(tmp_path: Path) -> list[Path]:
    contents = [b"DICM" + bytes(range(256)) * 3, b"\r\n--not-a-boundary\r\n", b""]
    paths = []
    for i, content in enumerate(contents):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(content)
        paths.append(path)
    return paths


def test_multipart_body_reads_as_the_standard_library_parses_it(three_files) -> None:
    body = MultipartBody(three_files)
    data = body.read(7) + body.read()
    assert len(data) == len(body)
    head = f"Content-Type: {body.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + data)
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/dicom"] * 3
    assert [p.get_payload(decode=True) for p in parts] == [p.read_bytes() for p in three_files]
    ours = parse_multipart(data, body.content_type)
    assert [content for _, content in ours] == [p.read_bytes() for p in three_files]
    assert ours[0][0] == {"content-type": "application/dicom"}


def test_a_truncated_multipart_body_is_refused(three_files) -> None:
    body = MultipartBody(three_files)
    data = body.read()
    with pytest.raises(MultipartError, match="ends without its closing boundary"):
        parse_multipart(data[:-40], body.content_type)
    with pytest.raises(MultipartError, match="no boundary"):
        parse_multipart(data, 'multipart/related; type="application/dicom"')


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"hello", 415),
        ("application/json", b'{"study_uid": "2.25.1"}', 400),
        ("application/json", b"{not json", 400),
        ("multipart/related; boundary=x", b"--x\r\n\r\nabc", 400),
    ],
)
def test_the_simulator_answers_bad_requests_with_json_errors(content_type, body, status) -> None:
    with HttpVendorSimulator(FingerprintModel()) as sim:
        answer = requests.post(
            f"{sim.url}/v1/studies", data=body, headers={"Content-Type": content_type}, timeout=10
        )
    assert answer.status_code == status
    assert isinstance(answer.json()["error"], str)


def test_an_upload_only_vendor_refuses_references() -> None:
    with HttpVendorSimulator(FingerprintModel(), dicomweb_fetch=False) as sim:
        refs = {"study_uid": "2.25.1", "wado_rs": "http://127.0.0.1:1/studies/2.25.1"}
        answer = requests.post(f"{sim.url}/v1/studies", json=refs, timeout=10)
    assert answer.status_code == 415 and "uploads only" in answer.json()["error"]


def test_vendor_json_is_read_tolerantly_but_checked() -> None:
    data = {
        "study_uid": "2.25.7",
        "score": 0.25,
        "findings": [{"score": 0.8, "x_mm": 1, "y_mm": 2, "z_mm": 3, "malignancy": "high"}],
        "volumes": [{"name": "hemorrhage", "volume_ml": 12.5, "method": "threshold"}],
        "timing": {"inference_s": 1.5, "note": "not a number"},
        "heatmap": "kept for audit",
    }
    got = vendor_prediction(data, "2.25.7", timing={"http_s": 2.0})
    assert got.findings == (Finding(0.8, 1.0, 2.0, 3.0),)
    assert got.volume("hemorrhage") == 12.5 and got.raw == data
    assert dict(got.timing) == {"vendor_inference_s": 1.5, "http_s": 2.0}
    assert vendor_prediction({"score": 0.1}, "2.25.7").study_uid == "2.25.7"
    with pytest.raises(MalformedResultError, match="another study"):
        vendor_prediction(data, "2.25.8")
    with pytest.raises(MalformedResultError, match="not an object"):
        vendor_prediction([data], "2.25.7")
    with pytest.raises(MalformedResultError, match="must be a list"):
        vendor_prediction({"findings": {"score": 1}}, "2.25.7")
    with pytest.raises(MalformedResultError):
        vendor_prediction({"score": "high"}, "2.25.7")


def test_fates_are_deterministic_and_follow_the_rates() -> None:
    draws = [fate_draw(3, f"2.25.{i}", 0) for i in range(4000)]
    assert draws == [fate_draw(3, f"2.25.{i}", 0) for i in range(4000)]
    assert draws != [fate_draw(4, f"2.25.{i}", 0) for i in range(4000)]
    assert sum(d < 0.2 for d in draws) / len(draws) == pytest.approx(0.2, abs=0.03)
    with pytest.raises(ModelConfigError, match="sum to at most 1"):
        HttpVendorSimulator(FingerprintModel(), failure_rate=0.6, timeout_rate=0.6)


# --- a baseline behind the simulator, and the command-line server ---------------------------
@pytest.mark.slow
def test_a_baseline_answers_the_same_through_http(studies, tmp_path: Path) -> None:
    """The simulated vendor wrapping a real baseline returns what the baseline returns."""
    from gai_research.config import load_settings
    from gai_research.models.registry import load_model

    baseline = load_model("baseline-hemorrhage-ct", settings=load_settings(home=tmp_path))
    study = studies["stroke_ct"]
    want = baseline.predict(study)
    with (
        HttpVendorSimulator(baseline) as sim,
        HttpModel(baseline.info, url=sim.url, timeout_s=60) as model,
    ):
        got = model.predict(study)
    baseline.close()
    assert got.score == pytest.approx(want.score)
    assert got.findings == want.findings and got.volumes == want.volumes


@pytest.mark.slow
def test_serve_runs_until_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    script = (
        "from gai_research.models.simulators.http import serve\n"
        "serve('baseline-hemorrhage-ct', 0, 0.0, on_ready=lambda s: print(s.url, flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_")}
    env["GAI_HOME"] = str(tmp_path / "home")
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/v1/info", timeout=10).json()["origin"] == "simulator"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout.read().strip() == "stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_stopped_simulator_answers_nothing_on_a_kept_alive_connection(studies) -> None:
    sim = HttpVendorSimulator(FingerprintModel()).start()
    with http_model(sim.url, retries=1) as model:
        assert model.health()  # opens a kept-alive connection
        sim.stop()
        with pytest.raises(ModelUnavailableError):
            model.predict(studies["lung_nodule_dx"])
        assert not model.health()
    assert sim.stats == {}
