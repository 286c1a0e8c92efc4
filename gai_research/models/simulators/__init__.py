"""Vendor simulators: test doubles that behave like vendor products on real sockets.

- :class:`~gai_research.models.simulators.http.HttpVendorSimulator`: an HTTP inference
  service wrapping a model;
- :class:`~gai_research.models.simulators.dicom_node.DicomNodeSimulator`: a DICOM node
  that receives a study by C-STORE and sends its results back as DICOM SR;
- :mod:`~gai_research.models.simulators.daemon`: the simulated vendors of
  ``HOME/models.yaml`` as background processes (``gai models simulators up|status|down``);
- ``python -m gai_research.models.simulators http|dicom ...``: one simulator in the
  foreground.

Each has configurable delay, failures and time-outs. A simulator's answers are its
wrapped model's (a baseline), and it says so (origin ``simulator``); they are never a
vendor's result. Importing this package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DicomNodeSimulator",
    "HttpVendorSimulator",
    "simulators_down",
    "simulators_status",
    "simulators_up",
]

_LAZY = {
    "HttpVendorSimulator": "gai_research.models.simulators.http",
    "DicomNodeSimulator": "gai_research.models.simulators.dicom_node",
    "simulators_up": "gai_research.models.simulators.daemon",
    "simulators_down": "gai_research.models.simulators.daemon",
    "simulators_status": "gai_research.models.simulators.daemon",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
