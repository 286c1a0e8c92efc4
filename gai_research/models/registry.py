"""Models by name: installed entry points plus the platform's ``models.yaml``.

Two places declare models, and ``gai models list`` shows both:

- **entry points** in group ``gai_research.models``: a callable ``create(**options) ->
  Model`` that a Python package installs (our ``baseline-*`` models; a vendor's SDK);
- **the models file** ``HOME/models.yaml``: one entry per model reached through an
  adapter (``python``, ``monai-bundle``, ``http``, ``dicom``), with the facts the
  evaluation reports (vendor, version, task, kind, origin, threshold, regulatory status)
  and the adapter's options; an optional ``simulator:`` block declares a simulated vendor
  that ``gai models simulators up`` starts for the demo and the tests.

Every entry is validated when the file is read; a problem names the entry and the field.
A name declared twice (in the file, or in the file and an entry point) is an error, so
a name always means one model. Nothing is cached at import: callers pass ``settings``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gai_research.config import Settings, load_settings
from gai_research.models.errors import (
    ModelConfigError,
    ModelError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from gai_research.models.types import Model, ModelInfo, Origin, Regulatory, TaskKind

__all__ = [
    "ADAPTERS",
    "ENTRY_POINT_GROUP",
    "MODELS_FILE",
    "ModelEntry",
    "ModelSpec",
    "SimulatorSpec",
    "get_spec",
    "install_demo",
    "list_models",
    "load_model",
    "model_names",
    "models_file",
    "read_models_file",
]

ENTRY_POINT_GROUP = "gai_research.models"
MODELS_FILE = "models.yaml"
ADAPTERS = ("python", "monai-bundle", "http", "dicom")
AdapterName = Literal["python", "monai-bundle", "http", "dicom"]
SIMULATED_VENDOR = "simulated vendor (test double)"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FILE_HINT = "fix the entry in {path} (docs/models.md describes every field)"


def models_file(settings: Settings) -> Path:
    """Where the platform's models file lives: ``HOME/models.yaml``."""
    return settings.home / MODELS_FILE


# --- the models-file schema ----------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatorSpec(_Strict):
    """A simulated vendor to start for the demo and tests: it wraps a model (a baseline)."""

    kind: Literal["http", "dicom"]
    wraps: str = Field(description="registry name of the model it wraps, e.g. a baseline")
    port: int = Field(0, ge=0, le=65535, description="0: a free port chosen at start")
    ae_title: str = Field("GAI-SIM-DICOM", min_length=1, max_length=16)
    return_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="dicom: where its results go (the adapter listens there); "
        "default the platform's DICOM port",
    )
    delay_s: float = Field(0.0, ge=0.0, description="added before every answer")
    failure_rate: float = Field(0.0, ge=0.0, le=1.0, description="share answered with an error")
    timeout_rate: float = Field(0.0, ge=0.0, le=1.0, description="share never answered")
    malformed_rate: float = Field(0.0, ge=0.0, le=1.0, description="share answered with garbage")
    seed: int = 0


class RegulatorySpec(_Strict):
    status: str = "research-only"
    approval_number: str | None = None
    device_class: str | None = None
    intended_use: str = ""


