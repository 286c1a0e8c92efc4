"""Routing rules: the schema (errors name their place), matching, the default rules, explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from gai_research.gateway.errors import RulesError
from gai_research.gateway.facts import SeriesFacts
from gai_research.gateway.match import evaluate, route
from gai_research.gateway.rules import Condition, load_rules, parse_rules

CT = "1.2.840.10008.5.1.4.1.1.2"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CR = "1.2.840.10008.5.1.4.1.1.1"
MG = "1.2.840.10008.5.1.4.1.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
US = "1.2.840.10008.5.1.4.1.1.6.1"


def series(uid: str = "1.2.3.4", position: int = 1, **facts) -> SeriesFacts:
    defaults = {"rows": 512, "columns": 512, "instances": 1, "image_type": "ORIGINAL\\PRIMARY"}
    return SeriesFacts(series_uid=uid, position=position, **(defaults | facts))


def chest_ct(**changes) -> SeriesFacts:
    base = {
        "modality": "CT",
        "sop_classes": (CT,),
        "body_part": "CHEST",
        "study_description": "CT CHEST LOW DOSE",
        "series_description": "LUNG 1mm",
        "instances": 120,
    }
    return series(**(base | changes))


def head_ct(**changes) -> SeriesFacts:
    base = {
        "modality": "CT",
        "sop_classes": (CT,),
        "body_part": "HEAD",
        "study_description": "CT BRAIN NON-CONTRAST",
        "series_description": "BRAIN 5mm",
        "instances": 32,
    }
    return series(**(base | changes))


def mammo(views: tuple[str, ...], sides: tuple[str, ...]) -> SeriesFacts:
    return series(
        modality="MG",
        sop_classes=(MG,),
        body_part="BREAST",
        views=views,
        lateralities=sides,
        instances=len(views) * len(sides),
    )


def dx(**changes) -> SeriesFacts:
    base = {"modality": "DX", "sop_classes": (DX,), "body_part": "CHEST", "views": ("PA",)}
    return series(**(base | changes))


def mr(description: str) -> SeriesFacts:
    return series(
        modality="MR",
        sop_classes=(MR,),
        body_part="BRAIN",
        study_description="BRAIN MRI",
        series_description=description,
        rows=256,
        columns=256,
        instances=176,
    )


@pytest.mark.parametrize(
    ("study", "models"),
    [
        pytest.param([chest_ct()], ["baseline-lung-nodule-ct"], id="chest-ct"),
        pytest.param(
            [chest_ct(body_part="", study_description="흉부 CT")],
            ["baseline-lung-nodule-ct"],
            id="chest-ct-korean",
        ),
        pytest.param(
            [
                chest_ct(
                    series_description="Topogram",
                    image_type="ORIGINAL\\PRIMARY\\LOCALIZER",
                    instances=1,
                )
            ],
            [],
            id="ct-scout",
        ),
        pytest.param([chest_ct(instances=10)], [], id="chest-ct-too-few-slices"),
        pytest.param([head_ct()], ["baseline-hemorrhage-ct"], id="head-ct-non-contrast"),
        pytest.param(
            [head_ct(body_part="", study_description="뇌 CT 비조영")],
            ["baseline-hemorrhage-ct"],
            id="head-ct-korean",
        ),
        pytest.param([head_ct(contrast=True)], [], id="head-ct-contrast-agent"),
        pytest.param(
            [head_ct(study_description="CT BRAIN WITH CONTRAST")], [], id="head-ct-with-contrast"
        ),
        pytest.param([head_ct(study_description="CTA HEAD")], [], id="head-cta"),
        pytest.param([dx()], ["baseline-chest-xray"], id="dx-chest-pa"),
        pytest.param(
            [dx(modality="CR", sop_classes=(CR,))], ["baseline-chest-xray"], id="cr-chest"
        ),
        pytest.param([dx(views=("LL",))], [], id="dx-lateral"),
        pytest.param([dx(rows=128, columns=128)], [], id="dx-too-small"),
        pytest.param([mammo(("CC", "MLO"), ("L", "R"))], ["baseline-mammography"], id="mg-4-views"),
        pytest.param([mammo(("CC", "MLO"), ("R",))], [], id="mg-one-side"),
        pytest.param([mr("t1_mprage_sag_iso")], ["baseline-hippocampal-volume"], id="mr-t1"),
        pytest.param([mr("t2_tse_tra")], [], id="mr-t2"),
        pytest.param([series(modality="US", sop_classes=(US,))], [], id="ultrasound"),
        pytest.param(
            [chest_ct(), head_ct(uid="9.8.7", position=2)],
            ["baseline-lung-nodule-ct", "baseline-hemorrhage-ct"],
            id="two-series-two-models",
        ),
    ],
)
def test_default_rules_route_each_area_to_its_model(
    study: list[SeriesFacts], models: list[str]
) -> None:
    routing = route(load_rules(), study, "SUWON")
    assert [r.model for r in routing.routes] == models
    assert all(not r.pseudonymize for r in routing.routes)  # baselines run in the hospital


def test_a_rule_sends_only_the_series_it_matched() -> None:
    scout = chest_ct(uid="5.5.5", position=2, series_description="Topogram", instances=1)
    (only,) = route(load_rules(), [chest_ct(), scout], "SUWON").routes
    assert only.series_uids == ("1.2.3.4",)


def test_send_all_gives_the_model_every_series() -> None:
    rules = parse_rules(
        {
            "version": 1,
            "rules": [{"name": "r", "match": {"modality": "CT"}, "send": "all", "models": ["m"]}],
        }
    )
    (only,) = route(rules, [chest_ct(), series(uid="7.7.7", modality="SR")], None).routes
    assert only.series_uids == ("1.2.3.4", "7.7.7")


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"rules": [{"name": "a", "match": {"modalty": "CT"}, "models": ["m"]}]},
            "rules[0] (a).match.modalty",
            "unknown key",
        ),
        (
            {
                "rules": [
                    {
                        "name": "a",
                        "match": {"not": {"any_of": [{"rows": {"min": 5, "max": 2}}]}},
                        "models": ["m"],
                    }
                ]
            },
            "rules[0] (a).match.not.any_of[0].rows",
            "min 5 is above max 2",
        ),
        (
            {"rules": [{"name": "a", "match": {"series_description": "("}, "models": ["m"]}]},
            "rules[0] (a).match.series_description",
            "invalid regular expression",
        ),
        (
            {"rules": [{"name": "a", "match": {}, "models": []}]},
            "rules[0] (a).models",
            "at least 1",
        ),
        (
            {
                "rules": [
                    {"name": "a", "match": {}, "models": [{"name": "m", "pseudonymise": True}]}
                ]
            },
            "rules[0] (a).models[0].pseudonymise",
            "unknown key",
        ),
        (
            {"rules": [{"name": "a", "match": {"sop_class": "NoSuchStorage"}, "models": ["m"]}]},
            "rules[0] (a).match.sop_class",
            "neither a UID",
        ),
        (
            {"rules": [{"name": "a", "match": {}, "models": ["m"], "sites": ["BUSAN"]}]},
            "rules[0] (a).sites",
            "unknown site",
        ),
        (
            {"rules": [{"name": "a", "match": {"rows": 5}, "models": ["m"]}]},
            "rules[0] (a).match.rows",
            "dictionary",
        ),
        (
            {
                "models": {"m": {"concurency": 2}},
                "rules": [{"name": "a", "match": {}, "models": ["m"]}],
            },
            "models.m.concurency",
            "unknown key",
        ),
        (
            {
                "rules": [
                    {"name": "a", "match": {}, "models": ["m"]},
                    {"name": "a", "match": {}, "models": ["m"]},
                ]
            },
            "",
            "used twice",
        ),
        ({"rules": [{"name": "a", "models": ["m"]}]}, "rules[0] (a).match", "required key missing"),
        ({"rules": []}, "rules", "at least 1"),
    ],
)
def test_bad_rules_are_one_error_naming_the_place(data: dict, path: str, message: str) -> None:
    with pytest.raises(RulesError, match=message) as caught:
        parse_rules({"version": 1, **data}, source="bad.yaml")
    assert caught.value.path == path
    assert "bad.yaml" in str(caught.value) and "rules validate" in str(caught.value)


def test_wrong_version_and_non_mapping_are_errors() -> None:
    with pytest.raises(RulesError, match="version"):
        parse_rules({"version": 2, "rules": []})
    with pytest.raises(RulesError, match="must be a mapping"):
        parse_rules(["not", "a", "mapping"])


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nrules:\n  - name: a\n   match: {\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"not valid YAML at line \d+"):
        load_rules(bad)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"modality": ["ct", "MR"]}, True),
        ({"modality": "DX"}, False),
        ({"body_part": "chest"}, True),  # regular expressions search, any case
        ({"body_part": "^HEST"}, False),
        ({"rows": {"min": 512}}, True),  # ranges are closed
        ({"rows": {"max": 511}}, False),
        ({"instances": {"min": 100, "max": 200}}, True),
        ({"sop_class": "CTImageStorage"}, True),  # keyword or UID
        ({"sop_class": [MR]}, False),
        ({"contrast": False}, True),
        ({"any_of": [{"modality": "MR"}, {"body_part": "CHEST"}]}, True),
        ({"any_of": [{"modality": "MR"}, {"body_part": "HEAD"}]}, False),
        ({"all_of": [{"modality": "CT"}, {"body_part": "HEAD"}]}, False),
        ({"not": {"modality": "CT"}}, False),
        ({"not": {"not": {"modality": "CT"}}}, True),
        ({}, True),
    ],
)
def test_conditions(condition: dict, holds: bool) -> None:
    ok, checks = evaluate(Condition.model_validate(condition), chest_ct())
    assert ok is holds
    assert all(c.detail for c in checks)


def test_rules_limited_to_sites_and_disabled_rules() -> None:
    rules = parse_rules(
        {
            "version": 1,
            "rules": [
                {"name": "icheon-only", "sites": ["icheon"], "match": {}, "models": ["m1"]},
                {"name": "off", "enabled": False, "match": {}, "models": ["m2"]},
            ],
        }
    )
    assert [r.model for r in route(rules, [chest_ct()], "ICHEON").routes] == ["m1"]
    routing = route(rules, [chest_ct()], "SUWON")
    assert not routing.matched
    assert [v.reason for v in routing.verdicts] == ["site SUWON not in [ICHEON]", "rule disabled"]
    assert rules.model_names == ["m1"]


def test_policies_merge_and_pseudonymization_takes_the_safer_side() -> None:
    rules = parse_rules(
        {
            "version": 1,
            "defaults": {"timeout_s": 60, "concurrency": 3},
            "models": {"vendor": {"pseudonymize": True, "timeout_s": 10}},
            "rules": [
                {"name": "a", "match": {"modality": "CT"}, "models": ["vendor", "local"]},
                {"name": "b", "match": {}, "models": [{"name": "local", "pseudonymize": True}]},
                {"name": "c", "match": {}, "models": [{"name": "vendor", "pseudonymize": False}]},
            ],
        }
    )
    policy = rules.policy("vendor")
    assert (policy.timeout_s, policy.concurrency, policy.pseudonymize) == (10, 3, True)
    assert rules.policy("local").pseudonymize is False
    routes = {r.model: r for r in route(rules, [chest_ct()], "SUWON").routes}
    assert routes["vendor"].pseudonymize and routes["local"].pseudonymize
    assert routes["vendor"].rules == ("a", "c")


def _dicom_header(path: Path, **values) -> None:
    """A small DICOM file without pixels (the explain path reads headers only)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = values["SOPClassUID"]
    meta.MediaStorageSOPInstanceUID = values["SOPInstanceUID"] = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientName, ds.PatientID = "HONG^GILDONG", "12345678"
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    common = {
        "StudyInstanceUID": "1.2.410.200001.1.1",
        "SeriesInstanceUID": "1.2.410.200001.1.1.1",
        "SOPClassUID": DX,
        "Modality": "DX",
        "BodyPartExamined": "CHEST",
        "ViewPosition": "PA",
        "Rows": 2048,
        "Columns": 2048,
    }
    _dicom_header(folder / "1.dcm", **common)
    (folder / "notes.txt").write_text("not DICOM", encoding="utf-8")
    return folder


