"""The ``dicom`` adapter against the DICOM-node simulator, on real sockets on loopback.

A study is C-STOREd to the simulated vendor node, which runs its model, writes a TID 1500
SR and C-STOREs it back to the adapter's receiver. The model inside is a test double
returning a fixed prediction (and, once, the real hemorrhage baseline). Time-outs,
malformed results, dropped associations, a node that is down and one that does not know
us must each give their own per-study error; latency must follow the configured delay.
"""

from __future__ import annotations

import statistics
import threading
from pathlib import Path

import pytest

from gai_research.models.adapters.dicom import DicomNodeModel
from gai_research.models.errors import (
    MalformedResultError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from gai_research.models.inputs import study_input_from_files
from gai_research.models.simulators.dicom_node import DicomNodeSimulator
from gai_research.models.types import (
    Finding,
    ModelInfo,
    Prediction,
    StudyInput,
    VolumeMeasurement,
)
from tests.conftest import free_ports, settings_on_free_ports

pytestmark = pytest.mark.slow

INFO = ModelInfo(
    name="simulated-node",
    vendor="simulated vendor (test double)",
    version="1.0-sim",
    task="lung_nodule_ct",
    kind="detection",
    origin="simulator",
)
LISTEN_AE = "GAI-TEST-RES"


class FixedModel:
    """A test double: the same findings for every study, its score chosen per study."""

    def __init__(self, scores: dict[str, float] | None = None) -> None:
        self.info = INFO
        self.scores = scores or {}
        self.calls = 0

    def predict(self, study: StudyInput) -> Prediction:
        self.calls += 1
        series = study.series[0].series_uid
        return Prediction(
            study_uid=study.study_uid,
            score=self.scores.get(study.study_uid, 0.75),
            scores={"malignancy": 0.5},
            findings=(
                Finding(
                    score=0.9,
                    x_mm=12.25,
                    y_mm=-40.5,
                    z_mm=-110.125,
                    diameter_mm=9.5,
                    label="nodule",
                    series_uid=series,
                ),
            ),
            volumes=(VolumeMeasurement("nodule_total", 0.45, series),),
        )

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StudyInput]:
    """Small studies from a one-patient synthetic cohort: a CT chest cut to 8 slices (fast
    to send), the head CT in full (for the baseline), by task."""
    from gai_research.synth import generate_cohort

    out = tmp_path_factory.mktemp("node-synth")
    summary = generate_cohort(out, patients=1, seed=7)
    found = {}
    for info in summary.studies:
        files = sorted(p for p in (out / info.site / info.study_uid).rglob("*") if p.is_file())
        if info.task == "lung_nodule_ct":
            files = files[20:28]
        found[info.task] = study_input_from_files(files)
    return found


@pytest.fixture(scope="module")
def node():
    """A simulated node (no delay) and an adapter whose receiver it knows."""
    with DicomNodeSimulator(FixedModel()) as simulator, adapter_for(simulator) as model:
        yield simulator, model


def adapter_for(simulator: DicomNodeSimulator, **options) -> DicomNodeModel:
    model = DicomNodeModel(
        INFO,
        host="127.0.0.1",
        port=simulator.port,
        ae_title=simulator.ae_title,
        listen_port=0,
        listen_ae=LISTEN_AE,
        # timeout above pynetdicom's 30 s DIMSE timeout: on a loaded machine a C-STORE
        # response is now and then lost to a race in pynetdicom's reactor, and the file is
        # sent again after it
        **({"timeout_s": 60.0, "settle_s": 0.1} | options),
    )
    simulator.add_route(LISTEN_AE, "127.0.0.1", model.start_listener())
    return model


def test_study_goes_to_the_node_and_its_sr_comes_back(node, studies) -> None:
    simulator, model = node
    study = studies["lung_nodule_ct"]
    prediction = model.predict(study)
    expected = FixedModel().predict(study)
    assert prediction.study_uid == study.study_uid
    assert (prediction.score, dict(prediction.scores)) == (expected.score, {"malignancy": 0.5})
    (finding,) = prediction.findings
    assert (finding.x_mm, finding.y_mm, finding.z_mm) == pytest.approx(
        (12.25, -40.5, -110.125), abs=1e-3
    )
    assert (finding.diameter_mm, finding.label, finding.series_uid) == (
        9.5,
        "nodule",
        study.series[0].series_uid,
    )
    assert prediction.volumes == expected.volumes
    (sr,) = prediction.raw["objects"]
    assert sr["format"] == "dicom-sr" and "(simulator AI result)" in sr["series_description"]
    assert 0 < prediction.timing["store_s"] <= prediction.timing["first_store_to_last_result_s"]
    assert simulator.stats["results_sent"] >= 1


def test_unreadable_file_in_the_study_is_an_input_error(node, studies, tmp_path: Path) -> None:
    from dataclasses import replace

    from gai_research.models.errors import ModelInputError

    _, model = node
    study = studies["lung_nodule_ct"]
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image", encoding="utf-8")
    series = replace(study.series[0], files=(*study.series[0].files[:2], junk))
    with pytest.raises(ModelInputError, match="1 of 3 files of the study are not readable"):
        model.predict(replace(study, series=(series,)))


