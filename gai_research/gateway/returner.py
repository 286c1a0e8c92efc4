"""Storing a result back into the PACS the study came from.

The result is a DICOM Comprehensive 3D SR (TID 1500) written by
:func:`gai_research.models.sr.write_sr` from the **original** images (so it carries
the original patient and study and references the original series and SOP
instances) and the prediction mapped back to original UIDs. Its Series and SOP
Instance UIDs are derived from (study key, model): storing it again after a crash or
a retry replaces the same object in the PACS instead of adding a second. The SR is
kept beside the study in the restricted spool until it is stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from gai_research.gateway.errors import ReturnError
from gai_research.gateway.identity import redact, result_uid
from gai_research.gateway.jobs import GatewayDB, Job

__all__ = ["Returner", "build_result_sr"]

log = logging.getLogger(__name__)
MANUFACTURER = "gai-research gateway"


def build_result_sr(job: Job, study_datasets: list, info, secret: bytes, series_number: int):
    """The SR of a job's prediction over the original datasets, with deterministic UIDs."""
    from gai_research.models.sr import write_sr
    from gai_research.models.types import Prediction

    prediction = Prediction.from_json(job.prediction or "{}")
    sr = write_sr(
        prediction, info, study_datasets, series_number=series_number, manufacturer=MANUFACTURER
    )
    series_uid = result_uid(secret, job.study_key, job.model, "series")
    sop_uid = result_uid(secret, job.study_key, job.model, "instance")
    sr.SeriesInstanceUID = series_uid
    sr.SOPInstanceUID = sop_uid
    if getattr(sr, "file_meta", None) is not None:
        sr.file_meta.MediaStorageSOPInstanceUID = sop_uid
    return sr


class Returner:
    """Writes and stores results; a failed store is retried ``retries`` times, then failed."""

    def __init__(
        self,
        db: GatewayDB,
        spool: Path,
        secret: bytes,
        *,
        settings,
        ae_title: str,
        retries: int,
        backoff_s: float,
        series_number: int = 900,
    ) -> None:
        self.db = db
        self.spool = Path(spool)
        self.secret = secret
        self.settings = settings
        self.ae_title = ae_title
        self.retries = retries
        self.backoff_s = backoff_s
        self.series_number = series_number
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    def _claim(self, job_id: int) -> bool:
        with self._lock:
            if job_id in self._busy:
                return False
            self._busy.add(job_id)
            return True

    def _release(self, job_id: int) -> None:
        with self._lock:
            self._busy.discard(job_id)

    def return_due(self) -> int:
        """Store back every result that is waiting (after a restart or a failed store)."""
        done = 0
        for job in self.db.due_returns():
            done += int(self.return_job(job))
        return done

    def return_job(self, job: Job) -> bool:
        """Write (once) and store the job's SR; True when it is in the PACS."""
        if not self._claim(job.id):
            return False
        try:
            job = self.db.job(job.id)
            if job.state != "result":
                return False
            try:
                path = self._sr_file(job)
                self._store(job, path)
            except Exception as exc:
                self._failed(job, exc)
                return False
            self.db.set_returned(job, result_uid(self.secret, job.study_key, job.model, "instance"))
            return True
        finally:
            self._release(job.id)

    def _sr_file(self, job: Job) -> Path:
        path = self.spool / job.study_key / "results" / f"{job.model}.sr.dcm"
        if path.is_file():  # written by an earlier try: store the very same object
            return path
        from pydicom import dcmread

        paths = self.db.instance_paths(job.study_key, job.series_uids)
        datasets = [dcmread(p, stop_before_pixels=True) for p in paths]  # headers suffice
        info = self._info(job)
        sr = build_result_sr(job, datasets, info, self.secret, self.series_number)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(path.name + ".tmp")
        sr.save_as(temp, enforce_file_format=True)
        temp.replace(path)
        return path

    def _info(self, job: Job):
        from gai_research.models.types import ModelInfo

        if not job.model_info:
            raise ReturnError("the job has a result but no model description")
        return ModelInfo.from_dict(json.loads(job.model_info))

    def _store(self, job: Job, path: Path) -> None:
        from gai_research.dicom.net import DicomNode, store_files
        from gai_research.gateway.forward import forward_dir

        pacs = self.settings.site(job.site).pacs
        node = DicomNode(pacs.ae_title, pacs.host, pacs.dicom_port, label=f"{job.site} PACS")
        # the vendor's own objects (SEG, KOS, secondary captures), rewritten by the dispatcher
        vendor = sorted(forward_dir(self.spool, job.study_key, job.model).glob("*.dcm"))
        result = store_files(node, [path, *vendor], self.ae_title, retries=0)
        if result.sent != 1 + len(vendor):
            reason = next(iter(result.reasons), "not stored")
            raise ReturnError(f"{node} did not take the result: {reason}")

    def _failed(self, job: Job, exc: Exception) -> None:
        message = redact(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        tries = job.return_attempts + 1
        if tries <= self.retries:
            wait = self.backoff_s * (2 ** (tries - 1))
            self.db.return_failed(job, "pacs-store", message, not_before=time.time() + wait)
            log.warning(
                "study %s: storing %s's result failed (%s); retry in %.1f s",
                job.study_key,
                job.model,
                message,
                wait,
            )
        else:
            self.db.return_failed(job, "pacs-store", message, not_before=None)
            log.error(
                "study %s: %s's result could not be stored: %s", job.study_key, job.model, message
            )


def warm_up() -> None:
    """Write one SR from an in-memory sample header, and throw it away.

    highdicom and pydicom's SR code dictionaries set themselves up on first use: 0.3 s
    for one SR on a quiet machine, seconds when the first ten studies all reach that
    point at once. A gateway pays it at start instead of on the first studies' clocks.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    from gai_research.models.sr import write_sr
    from gai_research.models.types import Finding, ModelInfo, Prediction

    header = Dataset()
    header.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray for presentation
    header.SOPInstanceUID = generate_uid()
    header.StudyInstanceUID = generate_uid()
    header.SeriesInstanceUID = generate_uid()
    header.Modality = "DX"
    header.PatientName, header.PatientID, header.PatientSex = "WARM^UP", "WARMUP", "O"
    header.PatientBirthDate = header.StudyDate = header.StudyTime = ""
    header.AccessionNumber = header.StudyID = header.ReferringPhysicianName = ""
    header.Rows = header.Columns = 8
    info = ModelInfo(
        name="gateway-warm-up",
        vendor="gai-research",
        version="0",
        task="lung_nodule_dx",
        kind="classification",
        origin="baseline",
    )
    finding = Finding(score=0.5, sop_uid=header.SOPInstanceUID, row_px=1.0, col_px=1.0)
    write_sr(Prediction(header.StudyInstanceUID, score=0.5, findings=(finding,)), info, [header])
