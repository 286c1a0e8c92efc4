"""The gateway killed (SIGKILL) at the worst moments and restarted: nothing lost, nothing twice.

The gateway runs in a process of its own (``python -m tests.gateway_support``) with
test-double models, against real Orthanc site PACS; the site's images are sent with
pynetdicom as the site's AE title. Three moments: in the middle of receiving a study,
while a model has the study, and after the answer but before the result is in the PACS
(the PACS was unreachable). After the restart each study has one job, its result is
in the PACS exactly once, and the history says what happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gai_research.config import Settings
from tests.conftest import free_ports
from tests.gateway_support import (
    files_of,
    gateway_cohort,
    orthanc_results,
    settings_env,
    study_dirs,
    study_uid_of,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
RULES = {
    "version": 1,
    "defaults": {"retries": 0, "timeout_s": 60},
    "rules": [
        {"name": "ct", "match": {"modality": "CT"}, "models": ["ct-model"]},
        {"name": "dx", "match": {"modality": "DX"}, "models": ["dx-model"]},
    ],
}


class GatewayProcess:
    """``tests.gateway_support`` serving on a fixed port; killed and restarted by the tests."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self, *, delay: float = 0.0, registry: bool = False, **env: str) -> GatewayProcess:
        environment = settings_env(self.settings) | {"GAI_GATEWAY__QUIET_PERIOD_S": "60"} | env
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.gateway_support",
                "--port",
                str(self.port),
                "--rules",
                json.dumps(RULES),
                "--delay",
                str(delay),
                *(["--registry"] if registry else []),
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=open(self.settings.home / "gateway-test.log", "a"),  # noqa: SIM115
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.startswith("ready"), f"gateway did not start: {line!r}"
        return self

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gateway_cohort(tmp_path_factory)


@pytest.fixture
def gateway(site_pacs: Settings):
    from gai_research.gateway.pacs_link import link_site_pacs

    (port,) = free_ports(1)
    link_site_pacs(site_pacs, ae_title="GAI_GATEWAY", port=port)  # results may come back
    process = GatewayProcess(site_pacs, port)
    yield process
    process.stop()


def _db(settings: Settings):
    from gai_research.gateway.service import open_db

    return open_db(settings)


def _node(port: int):
    from gai_research.dicom.net import DicomNode

    return DicomNode("GAI_GATEWAY", "127.0.0.1", port, label="gateway")


def _job_of(settings: Settings, study_uid: str):
    db = _db(settings)
    try:
        study = db.study_by_uid(study_uid)
        if study is None:
            return None, None, []
        jobs = db.jobs(study_key=study.key)
        return study, (jobs[0] if len(jobs) == 1 else jobs), db.history(study.key)
    finally:
        db.close()


def _returned(settings: Settings, study_uid: str) -> bool:
    _, job, _ = _job_of(settings, study_uid)
    return job is not None and not isinstance(job, list) and job.state == "returned"


