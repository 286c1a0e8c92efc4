"""gai-research: the helper package of the GAI imaging research platform.

In a notebook::

    import gai_research as gai
    cat = gai.open_catalog()                       # read-only, latest catalog snapshot
    cohort = gai.Cohort.from_filters("lung-ct", cat, modality="CT", task="lung_nodule_ct")
    volume = gai.load_series(cohort.series.series_uid.iloc[0])
    gai.show(volume)

``import gai_research`` is cheap: pandas, DuckDB, pydicom, torch and MONAI load with the
first function that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gai_research.errors import GaiError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gai_research.data import Cohort, export, load_series, open_catalog, show, to_monai

# the researcher API, re-exported from gai_research.data on first use
_RESEARCHER_API = ("Cohort", "export", "load_series", "open_catalog", "show", "to_monai")

__all__ = [
    "Cohort",
    "GaiError",
    "__version__",
    "export",
    "load_series",
    "open_catalog",
    "show",
    "to_monai",
]


def __getattr__(name: str) -> Any:
    if name in _RESEARCHER_API:
        from gai_research import data

        return getattr(data, name)
    raise AttributeError(f"module 'gai_research' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
