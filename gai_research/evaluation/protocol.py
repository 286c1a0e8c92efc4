"""Evaluation protocols: what is evaluated, against what, with which statistics, declared in YAML.

A protocol (``evaluation/<task>.yaml``) names the cohort, the reference standard, the models
to compare, the primary and secondary endpoints, the operating points, the subgroups, the
confidence-interval methods (with bootstrap size and seed) and the pre-specified
comparisons. It is validated on load: unknown keys are errors, endpoints must be ones the
protocol's notebook computes, comparisons must name listed models. Every error names the
file, the key path and the fix.

The protocol is versioned by its **content hash**: the sha256 of the canonical JSON of the
validated protocol (defaults filled in, keys sorted), so comments, key order and spelling
out a default do not change it, and any change of substance does. Every MLflow run of an
evaluation carries it (``gai.protocol_hash``).

    >>> protocol = load_protocol("evaluation/lung_nodule_ct.yaml")
    >>> protocol.content_hash, protocol.models, protocol.endpoint_names()
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from gai_research.errors import ConfigError
from gai_research.evaluation.errors import ProtocolError
from gai_research.models.types import TaskKind
from gai_research.sites import Site

__all__ = [
    "KIND_OF_TASK",
    "NOTEBOOK_OF_KIND",
    "Protocol",
    "default_protocol_dir",
    "endpoint_vocabulary",
    "list_protocols",
    "load_protocol",
    "protocol_json_schema",
    "write_protocol_schema",
]

PROTOCOL_FORMAT = "gai-evaluation-protocol/1"

#: the disease tasks of the demonstration and how their models are evaluated
KIND_OF_TASK: dict[str, TaskKind] = {
    "lung_nodule_ct": TaskKind.DETECTION,
    "lung_nodule_dx": TaskKind.CLASSIFICATION,
    "breast_mg": TaskKind.CLASSIFICATION,
    "dementia_mr": TaskKind.VOLUMETRY,
    "stroke_ct": TaskKind.TRIAGE,
}
NOTEBOOK_OF_KIND: dict[TaskKind, str] = {
    TaskKind.CLASSIFICATION: "eval_classification.ipynb",
    TaskKind.DETECTION: "eval_detection.ipynb",
    TaskKind.VOLUMETRY: "eval_volumetry.ipynb",
    TaskKind.TRIAGE: "eval_triage.ipynb",
}

#: the rates of the LUNA16 FROC analysis (false positives per scan)
FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
STUDY_LEVEL = ("auc", "sensitivity", "specificity", "ppv", "npv", "accuracy")
LATENCY = ("latency_median_s", "latency_p25_s", "latency_p75_s", "latency_p95_s", "latency_max_s")
FROC = ("cpm", *(f"froc_sens_fp_{rate:g}" for rate in FROC_RATES))
SCREENING = ("recall_rate", "cdr_per_1000", "ppv1")
AGREEMENT = ("icc", "ba_bias_ml", "ba_loa_low_ml", "ba_loa_high_ml", "mae_ml")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TASK = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NOTEBOOK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.ipynb$")

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Strict(BaseModel):
    """Unknown keys are errors (a misspelt key must not fall back to a default silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class CohortFilters(_Strict):
    """Filters of :meth:`gai_research.data.Cohort.from_filters` the cohort is built with."""

    modality: list[str] = Field(default_factory=list, description="e.g. [CT]")
    task: str | None = Field(None, description="studies with labels of this task")
    site: list[Site] = Field(default_factory=list, description="any of these sites (all: [])")

    @field_validator("modality", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("modality")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return sorted({m.strip().upper() for m in value})

    @field_validator("site", mode="before")
    @classmethod
    def _sites(cls, value: Any) -> Any:
        value = _as_list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value
        try:
            return sorted({Site.parse(v) for v in value})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword filters for ``Cohort.from_filters`` (empty ones left out)."""
        out: dict[str, Any] = {}
        if self.modality:
            out["modality"] = list(self.modality)
        if self.task:
            out["task"] = self.task
        if self.site:
            out["site"] = [s.value for s in self.site]
        return out


class CohortSpec(_Strict):
    """The studies evaluated: a saved cohort by name, or filters to build one."""

    name: str | None = Field(None, description="a cohort saved with `gai cohort create`")
    filters: CohortFilters | None = None

    @model_validator(mode="after")
    def _one_of(self) -> CohortSpec:
        if (self.name is None) == (self.filters is None):
            raise ValueError(
                "give exactly one of 'name' (a saved cohort) or 'filters' "
                "(modality/task/site to build one)"
            )
        return self


class Reference(_Strict):
    """The reference standard: which catalog labels the predictions are compared with."""

    task: str = Field(description="label task in the catalog, e.g. lung_nodule_ct")
    study_label: str = Field("positive", description="name of the kind=study label (0/1)")
    lesions: str | None = Field(
        None, description="detection: name of the kind=nodule labels (e.g. nodule)"
    )
    volumes: list[str] = Field(
        default_factory=list,
        description="volumetry/triage: names of the kind=volume labels compared (mL)",
    )

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        if not _TASK.match(value):
            raise ValueError("a task is lower-case letters, digits and '_' (e.g. stroke_ct)")
        return value


class OperatingPoints(_Strict):
    """Where sensitivity and specificity are read off: the vendor's threshold and fixed targets."""

    vendor_threshold: bool = Field(
        True, description="sensitivity/specificity at the model's own threshold"
    )
    threshold: float | None = Field(
        None, description="threshold to use when the model declares none (e.g. 0.5)"
    )
    sens_at_spec: list[Fraction] = Field(
        default_factory=list, description="sensitivity at these specificities"
    )
    spec_at_sens: list[Fraction] = Field(
        default_factory=list, description="specificity at these sensitivities"
    )

    @field_validator("sens_at_spec", "spec_at_sens")
    @classmethod
    def _sorted(cls, value: list[float]) -> list[float]:
        return sorted(set(value))


class Subgroups(_Strict):
    """Subgroups every endpoint is also reported in (``sg.<variable>.<value>.<metric>``)."""

    site: bool = True
    manufacturer: bool = True
    sex: bool = True
    age_band: list[int] = Field(
        default_factory=lambda: [50, 65, 75],
        description="band edges in years: [50, 65, 75] gives lt50, 50-64, 65-74, ge75",
    )

    @field_validator("age_band")
    @classmethod
    def _edges(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("age band edges must increase strictly, e.g. [50, 65, 75]")
        if any(not 0 < edge < 130 for edge in value):
            raise ValueError("age band edges are ages in years between 1 and 129")
        return value

    def variables(self) -> list[str]:
        names = [n for n in ("site", "manufacturer", "sex") if getattr(self, n)]
        return [*names, "age_band"] if self.age_band else names


class ConfidenceIntervals(_Strict):
    """How each kind of endpoint gets its interval; bootstraps are seeded (reruns repeat)."""

    level: float = Field(0.95, gt=0.5, lt=1.0, description="two-sided confidence level")
    proportion: Literal["wilson", "clopper-pearson", "agresti-coull", "jeffreys"] = "wilson"
    auc: Literal["delong", "bootstrap"] = "delong"
    froc: Literal["bootstrap"] = "bootstrap"
    operating_point: Literal["bootstrap", "fixed-threshold"] = "bootstrap"
    agreement: Literal["analytic"] = Field(
        "analytic", description="ICC: F-based (Shrout-Fleiss); Bland-Altman: t (1999)"
    )
    bootstrap_n: int = Field(2000, ge=100, le=100_000)
    seed: int = Field(0, ge=0)

    @property
    def alpha(self) -> float:
        return round(1.0 - self.level, 12)


class Comparison(_Strict):
    """A pre-specified paired comparison of two models on the cases both answered."""

    models: tuple[str, str]
    method: Literal["delong"] = "delong"
    endpoint: Literal["auc"] = "auc"

    @field_validator("models")
    @classmethod
    def _two(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1]:
            raise ValueError("a comparison needs two different models")
        return value


class Endpoints(_Strict):
    primary: list[str] = Field(min_length=1, description="the endpoints the study is powered on")
    secondary: list[str] = Field(default_factory=list)


class Timeouts(_Strict):
    notebook_s: float = Field(900.0, gt=0, description="limit per notebook cell (papermill)")
    prediction_s: float | None = Field(
        None, gt=0, description="limit per study prediction (default: the adapter's own)"
    )


class Protocol(_Strict):
    """One evaluation protocol (see the module docstring and docs/evaluation.md)."""

    format: Literal["gai-evaluation-protocol/1"] = PROTOCOL_FORMAT
    name: str = Field(description="lower-case name, e.g. lung-nodule-ct")
    version: str = Field(description="the authors' version label, e.g. '1.0'")
    title: str = ""
    task: str = Field(description="disease task: lung_nodule_ct, lung_nodule_dx, ...")
    kind: TaskKind
    cohort: CohortSpec
    reference: Reference
    models: list[str] = Field(min_length=1, description="every model evaluated, by name")
    endpoints: Endpoints
    operating_points: OperatingPoints = Field(default_factory=OperatingPoints)
    screening: bool = Field(
        False, description="the call at the threshold is a recall: recall rate, CDR, PPV1"
    )
    subgroups: Subgroups = Field(default_factory=Subgroups)
    ci: ConfidenceIntervals = Field(default_factory=ConfidenceIntervals)
    comparisons: list[Comparison] = Field(default_factory=list)
    missing_predictions: Literal["count-as-negative", "exclude"] = Field(
        "count-as-negative",
        description="failed/timed-out studies: called negative with the lowest score, or left out",
    )
    split_by_site: bool = Field(True, description="also one run per site besides ALL")
    notebook: str | None = Field(None, description="notebook file (default: by kind)")
    timeout: Timeouts = Field(default_factory=Timeouts)

    _source: Path | None = PrivateAttr(None)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a protocol name is lower-case letters, digits, '.', '_' or '-'")
        return value

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> str:
        return Reference._task(value)

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _MODEL.match(name):
                raise ValueError(f"{name!r} is not a model name (letters, digits, '.', '_', '-')")
        if len(set(value)) != len(value):
            raise ValueError("a model is listed twice")
        return value

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, value: str | None) -> str | None:
        if value is not None and not _NOTEBOOK.match(value):
            raise ValueError("give a notebook file name in notebooks/, e.g. eval_detection.ipynb")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        known = KIND_OF_TASK.get(self.task)
        if known is not None and known != self.kind:
            raise ValueError(
                f"kind: task {self.task} is evaluated as {known.value}, not {self.kind.value} "
                f"(fix: kind: {known.value})"
            )
        if self.kind == TaskKind.DETECTION and not self.reference.lesions:
            raise ValueError(
                "reference.lesions: a detection protocol needs it (fix: lesions: nodule)"
            )
        if self.kind == TaskKind.VOLUMETRY and not self.reference.volumes:
            raise ValueError(
                "reference.volumes: a volumetry protocol needs at least one "
                "(fix: volumes: [hippocampus_l, hippocampus_r])"
            )
        if self.screening and self.kind != TaskKind.CLASSIFICATION:
            raise ValueError(
                "screening: recall measures apply to classification protocols only "
                "(fix: remove screening: true)"
            )
        vocabulary = set(endpoint_vocabulary(self))
        for part in ("primary", "secondary"):
            for name in getattr(self.endpoints, part):
                if name not in vocabulary:
                    raise ValueError(
                        f"endpoints.{part}: {name!r} is not an endpoint of this "
                        f"{self.kind.value} protocol (fix: use one of "
                        f"{', '.join(sorted(vocabulary))})"
                    )
        for comparison in self.comparisons:
            missing = [m for m in comparison.models if m not in self.models]
            if missing:
                raise ValueError(
                    f"comparisons: {missing[0]!r} is not in models (fix: add it to models, "
                    "or compare listed models only)"
                )
        return self

    # --- identity ----------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The validated protocol as plain JSON data (what the content hash covers)."""
        return self.model_dump(mode="json")

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8)."""
        text = json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def source(self) -> Path | None:
        """The file it was loaded from, if any (not part of the hash)."""
        return self._source

    @property
    def notebook_name(self) -> str:
        return self.notebook or NOTEBOOK_OF_KIND[self.kind]

    @property
    def experiment_name(self) -> str:
        return f"gai-{self.task}"

    def endpoint_names(self) -> list[str]:
        return [*self.endpoints.primary, *self.endpoints.secondary]


def endpoint_vocabulary(protocol: Protocol) -> list[str]:
    """The endpoint names a protocol may declare: metric keys its notebook computes."""
    ops = protocol.operating_points
    names = [*STUDY_LEVEL, *LATENCY]
    names += [f"sens_at_spec_{v:g}" for v in ops.sens_at_spec]
    names += [f"spec_at_sens_{v:g}" for v in ops.spec_at_sens]
    if protocol.kind == TaskKind.DETECTION:
        names += FROC
    if protocol.screening:
        names += SCREENING
    if protocol.kind in (TaskKind.VOLUMETRY, TaskKind.TRIAGE) and protocol.reference.volumes:
        names += AGREEMENT
        for volume in protocol.reference.volumes:
            names += [f"vol.{volume}.{metric}" for metric in AGREEMENT]
    return names


# --- loading -------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the last would win)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class holding the key at ``loc`` (for listing the allowed keys)."""
    import typing

    current: Any = Protocol
    for part in loc[:-1]:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _fix(error: dict[str, Any]) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = ", ".join(model.model_fields) if model else "see protocol.schema.json"
        return f"remove it or correct its spelling; keys allowed here: {allowed}"
    if kind == "missing":
        return "add this key (see evaluation/protocol.schema.json)"
    if kind.endswith("_type") or kind in ("literal_error", "enum"):
        return error["msg"].replace("Input should be", "give")
    return "see evaluation/protocol.schema.json and docs/evaluation.md"


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if p not in ("function-after", "function-before"))
    message = error["msg"].removeprefix("Value error, ")
    where = _path(loc)
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (fix: {_fix(error)})"
    if error["type"] == "value_error":
        return message if not loc else f"{where}: {message}"
    return f"{where}: {message} (fix: {_fix(error)})"