def test_concurrent_studies_get_their_own_results(studies) -> None:
    chosen = [studies["lung_nodule_ct"], studies["stroke_ct"]]
    scores = {s.study_uid: 0.1 + 0.2 * i for i, s in enumerate(chosen)}
    results: dict[str, Prediction] = {}

    def run(study: StudyInput) -> None:
        results[study.study_uid] = model.predict(study)

    with DicomNodeSimulator(FixedModel(scores)) as simulator, adapter_for(simulator) as model:
        threads = [threading.Thread(target=run, args=(s,)) for s in chosen]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert {uid: p.score for uid, p in results.items()} == pytest.approx(scores)
    assert {uid: p.findings[0].series_uid for uid, p in results.items()} == {
        s.study_uid: s.series[0].series_uid for s in chosen
    }


@pytest.mark.parametrize(
    ("behaviour", "error", "message"),
    [
        (
            {"failure": "no-result"},
            ModelTimeoutError,
            "no result from the vendor node within 1.5 s",
        ),
        ({"failure": "malformed"}, MalformedResultError, "no 'Imaging Measurements' container"),
        ({"failure": "drop"}, ModelUnavailableError, "dropped the association 3 times"),
        ({"malformed_rate": 1.0, "seed": 3}, MalformedResultError, "result object 1: not a TID"),
    ],
    ids=["no-result", "malformed", "drop", "malformed-rate"],
)
def test_failing_node_gives_a_per_study_error(behaviour, error, message, studies) -> None:
    study = studies["lung_nodule_ct"]
    with (
        DicomNodeSimulator(FixedModel(), **behaviour) as simulator,
        adapter_for(simulator, timeout_s=1.5 if error is ModelTimeoutError else 60.0) as model,
    ):
        with pytest.raises(error, match=message) as caught:
            model.predict(study)
        # the next study is not poisoned by the failed one
        assert study.study_uid not in model._pending
    assert caught.value.study_uid == study.study_uid and caught.value.model == INFO.name
    assert study.study_uid not in str(caught.value)


def test_node_that_is_down_is_unavailable(studies) -> None:
    (port,) = free_ports(1)
    model = DicomNodeModel(
        INFO,
        host="127.0.0.1",
        port=port,
        ae_title="NOBODY",
        listen_port=0,
        listen_ae=LISTEN_AE,
        timeout_s=5,
    )
    with model, pytest.raises(ModelUnavailableError, match="no DICOM answer"):
        model.predict(studies["lung_nodule_ct"])


def test_node_without_our_return_address_refuses_the_study(studies) -> None:
    with DicomNodeSimulator(FixedModel()) as simulator:
        model = DicomNodeModel(
            INFO,
            host="127.0.0.1",
            port=simulator.port,
            ae_title=simulator.ae_title,
            listen_port=0,
            listen_ae="GAI-STRANGER",
            timeout_s=5,
        )
        with model, pytest.raises(ModelUnavailableError, match="refused 8 of 8 files"):
            model.predict(studies["lung_nodule_ct"])
    assert simulator.stats["refused"] == 8


def test_wrong_called_ae_title_is_rejected(studies) -> None:
    with DicomNodeSimulator(FixedModel()) as simulator:
        model = DicomNodeModel(
            INFO,
            host="127.0.0.1",
            port=simulator.port,
            ae_title="NOT-THE-NODE",
            listen_port=0,
            listen_ae=LISTEN_AE,
            timeout_s=5,
        )
        with model, pytest.raises(ModelUnavailableError, match="rejected the association"):
            model.predict(studies["lung_nodule_ct"])


def test_latency_follows_the_configured_delay(studies) -> None:
    """First C-STORE to last result: with a 0.5 s delay never under 0.5 s, and grown by most
    of the delay against no delay. Runs alternate between the two delays so that a change
    of load on the machine hits both alike; the median of the paired differences is checked.
    Only lower bounds: how much slower a loaded machine makes it is a benchmark's business."""
    study = studies["lung_nodule_ct"]
    latencies: dict[float, list[float]] = {0.0: [], 0.5: []}
    with DicomNodeSimulator(FixedModel()) as simulator, adapter_for(simulator) as model:
        model.predict(study)  # warm-up: imports, first association
        for _ in range(4):
            for delay in (0.0, 0.5):
                simulator.delay_s = delay
                timing = model.predict(study).timing
                latencies[delay].append(timing["first_store_to_last_result_s"])
    assert min(latencies[0.5]) >= 0.5
    grew = statistics.median(b - a for a, b in zip(latencies[0.0], latencies[0.5], strict=True))
    assert grew >= 0.3, latencies


class TwoObjectNode(DicomNodeSimulator):
    """A node that answers in two associations: its SR, then 0.3 s later a key object
    selection flagging two images (prepared by the test)."""

    def __init__(self, model, kos_path: Path, **options) -> None:
        super().__init__(model, **options)
        self.kos_path = kos_path

    def _send(self, path, route) -> None:
        super()._send(path, route)
        threading.Event().wait(0.3)
        super()._send(self.kos_path, route)


