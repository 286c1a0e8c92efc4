"""The per-case table: one row per study, the model's answer beside the reference and subgroups.

It is the seam between the platform and the evaluation notebooks: the runner builds it
from a cohort (catalog snapshot), the reference labels and the stored predictions; a
notebook reads only this table (Parquet or CSV) and its context. Tests hand-make small
ones. Columns:

==================  ====================================================================
``study_uid``       pseudonymous study UID (the case)
``site``            SUWON, ANSEONG or ICHEON
``manufacturer``    scanner manufacturer of the study's evaluated series (subgroup)
``sex``             M, F, O or empty (subgroup)
``age_years``       age at the study (age bands are cut by the protocol's edges)
``status``          ``ok``, ``timeout``, ``missing`` (no prediction stored) or the
                    failure reason (``failed``, ``malformed``, ``unavailable``, ...)
``reason``          the failure's message, without identifiers (empty when ok)
``latency_s``       seconds the model took (NaN without an answer)
``y_true``          reference study label, 0 or 1
``score``           the model's study score (NaN without one)
``ref_lesions``     JSON list of reference lesions: ``x_mm, y_mm, z_mm, diameter_mm`` (CT)
                    or ``sop_uid, row_px, col_px, diameter_mm`` (DX/MG)
``pred_findings``   JSON list of the model's findings (``score`` and position)
``ref_<v>_ml``      reference volume ``v`` (mL) for each ``reference.volumes`` name
``pred_<v>_ml``     the model's volume ``v`` (mL)
==================  ====================================================================

Counts reconcile: every cohort study is a row, except studies without a reference study
label, which :func:`build_case_table` leaves out and reports in ``attrs["n_no_reference"]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gai_research.evaluation.errors import CaseTableError
from gai_research.evaluation.scrub import scrub
from gai_research.models.types import TaskKind

if TYPE_CHECKING:
    import pandas as pd

    from gai_research.data.cohort import Cohort
    from gai_research.evaluation.protocol import Protocol

__all__ = [
    "BASE_COLUMNS",
    "build_case_table",
    "check_case_table",
    "read_case_table",
    "required_columns",
    "volume_columns",
]

BASE_COLUMNS = ("study_uid", "site", "status", "latency_s", "y_true", "score")
SUBGROUP_COLUMNS = ("manufacturer", "sex", "age_years")
_LESION_KEYS = ("x_mm", "y_mm", "z_mm", "diameter_mm", "sop_uid", "row_px", "col_px")
_LESION_KEYS += ("laterality", "view")


def volume_columns(name: str) -> tuple[str, str]:
    """The reference and predicted column of volume ``name``."""
    return f"ref_{name}_ml", f"pred_{name}_ml"


def required_columns(protocol: Protocol) -> list[str]:
    """The columns a notebook of ``protocol`` needs (subgroup columns are optional)."""
    columns = list(BASE_COLUMNS)
    if protocol.kind == TaskKind.DETECTION:
        columns += ["ref_lesions", "pred_findings"]
    for name in protocol.reference.volumes:
        columns += list(volume_columns(name))
    return columns


def check_case_table(cases: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """The table with its types checked and normalised; a clear error when it cannot be used."""
    import numpy as np
    import pandas as pd

    missing = [c for c in required_columns(protocol) if c not in cases.columns]
    if missing:
        raise CaseTableError(
            f"the per-case table lacks column(s) {', '.join(missing)} for a "
            f"{protocol.kind.value} evaluation",
            hint="build it with gai_research.evaluation.cases.build_case_table "
            "(docs/evaluation.md lists the columns)",
        )
    frame = cases.copy()
    if frame["study_uid"].duplicated().any():
        raise CaseTableError(
            f"the per-case table has {int(frame['study_uid'].duplicated().sum())} repeated "
            "study_uid value(s)",
            hint="one row per study: keep one prediction per study",
        )
    try:
        y = pd.to_numeric(frame["y_true"], errors="raise")
    except (TypeError, ValueError):
        raise CaseTableError(
            "y_true holds values that are not numbers", hint="use 0 and 1"
        ) from None
    if y.isna().any() or not y.isin([0, 1]).all():
        raise CaseTableError(
            "y_true must be 0 or 1 in every row", hint="leave studies without a reference out"
        )
    frame["y_true"] = y.astype(int)
    for column in ["score", "latency_s", *[c for c in frame.columns if c.endswith("_ml")]]:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").astype(float)
            bad = frame[column].notna() & values.isna()
            if bad.any():
                raise CaseTableError(
                    f"column {column} holds {int(bad.sum())} value(s) that are not numbers",
                    hint="leave a missing value empty (NaN)",
                )
            frame[column] = values.where(np.isfinite(values), np.nan)
    frame["status"] = frame["status"].fillna("missing").astype(str)
    frame["site"] = frame["site"].astype(str)
    for column in ("manufacturer", "sex", "reason"):
        if column in frame.columns:
            frame[column] = frame[column].fillna("").astype(str)
    if "age_years" in frame.columns:
        frame["age_years"] = pd.to_numeric(frame["age_years"], errors="coerce")
    for column in ("ref_lesions", "pred_findings"):
        if column in frame.columns:
            frame[column] = [_json_list(v, column) for v in frame[column]]
    return frame.sort_values("study_uid", kind="stable").reset_index(drop=True)


def _json_list(value: Any, column: str) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return []
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        raise CaseTableError(
            f"column {column} holds a value that is not JSON", hint="write a JSON list per row"
        ) from None
    if not isinstance(parsed, list):
        raise CaseTableError(f"column {column} must hold JSON lists", hint="e.g. [] or [{...}]")
    return parsed


def read_case_table(path: Any, protocol: Protocol) -> pd.DataFrame:
    """Read a per-case table (``.parquet`` or ``.csv``) and check it."""
    from pathlib import Path

    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CaseTableError(
            f"per-case table {path.name} not found", hint="pass per_case_path= an existing file"
        )
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"study_uid": str, "sex": str, "site": str})
    else:
        raise CaseTableError(
            f"per-case table {path.name}: unknown format", hint="use .parquet or .csv"
        )
    return check_case_table(frame, protocol)


# --- building from the catalog and the stored predictions ------------------------------------
def _study_manufacturer(series: pd.DataFrame) -> dict[str, str]:
    """The most frequent manufacturer of each study's series (ties: alphabetical)."""
    if series.empty:
        return {}
    counts = (
        series.assign(manufacturer=series["manufacturer"].fillna(""))
        .groupby(["study_uid", "manufacturer"])
        .size()
        .reset_index(name="n")
        .sort_values(["study_uid", "n", "manufacturer"], ascending=[True, False, True])
    )
    return dict(counts.drop_duplicates("study_uid")[["study_uid", "manufacturer"]].values)


