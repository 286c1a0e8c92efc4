"""gai-research: the helper package of the GAI imaging research platform.

``import gai_research as gai`` is cheap: heavy libraries load only when a function
that needs them is called.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gai_research.errors import GaiError

__all__ = ["GaiError", "__version__"]
