"""gai.Cohort: filters and SQL, the content hash, save/load by name, labels, and `gai cohort`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gai_research.cli as cli
from gai_research.config import Settings
from gai_research.data.catalog import Catalog, open_catalog
from gai_research.data.cohort import Cohort, list_cohorts, normalize_sql
from gai_research.data.errors import CohortError, FilterError
from tests.data_fixtures import (
    CatalogFixture,
    copy_home,
    leaked_identifiers,
    pseudonymized_catalog,
)

CT_SQL = "SELECT study_uid FROM studies WHERE list_contains(modalities, 'CT')"


@pytest.fixture(scope="session")
def data_catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogFixture:
    return pseudonymized_catalog(tmp_path_factory)


@pytest.fixture
def home(data_catalog: CatalogFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A private copy of the catalog home (cohorts saved here stay here), as GAI_HOME."""
    settings = copy_home(data_catalog, tmp_path)
    monkeypatch.setenv("GAI_HOME", str(settings.home))
    monkeypatch.delenv("GAI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return settings


@pytest.fixture
def catalog(home: Settings) -> Catalog:
    with open_catalog(settings=home) as handle:
        yield handle


def publish_changed_labels(settings: Settings) -> str:
    """Publish a second snapshot: one more study-level label on a lung-nodule study."""
    from gai_research.store import CatalogWriter

    with open_catalog(settings=settings) as catalog:
        study = catalog.studies(task="lung_nodule_dx")["study_uid"].iloc[0]
    with CatalogWriter(settings) as writer:
        writer.add_labels(
            "breast_mg", [{"study_uid": study, "kind": "study", "name": "positive", "value": 0.0}]
        )
        return writer.publish_snapshot().id


# --- building ------------------------------------------------------------------------------
def test_from_filters_holds_the_matching_studies_and_series(catalog: Catalog) -> None:
    cohort = Cohort.from_filters("ct-suwon", catalog, site="SUWON", modality="CT")
    assert set(cohort.study_uids) == set(catalog.studies(site="SUWON", modality="CT")["study_uid"])
    assert (cohort.series["modality"] == "CT").all() and (cohort.studies["site"] == "SUWON").all()
    assert len(cohort) == len(cohort.studies) and cohort.snapshot == catalog.snapshot


def test_from_sql_takes_the_study_uid_column(catalog: Catalog) -> None:
    cohort = Cohort.from_sql("ct-sql", catalog, CT_SQL)
    assert set(cohort.study_uids) == set(catalog.studies(modality="CT")["study_uid"])
    assert cohort.kind == "sql" and cohort.query == {"sql": CT_SQL}


def test_from_sql_with_series_uid_chooses_the_series(catalog: Catalog) -> None:
    sql = "SELECT study_uid, series_uid FROM series WHERE modality = 'MR'"
    cohort = Cohort.from_sql("mr-series", catalog, sql)
    assert set(cohort.series["modality"]) == {"MR"}


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda c: Cohort.from_sql("x", c, "SELECT 1 AS n"), "no study_uid column"),
        (lambda c: Cohort.from_sql("x", c, "   "), "query is empty"),
        (lambda c: Cohort.from_filters("x", c, age_min=120), "no study matches"),
        (lambda c: Cohort.from_filters("x", c, sites="SUWON"), "unknown filter"),
        (lambda c: Cohort.from_filters("bad name", c), "invalid cohort name"),
        (lambda c: Cohort.from_filters("../up", c), "invalid cohort name"),
        (lambda c: Cohort.from_filters(".hidden", c), "invalid cohort name"),
    ],
)
def test_bad_cohorts_are_refused(catalog: Catalog, build, says: str) -> None:
    with pytest.raises((CohortError, FilterError), match=says):
        build(catalog)


# --- the content hash ------------------------------------------------------------------------
def test_the_hash_ignores_spelling_and_name(catalog: Catalog) -> None:
    one = Cohort.from_filters("a", catalog, site="suwon", modality=["ct"])
    two = Cohort.from_filters("b", catalog, modality="CT", site=["SUWON"], purpose="other words")
    assert one.content_hash == two.content_hash


def test_the_hash_ignores_whitespace_of_sql_but_not_quoted_text() -> None:
    assert normalize_sql("SELECT  study_uid\n FROM studies ;") == "SELECT study_uid FROM studies"
    assert normalize_sql("SELECT 'a  b'") != normalize_sql("SELECT 'a b'")


def test_the_hash_changes_with_the_members(catalog: Catalog) -> None:
    suwon = Cohort.from_filters("c", catalog, site="SUWON")
    icheon = Cohort.from_filters("c", catalog, site="ICHEON")
    assert suwon.content_hash != icheon.content_hash


def test_the_hash_is_stable_across_save_and_load(home: Settings, catalog: Catalog) -> None:
    cohort = Cohort.from_filters("stable", catalog, task="stroke_ct", label=1, purpose="p")
    path = cohort.save()
    assert path == home.home / "cohorts" / "stable.json"
    loaded = Cohort.load("stable")
    assert loaded.content_hash == cohort.content_hash and loaded == cohort
    assert loaded.study_uids == cohort.study_uids and loaded.series_uids == cohort.series_uids
    assert loaded.purpose == "p" and loaded.snapshot == catalog.snapshot