def _lesion(row: Any) -> dict[str, Any]:
    out = {}
    for key in _LESION_KEYS:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out[key] = float(value) if isinstance(value, int | float) else str(value)
    return out


def _finding(finding: Any) -> dict[str, Any]:
    out = {"score": float(finding.score)}
    for key in _LESION_KEYS:
        value = getattr(finding, key, None)
        if value is not None:
            out[key] = value
    return out


def build_case_table(protocol: Protocol, cohort: Cohort, records: Iterable[Any]) -> pd.DataFrame:
    """The per-case table of one model on ``cohort``.

    ``records`` are the model's stored prediction records (``study_uid``, ``status``,
    ``reason``/``error``, ``latency_s``, ``prediction``), e.g. ``RunSummary.records``. Every
    cohort study with a reference study label becomes a row; a study without a record is
    ``missing``.
    """
    import numpy as np
    import pandas as pd

    reference = protocol.reference
    studies = cohort.studies.set_index("study_uid")
    labels = cohort.labels(reference.task)
    study_labels = labels[(labels["kind"] == "study") & (labels["name"] == reference.study_label)]
    y_true = dict(zip(study_labels["study_uid"], study_labels["value"], strict=True))
    lesions: dict[str, list[dict[str, Any]]] = {}
    if reference.lesions:
        chosen = labels[labels["kind"].isin(["nodule", "finding"])]
        chosen = chosen[chosen["name"] == reference.lesions]
        for row in chosen.to_dict("records"):
            lesions.setdefault(row["study_uid"], []).append(_lesion(row))
    ref_volumes: dict[tuple[str, str], float] = {}
    for row in labels[labels["kind"] == "volume"].to_dict("records"):
        if row["name"] in reference.volumes and row.get("volume_ml") is not None:
            ref_volumes[(row["study_uid"], row["name"])] = float(row["volume_ml"])
    manufacturer = _study_manufacturer(cohort.series)
    by_study = {r.study_uid: r for r in records}

    rows = []
    for study_uid in sorted(cohort.study_uids):
        if study_uid not in y_true or pd.isna(y_true[study_uid]):
            continue
        info = studies.loc[study_uid]
        record = by_study.get(study_uid)
        prediction = getattr(record, "prediction", None) if record is not None else None
        status = "missing" if record is None else str(getattr(record, "status", "failed"))
        reason = ""
        if record is not None and status != "ok":
            code, message = getattr(record, "reason", None), getattr(record, "error", None)
            reason = scrub(": ".join(str(p) for p in (code, message) if p), limit=200)
        latency = getattr(record, "latency_s", None) if record is not None else None
        row = {
            "study_uid": study_uid,
            "site": str(info["site"]),
            "manufacturer": manufacturer.get(study_uid, ""),
            "sex": info.get("sex") or "",
            "age_years": info.get("age_years"),
            "status": status,
            "reason": reason,
            "latency_s": float(latency) if latency is not None else np.nan,
            "y_true": int(y_true[study_uid]),
            "score": np.nan,
            "ref_lesions": json.dumps(lesions.get(study_uid, []), sort_keys=True),
            "pred_findings": "[]",
        }
        if prediction is not None and status == "ok":
            if prediction.score is not None:
                row["score"] = float(prediction.score)
            findings = [_finding(f) for f in prediction.findings]
            row["pred_findings"] = json.dumps(findings, sort_keys=True)
        for name in reference.volumes:
            ref_column, pred_column = volume_columns(name)
            row[ref_column] = ref_volumes.get((study_uid, name), np.nan)
            value = prediction.volume(name) if prediction is not None and status == "ok" else None
            row[pred_column] = float(value) if value is not None else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_columns(protocol))
    frame["age_years"] = pd.to_numeric(frame["age_years"], errors="coerce").astype("Int64")
    frame.attrs["n_cohort"] = len(cohort.study_uids)
    frame.attrs["n_no_reference"] = len(cohort.study_uids) - len(frame)
    return frame


def _columns(protocol: Protocol) -> list[str]:
    columns = ["study_uid", "site", "manufacturer", "sex", "age_years", "status", "reason"]
    columns += ["latency_s", "y_true", "score", "ref_lesions", "pred_findings"]
    for name in protocol.reference.volumes:
        columns += list(volume_columns(name))
    return columns
