"""The researcher API: catalog queries, cohorts, volumes, the viewer, export and data cards.

    >>> from gai_research import data
    >>> cat = data.open_catalog()                     # read-only, on the latest snapshot
    >>> cohort = data.Cohort.from_filters("lung-ct", cat, modality="CT", task="lung_nodule_ct")
    >>> cohort.save(); cohort.card()
    >>> data.export(cohort, "exports/lung-ct", task="lung_nodule_ct")

Importing this package is cheap: pandas, DuckDB, nibabel, torch and MONAI load with
the first name that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gai_research.data.errors import CardError, CohortError, DataError, ExportError, FilterError

if TYPE_CHECKING:
    from gai_research.data.cards import render_card, write_cohort_card
    from gai_research.data.catalog import Catalog, CatalogDescription, open_catalog
    from gai_research.data.cohort import Cohort, list_cohorts
    from gai_research.data.filters import FILTERS
    from gai_research.data.monai import to_monai
    from gai_research.data.splits import assign_splits
    from gai_research.data.training_export import ExportResult, export
    from gai_research.data.viewer import show
    from gai_research.data.volume import load_series

__all__ = [
    "FILTERS",
    "CardError",
    "Catalog",
    "CatalogDescription",
    "Cohort",
    "CohortError",
    "DataError",
    "ExportError",
    "ExportResult",
    "FilterError",
    "assign_splits",
    "export",
    "list_cohorts",
    "load_series",
    "open_catalog",
    "render_card",
    "show",
    "to_monai",
    "write_cohort_card",
]

_LAZY = {
    "open_catalog": "gai_research.data.catalog",
    "Catalog": "gai_research.data.catalog",
    "CatalogDescription": "gai_research.data.catalog",
    "Cohort": "gai_research.data.cohort",
    "list_cohorts": "gai_research.data.cohort",
    "export": "gai_research.data.training_export",
    "ExportResult": "gai_research.data.training_export",
    "FILTERS": "gai_research.data.filters",
    "assign_splits": "gai_research.data.splits",
    "render_card": "gai_research.data.cards",
    "write_cohort_card": "gai_research.data.cards",
    # volumes, the viewer and MONAI datasets
    "load_series": "gai_research.data.volume",
    "show": "gai_research.data.viewer",
    "to_monai": "gai_research.data.monai",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
