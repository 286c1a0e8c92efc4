"""Test doubles and helpers for the gateway tests and benchmark.

:class:`PlacingModel` is a real model behind the contract (origin ``simulator``): it
reads the headers of the study it is given and answers one finding placed on a real
image of it (the middle slice's position for CT/MR, the centre pixel of the first
image for DX/MG), so the result SR written from it references real instances. It can
be told to wait, hang, or refuse (as a vendor that is down) and records the study UIDs
it saw, so tests can check what a vendor outside the hospital received.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

from gai_research.models.errors import ModelUnavailableError
from gai_research.models.types import Finding, ModelInfo, Origin, Prediction, StudyInput, TaskKind

TASKS = {
    "CT": ("lung_nodule_ct", TaskKind.DETECTION),
    "MR": ("dementia_mr", TaskKind.VOLUMETRY),
    "DX": ("lung_nodule_dx", TaskKind.CLASSIFICATION),
    "MG": ("breast_mg", TaskKind.CLASSIFICATION),
}


class PlacingModel:
    """A test double that places one finding on a real image of the study it gets."""

    def __init__(
        self,
        name: str = "test-placer",
        *,
        task: str = "lung_nodule_ct",
        kind: TaskKind = TaskKind.DETECTION,
        delay_s: float = 0.0,
        hang: bool = False,
        down: bool = False,
    ) -> None:
        self.info = ModelInfo(
            name=name,
            vendor="gai-research tests (test double)",
            version="1.0-test",
            task=task,
            kind=kind,
            origin=Origin.SIMULATOR,
            threshold=0.5,
            description="test double: one finding on the middle image",
        )
        self.delay_s = delay_s
        self.hang = hang
        self.down = down
        self.seen: list[StudyInput] = []
        self.headers: list = []  # the first image header of each study, as received
        self.closed = False
        self._release = threading.Event()
        self._lock = threading.Lock()

    def predict(self, study: StudyInput) -> Prediction:
        with self._lock:
            self.seen.append(study)
        if self.down:
            raise ModelUnavailableError("connection refused", model=self.info.name)
        if self.hang:
            self._release.wait(120)
        if self.delay_s:
            time.sleep(self.delay_s)
        series = study.series[0]
        datasets = list(series.datasets(pixels=False))
        with self._lock:
            self.headers.append(datasets[0])
        if series.modality in ("DX", "MG", "CR"):
            first = datasets[0]
            finding = Finding(
                score=0.9,
                label="finding",
                series_uid=series.series_uid,
                sop_uid=str(first.SOPInstanceUID),
                row_px=float(first.Rows) / 2,
                col_px=float(first.Columns) / 2,
            )
        else:
            ordered = sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))
            middle = ordered[len(ordered) // 2]
            x, y, z = (float(v) for v in middle.ImagePositionPatient)
            spacing = [float(v) for v in middle.PixelSpacing]
            finding = Finding(
                score=0.9,
                label="nodule",
                series_uid=series.series_uid,
                x_mm=x + spacing[1] * int(middle.Columns) / 2,
                y_mm=y + spacing[0] * int(middle.Rows) / 2,
                z_mm=z,
                diameter_mm=6.0,
            )
        return Prediction(study_uid=study.study_uid, score=0.9, findings=(finding,))

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.closed = True
        self._release.set()


class Factory:
    """A model factory for :class:`~gai_research.gateway.Gateway`: doubles by name."""

    def __init__(self, **models: PlacingModel) -> None:
        self.models = {name.replace("_", "-"): m for name, m in models.items()}
        self.made: list[str] = []

    def __call__(self, name: str, policy):
        from gai_research.models.errors import ModelNotFoundError

        self.made.append(name)
        if name not in self.models:
            raise ModelNotFoundError(f"no model called {name!r}", model=name)
        return self.models[name]


def study_dirs(cohort: Path, site: str, modality: str | None = None) -> list[Path]:
    """The study folders of one site in a synthetic cohort (optionally of one modality)."""
    import pydicom

    out = []
    for folder in sorted((cohort / site).iterdir()):
        first = next(folder.rglob("*.dcm"))
        if modality is None or pydicom.dcmread(first, stop_before_pixels=True).Modality == modality:
            out.append(folder)
    return out


def study_uid_of(folder: Path) -> str:
    import pydicom

    return str(
        pydicom.dcmread(next(folder.rglob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    )


def files_of(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.dcm"))


def orthanc_results(settings, site: str, study_uid: str) -> list[dict]:
    """The SR instances a site's Orthanc holds for a study (their main tags)."""
    from gai_research.gateway.pacs_link import _base, _call

    found = _call(
        "POST",
        f"{_base(settings, site)}/tools/find",
        {
            "Level": "Instance",
            "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"},
            "Expand": True,
        },
    )
    return list(found or [])


def orthanc_file(settings, site: str, orthanc_id: str):
    """One instance of a site's Orthanc as a pydicom dataset."""
    import io
    import urllib.request

    import pydicom

    from gai_research.gateway.pacs_link import _base

    with urllib.request.urlopen(f"{_base(settings, site)}/instances/{orthanc_id}/file") as answer:
        return pydicom.dcmread(io.BytesIO(answer.read()))


def wait_for(predicate, timeout: float = 60.0, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


def referenced_sop_uids(sr) -> set[str]:
    """Every SOP Instance UID an SR references in its evidence sequences."""
    out: set[str] = set()
    for name in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in sr.get(name, []):
            for series in study.get("ReferencedSeriesSequence", []):
                for item in series.get("ReferencedSOPSequence", []):
                    out.add(str(item.ReferencedSOPInstanceUID))
    return out


def names(items: Iterable) -> list[str]:
    return [getattr(i, "name", str(i)) for i in items]


def gateway_cohort(tmp_path_factory) -> Path:
    """A three-patient synthetic cohort shared by the gateway test modules of a session."""
    from gai_research.synth.cohort import ensure_cohort

    out = tmp_path_factory.getbasetemp() / "gateway-cohort"
    ensure_cohort(out, patients=3, seed=5)
    return out


def settings_env(settings) -> dict[str, str]:
    """GAI_* variables that reproduce ``settings`` (home, ports) in a child process."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_")}
    env["GAI_HOME"] = str(settings.home)
    env["GAI_PLATFORM_DICOM_PORT"] = str(settings.platform_dicom_port)
    for site, cfg in settings.sites.items():
        env[f"GAI_SITES__{site.value}__PACS__DICOM_PORT"] = str(cfg.pacs.dicom_port)
        env[f"GAI_SITES__{site.value}__PACS__HTTP_PORT"] = str(cfg.pacs.http_port)
    return env


def serve(argv: list[str] | None = None) -> int:
    """A gateway in a process of its own, with :class:`PlacingModel` doubles (the restart
    tests kill it with SIGKILL). Prints ``ready <port>`` once it listens."""
    import argparse
    import json
    import signal

    from gai_research.config import load_settings
    from gai_research.gateway.rules import parse_rules
    from gai_research.gateway.service import Gateway

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rules", required=True, help="rules as JSON")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument(
        "--registry",
        action="store_true",
        help="models from HOME/models.yaml, workers in a second process (the default mode)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    rules = parse_rules(json.loads(args.rules))
    factory = None
    if not args.registry:
        factory = Factory(**{n: PlacingModel(n, delay_s=args.delay) for n in rules.model_names})
    gateway = Gateway(settings, rules=rules, model_factory=factory, port=args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"ready {gateway.port}", flush=True)
    try:
        stop.wait()
    finally:
        gateway.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve())
