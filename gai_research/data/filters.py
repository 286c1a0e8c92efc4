"""Keyword filters of the catalog handle: validation, a canonical form, and the SQL they make.

Every filter is optional; ``None`` means "no filter". Text filters take one value or a
list (any of them matches). The canonical form (:func:`normalize_filters`) is plain
JSON data in a fixed order, so two spellings of the same selection hash the same in a
cohort.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gai_research.data.errors import FilterError
from gai_research.errors import ConfigError
from gai_research.sites import Site

__all__ = ["FILTERS", "LEVELS", "FilterSpec", "build_query", "filter_help", "normalize_filters"]

LEVELS = ("studies", "series", "instances")
SEXES = ("M", "F", "O")
CLASS_WORDS = {"positive": 1, "negative": 0}


@dataclass(frozen=True)
class FilterSpec:
    """One keyword filter: the type of value it takes and what it selects."""

    name: str
    kind: str  # site | text | upper | date | age | sex | label
    level: str  # study | series: which table the condition is on
    help: str


FILTERS: dict[str, FilterSpec] = {
    spec.name: spec
    for spec in (
        FilterSpec("site", "site", "study", "hospital: SUWON, ANSEONG or ICHEON (or a list)"),
        FilterSpec("modality", "upper", "series", "series modality, e.g. 'CT' or ['DX', 'CR']"),
        FilterSpec("body_part", "upper", "series", "BodyPartExamined, e.g. 'CHEST'"),
        FilterSpec("manufacturer", "text", "series", "manufacturer, any case, e.g. 'SIEMENS'"),
        FilterSpec("model", "text", "series", "manufacturer's model name, any case"),
        FilterSpec("date_from", "date", "study", "first study date, shifted (YYYY-MM-DD)"),
        FilterSpec("date_to", "date", "study", "last study date, shifted (YYYY-MM-DD)"),
        FilterSpec("age_min", "age", "study", "youngest age at the study, whole years"),
        FilterSpec("age_max", "age", "study", "oldest age at the study, whole years"),
        FilterSpec("sex", "sex", "study", "patient sex: 'M', 'F' or 'O'"),
        FilterSpec(
            "task", "text", "study", "studies with labels of this task, e.g. 'lung_nodule_ct'"
        ),
        FilterSpec(
            "label",
            "label",
            "study",
            "study class 1/0 (or 'positive'/'negative'), or a label name such as 'nodule'",
        ),
        FilterSpec("patient", "text", "study", "patient pseudonym(s)"),
        FilterSpec("study_uid", "text", "study", "study UID(s)"),
        FilterSpec("series_uid", "text", "series", "series UID(s)"),
    )
}


def filter_help() -> str:
    """One line per filter, for error hints, docstrings and ``--help``."""
    return "\n".join(f"{s.name}: {s.help}" for s in FILTERS.values())


def _names() -> str:
    return ", ".join(FILTERS)


def _values(name: str, value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    values = list(value)
    if not values:
        raise FilterError(f"filter {name} got an empty list", hint="give a value or leave it out")
    return values


def _text(name: str, value: Any, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FilterError(
            f"filter {name} takes text or a list of text, not {type(value).__name__}",
            hint=f"for example {name}={example!r}",
        )
    return value.strip()


def _date(name: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        for fmt in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return dt.datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
        raise FilterError(
            f"filter {name} is not a date: {text!r}", hint="write dates as YYYY-MM-DD"
        )
    raise FilterError(
        f"filter {name} takes a date, not {type(value).__name__}",
        hint="pass a datetime.date or text YYYY-MM-DD",
    )


def _age(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise FilterError(
            f"filter {name} takes a whole number of years, not {type(value).__name__}",
            hint=f"for example {name}=60",
        )
    if not 0 <= int(value) <= 150:
        raise FilterError(f"filter {name}={value} is out of range", hint="use 0 to 150 years")
    return int(value)


def _label(value: Any) -> int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return CLASS_WORDS.get(text.lower(), text)
    raise FilterError(
        f"filter label takes 1/0, 'positive'/'negative' or a label name, not {value!r}",
        hint="for example label=1 with task='lung_nodule_ct', or label='nodule'",
    )


def _one(spec: FilterSpec, value: Any) -> Any:
    name = spec.name
    if spec.kind == "site":
        try:
            return [
                s.value
                for s in sorted({Site.parse(_text(name, v, "SUWON")) for v in _values(name, value)})
            ]
        except ConfigError as exc:
            raise FilterError(f"filter site: {exc.message}", hint=exc.hint) from None
    if spec.kind in ("text", "upper"):
        texts = {
            _text(name, v, "CT" if spec.kind == "upper" else "...") for v in _values(name, value)
        }
        return sorted({t.upper() for t in texts} if spec.kind == "upper" else texts)
    if spec.kind == "sex":
        sexes = {_text(name, v, "F").upper() for v in _values(name, value)}
        bad = sorted(sexes - set(SEXES))
        if bad:
            raise FilterError(f"filter sex: unknown value {bad[0]!r}", hint="use 'M', 'F' or 'O'")
        return sorted(sexes)
    if spec.kind == "date":
        return _date(name, value)
    if spec.kind == "age":
        return _age(name, value)
    return _label(value)


def normalize_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Validated filters in canonical form (JSON data, keys in the order of :data:`FILTERS`).

    Raises :class:`FilterError` for an unknown name or a value of the wrong type.
    """
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        close = [n for n in FILTERS if n.startswith(unknown[0][:3])]
        guess = f" (did you mean {close[0]}?)" if close else ""
        raise FilterError(
            f"unknown filter {unknown[0]!r}{guess}", hint=f"valid filters: {_names()}"
        )
    out = {
        name: _one(spec, filters[name])
        for name, spec in FILTERS.items()
        if filters.get(name) is not None
    }
    if "date_from" in out and "date_to" in out and out["date_from"] > out["date_to"]:
        raise FilterError("date_from is after date_to", hint="swap the two dates")
    if "age_min" in out and "age_max" in out and out["age_min"] > out["age_max"]:
        raise FilterError("age_min is larger than age_max", hint="swap the two ages")
    return out