def parse_protocol(data: Any, source: str | Path = "<protocol>") -> Protocol:
    """Validate protocol data (a dict, e.g. from YAML); errors name ``source`` and the keys."""
    if not isinstance(data, dict):
        raise ProtocolError(
            f"{source}: a protocol is a YAML mapping of keys, not {type(data).__name__}",
            hint="start from evaluation/lung_nodule_ct.yaml",
        )
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors(include_url=False)]
        raise ProtocolError(
            f"{source}: " + "; ".join(problems),
            hint="the schema: evaluation/protocol.schema.json, or `gai evaluate schema`",
        ) from None
    if isinstance(source, Path):
        protocol._source = source
    return protocol


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate one protocol file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ProtocolError(
            f"protocol file {path} not found",
            hint="list the protocols with `gai evaluate --list`",
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProtocolError(
            f"{path}: not valid YAML{where}: {problem}", hint="fix the YAML syntax there"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"{path}: unreadable ({type(exc).__name__})", hint="save it as UTF-8 text"
        ) from None
    return parse_protocol(data, path)


def default_protocol_dir() -> Path:
    """``./evaluation`` when it holds protocols, else the repository's ``evaluation/``."""
    here = Path("evaluation")
    if here.is_dir() and any(here.glob("*.yaml")):
        return here
    return Path(__file__).resolve().parents[2] / "evaluation"


def list_protocols(folder: str | Path | None = None) -> list[tuple[Path, Protocol | ProtocolError]]:
    """Every ``*.yaml`` protocol of ``folder`` with its validated protocol or its error."""
    folder = Path(folder) if folder is not None else default_protocol_dir()
    out: list[tuple[Path, Protocol | ProtocolError]] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            out.append((path, load_protocol(path)))
        except ProtocolError as exc:
            out.append((path, exc))
    return out


def protocol_json_schema() -> dict[str, Any]:
    """The JSON Schema of a protocol (draft 2020-12), generated from the pydantic models."""
    schema = Protocol.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gai-research evaluation protocol"
    return schema


def write_protocol_schema(path: str | Path) -> Path:
    """Write :func:`protocol_json_schema` to ``path`` (evaluation/protocol.schema.json)."""
    path = Path(path)
    text = json.dumps(protocol_json_schema(), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
