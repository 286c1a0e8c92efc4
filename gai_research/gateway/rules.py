"""Routing rules as data: a YAML file validated by a pydantic schema.

A rule says which series of an arriving study a model gets::

    version: 1
    defaults: {concurrency: 2, timeout_s: 300, retries: 1}
    models:
      vendor-lung-ct: {pseudonymize: true, concurrency: 4}   # vendor outside the hospital
    rules:
      - name: chest-ct
        match:                      # a condition on one series; all named checks must hold
          modality: CT
          body_part: "CHEST|LUNG"   # text checks are regular expressions (search, any case)
          rows: {min: 256}
          not: {series_description: "scout|localizer"}
        study: {min_instances: 20}  # over the matched series
        models: [vendor-lung-ct]

Conditions combine with ``all_of``, ``any_of`` and ``not``. Every study that matches a
rule goes to every model the rule names (several rules may match); a study that
matches none is recorded as ``no-match``. Unknown keys are errors that name their
place in the file (``rules[0].match.modalty``), so a typo never silently matches
everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gai_research.errors import GaiError
from gai_research.gateway.errors import RulesError
from gai_research.sites import Site

__all__ = [
    "Condition",
    "ModelPolicy",
    "ModelTarget",
    "Range",
    "Rule",
    "RuleSet",
    "StudyRequirement",
    "default_rules_path",
    "load_rules",
    "parse_rules",
]

DEFAULT_RULES = "rules.default.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# checks on text attributes: regular expressions searched case-insensitively
TEXT_CHECKS = (
    "body_part",
    "study_description",
    "series_description",
    "protocol_name",
    "manufacturer",
    "model_name",
    "image_type",
    "view",
)
RANGE_CHECKS = ("rows", "columns", "instances")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Range(_Strict):
    """A closed numeric interval; either end may be left open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    def __contains__(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        low = "" if self.min is None else f"{self.min:g}"
        high = "" if self.max is None else f"{self.max:g}"
        return f"[{low}, {high}]"


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _sop_class_uid(value: str) -> str:
    """A SOP class given as a UID or as pydicom's keyword (``CTImageStorage``) -> its UID."""
    text = value.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)+", text):
        return text
    from pydicom._uid_dict import UID_dictionary

    for uid, entry in UID_dictionary.items():
        if text in (entry[4], entry[0]) and entry[1] == "SOP Class":
            return uid
    raise ValueError(f"{text!r} is neither a UID nor a SOP class keyword such as CTImageStorage")


class Condition(_Strict):
    """Checks on one series. All named checks must hold (AND); an empty condition holds."""

    modality: list[str] | None = None
    sop_class: list[str] | None = None
    body_part: str | None = None
    study_description: str | None = None
    series_description: str | None = None
    protocol_name: str | None = None
    manufacturer: str | None = None
    model_name: str | None = None
    image_type: str | None = None
    view: str | None = None
    contrast: bool | None = None
    rows: Range | None = None
    columns: Range | None = None
    instances: Range | None = None
    all_of: list[Condition] | None = None
    any_of: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @field_validator("modality", mode="before")
    @classmethod
    def _modalities(cls, value: Any) -> Any:
        value = _as_list(value)
        if isinstance(value, list):
            return [str(v).strip().upper() for v in value]
        return value

    @field_validator("sop_class", mode="before")
    @classmethod
    def _sop_classes(cls, value: Any) -> Any:
        value = _as_list(value)
        if isinstance(value, list):
            return [_sop_class_uid(str(v)) for v in value]
        return value

    @field_validator(*TEXT_CHECKS)
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @field_validator("any_of", "all_of")
    @classmethod
    def _not_empty(cls, value: list | None) -> list | None:
        if value is not None and not value:
            raise ValueError("needs at least one condition")
        return value

    @cached_property
    def patterns(self) -> dict[str, re.Pattern[str]]:
        return {
            name: re.compile(getattr(self, name), re.IGNORECASE)
            for name in TEXT_CHECKS
            if getattr(self, name) is not None
        }