def test_killed_while_receiving_a_study(gateway: GatewayProcess, cohort: Path) -> None:
    from pydicom import dcmread

    from gai_research.dicom.net import _contexts_for, associate, store_files

    settings = gateway.settings
    folder = study_dirs(cohort, "SUWON", "CT")[0]
    files, uid = files_of(folder), study_uid_of(folder)
    gateway.start()
    contexts, _ = _contexts_for(files)
    assoc = associate(_node(gateway.port), "SUWON_PACS", contexts)
    for path in files[: len(files) // 2]:
        assert assoc.send_c_store(dcmread(path)).Status == 0
    gateway.kill()  # mid-study: the association dies with the process
    assoc.abort()
    study, job, _ = _job_of(settings, uid)
    assert (study.state, study.n_instances, job) == ("received", len(files) // 2, [])

    gateway.start()
    assert store_files(_node(gateway.port), files, "SUWON_PACS").failed == 0  # the PACS resends
    assert wait_for(lambda: _returned(settings, uid), timeout=60)
    study, job, _ = _job_of(settings, uid)
    assert study.n_instances == len(files)  # nothing lost, duplicates counted once
    assert job.attempts == 1
    assert len(orthanc_results(settings, "SUWON", uid)) == 1


def test_killed_while_a_model_has_the_study(gateway: GatewayProcess, cohort: Path) -> None:
    from gai_research.dicom.net import store_files

    settings = gateway.settings
    folder = study_dirs(cohort, "ANSEONG", "DX")[0]
    uid = study_uid_of(folder)
    gateway.start(delay=30.0)
    assert store_files(_node(gateway.port), files_of(folder), "ANSEONG_PACS").failed == 0

    def dispatched() -> bool:
        _, job, _ = _job_of(settings, uid)
        return job is not None and not isinstance(job, list) and job.state == "dispatched"

    assert wait_for(dispatched, timeout=30)
    gateway.kill()

    gateway.start()
    assert wait_for(lambda: _returned(settings, uid), timeout=60)
    _, job, history = _job_of(settings, uid)
    assert job.attempts == 2  # the lost answer was asked for again, once
    assert any(h["detail"] == "re-queued after a restart" for h in history)
    assert len(orthanc_results(settings, "ANSEONG", uid)) == 1


def test_killed_with_a_result_not_yet_in_the_pacs(gateway: GatewayProcess, cohort: Path) -> None:
    from gai_research.dicom.net import store_files

    settings = gateway.settings
    folder = study_dirs(cohort, "ICHEON", "DX")[0]
    uid = study_uid_of(folder)
    (nobody,) = free_ports(1)
    gateway.start(GAI_SITES__ICHEON__PACS__DICOM_PORT=str(nobody))  # the PACS is unreachable
    assert store_files(_node(gateway.port), files_of(folder), "ICHEON_PACS").failed == 0

    def waiting() -> bool:
        _, job, _ = _job_of(settings, uid)
        return job is not None and not isinstance(job, list) and job.return_attempts >= 1

    assert wait_for(waiting, timeout=30)
    _, job, _ = _job_of(settings, uid)
    assert (job.state, job.reason) == ("result", "pacs-store")
    gateway.kill()

    gateway.start()
    assert wait_for(lambda: _returned(settings, uid), timeout=60)
    _, job, _ = _job_of(settings, uid)
    assert job.attempts == 1  # the model was asked once
    assert len(orthanc_results(settings, "ICHEON", uid)) == 1


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_killed_with_its_worker_process(gateway: GatewayProcess, cohort: Path) -> None:
    """The default mode: models from the registry, run by a second process that must not
    outlive the gateway (it would finish jobs the next gateway sends again)."""
    from gai_research.dicom.net import store_files
    from gai_research.models.simulators.http import HttpVendorSimulator
    from tests.gateway_support import PlacingModel

    settings = gateway.settings
    folder = study_dirs(cohort, "SUWON", "DX")[0]
    uid = study_uid_of(folder)
    model = PlacingModel("dx-model", task="lung_nodule_dx")
    with HttpVendorSimulator(model, delay_s=60.0) as simulator:
        entry = {
            "name": "dx-model",
            "adapter": "http",
            "vendor": "simulated vendor (test double)",
            "version": "1.0-sim",
            "task": "lung_nodule_dx",
            "kind": "classification",
            "origin": "simulator",
            "options": {"url": simulator.url, "timeout_s": 120, "retries": 0},
        }
        ct = entry | {"name": "ct-model", "task": "lung_nodule_ct"}
        (settings.home / "models.yaml").write_text(json.dumps({"models": [entry, ct]}))
        gateway.start(registry=True)
        workers = _children(gateway.process.pid)
        assert workers, "the gateway runs its models in a child process"
        assert store_files(_node(gateway.port), files_of(folder), "SUWON_PACS").failed == 0

        def dispatched() -> bool:
            _, job, _ = _job_of(settings, uid)
            return job is not None and not isinstance(job, list) and job.state == "dispatched"

        assert wait_for(dispatched, timeout=30)
        time.sleep(1.0)  # the upload is done: the vendor is "thinking" (delay_s)
        gateway.kill()
        assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in workers), 10)

        simulator.delay_s = 0.0
        gateway.start(registry=True)
        assert wait_for(lambda: _returned(settings, uid), timeout=60)
    _, job, history = _job_of(settings, uid)
    assert job.attempts == 2
    assert any(h["detail"] == "re-queued after a restart" for h in history)
    assert len(orthanc_results(settings, "SUWON", uid)) == 1
