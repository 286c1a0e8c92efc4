"""The model registry: entry points and HOME/models.yaml, validation errors, adapters."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from gai_research.config import Settings
from gai_research.home import init_home
from gai_research.models import (
    MalformedResultError,
    ModelConfigError,
    ModelInfo,
    ModelNotFoundError,
    ModelUnavailableError,
    Origin,
    StudyInput,
)
from gai_research.models.adapters import adapter_class
from gai_research.models.adapters.python import PythonModel
from gai_research.models.registry import (
    ENTRY_POINT_GROUP,
    get_spec,
    install_demo,
    list_models,
    load_model,
    model_names,
    models_file,
    read_models_file,
)

DOUBLE = "tests.models_doubles:create"

HTTP_ENTRY = """\
  - name: vendor-lung-ct
    adapter: http
    vendor: Example Vendor Co.
    version: "2.3"
    task: lung_nodule_ct
    kind: detection
    threshold: 0.35
    modalities: [ct]
    regulatory: {status: MFDS-approved, approval_number: "제허 24-123 호", device_class: "2"}
    options: {url: "http://127.0.0.1:9", timeout_s: 5, retries: 0}
"""


def write_models(settings: Settings, body: str) -> Path:
    path = models_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def home(settings: Settings) -> Settings:
    init_home(settings)
    return settings


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed distribution (a real .dist-info on sys.path) declaring one model."""
    site = tmp_path / "site"
    info = site / "fake_vendor_sdk-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-vendor-sdk\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nfake-vendor-double = {DOUBLE}\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return "fake-vendor-double"


# --- entry points -------------------------------------------------------------------------
def test_an_installed_entry_point_is_listed_and_loaded(
    home: Settings, fake_distribution: str
) -> None:
    assert fake_distribution in model_names(home)
    spec = get_spec(fake_distribution, home)
    assert spec.source == "entry-point" and spec.adapter == "python"
    assert spec.target == DOUBLE
    assert spec.info.name == fake_distribution  # the registry name, not the factory's default
    assert spec.info.origin == Origin.SIMULATOR
    model = load_model(fake_distribution, home, delay_s=0.5)
    try:
        assert isinstance(model, PythonModel) and model.info.name == fake_distribution
        assert model.model.delay_s == 0.5  # options reach the factory
    finally:
        model.close()
    assert model.model.closed


@pytest.mark.parametrize(
    "name",
    [
        "baseline-lung-nodule-ct",
        "baseline-chest-xray",
        "baseline-mammography",
        "baseline-hippocampal-volume",
        "baseline-hemorrhage-ct",
    ],
)
def test_the_baselines_are_entry_points(home: Settings, name: str) -> None:
    spec = get_spec(name, home)
    assert spec.source == "entry-point"
    assert spec.info.origin == Origin.BASELINE and spec.info.name == name
    assert spec.info.regulatory.status == "research-only"


# --- the models file ----------------------------------------------------------------------
def test_models_file_entries_are_listed_with_their_facts(home: Settings) -> None:
    write_models(
        home,
        "models:\n"
        + HTTP_ENTRY
        + f"""\
  - name: local-double
    adapter: python
    threshold: 0.7
    options: {{entry_point: "{DOUBLE}", version: "9"}}
""",
    )
    specs = {s.name: s for s in list_models(home)}
    vendor = specs["vendor-lung-ct"]
    assert vendor.source == "models file" and vendor.adapter == "http"
    assert vendor.info.origin == Origin.VENDOR and vendor.info.modalities == ("CT",)
    assert vendor.info.regulatory.approval_number == "제허 24-123 호"
    assert vendor.options["url"] == "http://127.0.0.1:9"
    double = specs["local-double"]
    assert double.info.name == "local-double" and double.info.threshold == 0.7  # file wins
    assert double.info.vendor == "gai-research tests (test double)"  # the model's own
    assert "entry_point" not in double.options
    row = vendor.row()
    assert row["regulatory"] == "MFDS-approved" and row["kind"] == "detection"


def test_a_models_file_python_model_gets_its_options(home: Settings) -> None:
    write_models(
        home,
        f"""\
        models:
          - name: local-double
            adapter: python
            options: {{entry_point: "{DOUBLE}", delay_s: 0.25}}
        """,
    )
    with load_model("local-double", home) as model:
        assert model.info.name == "local-double" and model.model.delay_s == 0.25
    with load_model("local-double", home, delay_s=0.0) as model:
        assert model.model.delay_s == 0.0  # the caller's options win


def test_an_http_entry_loads_its_adapter(home: Settings) -> None:
    write_models(home, "models:\n" + HTTP_ENTRY)
    model = load_model("vendor-lung-ct", home)
    try:
        assert type(model).__name__ == "HttpModel"
        assert model.info.vendor == "Example Vendor Co." and model.info.version == "2.3"
        assert model.url == "http://127.0.0.1:9" and model.retries == 0
    finally:
        model.close()


