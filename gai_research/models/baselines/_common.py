"""What every baseline shares: its identity, its options, picking and reading series.

A baseline is a small class with a frozen ``Params`` dataclass (every knob of the
algorithm, with its default) and a ``_run(study)`` that returns a :class:`Prediction`.
:class:`Baseline` wraps ``_run`` with the checks and the timing every model owes the
runner, so the five algorithm modules hold only the algorithm.

Options given to ``create(**options)`` must name fields of ``Params``; anything else is
a :class:`~gai_research.models.errors.ModelConfigError`. A baseline run with non-default
options reports version ``1.0+<hash>``, so its stored predictions never mix with those of
the default algorithm (the runner keys predictions by model and version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from gai_research.models.errors import ModelConfigError, ModelError, ModelInputError
from gai_research.models.types import (
    ModelInfo,
    Origin,
    Prediction,
    Regulatory,
    SeriesHandle,
    StudyInput,
    TaskKind,
)

if TYPE_CHECKING:
    import numpy as np

    from gai_research.data.volume import Volume

__all__ = [
    "BASELINE_VENDOR",
    "BASELINE_VERSION",
    "RESEARCH_ONLY",
    "Baseline",
    "ProjectionImage",
    "each_image",
    "logistic",
    "parse_options",
    "pick_series",
    "projection_images",
    "read_volume",
]

T = TypeVar("T")

BASELINE_VENDOR = "gai-research (baseline)"
BASELINE_VERSION = "1.0"
RESEARCH_ONLY = Regulatory(
    status="research-only",
    intended_use="transparent reference algorithm for evaluation; not for clinical use",
)


def logistic(x: float) -> float:
    """1 / (1 + e^-x), without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def parse_options(params_type: type, options: Mapping[str, Any], model: str) -> tuple[Any, str]:
    """``params_type(**options)`` with each value converted to its field's type, and the
    version string that goes with it (``1.0``, or ``1.0+<hash>`` for non-default options)."""
    known = {f.name: f for f in dataclasses.fields(params_type)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ModelConfigError(
            f"{model}: unknown option(s) {', '.join(unknown)}",
            hint=f"the options of {model} are: {', '.join(sorted(known))}",
            model=model,
        )
    defaults = params_type()
    values: dict[str, Any] = {}
    for name, value in options.items():
        default = getattr(defaults, name)
        try:
            if isinstance(default, bool):
                converted = _as_bool(value)
            elif isinstance(default, tuple):
                converted = tuple(type(default[0])(v) for v in value)
            else:
                converted = type(default)(value)
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(
                f"{model}: option {name}={value!r} is not a {type(default).__name__}",
                hint=f"the default is {default!r}",
                model=model,
            ) from exc
        if isinstance(converted, float) and not math.isfinite(converted):
            raise ModelConfigError(
                f"{model}: option {name} must be a finite number",
                hint=f"the default is {default!r}",
                model=model,
            )
        values[name] = converted
    params = params_type(**values)
    changed = {k: v for k, v in dataclasses.asdict(params).items() if v != getattr(defaults, k)}
    if not changed:
        return params, BASELINE_VERSION
    digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
    return params, f"{BASELINE_VERSION}+{digest}"


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


class Baseline:
    """The parts of a baseline that are not its algorithm (see the module docstring).

    Subclasses set ``NAME``, ``TASK``, ``KIND``, ``MODALITIES``, ``DESCRIPTION``,
    ``Params`` (a frozen dataclass with a ``threshold`` field) and implement ``_run``.
    """

    NAME: str = ""
    TASK: str = ""
    KIND: TaskKind = TaskKind.CLASSIFICATION
    MODALITIES: tuple[str, ...] = ()
    DESCRIPTION: str = ""
    Params: type = object

    def __init__(self, **options: Any) -> None:
        self.params, version = parse_options(self.Params, options, self.NAME)
        self.info = ModelInfo(
            name=self.NAME,
            vendor=BASELINE_VENDOR,
            version=version,
            task=self.TASK,
            kind=self.KIND,
            origin=Origin.BASELINE,
            threshold=float(self.params.threshold),
            modalities=self.MODALITIES,
            regulatory=RESEARCH_ONLY,
            description=self.DESCRIPTION,
        )

    def predict(self, study: StudyInput) -> Prediction:
        """Run the algorithm on one study; a study it cannot read is a ModelInputError."""
        if not isinstance(study, StudyInput):
            raise ModelInputError(
                f"{self.NAME}: expected a StudyInput, got {type(study).__name__}",
                hint="build one with gai_research.models.inputs.study_input(...)",
                model=self.NAME,
            )
        if not study.series_of(*self.MODALITIES):
            have = ", ".join(study.modalities) or "no series"
            raise ModelInputError(
                f"{self.NAME}: the study has no {'/'.join(self.MODALITIES)} series ({have})",
                hint=f"{self.NAME} reads {'/'.join(self.MODALITIES)} studies of task {self.TASK}",
                model=self.NAME,
                study_uid=study.study_uid,
            )
        start = time.perf_counter()
        try:
            prediction = self._run(study)
        except ModelError as exc:
            exc.model = exc.model or self.NAME
            exc.study_uid = exc.study_uid or study.study_uid
            raise
        elapsed = time.perf_counter() - start
        return dataclasses.replace(prediction, timing={**prediction.timing, "compute_s": elapsed})

    def _run(self, study: StudyInput) -> Prediction:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release: a baseline holds no sockets, servers or processes."""

    def __enter__(self) -> Baseline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.name} {self.info.version}>"

    def input_error(self, message: str, hint: str) -> ModelInputError:
        """A ModelInputError naming this model (the study is added by :meth:`predict`)."""
        return ModelInputError(f"{self.NAME}: {message}", hint=hint, model=self.NAME)

    def raw(self, **facts: Any) -> dict[str, Any]:
        """The audit record kept as ``Prediction.raw``: algorithm, parameters and facts."""
        return {
            "algorithm": self.NAME,
            "version": self.info.version,
            "params": _jsonable(dataclasses.asdict(self.params)),
            **_jsonable(facts),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def pick_series(model: Baseline, study: StudyInput, *modalities: str) -> SeriesHandle:
    """The series of ``modalities`` with the most files (the thinnest reconstruction)."""
    candidates = study.series_of(*modalities)
    if not candidates:
        raise model.input_error(
            f"the study has no {'/'.join(modalities)} series",
            hint=f"{model.NAME} reads {'/'.join(modalities)} studies",
        )
    return max(candidates, key=lambda s: len(s.files))


def read_volume(model: Baseline, series: SeriesHandle, *, min_slices: int = 8) -> Volume:
    """The series as an LPS volume; unreadable or too thin series are input errors."""
    from gai_research.data.volume_errors import VolumeError

    try:
        volume = series.read(space="LPS")
    except VolumeError as exc:
        raise model.input_error(
            f"the {series.modality} series cannot be read as a volume ({type(exc).__name__})",
            hint=getattr(exc, "hint", None) or "pass the files of one axial image series",
        ) from exc
    if volume.array.ndim != 3 or volume.array.shape[2] < min_slices:
        raise model.input_error(
            f"the {series.modality} series has {volume.array.shape[-1]} slice(s), "
            f"fewer than the {min_slices} it needs",
            hint="pass a volumetric (cross-sectional) series, not a localizer",
        )
    return volume


@dataclass(frozen=True)
class ProjectionImage:
    """One projection radiograph: brighter = denser (MONOCHROME1 is inverted on read)."""

    sop_uid: str
    series_uid: str
    pixels: np.ndarray  # float32 (rows, cols)
    spacing_mm: tuple[float, float]  # (row, column) pixel size
    laterality: str | None
    view: str | None


def projection_images(model: Baseline, series: Sequence[SeriesHandle]) -> list[ProjectionImage]:
    """Every single-frame image of ``series``, with spacing, laterality and view."""
    import numpy as np
    from pydicom.errors import InvalidDicomError

    images = []
    for handle in series:
        try:
            datasets = list(handle.datasets())
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise model.input_error(
                f"a file of the {handle.modality} series cannot be read as DICOM "
                f"({type(exc).__name__})",
                hint="hand over readable DICOM files only",
            ) from exc
        for ds in datasets:
            try:
                pixels = ds.pixel_array.astype(np.float32)
            except Exception as exc:  # pydicom raises many kinds for undecodable pixels
                raise model.input_error(
                    f"an image of the {handle.modality} series cannot be decoded "
                    f"({type(exc).__name__})",
                    hint="install the decoder for its transfer syntax (pylibjpeg, gdcm)",
                ) from exc
            if pixels.ndim != 2:
                raise model.input_error(
                    f"an image of the {handle.modality} series has shape {pixels.shape}",
                    hint=f"{model.NAME} reads single-frame grayscale projection images",
                )
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            pixels = pixels * slope + intercept
            if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
                pixels = pixels.max() - pixels
            images.append(
                ProjectionImage(
                    sop_uid=str(ds.SOPInstanceUID),
                    series_uid=handle.series_uid,
                    pixels=pixels,
                    spacing_mm=_spacing(ds),
                    laterality=_laterality(ds, handle),
                    view=str(ds.get("ViewPosition", "") or "").upper() or None,
                )
            )
    if not images:
        raise model.input_error(
            "the study holds no projection image", hint=f"{model.NAME} needs at least one image"
        )
    return images


def each_image(
    images: Sequence[ProjectionImage], analyse: Callable[[ProjectionImage], T]
) -> tuple[list[tuple[ProjectionImage, T]], list[dict[str, str]]]:
    """``analyse`` every image; one it cannot read (a lateral chest view, a spot
    compression) is skipped with its reason, unless no image at all can be read."""
    done, skipped, first = [], [], None
    for image in images:
        try:
            done.append((image, analyse(image)))
        except ModelInputError as exc:
            first = first or exc
            skipped.append({"sop_uid": image.sop_uid, "reason": exc.message})
    if not done and first is not None:
        raise first
    return done, skipped


def _spacing(ds: Any) -> tuple[float, float]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            row, col = float(value[0]), float(value[1])
            if row > 0 and col > 0:
                return row, col
    return 0.0, 0.0  # unknown: callers fall back to their nominal detector pitch


def _laterality(ds: Any, handle: SeriesHandle) -> str | None:
    for value in (
        ds.get("ImageLaterality"),
        ds.get("Laterality"),
        handle.meta.get("laterality") if handle.meta else None,
    ):
        text = str(value or "").strip().upper()
        if text in ("L", "R", "B", "U"):
            return text
    return None
