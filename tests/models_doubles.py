"""A test-double model for the registry and runner tests (``tests.models_doubles:create``).

It is a real model object behind the contract: it reads nothing heavy, scores a study
from a hash of its UID, and misbehaves on the studies it is told to (raise a ModelError,
raise a plain exception, answer garbage, hang, write a mask), so every path of the
runner can be exercised on a real catalog. Its origin is ``simulator``: a test double.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gai_research.models import (
    Finding,
    Mask,
    ModelInfo,
    ModelUnavailableError,
    Origin,
    Prediction,
    StudyInput,
    TaskKind,
)
from gai_research.models.runner import LATENCY_TIMING_KEY

NAME = "test-double"


class DoubleModel:
    """Scores every study; fails, raises, hangs or measures itself on the chosen ones."""

    def __init__(
        self,
        *,
        name: str = NAME,
        version: str = "1",
        modalities: Iterable[str] = ("CT",),
        delay_s: float = 0.0,
        fail_on: Iterable[str] = (),
        raise_on: Iterable[str] = (),
        garbage_on: Iterable[str] = (),
        hang_on: Iterable[str] = (),
        vendor_timing_s: float | None = None,
        mask: bool = False,
    ) -> None:
        self.info = ModelInfo(
            name=name,
            vendor="gai-research tests (test double)",
            version=version,
            task="lung_nodule_ct",
            kind=TaskKind.DETECTION,
            origin=Origin.SIMULATOR,
            threshold=0.5,
            modalities=tuple(modalities),
            description="a test double: scores are a hash of the study UID",
        )
        self.delay_s = float(delay_s)
        self.fail_on = set(fail_on)
        self.raise_on = set(raise_on)
        self.garbage_on = set(garbage_on)
        self.hang_on = set(hang_on)
        self.vendor_timing_s = vendor_timing_s
        self.mask = mask
        self.calls: list[str] = []
        self.closed = False
        self._release = threading.Event()
        self._lock = threading.Lock()

    def predict(self, study: StudyInput) -> Prediction:
        uid = study.study_uid
        with self._lock:
            self.calls.append(uid)
        if uid in self.hang_on:
            self._release.wait(60)
        if self.delay_s:
            time.sleep(self.delay_s)
        if uid in self.fail_on:
            raise ModelUnavailableError(f"the double refuses study {uid}", model=self.info.name)
        if uid in self.raise_on:
            raise RuntimeError(f"the double crashed on {uid}")
        if uid in self.garbage_on:
            return {"study_uid": uid, "score": "high"}  # type: ignore[return-value]
        score = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 2**32
        first = study.series[0]
        masks = ()
        if self.mask:
            folder = Path(tempfile.mkdtemp(prefix="double-mask-"))
            path = folder / f"{uid}.nii.gz"  # a vendor may name files by UID; the store must not
            path.write_bytes(b"not really a NIfTI, but a file to keep")
            masks = (Mask(name="lesion", series_uid=first.series_uid, path=str(path)),)
        return Prediction(
            study_uid=uid,
            score=score,
            findings=(Finding(score=score, x_mm=1.0, y_mm=2.0, z_mm=3.0, label="nodule"),),
            masks=masks,
            raw={"double": True, "n_files": len(study.files)},
            timing={LATENCY_TIMING_KEY: self.vendor_timing_s} if self.vendor_timing_s else {},
        )

    def release(self) -> None:
        """Let hung calls return."""
        self._release.set()

    def close(self) -> None:
        self.closed = True
        self.release()


def create(**options: Any) -> DoubleModel:
    """The factory a models file names as ``tests.models_doubles:create``."""
    return DoubleModel(**options)


class NotAModel:
    info = "not a ModelInfo"


def create_not_a_model(**options: Any) -> NotAModel:
    return NotAModel()