def test_a_new_snapshot_changes_the_hash_and_a_loaded_cohort_keeps_its_own(
    home: Settings, catalog: Catalog
) -> None:
    cohort = Cohort.from_filters("pinned", catalog, modality="CT")
    cohort.save()
    newer = publish_changed_labels(home)
    assert newer != catalog.snapshot
    loaded = Cohort.load("pinned")
    assert loaded.catalog.snapshot == catalog.snapshot  # the snapshot it was built on
    fresh = loaded.refreshed()
    assert fresh.snapshot == newer and fresh.study_uids == loaded.study_uids
    assert fresh.content_hash != loaded.content_hash


# --- saving and loading ----------------------------------------------------------------------
def test_saving_another_cohort_under_a_taken_name_is_refused(catalog: Catalog) -> None:
    Cohort.from_filters("taken", catalog, site="SUWON").save()
    Cohort.from_filters("taken", catalog, site="suwon").save()  # the same cohort: no-op
    other = Cohort.from_filters("taken", catalog, site="ICHEON")
    with pytest.raises(CohortError, match="another cohort is saved as 'taken'") as caught:
        other.save()
    assert "overwrite" in caught.value.hint
    other.save(overwrite=True)
    assert Cohort.load("taken").content_hash == other.content_hash


def test_loading_an_unknown_name_lists_the_saved_ones(catalog: Catalog) -> None:
    Cohort.from_filters("known", catalog, site="SUWON").save()
    with pytest.raises(CohortError, match="no cohort named 'unknown'") as caught:
        Cohort.load("unknown")
    assert "known" in caught.value.hint


def test_a_cohort_file_edited_by_hand_is_refused(home: Settings, catalog: Catalog) -> None:
    path = Cohort.from_filters("edited", catalog, site="SUWON").save()
    data = json.loads(path.read_text())
    data["studies"] = data["studies"][:1]
    path.write_text(json.dumps(data))
    with pytest.raises(CohortError, match="does not match its content hash"):
        Cohort.load("edited")


def test_the_saved_file_holds_pseudonymous_data_only(
    catalog: Catalog, data_catalog: CatalogFixture
) -> None:
    text = Cohort.from_filters("clean", catalog).save().read_text(encoding="utf-8")
    leaked = leaked_identifiers(data_catalog.identifiers, text)
    assert leaked == []
    assert data_catalog.key_text not in text


def test_list_cohorts(catalog: Catalog) -> None:
    Cohort.from_filters("one", catalog, site="SUWON").save()
    Cohort.from_sql("two", catalog, CT_SQL).save()
    rows = {row["name"]: row for row in list_cohorts()}
    assert set(rows) == {"one", "two"} and rows["two"]["query"] == "sql"


# --- data ------------------------------------------------------------------------------------
def test_labels_join_the_task_for_member_studies(catalog: Catalog) -> None:
    cohort = Cohort.from_filters("nodules", catalog, task="lung_nodule_ct", site="ICHEON")
    labels = cohort.labels("lung_nodule_ct")
    assert set(labels["study_uid"]) <= set(cohort.study_uids)
    assert set(labels["task"]) == {"lung_nodule_ct"} and {"study"} <= set(labels["kind"])
    with pytest.raises(FilterError, match="unknown task"):
        cohort.labels("nope")


def test_len_repr_and_patients(catalog: Catalog) -> None:
    cohort = Cohort.from_filters("shown", catalog, modality="MR")
    text = repr(cohort)
    assert "shown" in text and f"{len(cohort)} studies" in text and cohort.content_hash[:12] in text
    assert cohort.patients == sorted(set(cohort.studies["patient_pseudonym"]))
    assert cohort.study_uids[0] in cohort


# --- the command line ------------------------------------------------------------------------
@pytest.fixture
def gai(monkeypatch: pytest.MonkeyPatch, home: Settings):
    """``gai`` with the data commands."""
    return cli.main


def test_cli_create_list_show(gai, capsys: pytest.CaptureFixture) -> None:
    assert gai(["cohort", "create", "cli-ct", "--site", "SUWON", "--site", "ICHEON",
                "--modality", "CT", "--age-min", "60", "--purpose", "test"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    cohort = Cohort.load("cli-ct")
    assert cohort.content_hash in out and cohort.query["filters"]["site"] == ["ICHEON", "SUWON"]
    assert gai(["cohort", "create", "cli-sql", "--sql", CT_SQL]) == 0
    assert gai(["cohort", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cli-ct" in listing and "cli-sql" in listing
    assert gai(["cohort", "show", "cli-ct", "--studies"]) == 0
    shown = capsys.readouterr().out
    assert cohort.snapshot in shown and cohort.study_uids[0] in shown


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["cohort", "create", "x", "--age-min", "old"], "age_min takes a whole number"),
        (["cohort", "create", "x", "--site", "BUSAN"], "unknown site"),
        (["cohort", "create", "x", "--task", "nope"], "unknown task"),
        (["cohort", "create", "x", "--site", "SUWON", "--sql", CT_SQL], "not both"),
        (["cohort", "create", "x", "--sql", "DROP TABLE studies"], "read-only"),
        (["cohort", "create", "x", "--date-from", "yesterday"], "not a date"),
        (["cohort", "show", "missing"], "no cohort named"),
        (["cohort", "card", "missing"], "no cohort named"),
        (["cohort", "create", "x", "--snapshot", "zz"], "not a snapshot hash"),
    ],
)
def test_cli_bad_input_is_one_line(gai, capsys: pytest.CaptureFixture, argv, says) -> None:
    assert gai(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and err.startswith("gai ")


def test_cli_help_explains(gai, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        gai(["cohort", "create", "--help"])
    text = capsys.readouterr().out
    assert "--age-min" in text and "--sql" in text and "examples:" in text
