"""The ``python`` adapter: a model that is a Python callable in this process.

The callable (an entry point of group ``gai_research.models``, or ``module:callable``
in the models file) is a factory ``create(**options) -> Model``. :class:`PythonModel`
wraps what it returns so that every python model keeps the contract the runner relies
on: ``predict`` returns a :class:`Prediction` for the study it was given, or raises.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from gai_research.models.errors import MalformedResultError, ModelConfigError
from gai_research.models.types import ModelInfo, Prediction, StudyInput

__all__ = ["PythonModel", "describe", "resolve"]

_HINT = "give 'module:callable' of an installed module (the callable returns a Model)"


def resolve(target: str) -> Callable[..., Any]:
    """The object ``module:attr.attr`` names (a model factory)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ModelConfigError(f"{target!r} is not of the form 'module:callable'", hint=_HINT)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelConfigError(f"cannot import {module_name!r}: {exc}", hint=_HINT) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModelConfigError(f"{module_name} has no {attr!r}", hint=_HINT) from None
    if not callable(obj):
        raise ModelConfigError(f"{target} is not callable", hint=_HINT)
    return obj


def _with(info: ModelInfo, name: str | None, overrides: Mapping[str, Any] | None) -> ModelInfo:
    changes = dict(overrides or {})
    if name is not None:
        changes["name"] = name
    return dataclasses.replace(info, **changes) if changes else info


def _check_model(obj: Any, target: str) -> None:
    info = getattr(obj, "info", None)
    if not isinstance(info, ModelInfo) or not callable(getattr(obj, "predict", None)):
        raise ModelConfigError(
            f"{target} returned {type(obj).__name__}, not a model (with .info: ModelInfo "
            "and .predict(study))",
            hint="see gai_research.models.types.Model",
        )


def describe(
    target: str, *, name: str | None = None, overrides: Mapping[str, Any] | None = None
) -> ModelInfo:
    """Who the model behind ``target`` is, without running it.

    A factory may carry its ModelInfo as ``factory.info``; otherwise it is called with
    no options and the model it returns is closed again.
    """
    factory = resolve(target)
    info = getattr(factory, "info", None)
    if not isinstance(info, ModelInfo):
        model = _create(factory, target, {})
        try:
            info = model.info
        finally:
            _close(model)
    return _with(info, name, overrides)


def _create(factory: Callable[..., Any], target: str, options: Mapping[str, Any]) -> Any:
    try:
        model = factory(**options)
    except TypeError as exc:
        raise ModelConfigError(
            f"{target} does not take these options ({', '.join(options) or 'none'}): {exc}",
            hint="check the options in the models file or on the command line",
        ) from None
    _check_model(model, target)
    return model


def _close(model: Any) -> None:
    close = getattr(model, "close", None)
    if callable(close):
        close()


class PythonModel:
    """A python model behind the contract, with its registry name and declared facts.

    ``info``: the ModelInfo to report (None: the model's own, with ``name`` and
    ``overrides`` applied); ``entry_point``: ``module:callable`` of the factory;
    ``options``: passed to the factory.
    """

    def __init__(
        self,
        info: ModelInfo | None = None,
        *,
        entry_point: str,
        name: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.target = entry_point
        self.model = _create(resolve(entry_point), entry_point, options)
        self.info: ModelInfo = (
            _with(info, name, None) if info is not None else _with(self.model.info, name, overrides)
        )

    def __repr__(self) -> str:
        return f"PythonModel({self.info.name!r} from {self.target})"

    def __enter__(self) -> PythonModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def predict(self, study: StudyInput) -> Prediction:
        """The wrapped model's prediction, checked to be a Prediction of this study."""
        result = self.model.predict(study)
        if not isinstance(result, Prediction):
            raise MalformedResultError(
                f"model {self.info.name} returned {type(result).__name__}, not a Prediction",
                hint="a python model's predict() returns gai_research.models.Prediction",
                model=self.info.name,
                study_uid=study.study_uid,
            )
        if result.study_uid != study.study_uid:
            raise MalformedResultError(
                f"model {self.info.name} answered for another study than the one it was given",
                hint="Prediction.study_uid must be the StudyInput's study_uid",
                model=self.info.name,
                study_uid=study.study_uid,
            )
        return result

    def close(self) -> None:
        _close(self.model)