def _conditions(filters: Mapping[str, Any], level: str) -> tuple[list[str], list[Any]]:
    """SQL conditions (aliases st, p, se) and their parameters for one filter level."""
    where: list[str] = []
    params: list[Any] = []
    for name, value in filters.items():
        spec = FILTERS[name]
        if spec.level != level:
            continue
        if name == "site":
            where.append("list_contains(?, st.site)")
        elif name == "modality":
            where.append("list_contains(?, upper(se.modality))")
        elif name == "body_part":
            where.append("list_contains(?, upper(se.body_part))")
        elif name in ("manufacturer", "model"):
            where.append(f"list_contains(?, lower(se.{name}))")
            value = [v.lower() for v in value]
        elif name == "date_from":
            where.append("st.study_date >= CAST(? AS DATE)")
        elif name == "date_to":
            where.append("st.study_date <= CAST(? AS DATE)")
        elif name == "age_min":
            where.append("st.age_years >= ?")
        elif name == "age_max":
            where.append("st.age_years <= ?")
        elif name == "sex":
            where.append("list_contains(?, p.sex)")
        elif name == "task":
            where.append(
                "EXISTS (SELECT 1 FROM labels l WHERE l.study_uid = st.study_uid "
                "AND list_contains(?, l.task))"
            )
        elif name == "label":
            task = "AND list_contains(?, l.task) " if "task" in filters else ""
            column = "l.kind = 'study' AND l.value = ?" if isinstance(value, int) else "l.name = ?"
            where.append(
                f"EXISTS (SELECT 1 FROM labels l WHERE l.study_uid = st.study_uid {task}AND {column})"
            )
            if task:
                params.append(filters["task"])
        elif name == "patient":
            where.append("list_contains(?, st.patient_pseudonym)")
        elif name == "study_uid":
            where.append("list_contains(?, st.study_uid)")
        elif name == "series_uid":
            where.append("list_contains(?, se.series_uid)")
        params.append(value)
    return where, params


_SELECT = {
    "studies": (
        "SELECT st.*, p.sex, p.birth_year_band FROM studies st "
        "LEFT JOIN patients p ON p.patient_pseudonym = st.patient_pseudonym",
        "st.site, st.study_date, st.study_uid",
    ),
    "series": (
        "SELECT se.*, st.patient_pseudonym, st.site, st.study_date, st.age_years, p.sex "
        "FROM series se JOIN studies st ON st.study_uid = se.study_uid "
        "LEFT JOIN patients p ON p.patient_pseudonym = st.patient_pseudonym",
        "st.site, st.study_date, se.study_uid, se.series_number, se.series_uid",
    ),
    "instances": (
        "SELECT i.*, se.modality, st.patient_pseudonym, st.site FROM instances i "
        "JOIN series se ON se.series_uid = i.series_uid "
        "JOIN studies st ON st.study_uid = i.study_uid "
        "LEFT JOIN patients p ON p.patient_pseudonym = st.patient_pseudonym",
        "st.site, i.study_uid, i.series_uid, i.instance_number, i.sop_uid",
    ),
}


def build_query(level: str, filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The SELECT for ``level`` (studies, series, instances) under normalized ``filters``."""
    if level not in LEVELS:
        raise FilterError(f"unknown level {level!r}", hint=f"use one of {', '.join(LEVELS)}")
    select, order = _SELECT[level]
    study_where, params = _conditions(filters, "study")
    series_where, series_params = _conditions(filters, "series")
    where = list(study_where)
    if series_where and level == "studies":
        where.append(
            "EXISTS (SELECT 1 FROM series se WHERE se.study_uid = st.study_uid AND "
            + " AND ".join(series_where)
            + ")"
        )
    else:
        where += series_where
    params += series_params
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}"
    return sql, params
