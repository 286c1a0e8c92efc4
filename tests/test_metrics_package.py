"""The metrics package: cheap to import, public names present, results loggable."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gai_research.evaluation.metrics as metrics


def test_import_loads_no_heavy_library() -> None:
    code = (
        "import sys, gai_research.evaluation, gai_research.evaluation.metrics; "
        "print(sorted(m for m in ('scipy', 'sklearn', 'statsmodels', 'monai', 'torch', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", metrics.__all__)
def test_public_names_exist(name: str) -> None:
    assert getattr(metrics, name) is not None


def test_error_is_a_gai_error_and_a_value_error() -> None:
    from gai_research.errors import GaiError

    error = metrics.MetricsError("bad", hint="fix it")
    assert isinstance(error, GaiError) and isinstance(error, ValueError)
    assert str(error) == "bad (fix it)"


RESULTS = {
    "binary_metrics": lambda: metrics.binary_metrics([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.6], 0.5),
    "sensitivity_at_specificity": lambda: metrics.sensitivity_at_specificity(
        [1, 0, 1, 0], [0.9, 0.1, 0.4, 0.6], 0.5
    ),
    "delong_test": lambda: metrics.delong_test(
        [1, 1, 0, 0, 1], [0.9, 0.8, 0.1, 0.6, 0.3], [0.5, 0.9, 0.2, 0.1, 0.4]
    ),
    "screening_metrics": lambda: metrics.screening_metrics([1, 0, 0], [1, 1, 0]),
    "icc": lambda: metrics.icc([1.0, 2.0, 3.0], [1.1, 2.2, 2.9]),
    "bland_altman": lambda: metrics.bland_altman([1.0, 2.0, 3.0], [1.1, 2.2, 2.9]),
    "latency_summary": lambda: metrics.latency_summary([0.1, 0.2, None]),
    "froc": lambda: metrics.froc([("s", 0, 0, 0, 0.9)], [("s", 0, 0, 0, 5)], ["s"], n_bootstrap=10),
}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_to_dict_is_flat_numbers_for_mlflow(name: str) -> None:
    import dataclasses
    import re

    result = RESULTS[name]()
    assert dataclasses.is_dataclass(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.alpha = 0.1  # type: ignore[misc]
    logged = result.to_dict()
    assert logged and all(type(v) in (int, float) for v in logged.values())
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-/ ]+", key) for key in logged)  # MLflow key charset
