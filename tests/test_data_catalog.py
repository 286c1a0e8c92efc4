"""gai.open_catalog(): keyword filters, SQL, describe, snapshots, on a real pseudonymized catalog."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable

import pandas as pd
import pytest

from gai_research.data.catalog import Catalog, open_catalog
from gai_research.data.errors import FilterError
from gai_research.data.filters import FILTERS
from gai_research.errors import GaiError
from tests.data_fixtures import CatalogFixture, pseudonymized_catalog


@pytest.fixture(scope="session")
def data_catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogFixture:
    return pseudonymized_catalog(tmp_path_factory)


@pytest.fixture(scope="module")
def catalog(data_catalog: CatalogFixture) -> Catalog:
    with open_catalog(settings=data_catalog.settings()) as handle:
        yield handle


@pytest.fixture(scope="module")
def truth(catalog: Catalog) -> dict[str, pd.DataFrame]:
    """The whole catalog as plain frames: the expected answers are computed from these in pandas."""
    return {
        "studies": catalog.sql(
            "SELECT st.*, p.sex FROM studies st JOIN patients p USING (patient_pseudonym)"
        ),
        "series": catalog.sql("SELECT * FROM series"),
        "labels": catalog.sql("SELECT * FROM labels"),
    }


def _with_series(truth, predicate: Callable[[pd.DataFrame], pd.Series]) -> set[str]:
    series = truth["series"]
    return set(series[predicate(series)]["study_uid"])


def _median_date(truth) -> dt.date:
    dates = sorted(truth["studies"]["study_date"])
    return dates[len(dates) // 2]


# name -> (filters from the truth, expected study UIDs from the truth)
FILTER_CASES: dict[str, tuple[Callable, Callable]] = {
    "site": (
        lambda t: {"site": "suwon"},
        lambda t: set(t["studies"].query("site == 'SUWON'")["study_uid"]),
    ),
    "site list": (
        lambda t: {"site": ["ICHEON", "Anseong"]},
        lambda t: set(t["studies"].query("site in ['ICHEON', 'ANSEONG']")["study_uid"]),
    ),
    "modality": (
        lambda t: {"modality": "ct"},
        lambda t: _with_series(t, lambda s: s["modality"] == "CT"),
    ),
    "body_part": (
        lambda t: {"body_part": "Chest"},
        lambda t: _with_series(t, lambda s: s["body_part"] == "CHEST"),
    ),
    "manufacturer": (
        lambda t: {"manufacturer": "siemens"},
        lambda t: _with_series(t, lambda s: s["manufacturer"].str.lower() == "siemens"),
    ),
    "model": (
        lambda t: {"model": t["series"]["model"].iloc[0].upper()},
        lambda t: _with_series(t, lambda s: s["model"] == t["series"]["model"].iloc[0]),
    ),
    "date_from": (
        lambda t: {"date_from": _median_date(t).isoformat()},
        lambda t: set(t["studies"][t["studies"]["study_date"] >= _median_date(t)]["study_uid"]),
    ),
    "date_to": (
        lambda t: {"date_to": _median_date(t)},
        lambda t: set(t["studies"][t["studies"]["study_date"] <= _median_date(t)]["study_uid"]),
    ),
    "age_min": (
        lambda t: {"age_min": 70},
        lambda t: set(t["studies"].query("age_years >= 70")["study_uid"]),
    ),
    "age_max": (
        lambda t: {"age_max": 69},
        lambda t: set(t["studies"].query("age_years <= 69")["study_uid"]),
    ),
    "sex": (lambda t: {"sex": "f"}, lambda t: set(t["studies"].query("sex == 'F'")["study_uid"])),
    "task": (
        lambda t: {"task": "stroke_ct"},
        lambda t: set(t["labels"].query("task == 'stroke_ct'")["study_uid"]),
    ),
    "label class with task": (
        lambda t: {"task": "lung_nodule_ct", "label": 1},
        lambda t: set(
            t["labels"].query("task == 'lung_nodule_ct' and kind == 'study' and value == 1")[
                "study_uid"
            ]
        ),
    ),
    "label word": (
        lambda t: {"label": "negative"},
        lambda t: set(t["labels"].query("kind == 'study' and value == 0")["study_uid"]),
    ),
    "label name": (
        lambda t: {"label": "hemorrhage"},
        lambda t: set(t["labels"].query("name == 'hemorrhage'")["study_uid"]),
    ),
    "patient": (
        lambda t: {"patient": t["studies"]["patient_pseudonym"].iloc[0]},
        lambda t: set(
            t["studies"][
                t["studies"]["patient_pseudonym"] == t["studies"]["patient_pseudonym"].iloc[0]
            ]["study_uid"]
        ),
    ),
    "study_uid": (
        lambda t: {"study_uid": list(t["studies"]["study_uid"].iloc[:3])},
        lambda t: set(t["studies"]["study_uid"].iloc[:3]),
    ),
    "series_uid": (
        lambda t: {"series_uid": t["series"]["series_uid"].iloc[0]},
        lambda t: {t["series"]["study_uid"].iloc[0]},
    ),
    "combined": (
        lambda t: {"site": "SUWON", "modality": "CT", "age_min": 60},
        lambda t: (
            set(t["studies"].query("site == 'SUWON' and age_years >= 60")["study_uid"])
            & _with_series(t, lambda s: s["modality"] == "CT")
        ),
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_each_filter_selects_what_pandas_selects(catalog: Catalog, truth, case: str) -> None:
    make_filters, expect = FILTER_CASES[case]
    expected = expect(truth)
    assert expected, "the fixture must hold studies for this filter"
    found = catalog.studies(**make_filters(truth))
    assert set(found["study_uid"]) == expected
    assert found["study_uid"].is_unique


def test_every_filter_has_a_case() -> None:
    covered = {name for case in FILTER_CASES for name in FILTERS if case.startswith(name)}
    assert covered == set(FILTERS)


@pytest.mark.parametrize(
    ("level", "filters", "check"),
    [
        ("series", {"modality": "CT"}, lambda df: (df["modality"] == "CT").all()),
        ("series", {"site": "ICHEON"}, lambda df: (df["site"] == "ICHEON").all()),
        ("series", {"manufacturer": "philips"}, lambda df: (df["manufacturer"] == "Philips").all()),
        ("instances", {"modality": "MG"}, lambda df: (df["modality"] == "MG").all()),
        ("instances", {"sex": "M"}, lambda df: df["patient_pseudonym"].notna().all()),
    ],
)
def test_series_and_instances_take_the_same_filters(catalog, level, filters, check) -> None:
    frame = getattr(catalog, level)(**filters)
    assert len(frame) and check(frame)


def test_instances_match_the_series_counts(catalog: Catalog) -> None:
    series = catalog.series(modality="MR")
    assert len(catalog.instances(modality="MR")) == series["n_instances"].sum()


def test_results_are_in_a_fixed_order(catalog: Catalog) -> None:
    first, again = catalog.series(), catalog.series()
    assert first["series_uid"].tolist() == again["series_uid"].tolist()


@pytest.mark.parametrize(
    ("filters", "says"),
    [
        ({"sites": "SUWON"}, "unknown filter 'sites'"),
        ({"modalty": "CT"}, "valid filters: site, modality"),
        ({"age_min": "60"}, "age_min takes a whole number"),
        ({"age_max": 60.5}, "age_max takes a whole number"),
        ({"age_min": True}, "age_min takes a whole number"),
        ({"age_min": 400}, "out of range"),
        ({"site": 3}, "site takes text"),
        ({"site": "BUSAN"}, "unknown site"),
        ({"modality": []}, "empty list"),
        ({"date_from": 20260101}, "date_from takes a date"),
        ({"date_to": "next week"}, "date_to is not a date"),
        ({"date_from": "2026-06-01", "date_to": "2026-01-01"}, "date_from is after date_to"),
        ({"age_min": 80, "age_max": 20}, "age_min is larger"),
        ({"sex": "X"}, "filter sex"),
        ({"label": 2.5}, "filter label"),
        ({"task": "lung_cancer"}, "unknown task 'lung_cancer'"),
    ],
)
def test_bad_filters_are_refused_with_the_valid_choices(catalog, filters, says) -> None:
    with pytest.raises(FilterError, match=says) as caught:
        catalog.studies(**filters)
    assert caught.value.hint


def test_unknown_task_lists_the_tasks_in_the_snapshot(catalog: Catalog) -> None:
    with pytest.raises(FilterError) as caught:
        catalog.studies(task="nope")
    assert "lung_nodule_ct" in caught.value.hint and "stroke_ct" in caught.value.hint


def test_none_means_no_filter(catalog: Catalog) -> None:
    assert len(catalog.studies(site=None, age_min=None)) == len(catalog.studies())


def test_labels_of_a_task_for_filtered_studies(catalog: Catalog) -> None:
    labels = catalog.labels("lung_nodule_ct", site="SUWON")
    assert set(labels["task"]) == {"lung_nodule_ct"} and set(labels["site"]) == {"SUWON"}
    assert {"nodule", "study"} >= set(labels["kind"])


def test_sql_runs_one_read_only_statement(catalog: Catalog) -> None:
    frame = catalog.sql("SELECT site, count(*) AS n FROM studies GROUP BY site ORDER BY site")
    assert list(frame.columns) == ["site", "n"] and frame["n"].sum() == len(catalog.studies())
    assert catalog.sql("SELECT count(*) AS n FROM studies WHERE site = ?", ["SUWON"])["n"][0] > 0


@pytest.mark.parametrize(
    "sql", ["DELETE FROM studies", "SELECT 1; SELECT 2", "COPY studies TO 'x.csv'", "SELEC 1"]
)
def test_sql_refuses_anything_else(catalog: Catalog, sql: str) -> None:
    with pytest.raises(GaiError):
        catalog.sql(sql)


def test_describe_counts_by_site_modality_manufacturer(catalog: Catalog, truth) -> None:
    described = catalog.describe()
    assert described.snapshot == catalog.snapshot
    assert described.totals["studies"] == len(truth["studies"])
    assert described.by_site["studies"].sum() == len(truth["studies"])
    assert described.by_modality["series"].sum() == len(truth["series"])
    assert described.by_manufacturer["series"].sum() == len(truth["series"])
    assert catalog.snapshot[:12] in str(described) and "by manufacturer" in str(described)


def test_the_handle_names_its_snapshot(catalog: Catalog, data_catalog: CatalogFixture) -> None:
    assert catalog.snapshot == data_catalog.snapshot
    assert catalog.snapshot[:12] in repr(catalog)
    with open_catalog(data_catalog.snapshot[:8], settings=data_catalog.settings()) as pinned:
        assert pinned.snapshot == data_catalog.snapshot


def test_open_catalog_reads_the_settings_from_the_environment(
    data_catalog: CatalogFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAI_HOME", str(data_catalog.home))
    monkeypatch.delenv("GAI_CONFIG", raising=False)
    with open_catalog() as handle:
        assert handle.snapshot == data_catalog.snapshot


def test_importing_the_api_loads_nothing_heavy() -> None:
    code = (
        "import sys, json, gai_research.data as d; d.FilterError; "
        "print(json.dumps(sorted(m for m in ('pandas', 'duckdb', 'numpy', 'torch', 'monai', "
        "'pyarrow', 'pydicom', 'nibabel') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