def test_no_models_file_means_entry_points_only(home: Settings) -> None:
    assert read_models_file(home) == []
    assert "baseline-lung-nodule-ct" in model_names(home)


BAD_ENTRIES = {
    "missing-vendor": (
        "models:\n  - {name: v1, adapter: http, version: '1', task: t, kind: detection}\n",
        "entry 1 (v1)",
        "vendor",
    ),
    "unknown-adapter": (
        "models:\n  - {name: v1, adapter: grpc, vendor: V, version: '1', task: t, kind: triage}\n",
        "field adapter",
        "python",
    ),
    "bad-kind": (
        "models:\n  - {name: v1, adapter: http, vendor: V, version: '1', task: t, kind: magic}\n",
        "field kind",
        "classification",
    ),
    "typo-field": (
        "models:\n  - {name: v1, adapter: http, vendor: V, version: '1', task: t, kind: triage,"
        " thresold: 0.5}\n",
        "field thresold",
        "not permitted",
    ),
    "bad-threshold": (
        "models:\n  - {name: v1, adapter: http, vendor: V, version: '1', task: t, kind: triage,"
        " threshold: high}\n",
        "field threshold",
        "number",
    ),
    "second-entry": (
        f"models:\n  - {{name: ok, adapter: python, options: {{entry_point: '{DOUBLE}'}}}}\n"
        "  - {name: Bad Name, adapter: python, options: {entry_point: 'x:y'}}\n",
        "entry 2 (Bad Name)",
        "field name",
    ),
    "python-without-target": (
        "models:\n  - {name: p, adapter: python}\n",
        "entry 1 (p)",
        "options.entry_point is required",
    ),
    "simulator-as-vendor": (
        "models:\n  - {name: s, adapter: http, vendor: V, version: '1', task: t, kind: triage,"
        " origin: vendor, simulator: {kind: http, wraps: baseline-hemorrhage-ct}}\n",
        "entry 1 (s)",
        "origin 'simulator'",
    ),
    "simulator-wrong-adapter": (
        "models:\n  - {name: s, adapter: http, vendor: V, version: '1', task: t, kind: triage,"
        " simulator: {kind: dicom, wraps: baseline-hemorrhage-ct}}\n",
        "entry 1 (s)",
        "adapter 'dicom'",
    ),
    "fake-baseline": (
        "models:\n  - {name: baseline-mine, adapter: http, vendor: V, version: '1', task: t,"
        " kind: triage, origin: vendor}\n",
        "entry 1 (baseline-mine)",
        "reserved for baselines",
    ),
    "duplicate": (
        f"models:\n  - {{name: d, adapter: python, options: {{entry_point: '{DOUBLE}'}}}}\n"
        f"  - {{name: d, adapter: python, options: {{entry_point: '{DOUBLE}'}}}}\n",
        "entry 2 (d) repeats the name of entry 1",
        "own name",
    ),
    "not-a-list": ("models: {a: 1}\n", "list under 'models:'", "docs/models.md"),
    "unknown-top-level": ("model: []\n", "unknown top-level key 'model'", "docs/models.md"),
    "yaml-syntax": ("models:\n  - name: [unclosed\n", "at line", "docs/models.md"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_a_bad_models_file_says_which_entry_and_field(home: Settings, case: str) -> None:
    body, where, what = BAD_ENTRIES[case]
    path = write_models(home, body)
    with pytest.raises(ModelConfigError) as caught:
        list_models(home)
    message = str(caught.value)
    assert str(path) in message and where in message and what in message
    assert caught.value.hint


def test_a_name_clash_with_an_entry_point_is_an_error(home: Settings) -> None:
    write_models(
        home,
        "models:\n  - {name: baseline-lung-nodule-ct, adapter: python,"
        f" options: {{entry_point: '{DOUBLE}'}}}}\n",
    )
    with pytest.raises(ModelConfigError, match="already provides") as caught:
        load_model("baseline-lung-nodule-ct", home)
    assert "rename" in caught.value.hint


def test_an_unknown_name_lists_the_known_ones(home: Settings) -> None:
    write_models(home, "models:\n" + HTTP_ENTRY)
    with pytest.raises(ModelNotFoundError) as caught:
        load_model("no-such-model", home)
    message = str(caught.value)
    assert "'no-such-model'" in message
    assert "vendor-lung-ct" in message and "baseline-lung-nodule-ct" in message
    assert "models.yaml" in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("tests.models_doubles", "module:callable"),
        ("tests.no_such_module:create", "cannot import"),
        ("tests.models_doubles:nothing", "has no 'nothing'"),
        ("tests.models_doubles:NAME", "not callable"),
        ("tests.models_doubles:create_not_a_model", "not a model"),
    ],
)
def test_a_bad_python_target_is_a_config_error(home: Settings, target: str, expected: str) -> None:
    write_models(
        home, f"models:\n  - {{name: p, adapter: python, options: {{entry_point: '{target}'}}}}\n"
    )
    with pytest.raises(ModelConfigError, match=expected) as caught:
        load_model("p", home)
    assert caught.value.hint