def test_objects_sent_in_two_associations_make_one_prediction(studies, tmp_path: Path) -> None:
    import copy

    import highdicom as hd

    study = studies["lung_nodule_ct"]
    images = [copy.copy(ds) for ds in study.series[0].datasets(pixels=False)][:2]
    for ds in images:  # highdicom refuses ISO 2022 with an empty first value
        ds.SpecificCharacterSet = "ISO_IR 192"
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=images,
        content=hd.ko.KeyObjectSelection(
            document_title=hd.sr.CodedConcept("113000", "DCM", "Of Interest"),
            referenced_objects=images,
        ),
        series_instance_uid=hd.UID(),
        series_number=51,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )
    kos_path = tmp_path / "kos.dcm"
    kos.save_as(kos_path, enforce_file_format=True)
    with (
        TwoObjectNode(FixedModel(), kos_path) as simulator,
        adapter_for(simulator, settle_s=1.0) as model,  # the node's pause is 0.3 s
    ):
        prediction = model.predict(study)
    assert prediction.timing["n_result_objects"] == 2
    assert prediction.timing["first_store_to_last_result_s"] >= 0.3
    assert prediction.score == 0.75  # the SR's, not the KOS's 1.0
    assert [f.label for f in prediction.findings] == ["nodule", "of interest", "of interest"]
    assert [o["format"] for o in prediction.raw["objects"]] == ["dicom-sr", "dicom-kos"]


def test_results_are_kept_when_asked(studies, tmp_path: Path) -> None:
    study = studies["lung_nodule_ct"]
    with (
        DicomNodeSimulator(FixedModel()) as simulator,
        adapter_for(simulator, results_dir=tmp_path) as model,
    ):
        model.predict(study)
    (kept,) = (tmp_path / study.study_uid).iterdir()
    from gai_research.models.sr import read_sr

    assert read_sr(kept).score == 0.75


def test_platform_address_is_the_default_return_route(studies, tmp_path: Path) -> None:
    """Neither side told anything: the adapter listens as the platform AE on the platform
    port, the node sends there because that is the platform AE's configured address."""
    settings = settings_on_free_ports(tmp_path / "home")
    with DicomNodeSimulator(FixedModel(), settings=settings) as simulator:
        model = DicomNodeModel(
            INFO,
            host="127.0.0.1",
            port=simulator.port,
            ae_title=simulator.ae_title,
            settings=settings,
            settle_s=0.1,
            timeout_s=60,
        )
        with model:
            assert (model.listen_ae, model.listen_port) == (
                settings.platform_ae_title,
                settings.platform_dicom_port,
            )
            assert model.predict(studies["lung_nodule_ct"]).score == 0.75


def test_hemorrhage_baseline_served_from_the_registry_answers_as_it_does_directly(
    studies, tmp_path: Path
) -> None:
    """``serve`` (what ``python -m gai_research.models.simulators dicom`` runs) with a fixed
    return address, wrapping the registry's baseline-hemorrhage-ct."""
    from gai_research.models.baselines.brain_ct import create
    from gai_research.models.simulators.dicom_node import serve

    study = studies["stroke_ct"]
    direct = create().predict(study)
    settings = settings_on_free_ports(tmp_path / "home")
    (return_port,) = free_ports(1)
    ready: list[DicomNodeSimulator] = []
    stop = threading.Event()
    server = threading.Thread(
        target=serve,
        args=(
            "baseline-hemorrhage-ct",
            0,
            "GAI-SIM-SERVE",
            0.0,
            "127.0.0.1",
            return_port,
            LISTEN_AE,
        ),
        kwargs={"settings": settings, "on_ready": ready.append, "stop": stop},
    )
    server.start()
    try:
        for _ in range(600):
            if ready or not server.is_alive():
                break
            threading.Event().wait(0.05)
        (simulator,) = ready
        assert simulator.info.origin == "simulator"
        model = DicomNodeModel(
            INFO,
            host="127.0.0.1",
            port=simulator.port,
            ae_title="GAI-SIM-SERVE",
            listen_port=return_port,
            listen_ae=LISTEN_AE,
            settle_s=0.1,
            timeout_s=60,
        )
        with model:
            through = model.predict(study)
    finally:
        stop.set()
        server.join(30)
    assert through.score == pytest.approx(direct.score)
    assert through.volumes == direct.volumes
    assert len(through.findings) == len(direct.findings)
    for got, want in zip(through.findings, direct.findings, strict=True):
        assert (got.x_mm, got.y_mm, got.z_mm) == pytest.approx(
            (want.x_mm, want.y_mm, want.z_mm), abs=1e-3
        )
        assert (got.score, got.diameter_mm, got.label) == (want.score, want.diameter_mm, want.label)
    assert through.raw["objects"][0]["algorithm"]["name"] == "baseline-hemorrhage-ct"