class StudyRequirement(_Strict):
    """What the matched series of a study must add up to for the rule to apply."""

    min_series: int = Field(1, ge=1)
    min_instances: int = Field(1, ge=1)
    views: list[str] = Field(default_factory=list)  # each must be among the matched images
    lateralities: list[str] = Field(default_factory=list)

    @field_validator("views", "lateralities", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        value = _as_list(value)
        return [str(v).strip().upper() for v in value] if isinstance(value, list) else value


class ModelPolicy(_Strict):
    """How the gateway treats one model: concurrency, time-out, retries, pseudonymization.

    ``pseudonymize: true`` is for vendors outside the hospital: the study is
    pseudonymized with the platform key before it leaves, and the answer is mapped back
    to the original UIDs. ``options`` go to the model registry's ``load_model``.
    """

    concurrency: int = Field(2, ge=1, le=64)
    timeout_s: float = Field(300.0, gt=0, le=86400)
    retries: int = Field(1, ge=0, le=20)
    retry_backoff_s: float = Field(2.0, ge=0, le=3600)
    pseudonymize: bool = False
    options: dict[str, Any] = Field(default_factory=dict)


class _PolicyOverride(_Strict):
    concurrency: int | None = Field(None, ge=1, le=64)
    timeout_s: float | None = Field(None, gt=0, le=86400)
    retries: int | None = Field(None, ge=0, le=20)
    retry_backoff_s: float | None = Field(None, ge=0, le=3600)
    pseudonymize: bool | None = None
    options: dict[str, Any] | None = None


class ModelTarget(_Strict):
    """A model a rule sends to; ``pseudonymize`` here overrides the model's policy."""

    name: str
    pseudonymize: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a model name (letters, digits, . _ -)")
        return value


class Rule(_Strict):
    """One routing rule: which series (``match``), how many (``study``), to whom (``models``)."""

    name: str
    description: str = ""
    enabled: bool = True
    sites: list[Site] | None = None
    match: Condition
    study: StudyRequirement = Field(default_factory=StudyRequirement)
    send: Literal["matched", "all"] = "matched"  # which series of the study the models get
    models: list[ModelTarget] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a rule name (letters, digits, . _ -)")
        return value

    @field_validator("sites", mode="before")
    @classmethod
    def _sites(cls, value: Any) -> Any:
        value = _as_list(value)
        if not isinstance(value, list):
            return value
        try:
            return [Site.parse(v) for v in value]
        except GaiError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("models", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        value = _as_list(value)
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value


class RuleSet(_Strict):
    """A whole rules file."""

    version: Literal[1]
    defaults: ModelPolicy = Field(default_factory=ModelPolicy)
    models: dict[str, _PolicyOverride] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    source: str = Field("", exclude=True)  # where it was read from (set by load_rules)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{index}]: the name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self

    def policy(self, model: str) -> ModelPolicy:
        """The effective policy of a model: its entry under ``models`` over ``defaults``."""
        override = self.models.get(model)
        if override is None:
            return self.defaults
        given = override.model_dump(exclude_none=True)
        return self.defaults.model_copy(update=given)

    @property
    def model_names(self) -> list[str]:
        """Every model some enabled rule sends to, in rule order."""
        names: dict[str, None] = {}
        for rule in self.rules:
            if rule.enabled:
                names.update({target.name: None for target in rule.models})
        return list(names)


def default_rules_path() -> Path:
    """The packaged default rules (chest CT, chest X-ray, mammography, brain MR, head CT)."""
    return Path(str(resources.files("gai_research.gateway") / "data" / DEFAULT_RULES))


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and validate a rules file (default: the packaged one)."""
    import yaml

    where = Path(path) if path is not None else default_rules_path()
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(
            f"cannot read the rules file {where}: {exc.strerror or exc}",
            hint="check the path (GAI_GATEWAY__RULES_FILE or --rules)",
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise RulesError(
            f"rules file {where} is not valid YAML{at}: {problem}",
            hint="fix the YAML syntax (indentation, quotes around regular expressions)",
        ) from None
    return parse_rules(data, source=str(where))


def parse_rules(data: Any, *, source: str = "<rules>") -> RuleSet:
    """Validate already-parsed rules data; every problem becomes one :class:`RulesError`."""
    if not isinstance(data, Mapping):
        raise RulesError(
            f"rules file {source} must be a mapping with version, rules (and defaults, models)",
            hint="see docs/gateway.md for an example",
        )
    try:
        ruleset = RuleSet.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        path = _path(first["loc"], data)
        message = _message(first)
        more = len(exc.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise RulesError(
            f"rules file {source}: {path + ': ' if path else ''}{message}{extra}",
            hint="fix that entry; `gai gateway rules validate FILE` checks a file without running",
            path=path,
        ) from None
    return ruleset.model_copy(update={"source": source})


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _path(loc: tuple, data: Any) -> str:
    """``('rules', 2, 'match', 'not', 'x')`` -> ``rules[2] (chest-ct).match.not.x``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts[-1 if parts else 0 :] = [f"{parts[-1] if parts else ''}[{item}]"]
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, Mapping) and isinstance(node.get("name"), str) and len(parts) == 1:
                parts[-1] += f" ({node['name']})"
        else:
            if item in ("function-after[_ordered(), Range]",) or str(item).startswith(
                ("function-", "list[", "str", "dict[")
            ):
                continue
            parts.append(str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return ".".join(parts)
