"""The report's pieces without MLflow: number formats, labels, CI flags, key parsing,
pinned-runs files and link addresses."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from gai_research.report import conventions as cv
from gai_research.report.appendix import mlflow_ui_base
from gai_research.report.collect import redact_uri
from gai_research.report.errors import PinnedRunsError
from gai_research.report.fmt import fmt_ci, fmt_estimate, fmt_value
from gai_research.report.i18n import LABELS, LANGUAGES, Translator, label_params
from gai_research.report.pinned import read_pinned
from gai_research.report.records import Estimate, RunRecord
from gai_research.report.render import TEMPLATES
from gai_research.report.results import (
    flag_separated,
    parse_comparisons,
    parse_subgroups,
    summary_columns,
)

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "low", "high", "style", "text"),
    [
        (0.9123, 0.8712, 0.9431, "prop", "0.912 [0.871–0.943]"),
        (0.9123, None, None, "prop", "0.912"),
        (1.234, None, None, "seconds", "1.23 s"),
        (0.6, None, None, "seconds", "0.600 s"),
        (12.34, None, None, "seconds", "12.3 s"),
        (1234.5, None, None, "seconds", "1,234 s"),
        (0.0004, None, None, "seconds", "<0.001 s"),
        (1204.0, None, None, "count", "1,204"),
        (-1.2, -3.1, 0.7, "ml", "−1.20 [−3.10, 0.70] mL"),
        (0.0271, None, None, "p", "0.027"),
        (0.00001, None, None, "p", "<0.001"),
        (0.081, -0.02, 0.18, "diff", "+0.081 [−0.020, +0.180]"),
        (5.5, 2.1, 9.0, "per1000", "5.5 [2.1–9.0]"),
        (math.nan, None, None, "prop", "n/e"),
        (None, None, None, "prop", "—"),
    ],
)
def test_numbers_are_formatted_one_way(value, low, high, style, text) -> None:
    assert fmt_estimate(value, low, high, style) == text


def test_an_undefined_interval_says_so() -> None:
    assert fmt_ci(math.nan, 0.5, "prop") == "[n/e]"
    assert fmt_value(3, "count", unit=False) == "3"


@pytest.mark.parametrize("key", sorted(LABELS))
def test_every_label_has_both_languages_with_the_same_parameters(key: str) -> None:
    en, ko = LABELS[key]
    assert en.strip() and ko.strip()
    assert set(re.findall(r"{(\w+)}", ko)) == label_params(key)


def _template_keys() -> set[str]:
    text = "".join(p.read_text(encoding="utf-8") for p in TEMPLATES.glob("*.j2"))
    return set(re.findall(r"""\bt\(\s*"([a-z_.\-]+)"\s*[,)]""", text))


def test_every_literal_label_in_the_templates_exists() -> None:
    keys = _template_keys()
    assert len(keys) > 80
    assert sorted(keys - set(LABELS)) == []


@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("task", tuple(cv.TASKS)),
        ("kind", ("classification", "detection", "volumetry", "triage")),
        ("site", cv.SITES),
        ("origin", (*cv.ORIGINS, "unknown")),
        ("status", ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")),
        ("sg", cv.SUBGROUP_VARIABLES),
        ("flag", ("best", "worst")),
        ("cl.status", ("covered", "partial", "none")),
        ("me.no_vendor", ("baseline", "simulator", "unknown")),
        ("pf.ingest_legend", ("ingest_runs", "audit")),
        ("m", tuple(cv.METRICS)),
    ],
)
def test_labels_exist_for_every_value_the_report_shows(prefix: str, values: tuple) -> None:
    sep = "_" if prefix in ("cl.status", "me.no_vendor", "pf.ingest_legend") else "."
    missing = [v for v in values if f"{prefix}{sep}{v}" not in LABELS]
    assert missing == []


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(
    "key",
    [
        "froc_sens_fp_0.125",
        "sens_at_spec_0.9",
        "spec_at_sens_0.85",
        "sens_at_spec_0.9_threshold",
        "sens_at_spec_0.9_specificity",
        "vol.hippocampus_l.icc",
        "auc",
    ],
)
def test_metric_families_have_labels(lang: str, key: str) -> None:
    label = Translator(lang).metric(key)
    assert label and label != key


def test_an_unknown_label_raises_instead_of_falling_back() -> None:
    with pytest.raises(KeyError):
        Translator("ko")("no.such.label")
    assert Translator("ko").label("site", "SUWON") == "수원병원"
    assert Translator("ko").label("site", "BUSAN") == "BUSAN"


def E(value: float, low: float, high: float) -> Estimate:
    return Estimate("m", value, low, high)


@pytest.mark.parametrize(
    ("estimates", "better", "flags"),
    [
        ({"a": E(0.9, 0.85, 0.95), "b": E(0.7, 0.6, 0.8)}, 1, {"a": "best", "b": "worst"}),
        ({"a": E(0.9, 0.79, 0.95), "b": E(0.7, 0.6, 0.8)}, 1, {}),  # overlap
        (
            {"a": E(0.9, 0.85, 0.95), "b": E(0.7, 0.6, 0.8), "c": E(0.75, 0.65, 0.84)},
            1,
            {"a": "best"},
        ),
        (
            {"a": E(0.9, 0.85, 0.95), "b": E(0.5, 0.4, 0.6), "c": E(0.7, 0.62, 0.8)},
            1,
            {"a": "best", "b": "worst"},
        ),
        ({"a": E(0.2, 0.1, 0.3), "b": E(0.9, 0.8, 1.0)}, -1, {"a": "best", "b": "worst"}),
        ({"a": E(0.9, 0.85, 0.95), "b": E(0.7, 0.6, 0.8)}, 0, {}),  # no direction
        ({"a": E(0.9, 0.85, 0.95)}, 1, {}),  # nothing to compare with
        ({"a": E(0.9, 0.85, 0.95), "b": Estimate("m", 0.5)}, 1, {}),  # b has no interval
    ],
)
def test_best_and_worst_only_where_intervals_separate(estimates, better, flags) -> None:
    assert flag_separated(estimates, better) == flags


def _run(metrics: dict[str, float], **tags: str) -> RunRecord:
    return RunRecord(RUN_ID, "1", "gai-lung_nodule_dx", "FINISHED", 0, None, tags, {}, metrics)


def test_subgroup_keys_parse_with_dots_and_families() -> None:
    run = _run(
        {
            "auc": 0.9,
            "froc_sens_fp_0.5": 0.8,
            "vol.hippocampus_l.icc": 0.9,
            "sg.site.SUWON.auc": 0.91,
            "sg.site.SUWON.auc_ci_low": 0.85,
            "sg.site.SUWON.auc_ci_high": 0.95,
            "sg.manufacturer.HOLOGIC_Inc..n_cases": 12.0,
            "sg.age_band.ge75.froc_sens_fp_0.5": 0.7,
            "sg.sex.F.vol.hippocampus_l.icc": 0.88,
        }
    )
    groups = parse_subgroups(run)
    assert groups[("site", "SUWON")]["auc"] == Estimate("sg.site.SUWON.auc", 0.91, 0.85, 0.95)
    assert groups[("manufacturer", "HOLOGIC_Inc.")]["n_cases"].value == 12.0
    assert groups[("age_band", "ge75")]["froc_sens_fp_0.5"].value == 0.7
    assert groups[("sex", "F")]["vol.hippocampus_l.icc"].value == 0.88


def test_comparison_keys_parse_as_the_engine_logs_them() -> None:
    run = _run(
        {
            "cmp.acme-cxr.vs.baseline-chest-xray.delong_p": 0.01,
            "cmp.acme-cxr.vs.baseline-chest-xray.auc_diff": 0.2,
            "cmp.acme-cxr.vs.baseline-chest-xray.ci_low": 0.1,
            "cmp.acme-cxr.vs.baseline-chest-xray.ci_high": 0.3,
            "cmp.acme-cxr.vs.baseline-chest-xray.z": 2.5,
        }
    )
    parsed = parse_comparisons(run)
    stats = parsed[("acme-cxr", "baseline-chest-xray")]
    assert {k: v[1] for k, v in stats.items()} == {"p": 0.01, "diff": 0.2, "low": 0.1, "high": 0.3}


def test_volumetry_summary_shows_agreement_per_structure() -> None:
    logged = {
        "n_cases",
        "icc",
        "mae_ml",
        "vol.hippocampus_l.icc",
        "vol.hippocampus_r.icc",
        "vol.hippocampus_l.mae_ml",
        "vol.hippocampus_r.mae_ml",
        "latency_median_s",
    }
    columns = summary_columns("volumetry", logged)
    assert "icc" not in columns and "mae_ml" not in columns
    assert columns.index("vol.hippocampus_r.icc") < columns.index("latency_median_s")


def test_vendor_is_shown_only_for_vendor_products() -> None:
    sim = _run({}, **{"gai.origin": "simulator", "gai.vendor": "Fake Co"})
    vendor = _run({}, **{"gai.origin": "vendor", "gai.vendor": "Real Co"})
    unknown = _run({}, **{"gai.vendor": "Who Co"})
    assert (sim.vendor, vendor.vendor, unknown.vendor) == (None, "Real Co", None)
    assert unknown.origin is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs: [", "not valid YAML"),
        ("edition: x\n", "names no runs"),
        ("runs:\n  - not-a-run-id\n", "is not an MLflow run id"),
        (f"runs:\n  - {RUN_ID}\n  - {RUN_ID}\n", "twice"),
        (f"runs: [{RUN_ID}]\nextra: 1\n", "unknown key"),
        ("runs:\n  - {note: x}\n", "a run id or a mapping"),
    ],
)
def test_bad_pinned_files_get_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pinned.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PinnedRunsError, match=message) as info:
        read_pinned(path)
    assert info.value.hint


def test_pinned_file_forms(tmp_path: Path) -> None:
    path = tmp_path / "pinned.yaml"
    path.write_text(
        f"edition: November 2026\nruns:\n  - {RUN_ID.upper()}\n  - id: {'f' * 32}\n    note: re-run\n",
        encoding="utf-8",
    )
    pinned = read_pinned(path)
    assert pinned.run_ids == (RUN_ID, "f" * 32)
    assert pinned.edition == "November 2026"
    assert pinned.notes == (("f" * 32, "re-run"),)
    with pytest.raises(PinnedRunsError, match="not found"):
        read_pinned(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("tracking", "configured", "base"),
    [
        ("sqlite:////x/mlflow.db", None, None),
        ("http://mlflow:s3cret@127.0.0.1:5000/", None, "http://127.0.0.1:5000"),
        ("sqlite:////x/mlflow.db", "https://user:pw@mlflow.example/", "https://mlflow.example"),
    ],
)
def test_run_links_never_carry_a_password(tracking, configured, base) -> None:
    assert mlflow_ui_base(tracking, configured) == base
    assert "s3cret" not in redact_uri("postgresql://mlflow:s3cret@127.0.0.1/mlflow")


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("age_band", "lt65", "<65"),
        ("age_band", "ge75", "≥75"),
        ("age_band", "65-74", "65-74"),
        ("manufacturer", "GE_Healthcare", "GE Healthcare"),
        ("site", "ICHEON", "Icheon"),
    ],
)
def test_subgroup_values_read_naturally(variable: str, value: str, shown: str) -> None:
    assert Translator("en").level(variable, value) == shown