def test_explain_a_folder_names_the_study_by_key_only(
    gai_home: Path, study_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gai_research import cli

    assert cli.main(["init"]) == 0
    capsys.readouterr()
    assert cli.main(["gateway", "explain", str(study_folder), "--site", "suwon"]) == 0
    out = capsys.readouterr().out
    assert "MATCH chest-xray" in out and "-> baseline-chest-xray" in out
    assert "no    mammography-4-views: no series matched" in out
    assert "1 file(s) skipped" in out
    assert "study GS" in out
    for identifier in ("1.2.410.200001", "HONG", "12345678"):
        assert identifier not in out


def test_explain_an_unknown_uid_says_what_to_give(
    gai_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gai_research import cli

    assert cli.main(["init"]) == 0
    assert cli.main(["gateway", "explain", "1.2.3.4.5"]) == 1
    assert "no gateway database" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "code", "says"),
    [
        (
            "version: 1\nrules:\n  - {name: a, match: {modality: CT}, models: [baseline-lung-nodule-ct]}\n",
            0,
            "valid; 1 rule(s)",
        ),
        (
            "version: 1\nrules:\n  - {name: a, match: {modalty: CT}, models: [baseline-lung-nodule-ct]}\n",
            1,
            "rules[0] (a).match.modalty: unknown key",
        ),
        (
            "version: 1\nrules:\n  - {name: a, match: {}, models: [no-such-model]}\n",
            1,
            "unknown model(s) no-such-model",
        ),
    ],
)
def test_rules_validate_command(
    gai_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    code: int,
    says: str,
) -> None:
    from gai_research import cli

    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    assert cli.main(["gateway", "rules", "validate", str(rules)]) == code
    captured = capsys.readouterr()
    assert says in (captured.out + captured.err)


def test_run_refuses_a_wrong_rules_file(
    gai_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gai_research import cli

    assert cli.main(["init"]) == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - {name: a, match: {}, models: [typo-model]}\n")
    assert cli.main(["gateway", "run", "--rules", str(rules), "--port", "0"]) == 1
    assert "unknown model(s) typo-model" in capsys.readouterr().err
