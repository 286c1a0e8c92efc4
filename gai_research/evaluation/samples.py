"""Synthetic per-case tables with known structure, for tests, benchmarks and the docs.

:func:`sample_case_table` makes a table that fits a protocol (every column its notebook
needs), seeded, with a score that separates the classes, nodules and hits near them, volumes
with a small measurement error, and a chosen number of failed, timed-out and missing
studies. It is hand-made data, not a model's output: its model is labelled a simulator.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from gai_research.evaluation.cases import volume_columns
from gai_research.models.types import ModelInfo, Origin, TaskKind

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.evaluation.protocol import Protocol

__all__ = ["sample_case_table", "sample_model_info"]

SITES = ("SUWON", "ANSEONG", "ICHEON")
MANUFACTURERS = ("GE MEDICAL SYSTEMS", "SIEMENS", "Philips")
_VOLUME_MEAN_ML = {"hippocampus_l": 3.4, "hippocampus_r": 3.6, "hippocampus": 7.0}


def sample_model_info(
    protocol: Protocol, name: str = "sample-model", **changes: object
) -> ModelInfo:
    """A simulator's ModelInfo for ``protocol`` (threshold 0.5)."""
    values: dict[str, object] = {
        "name": name,
        "vendor": "gai-research (hand-made sample)",
        "version": "1.0",
        "task": protocol.task,
        "kind": protocol.kind,
        "origin": Origin.SIMULATOR,
        "threshold": 0.5,
    }
    values.update(changes)
    return ModelInfo(**values)  # type: ignore[arg-type]


def sample_case_table(
    protocol: Protocol,
    n: int = 60,
    *,
    seed: int = 0,
    failed: int = 2,
    timeouts: int = 1,
    missing: int = 1,
    separation: float = 1.5,
) -> pd.DataFrame:
    """A per-case table of ``n`` studies for ``protocol`` (see the module docstring)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    y[:2], y[2:4] = 1, 0  # both classes, whatever the seed
    score = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + separation * (2 * y - 1))))
    status = np.array(["ok"] * n, dtype=object)
    bad = rng.permutation(np.arange(4, n))[: failed + timeouts + missing]
    status[bad[:failed]] = "failed"
    status[bad[failed : failed + timeouts]] = "timeout"
    status[bad[failed + timeouts :]] = "missing"
    ok = status == "ok"
    latency = np.where(ok, np.round(rng.lognormal(mean=0.5, sigma=0.4, size=n), 3), np.nan)
    frame = pd.DataFrame(
        {
            "study_uid": [f"2.25.{1000 + i}" for i in range(n)],
            "site": [SITES[i % 3] for i in range(n)],
            "manufacturer": [MANUFACTURERS[(i // 3) % 3] for i in range(n)],
            "sex": rng.choice(["F", "M"], size=n),
            "age_years": rng.integers(35, 90, size=n),
            "status": status,
            "reason": np.where(ok, "", np.where(status == "failed", "malformed answer", "")),
            "latency_s": latency,
            "y_true": y,
            "score": np.where(ok, np.round(score, 4), np.nan),
        }
    )
    lesions, findings = [], []
    for i in range(n):
        ref = []
        if protocol.kind == TaskKind.DETECTION and y[i]:
            for _ in range(int(rng.integers(1, 3))):
                centre = rng.uniform(-120, 120, 3).round(1)
                ref.append(
                    {
                        "x_mm": float(centre[0]),
                        "y_mm": float(centre[1]),
                        "z_mm": float(centre[2]) - 150.0,
                        "diameter_mm": round(float(rng.uniform(5, 20)), 1),
                    }
                )
        found = []
        if ok[i] and protocol.kind == TaskKind.DETECTION:
            for lesion in ref:
                if rng.random() < 0.8:
                    found.append(
                        {
                            **{k: lesion[k] + 1.0 for k in ("x_mm", "y_mm")},
                            "z_mm": lesion["z_mm"],
                            "score": round(float(rng.uniform(0.5, 1.0)), 4),
                        }
                    )
            for _ in range(int(rng.poisson(1.0))):
                centre = rng.uniform(-120, 120, 3).round(1)
                found.append(
                    {
                        "x_mm": float(centre[0]),
                        "y_mm": float(centre[1]),
                        "z_mm": float(centre[2]) - 150.0,
                        "score": round(float(rng.beta(2, 3)), 4),
                    }
                )
        lesions.append(json.dumps(ref, sort_keys=True))
        findings.append(json.dumps(found, sort_keys=True))
    frame["ref_lesions"] = lesions
    frame["pred_findings"] = findings
    for name in protocol.reference.volumes:
        ref_column, pred_column = volume_columns(name)
        mean = _VOLUME_MEAN_ML.get(name, 15.0)
        if protocol.kind == TaskKind.TRIAGE:  # a lesion volume: only positives have one
            ref = np.where(y == 1, np.round(rng.lognormal(math.log(mean), 0.6, n), 2), np.nan)
        else:  # a structure: smaller in the positive (disease) class
            ref = np.round(rng.normal(mean - 0.8 * y, 0.4), 3)
        pred = np.round(ref * rng.normal(1.02, 0.05, n) + rng.normal(0, 0.05, n), 3)
        frame[ref_column] = ref
        frame[pred_column] = np.where(ok, pred, np.nan)
    return frame
