"""Adapters: one class per way a model is reached, each ``Cls(info, **options) -> Model``.

``python`` (an installed entry point or ``module:callable``), ``monai-bundle`` (a local
MONAI bundle directory), ``http`` (a vendor inference endpoint) and ``dicom`` (a vendor
DICOM node answering with SR/SEG). :func:`adapter_class` imports only the one asked
for, so reaching an HTTP model never imports MONAI.
"""

from __future__ import annotations

import importlib

from gai_research.models.errors import ModelConfigError

__all__ = ["ADAPTER_CLASSES", "adapter_class"]

#: adapter name -> (module, class); each class takes ``(info, **options)``
ADAPTER_CLASSES: dict[str, tuple[str, str]] = {
    "python": ("gai_research.models.adapters.python", "PythonModel"),
    "monai-bundle": ("gai_research.models.adapters.monai_bundle", "MonaiBundleModel"),
    "http": ("gai_research.models.adapters.http", "HttpModel"),
    "dicom": ("gai_research.models.adapters.dicom", "DicomNodeModel"),
}


def adapter_class(name: str) -> type:
    """The adapter class called ``name`` (imported on first use)."""
    try:
        module_name, class_name = ADAPTER_CLASSES[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown adapter {name!r}",
            hint=f"use one of {', '.join(ADAPTER_CLASSES)}",
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelConfigError(
            f"the {name} adapter cannot be imported: {exc}",
            hint="reinstall gai-research with its dependencies (make setup)",
        ) from None
    return getattr(module, class_name)
