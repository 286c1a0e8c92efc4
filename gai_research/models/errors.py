"""Errors of the model layer; each names the model and, where known, the study."""

from __future__ import annotations

from gai_research.errors import GaiError


class ModelError(GaiError):
    """A model could not be found, configured or run, or its answer was unusable."""

    #: short machine-readable reason stored with a failed prediction
    reason = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        model: str | None = None,
        study_uid: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.model = model
        self.study_uid = study_uid


class ModelNotFoundError(ModelError):
    """No model of that name in the entry points or the platform's models file."""

    reason = "not-found"


class ModelConfigError(ModelError):
    """A models-file entry or adapter option that cannot be used."""

    reason = "config"


class ModelTimeoutError(ModelError):
    """The model (or the vendor service behind it) did not answer in time."""

    reason = "timeout"


class ModelUnavailableError(ModelError):
    """The vendor endpoint refused the connection, dropped it, or answered a server error."""

    reason = "unavailable"


class MalformedResultError(ModelError):
    """The model answered, but the answer does not parse into a prediction."""

    reason = "malformed"


class ModelInputError(ModelError):
    """The study handed over does not suit the model (wrong modality, no usable series)."""

    reason = "input"
