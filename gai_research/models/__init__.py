"""Vendor and baseline models behind one contract.

``types`` is the contract (ModelInfo, StudyInput, Prediction, the Model protocol);
``registry`` finds models by name (entry points in group ``gai_research.models`` and the
platform's ``models.yaml``); ``adapters`` reach python, MONAI-bundle, HTTP and DICOM-node
models; ``baselines`` are our transparent reference algorithms (``baseline-*``);
``simulators`` behave like vendor products for tests and the demo; ``sr`` writes and
reads TID 1500 measurement reports; ``runner`` runs a model over a cohort.

Importing this package is cheap; import the submodule you need.
"""

from gai_research.models.errors import (
    MalformedResultError,
    ModelConfigError,
    ModelError,
    ModelInputError,
    ModelNotFoundError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from gai_research.models.types import (
    Finding,
    Mask,
    Model,
    ModelInfo,
    Origin,
    Prediction,
    Regulatory,
    SeriesHandle,
    StudyInput,
    TaskKind,
    VolumeMeasurement,
)

__all__ = [
    "Finding",
    "MalformedResultError",
    "Mask",
    "Model",
    "ModelConfigError",
    "ModelError",
    "ModelInfo",
    "ModelInputError",
    "ModelNotFoundError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "Origin",
    "Prediction",
    "Regulatory",
    "SeriesHandle",
    "StudyInput",
    "TaskKind",
    "VolumeMeasurement",
]
