"""Data cards: every section filled from data_cards/TEMPLATE.md, no identifier, no key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gai_research.cli as cli
from gai_research.data.cards import CARD_FIELDS, default_template, render_card, write_cohort_card
from gai_research.data.catalog import open_catalog
from gai_research.data.cohort import Cohort
from gai_research.data.errors import CardError
from gai_research.deid import load_profile
from gai_research.home import key_fingerprint
from tests.data_fixtures import (
    CatalogFixture,
    copy_home,
    leaked_identifiers,
    pseudonymized_catalog,
)

SECTIONS = (
    "## Purpose and intended use",
    "## Sources",
    "## Selection",
    "## Population",
    "## Labels and reference standard",
    "## Training-data export",
    "## Pseudonymization",
    "## Known limitations",
)


@pytest.fixture(scope="session")
def data_catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogFixture:
    return pseudonymized_catalog(tmp_path_factory)


@pytest.fixture(scope="module")
def cohort(data_catalog: CatalogFixture) -> Cohort:
    catalog = open_catalog(settings=data_catalog.settings())
    return Cohort.from_filters(
        "all-ct", catalog, modality="CT", purpose="Lung nodule and hemorrhage baselines."
    )


@pytest.fixture(scope="module")
def card(cohort: Cohort) -> str:
    return render_card(cohort)


def _leaks(text: str, fixture: CatalogFixture, cohort: Cohort) -> list[str]:
    """Planted identifiers, the key, and pseudonymous UIDs/pseudonyms found in ``text``."""
    found = leaked_identifiers(fixture.identifiers, text)
    if fixture.key_text in text:
        found.append("the key")
    found += [uid for uid in cohort.study_uids + cohort.series_uids if uid in text]
    found += [p for p in cohort.patients if p in text]
    return found


def test_the_template_has_every_section_and_only_known_fields() -> None:
    text = default_template().read_text(encoding="utf-8")
    assert all(section in text for section in SECTIONS)
    assert set(re.findall(r"\{(\w+)\}", text)) == set(CARD_FIELDS)


@pytest.mark.parametrize("section", SECTIONS)
def test_every_section_is_filled(card: str, section: str) -> None:
    body = card.split(section, 1)[1].split("\n## ", 1)[0]
    prose = [line for line in body.splitlines() if line.strip() and not line.startswith("_")]
    assert prose, f"{section} is empty"


@pytest.mark.parametrize(
    "expected",
    [
        "| SUWON |",  # counts per site
        "| CT |",  # per modality
        "| SIEMENS |",  # per manufacturer and model
        "Study dates 20",  # date range after the shift
        "| lung_nodule_ct |",  # label prevalence
        "| stroke_ct |",
        "Sex:",
        "Age at the study:",
        '- `modality` = `["CT"]`',  # the query as run
        "Lung nodule and hemorrhage baselines.",  # the stated purpose
        "profile gai-default",
        "Retain Longitudinal Temporal Information Modified Dates Option",
        "synthetic",
    ],
)
def test_the_card_states_the_facts(card: str, expected: str) -> None:
    assert expected in card


def test_the_card_names_the_hashes_and_the_key_fingerprint_not_the_key(
    card: str, cohort: Cohort, data_catalog: CatalogFixture
) -> None:
    assert cohort.content_hash in card and cohort.snapshot in card
    assert key_fingerprint(data_catalog.key_text.encode()) in card
    assert load_profile().sha256() in card
    assert data_catalog.key_text not in card


def test_no_identifier_uid_or_pseudonym_is_in_the_card(
    card: str, cohort: Cohort, data_catalog: CatalogFixture
) -> None:
    assert len(data_catalog.identifiers) > 50  # names, IDs, RRNs, phones ... were planted
    assert _leaks(card, data_catalog, cohort) == []


def test_an_export_card_describes_the_export(
    cohort: Cohort, data_catalog: CatalogFixture, tmp_path: Path
) -> None:
    from gai_research.data.training_export import export
    from tests.test_data_export import stand_in_load_series

    result = export(
        cohort, tmp_path / "out", task="stroke_ct", loader=stand_in_load_series, progress=False
    )
    text = result.card.read_text(encoding="utf-8")
    assert "describes | training-data export" in text
    assert "| training |" in text and "task stroke_ct" in text
    assert "excluded from the export" in text and "no voxel masks" in text
    assert "| lung_nodule_ct |" not in text  # only the exported studies are described
    assert _leaks(text, data_catalog, cohort) == []


def test_a_researcher_without_the_stewards_files_is_told_where_they_are(
    cohort: Cohort, data_catalog: CatalogFixture, tmp_path: Path
) -> None:
    settings = copy_home(data_catalog, tmp_path, audit=False, key=False)
    mine = Cohort.from_filters("mine", open_catalog(settings=settings), modality="CT")
    text = render_card(mine)
    assert "the profile hash and the key fingerprint: not readable by this account" in text
    assert "profile gai-default" in text  # still known from the images


def test_write_cohort_card_into_data_cards(cohort: Cohort, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_cohort_card(cohort)
    assert path == Path("data_cards") / "all-ct.md" and path.read_text().startswith(
        "# Data card: all-ct"
    )
    assert cohort.card(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "all-ct.md"


@pytest.mark.parametrize(
    ("template", "says"),
    [("# {name}\n{nonsense}\n", "unknown field {nonsense}"), ("# {name\n", "not valid")],
)
def test_a_bad_template_is_refused(cohort: Cohort, tmp_path, template, says) -> None:
    path = tmp_path / "TEMPLATE.md"
    path.write_text(template)
    with pytest.raises(CardError, match=says):
        render_card(cohort, template=path)


def test_cli_card(data_catalog: CatalogFixture, tmp_path, monkeypatch, capsys) -> None:
    settings = copy_home(data_catalog, tmp_path)
    monkeypatch.setenv("GAI_HOME", str(settings.home))
    monkeypatch.delenv("GAI_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["cohort", "create", "demo", "--task", "lung_nodule_ct"]) == 0
    assert cli.main(["cohort", "card", "demo"]) == 0
    assert capsys.readouterr().out.strip().endswith("data_cards/demo.md")
    assert (tmp_path / "data_cards" / "demo.md").read_text().count("## ") == len(SECTIONS)