def test_an_option_the_factory_does_not_take_is_a_config_error(home: Settings) -> None:
    write_models(
        home, f"models:\n  - {{name: p, adapter: python, options: {{entry_point: '{DOUBLE}'}}}}\n"
    )
    with pytest.raises(ModelConfigError, match="does not take these options"):
        load_model("p", home, colour="blue")


def test_an_http_option_the_adapter_does_not_take_is_a_config_error(home: Settings) -> None:
    write_models(home, "models:\n" + HTTP_ENTRY.replace("retries: 0", "retries: 0, colour: x"))
    with pytest.raises(ModelConfigError, match=r"vendor-lung-ct.*http adapter"):
        load_model("vendor-lung-ct", home)


def test_a_simulated_vendor_that_is_not_running_says_how_to_start_it(home: Settings) -> None:
    write_models(
        home,
        """\
        models:
          - name: sim-ct
            adapter: http
            vendor: simulated vendor (test double)
            version: "1"
            task: stroke_ct
            kind: triage
            simulator: {kind: http, wraps: baseline-hemorrhage-ct, delay_s: 0.1}
        """,
    )
    spec = get_spec("sim-ct", home)
    assert spec.info.origin == Origin.SIMULATOR  # implied by the simulator block
    with pytest.raises(ModelUnavailableError, match="not running") as caught:
        load_model("sim-ct", home)
    assert "gai models simulators up" in caught.value.hint
    # an explicit address needs no running simulator
    with load_model("sim-ct", home, url="http://127.0.0.1:9") as model:
        assert model.url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("adapter", "cls"),
    [
        ("python", "PythonModel"),
        ("http", "HttpModel"),
        ("dicom", "DicomNodeModel"),
        ("monai-bundle", "MonaiBundleModel"),
    ],
)
def test_adapter_classes_by_name(adapter: str, cls: str) -> None:
    assert adapter_class(adapter).__name__ == cls


def test_an_unknown_adapter_class_is_a_config_error() -> None:
    with pytest.raises(ModelConfigError, match="unknown adapter 'grpc'"):
        adapter_class("grpc")


# --- the python adapter's guards -----------------------------------------------------------
def _study(uid: str = "2.25.1") -> StudyInput:
    return StudyInput(study_uid=uid, series=())


def test_a_python_model_answering_garbage_is_malformed() -> None:
    with (
        PythonModel(None, entry_point=DOUBLE, garbage_on=["2.25.1"]) as model,
        pytest.raises(MalformedResultError, match="not a Prediction"),
    ):
        model.predict(_study())


def test_a_python_model_answering_for_another_study_is_malformed() -> None:
    class Liar:
        info = ModelInfo("liar", "v", "1", "stroke_ct", "triage")

        def predict(self, study):
            from gai_research.models import Prediction

            return Prediction(study_uid="2.25.999", score=0.5)

    sys.modules[__name__].make_liar = lambda **_: Liar()  # type: ignore[attr-defined]
    with (
        PythonModel(None, entry_point=f"{__name__}:make_liar") as model,
        pytest.raises(MalformedResultError, match="another study"),
    ):
        model.predict(_study())


# --- the demo's models file ---------------------------------------------------------------
def test_install_demo_writes_a_valid_file_and_keeps_an_existing_one(home: Settings) -> None:
    path = install_demo(home)
    entries = {e.name: e for e in read_models_file(home)}
    assert {"simulated-vendor-lung-ct", "simulated-vendor-stroke-ct"} <= set(entries)
    for entry in entries.values():
        assert entry.simulator is not None and entry.effective_origin == Origin.SIMULATOR
        assert entry.vendor == "simulated vendor (test double)"
        assert entry.simulator.wraps.startswith("baseline-")
    assert entries["simulated-vendor-lung-ct"].simulator.kind == "http"
    assert entries["simulated-vendor-lung-ct"].simulator.delay_s == 0.2
    assert entries["simulated-vendor-stroke-ct"].simulator.kind == "dicom"
    path.write_text("models: []\n")
    with pytest.raises(ModelConfigError, match="exists already") as caught:
        install_demo(home)
    assert "--force" in caught.value.hint
    assert path.read_text() == "models: []\n"
    install_demo(home, force=True)
    assert len(read_models_file(home)) == len(entries)


def test_install_demo_needs_an_initialised_home(settings: Settings) -> None:
    from gai_research.errors import HomeError

    with pytest.raises(HomeError, match="gai init"):
        install_demo(settings)