class ModelEntry(_Strict):
    """One entry of ``models.yaml`` as written (info fields flat beside name and adapter)."""

    name: str
    adapter: AdapterName
    vendor: str | None = None
    version: str | None = None
    task: str | None = None
    kind: TaskKind | None = None
    origin: Origin | None = None
    threshold: float | None = None
    modalities: tuple[str, ...] = ()
    regulatory: RegulatorySpec | None = None
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    simulator: SimulatorSpec | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "a model name is 1-64 lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("modalities", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        return tuple(str(v).upper() for v in value) if value is not None else ()

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        if self.adapter == "python":
            target = self.options.get("entry_point")
            if not isinstance(target, str) or not target.strip():
                raise ValueError(
                    "options.entry_point is required for the python adapter: an installed "
                    "entry point name or 'module:callable'"
                )
        else:
            missing = [f for f in ("vendor", "version", "task", "kind") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)} required for the {self.adapter} adapter")
        if self.simulator is not None:
            if self.adapter != self.simulator.kind:
                raise ValueError(
                    f"a {self.simulator.kind} simulator is reached with adapter "
                    f"{self.simulator.kind!r}, not {self.adapter!r}"
                )
            if self.origin not in (None, Origin.SIMULATOR):
                raise ValueError("a simulated vendor has origin 'simulator'")
        if self.name.startswith("baseline-") and self.origin not in (None, Origin.BASELINE):
            raise ValueError("names starting with 'baseline-' are reserved for baselines")
        if self.origin == Origin.BASELINE and not self.name.startswith("baseline-"):
            raise ValueError("a baseline's name starts with 'baseline-'")
        return self

    @property
    def effective_origin(self) -> Origin | None:
        if self.simulator is not None:
            return Origin.SIMULATOR
        if self.origin is None and self.name.startswith("baseline-"):
            return Origin.BASELINE
        return self.origin

    def info_fields(self) -> dict[str, Any]:
        """The ModelInfo fields this entry sets (all of them unless it is a python entry)."""
        fields: dict[str, Any] = {"name": self.name}
        for key in ("vendor", "version", "task", "kind", "threshold"):
            if getattr(self, key) is not None:
                fields[key] = getattr(self, key)
        if self.effective_origin is not None:
            fields["origin"] = self.effective_origin
        if self.modalities:
            fields["modalities"] = self.modalities
        if self.regulatory is not None:
            fields["regulatory"] = Regulatory(**self.regulatory.model_dump())
        if self.description:
            fields["description"] = self.description
        return fields

    def complete_info(self) -> ModelInfo | None:
        """The ModelInfo when the entry names vendor, version, task and kind; else None."""
        fields = self.info_fields()
        if not all(k in fields for k in ("vendor", "version", "task", "kind")):
            return None
        fields.setdefault("origin", Origin.VENDOR)
        return ModelInfo(**fields)


