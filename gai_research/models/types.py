"""The model contract: what a model is told about itself, what it gets, what it returns.

A model turns one study (pseudonymized series handles) into a :class:`Prediction`.
Every adapter (python, monai-bundle, http, dicom) implements the :class:`Model`
protocol, so the runner, the evaluation notebooks, the SR writer and the gateway
treat them all the same way.

Coordinates: findings in volumes (CT, MR) are **DICOM patient coordinates (LPS, mm)**,
the frame that ImagePositionPatient and the catalog's nodule labels use. Findings on
projection images (DX, MG) are pixel positions (0-based row/column) on a named image
(``sop_uid``). Nothing here imports numpy, pydicom or torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gai_research.models.errors import MalformedResultError

if TYPE_CHECKING:
    from pydicom import Dataset

    from gai_research.data.volume import Volume

__all__ = [
    "Finding",
    "Mask",
    "Model",
    "ModelInfo",
    "Origin",
    "Prediction",
    "Regulatory",
    "SeriesHandle",
    "StudyInput",
    "TaskKind",
    "VolumeMeasurement",
]


class TaskKind(StrEnum):
    """What a model's output is evaluated as (one notebook per kind)."""

    CLASSIFICATION = "classification"  # study-level score vs a 0/1 reference
    DETECTION = "detection"  # findings with positions (FROC) plus a study score
    VOLUMETRY = "volumetry"  # volumes (mL) vs reference volumes; masks optional
    TRIAGE = "triage"  # study-level urgent/not-urgent flag with a score; latency matters


class Origin(StrEnum):
    """Where a model comes from; reports label baselines and simulators as such."""

    VENDOR = "vendor"  # a consortium vendor's product, reached through an adapter
    BASELINE = "baseline"  # our transparent reference algorithm (name starts with baseline-)
    SIMULATOR = "simulator"  # a test double that behaves like a vendor product


@dataclass(frozen=True)
class Regulatory:
    """Regulatory status of a model as declared by whoever registered it."""

    status: str = "research-only"  # e.g. "MFDS-approved", "MFDS-pending", "research-only"
    approval_number: str | None = None  # MFDS approval (허가) number
    device_class: str | None = None  # MFDS class 1-4
    intended_use: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """Who a model is; part of every stored prediction's key and every MLflow run."""

    name: str  # registry name, e.g. "baseline-lung-nodule-ct"
    vendor: str  # e.g. "gai-research (baseline)", or the vendor's company name
    version: str
    task: str  # disease task as in the catalog: lung_nodule_ct, lung_nodule_dx, breast_mg, dementia_mr, stroke_ct
    kind: TaskKind
    origin: Origin = Origin.VENDOR
    threshold: float | None = None  # operating threshold on Prediction.score
    modalities: tuple[str, ...] = ()  # modalities it accepts, e.g. ("CT",)
    regulatory: Regulatory = field(default_factory=Regulatory)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TaskKind(self.kind))
        object.__setattr__(self, "origin", Origin(self.origin))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if isinstance(self.regulatory, Mapping):
            object.__setattr__(self, "regulatory", Regulatory(**self.regulatory))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = str(self.kind)
        out["origin"] = str(self.origin)
        out["modalities"] = list(self.modalities)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class SeriesHandle:
    """One pseudonymized series handed to a model: its files plus catalog facts."""

    series_uid: str
    study_uid: str
    modality: str
    files: tuple[Path, ...]
    meta: Mapping[str, Any] = field(
        default_factory=dict
    )  # body_part, description, laterality, view_position, ...

    def read(self, *, space: str = "LPS") -> Volume:
        """The series as a numpy :class:`~gai_research.data.volume.Volume` (no torch)."""
        from gai_research.data.volume import read_files

        return read_files(list(self.files), space=space, series_uid=self.series_uid)

    def datasets(self, *, pixels: bool = True) -> Iterator[Dataset]:
        """The series' DICOM datasets, one per file, in file order."""
        import pydicom

        for path in self.files:
            yield pydicom.dcmread(path, stop_before_pixels=not pixels)


@dataclass(frozen=True)
class StudyInput:
    """One study as a model receives it (pseudonymized UIDs only)."""

    study_uid: str
    series: tuple[SeriesHandle, ...]
    site: str | None = None
    patient_pseudonym: str | None = None
    snapshot: str | None = None  # catalog snapshot id it came from, if any

    @property
    def files(self) -> list[Path]:
        return [path for s in self.series for path in s.files]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({s.modality for s in self.series}))

    def series_of(self, *modalities: str) -> list[SeriesHandle]:
        wanted = {m.upper() for m in modalities}
        return [s for s in self.series if s.modality.upper() in wanted]


