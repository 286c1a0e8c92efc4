"""Evaluation protocols: the committed files validate, bad ones fail with file/key/fix, hashes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from gai_research.cli import main
from gai_research.evaluation.errors import ProtocolError
from gai_research.evaluation.protocol import (
    KIND_OF_TASK,
    Protocol,
    endpoint_vocabulary,
    list_protocols,
    load_protocol,
    parse_protocol,
    protocol_json_schema,
)

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = sorted((ROOT / "evaluation").glob("*.yaml"))
BASE = yaml.safe_load((ROOT / "evaluation" / "lung_nodule_ct.yaml").read_text(encoding="utf-8"))


def changed(**edits) -> dict:
    """The lung-nodule CT protocol with ``edits`` applied (dotted paths; None deletes)."""
    data = copy.deepcopy(BASE)
    for path, value in edits.items():
        *parents, last = path.split("__")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return data


def test_one_protocol_per_task() -> None:
    names = {p.stem for p in PROTOCOLS}
    assert names == set(KIND_OF_TASK)


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.name)
def test_committed_protocols_validate(path: Path) -> None:
    protocol = load_protocol(path)
    assert protocol.task == path.stem and protocol.kind == KIND_OF_TASK[protocol.task]
    assert protocol.source == path
    assert len(protocol.content_hash) == 64
    assert protocol.models and all(
        m.startswith(("baseline-", "simulated-")) for m in protocol.models
    )
    assert set(protocol.endpoint_names()) <= set(endpoint_vocabulary(protocol))
    assert (ROOT / "notebooks" / protocol.notebook_name).is_file()


def test_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "evaluation" / "protocol.schema.json").read_text("utf-8"))
    assert committed == protocol_json_schema(), (
        "regenerate: gai evaluate schema --out evaluation/protocol.schema.json"
    )


def test_schema_rejects_unknown_keys_everywhere() -> None:
    schema = protocol_json_schema()
    assert schema["additionalProperties"] is False
    assert all(
        d.get("additionalProperties") is False
        for d in schema["$defs"].values()
        if d.get("type") == "object"
    )


def test_hash_ignores_comments_order_and_spelt_out_defaults(tmp_path: Path) -> None:
    original = load_protocol(ROOT / "evaluation" / "lung_nodule_ct.yaml")
    shuffled = dict(reversed(list(BASE.items())))
    shuffled["format"] = "gai-evaluation-protocol/1"  # a default, spelt out
    shuffled["ci"] = {**BASE["ci"], "agreement": "analytic"}
    path = tmp_path / "p.yaml"
    path.write_text("# another comment\n" + yaml.safe_dump(shuffled, sort_keys=False), "utf-8")
    assert load_protocol(path).content_hash == original.content_hash


@pytest.mark.parametrize(
    "edits",
    [{"ci__seed": 1}, {"comparisons": []}, {"version": "1.1"}],
    ids=["seed", "comparisons", "version"],
)
def test_hash_changes_with_substance(edits: dict) -> None:
    original = parse_protocol(BASE)
    assert parse_protocol(changed(**edits)).content_hash != original.content_hash


def test_hash_is_stable_across_processes() -> None:
    import subprocess
    import sys

    code = (
        "from gai_research.evaluation.protocol import load_protocol\n"
        "print(load_protocol('evaluation/lung_nodule_ct.yaml').content_hash)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == load_protocol(ROOT / "evaluation" / "lung_nodule_ct.yaml").content_hash


@pytest.mark.parametrize(
    ("edits", "where", "fix"),
    [
        ({"ci__seeed": 3}, "ci.seeed: unknown key", "keys allowed here: level"),
        ({"modelz": ["x"]}, "modelz: unknown key", "keys allowed here: format, name"),
        ({"models": None}, "models: Field required", "add this key"),
        ({"endpoints__primary": ["cpmm"]}, "endpoints.primary: 'cpmm'", "use one of"),
        ({"kind": "classification"}, "kind: task lung_nodule_ct", "kind: detection"),
        ({"ci__auc": "boot"}, "ci.auc:", "give 'delong' or 'bootstrap'"),
        ({"cohort__filters__site": ["seoul"]}, "cohort.filters.site", "SUWON, ANSEONG, ICHEON"),
        ({"cohort__name": "lung"}, "cohort: give exactly one of", "filters"),
        (
            {"comparisons": [{"models": ["a", "baseline-lung-nodule-ct"]}]},
            "comparisons: 'a'",
            "add it to models",
        ),
        ({"subgroups__age_band": [65, 50]}, "subgroups.age_band", "increase strictly"),
        ({"reference__lesions": None}, "reference.lesions", "lesions: nodule"),
        ({"ci__level": 1.5}, "ci.level", "less than 1"),
        (
            {"operating_points__sens_at_spec": [0.9, 1.2]},
            "operating_points.sens_at_spec[1]",
            "less than 1",
        ),
        ({"endpoints__secondary": ["sens_at_spec_0.8"]}, "'sens_at_spec_0.8'", "sens_at_spec_0.9"),
        ({"screening": True}, "screening:", "remove screening"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_protocols_name_file_key_and_fix(edits: dict, where: str, fix: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(changed(**edits), Path("evaluation/bad.yaml"))
    message = str(info.value)
    assert message.startswith("evaluation/bad.yaml: ")
    assert where in message and fix in message


def test_yaml_errors_and_duplicate_keys_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nname: b\n", "utf-8")
    with pytest.raises(ProtocolError, match=r"dup.yaml: not valid YAML \(line 2.*given twice"):
        load_protocol(path)
    path.write_text("name: [a\n", "utf-8")
    with pytest.raises(ProtocolError, match="not valid YAML"):
        load_protocol(path)
    path.write_text("- a list\n", "utf-8")
    with pytest.raises(ProtocolError, match="a YAML mapping"):
        load_protocol(path)
    with pytest.raises(ProtocolError, match="not found"):
        load_protocol(tmp_path / "missing.yaml")


def test_sites_and_modalities_are_normalised() -> None:
    protocol = parse_protocol(
        changed(cohort__filters={"modality": "ct", "site": ["icheon", "Suwon"]})
    )
    assert protocol.cohort.filters.as_kwargs() == {"modality": ["CT"], "site": ["ICHEON", "SUWON"]}


def test_volumetry_endpoints_include_each_volume() -> None:
    protocol = load_protocol(ROOT / "evaluation" / "dementia_mr.yaml")
    vocabulary = endpoint_vocabulary(protocol)
    assert {"vol.hippocampus_l.icc", "vol.hippocampus_r.mae_ml", "icc"} <= set(vocabulary)
    assert "cpm" not in vocabulary


def test_list_protocols_reports_invalid_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(BASE), "utf-8")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(changed(ci__seeed=1)), "utf-8")
    found = dict(list_protocols(tmp_path))
    assert isinstance(found[tmp_path / "good.yaml"], Protocol)
    assert isinstance(found[tmp_path / "bad.yaml"], ProtocolError)


def test_cli_list_validate_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--list", "--protocols", str(ROOT / "evaluation")]) == 0
    out = capsys.readouterr().out
    for path in PROTOCOLS:
        assert load_protocol(path).content_hash in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(changed(ci__seeed=1)), "utf-8")
    assert main(["evaluate", "validate", str(PROTOCOLS[0]), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{PROTOCOLS[0]}: ok" in out and "ci.seeed: unknown key" in out
    schema = tmp_path / "schema.json"
    assert main(["evaluate", "schema", "--out", str(schema)]) == 0
    assert json.loads(schema.read_text("utf-8")) == protocol_json_schema()


def test_cli_without_a_target_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate"]) == 1
    assert "--all" in capsys.readouterr().err


def test_cli_all_reports_an_invalid_protocol_and_exits_non_zero(
    gai_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "bad.yaml").write_text(yaml.safe_dump(changed(ci__seeed=1)), "utf-8")
    assert main(["evaluate", "--all", "--protocols", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "bad.yaml: error:" in captured.err and "ci.seeed: unknown key" in captured.err
    assert "mlflow ui --backend-store-uri sqlite:///" in captured.out


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.name)
def test_protocol_files_validate_against_the_exported_schema(path: Path) -> None:
    """Editors and CI tools can check a protocol with the JSON Schema alone."""
    import jsonschema

    schema = json.loads((ROOT / "evaluation" / "protocol.schema.json").read_text("utf-8"))
    jsonschema.validate(yaml.safe_load(path.read_text("utf-8")), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(changed(ci__seeed=1), schema)