class ModelSpec(BaseModel):
    """A model the registry knows: how to reach it and who it is."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    adapter: AdapterName
    info: ModelInfo
    options: dict[str, Any] = Field(default_factory=dict)
    simulator: SimulatorSpec | None = None
    source: Literal["entry-point", "models file"]
    target: str = ""  # "module:callable" of a python model, else ""

    def row(self) -> dict[str, Any]:
        """One line of ``gai models list``."""
        info = self.info
        return {
            "name": self.name,
            "adapter": self.adapter,
            "task": info.task,
            "kind": str(info.kind),
            "origin": str(info.origin),
            "vendor": info.vendor,
            "version": info.version,
            "threshold": info.threshold,
            "modalities": list(info.modalities),
            "regulatory": info.regulatory.status,
            "source": self.source,
        }


# --- reading ---------------------------------------------------------------------------
def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_settings()


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        held = found.get(ep.name)
        if held is not None and held.value != ep.value:
            raise ModelConfigError(
                f"two installed packages declare model {ep.name!r} ({held.value} and {ep.value})",
                hint="uninstall one of them",
                model=ep.name,
            )
        found[ep.name] = ep
    return found


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(entry)"


def read_models_file(settings: Settings | None = None) -> list[ModelEntry]:
    """The validated entries of ``HOME/models.yaml`` (none when there is no file).

    Errors name the entry (its position and name) and the field.
    """
    path = models_file(_settings(settings))
    if not path.is_file():
        return []
    hint = _FILE_HINT.format(path=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ModelConfigError(f"cannot read {path}{at}: {type(exc).__name__}", hint=hint) from None
    if data is None:
        return []
    if not isinstance(data, Mapping) or not isinstance(data.get("models", []), list):
        raise ModelConfigError(f"{path} must hold a mapping with a list under 'models:'", hint=hint)
    unknown = sorted(set(data) - {"models"})
    if unknown:
        raise ModelConfigError(f"{path}: unknown top-level key {unknown[0]!r}", hint=hint)
    entries: list[ModelEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data.get("models") or [], start=1):
        label = f"entry {index}"
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']})"
        if not isinstance(raw, Mapping):
            raise ModelConfigError(f"{path}: {label} is not a mapping", hint=hint)
        try:
            entry = ModelEntry.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            message = first["msg"].removeprefix("Value error, ")
            raise ModelConfigError(
                f"{path}: {label}, field {_field_path(first['loc'])}: {message}",
                hint=hint,
                model=raw.get("name") if isinstance(raw.get("name"), str) else None,
            ) from None
        if entry.name in seen:
            raise ModelConfigError(
                f"{path}: {label} repeats the name of entry {seen[entry.name]}",
                hint="give every model its own name",
                model=entry.name,
            )
        seen[entry.name] = index
        entries.append(entry)
    return entries


def _sources(settings: Settings) -> tuple[dict[str, EntryPoint], dict[str, ModelEntry]]:
    eps = _entry_points()
    entries = {e.name: e for e in read_models_file(settings)}
    clash = sorted(set(eps) & set(entries))
    if clash:
        raise ModelConfigError(
            f"{models_file(settings)} declares {clash[0]!r}, which an installed package "
            f"already provides ({eps[clash[0]].value})",
            hint="rename the models-file entry",
            model=clash[0],
        )
    return eps, entries


def model_names(settings: Settings | None = None) -> list[str]:
    """Every known model name, sorted (cheap: nothing is imported or started)."""
    eps, entries = _sources(_settings(settings))
    return sorted({*eps, *entries})


def _not_found(name: str, known: list[str], settings: Settings) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"no model named {name!r}; known models: {', '.join(known) or 'none'}",
        hint=f"check the name (`gai models list`), or declare it in {models_file(settings)}",
        model=name,
    )


def _python_spec(name: str, target: str, source: str, entry: ModelEntry | None) -> ModelSpec:
    from gai_research.models.adapters.python import describe

    given = entry.info_fields() if entry is not None else {}
    info = entry.complete_info() if entry is not None else None
    if info is None:
        try:
            info = describe(target, name=name, overrides=given)
        except ModelConfigError as exc:
            where = "entry point" if source == "entry-point" else "models-file entry"
            raise ModelConfigError(
                f"model {name!r} ({where} {target}) cannot be loaded: {exc.message}",
                hint="reinstall the package that provides it (make setup)"
                if source == "entry-point"
                else exc.hint,
                model=name,
            ) from None
    options = dict(entry.options) if entry is not None else {}
    options.pop("entry_point", None)
    return ModelSpec(
        name=name,
        adapter="python",
        info=info,
        options=options,
        source=source,  # type: ignore[arg-type]
        target=target,
    )


def _spec_from_entry(entry: ModelEntry, eps: Mapping[str, EntryPoint]) -> ModelSpec:
    if entry.adapter == "python":
        target = entry.options["entry_point"]
        if ":" not in target and target in eps:
            target = eps[target].value
        return _python_spec(entry.name, target, "models file", entry)
    info = entry.complete_info()
    assert info is not None  # the entry validator requires the fields
    return ModelSpec(
        name=entry.name,
        adapter=entry.adapter,
        info=info,
        options=dict(entry.options),
        simulator=entry.simulator,
        source="models file",
    )


def get_spec(name: str, settings: Settings | None = None) -> ModelSpec:
    """The spec of one model (imports a python model's module to learn who it is)."""
    settings = _settings(settings)
    eps, entries = _sources(settings)
    if name in entries:
        return _spec_from_entry(entries[name], eps)
    if name in eps:
        return _python_spec(name, eps[name].value, "entry-point", None)
    raise _not_found(name, sorted({*eps, *entries}), settings)


def list_models(settings: Settings | None = None) -> list[ModelSpec]:
    """Every model: the installed entry points, then the models file, each sorted by name."""
    settings = _settings(settings)
    eps, entries = _sources(settings)
    specs = [_python_spec(n, eps[n].value, "entry-point", None) for n in sorted(eps)]
    specs += [_spec_from_entry(entries[n], eps) for n in sorted(entries)]
    return specs


def load_model(name: str, settings: Settings | None = None, **options: Any) -> Model:
    """The model called ``name``, ready to ``predict``; ``options`` override the declared ones.

    A simulated vendor's address (``url``, or ``host``/``port``/``ae_title``) comes from
    the running simulator (``gai models simulators up``) unless the options give it.
    """
    from gai_research.models.adapters import adapter_class

    settings = _settings(settings)
    eps, entries = _sources(settings)
    entry = entries.get(name)
    if entry is None and name not in eps:
        raise _not_found(name, sorted({*eps, *entries}), settings)
    if entry is None or entry.adapter == "python":
        from gai_research.models.adapters.python import PythonModel

        if entry is None:
            return PythonModel(None, entry_point=eps[name].value, name=name, **options)
        target = entry.options["entry_point"]
        if ":" not in target and target in eps:
            target = eps[target].value
        given = {k: v for k, v in entry.options.items() if k != "entry_point"}
        return PythonModel(
            entry.complete_info(),
            entry_point=target,
            name=name,
            overrides=entry.info_fields(),
            **(given | options),
        )
    merged = dict(entry.options) | options
    if entry.simulator is not None:
        merged = _simulator_address(settings, entry, merged)
    cls = adapter_class(entry.adapter)
    info = entry.complete_info()
    try:
        return cls(info, **merged)
    except ModelError:
        raise
    except TypeError as exc:
        raise ModelConfigError(
            f"model {name!r}: the {entry.adapter} adapter does not take these options: {exc}",
            hint=_FILE_HINT.format(path=models_file(settings)),
            model=name,
        ) from None


def _simulator_address(
    settings: Settings, entry: ModelEntry, options: dict[str, Any]
) -> dict[str, Any]:
    """Options with the running simulator's address filled in where they lack one."""
    sim = entry.simulator
    assert sim is not None
    needed = ("url",) if sim.kind == "http" else ("host", "port", "ae_title")
    if all(k in options for k in needed):
        return options
    from gai_research.models.simulators.daemon import running_simulator

    state = running_simulator(settings, entry.name)
    if state is None:
        raise ModelUnavailableError(
            f"the simulated vendor {entry.name!r} is not running",
            hint="start it with `gai models simulators up`",
            model=entry.name,
        )
    if sim.kind == "http":
        address = {"url": state["url"]}
    else:  # the node sends results to the platform's AE on return_port: listen there
        address = {
            "host": "127.0.0.1",
            "port": state["port"],
            "ae_title": state["ae_title"],
            "listen_port": state["return_port"],
            "listen_ae": state["return_ae"],
        }
    return address | options


# --- the demo's models file -----------------------------------------------------------------
DEMO_MODELS = "demo-models.yaml"


def install_demo(settings: Settings | None = None, *, force: bool = False) -> Path:
    """Copy the demo's models file (simulated vendors) to ``HOME/models.yaml``.

    An existing models file is kept unless ``force``. Returns the path written.
    """
    from importlib.resources import files

    from gai_research.home import check_home

    settings = _settings(settings)
    check_home(settings)
    target = models_file(settings)
    if target.exists() and not force:
        raise ModelConfigError(
            f"{target} exists already",
            hint="edit it, or replace it with the demo's: `gai models install-demo --force`",
        )
    text = (files("gai_research.models") / "data" / DEMO_MODELS).read_text(encoding="utf-8")
    temporary = target.with_suffix(".yaml.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    read_models_file(settings)  # the shipped file must validate
    return target