@dataclass(frozen=True)
class Finding:
    """One lesion a model reports.

    Volume images: ``x_mm, y_mm, z_mm`` in DICOM patient coordinates (LPS).
    Projection images: ``sop_uid`` plus ``row_px, col_px`` (0-based).
    """

    score: float
    x_mm: float | None = None
    y_mm: float | None = None
    z_mm: float | None = None
    diameter_mm: float | None = None
    label: str = ""  # e.g. "nodule", "mass", "hemorrhage"
    series_uid: str | None = None
    sop_uid: str | None = None
    row_px: float | None = None
    col_px: float | None = None
    laterality: str | None = None
    view: str | None = None

    @property
    def has_world_position(self) -> bool:
        return None not in (self.x_mm, self.y_mm, self.z_mm)


@dataclass(frozen=True)
class VolumeMeasurement:
    """A measured structure volume, e.g. ``hippocampus_l`` or ``hemorrhage``."""

    name: str
    volume_ml: float
    series_uid: str | None = None


@dataclass(frozen=True)
class Mask:
    """A segmentation a model produced, kept as a file beside the prediction (NIfTI or
    DICOM SEG); ``path`` is relative to the predictions folder when stored."""

    name: str
    series_uid: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class Prediction:
    """What a model says about one study.

    ``score``: the study-level probability/score of the task's positive class (None when a
    model only measures volumes); ``scores``: other named study-level scores;
    ``raw``: the vendor's own output, JSON-able, kept for audit; ``timing``: seconds the
    adapter measured itself (e.g. ``first_store_to_last_result_s`` for DICOM nodes).
    """

    study_uid: str
    score: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    volumes: tuple[VolumeMeasurement, ...] = ()
    masks: tuple[Mask, ...] = ()
    raw: Any = None
    timing: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.score is not None:
            score = float(self.score)
            if not math.isfinite(score):
                raise MalformedResultError(
                    f"study {self.study_uid}: score {self.score!r} is not a finite number"
                )
            object.__setattr__(self, "score", score)
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "volumes", tuple(self.volumes))
        object.__setattr__(self, "masks", tuple(self.masks))

    def positive(self, threshold: float | None) -> bool | None:
        """The study-level call at ``threshold`` (None without a score or threshold)."""
        if self.score is None or threshold is None:
            return None
        return self.score >= threshold

    def volume(self, name: str) -> float | None:
        for v in self.volumes:
            if v.name == name:
                return v.volume_ml
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "score": self.score,
            "scores": dict(self.scores),
            "findings": [asdict(f) for f in self.findings],
            "volumes": [asdict(v) for v in self.volumes],
            "masks": [asdict(m) for m in self.masks],
            "raw": self.raw,
            "timing": dict(self.timing),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prediction:
        """Build from a dict (e.g. a vendor's JSON); a wrong shape is a MalformedResultError."""
        try:
            return cls(
                study_uid=str(data["study_uid"]),
                score=data.get("score"),
                scores={str(k): float(v) for k, v in (data.get("scores") or {}).items()},
                findings=tuple(_build(Finding, f) for f in data.get("findings") or ()),
                volumes=tuple(_build(VolumeMeasurement, v) for v in data.get("volumes") or ()),
                masks=tuple(_build(Mask, m) for m in data.get("masks") or ()),
                raw=data.get("raw"),
                timing={str(k): float(v) for k, v in (data.get("timing") or {}).items()},
            )
        except MalformedResultError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResultError(
                f"prediction does not have the expected shape: {type(exc).__name__}: {exc}",
                hint="see gai_research.models.types.Prediction for the fields",
            ) from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Prediction:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MalformedResultError(f"prediction is not valid JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise MalformedResultError("prediction JSON must be an object")
        return cls.from_dict(data)


def _build(cls: type, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} must be an object, not {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    values = dict(data)
    for key in ("score", "x_mm", "y_mm", "z_mm", "diameter_mm", "row_px", "col_px", "volume_ml"):
        if values.get(key) is not None:
            number = float(values[key])
            if not math.isfinite(number):
                raise ValueError(f"{cls.__name__}.{key} is not finite")
            values[key] = number
    return cls(**values)


@runtime_checkable
class Model(Protocol):
    """Anything that turns a study into a prediction.

    ``predict`` raises a :class:`~gai_research.models.errors.ModelError` subclass for a
    per-study failure (time-out, malformed answer, vendor down); the runner records it
    against the study and goes on. ``close`` releases sockets, servers, processes.
    """

    info: ModelInfo

    def predict(self, study: StudyInput) -> Prediction: ...

    def close(self) -> None: ...


def iter_findings(predictions: Iterable[Prediction]) -> Iterator[tuple[str, Finding]]:
    """(study_uid, finding) pairs over many predictions."""
    for p in predictions:
        for f in p.findings:
            yield p.study_uid, f
