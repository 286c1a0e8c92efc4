"""The real-time PACS-to-AI gateway: receive, route by rules, run models, return SR to the PACS.

The public names are loaded on first use (PEP 562), so that
:mod:`gai_research.config` can import :class:`GatewaySettings` without pulling in
DICOM, database or model code::

    from gai_research.gateway import Gateway, load_rules, explain_study
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Gateway",
    "GatewayDB",
    "GatewayError",
    "GatewaySettings",
    "Job",
    "JobState",
    "RuleSet",
    "RulesError",
    "StudyState",
    "explain_paths",
    "gateway_status",
    "load_rules",
    "log_operations",
    "parse_rules",
    "route",
]

_WHERE = {
    "Gateway": "service",
    "GatewayDB": "jobs",
    "GatewayError": "errors",
    "GatewaySettings": "settings",
    "Job": "jobs",
    "JobState": "jobs",
    "RuleSet": "rules",
    "RulesError": "errors",
    "StudyState": "jobs",
    "explain_paths": "explain",
    "gateway_status": "status",
    "load_rules": "rules",
    "log_operations": "operations",
    "parse_rules": "rules",
    "route": "match",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gai_research.gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gai_research.gateway.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
