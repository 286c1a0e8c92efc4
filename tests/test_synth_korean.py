"""gai_research.synth building blocks: Korean identities, the cohort plan, UIDs (no files)."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from gai_research.synth import SITES, TASKS
from gai_research.synth.korean import (
    GIVEN_FEMALE,
    GIVEN_MALE,
    SURNAMES,
    make_rrn,
    random_address,
    random_name,
    random_phone,
    rrn_birth_date,
    rrn_check_digit,
    rrn_is_valid,
)
from gai_research.synth.people import PERIOD, plan_cohort
from gai_research.synth.seeds import derive_rng, derive_uid
from gai_research.synth.sites import SITE_PROFILES


@pytest.mark.parametrize(
    ("rrn", "valid"),
    [
        ("800101-1234560", True),  # 2*8+5*1+7*1+8*1+9*2+2*3+3*4+4*5+5*6 = 122; (11 - 1) % 10 = 0
        ("800101-1234568", False),  # wrong check digit
        ("801301-1234561", False),  # month 13
        ("800101-5234561", False),  # a registered foreigner: another check rule, not generated
        ("8001011234560", False),  # no hyphen
        ("800101-123456", False),  # too short
    ],
)
def test_rrn_validation(rrn: str, valid: bool) -> None:
    assert rrn_is_valid(rrn) is valid


@pytest.mark.parametrize(
    ("born", "sex", "digit"),
    [
        (dt.date(1899, 12, 31), "F", "0"),
        (dt.date(1935, 2, 28), "M", "1"),
        (dt.date(1984, 7, 15), "F", "2"),
        (dt.date(2001, 1, 1), "M", "3"),
        (dt.date(2004, 2, 29), "F", "4"),
    ],
)
def test_rrn_encodes_birth_date_and_sex(born: dt.date, sex: str, digit: str) -> None:
    rrn = make_rrn(born, sex, office=1734, serial=7)
    assert re.fullmatch(r"\d{6}-\d{7}", rrn)
    assert rrn[7] == digit
    assert rrn_is_valid(rrn)
    assert rrn_birth_date(rrn) == (born, sex)
    assert int(rrn[-1]) == rrn_check_digit(rrn.replace("-", "")[:12])


@pytest.mark.parametrize(
    "table", [SURNAMES, GIVEN_MALE, GIVEN_FEMALE], ids=["surname", "male", "female"]
)
def test_name_parts_are_in_ks_x_1001(table) -> None:
    for entry in table:
        (entry[0] + entry[1]).encode("euc_kr")  # Hangul and Hanja both in ISO 2022 IR 149
        assert entry[2].isascii() and entry[2].isalpha()


@pytest.mark.parametrize("sex", ["M", "F"])
def test_random_name_has_three_groups(sex: str) -> None:
    name = random_name(np.random.default_rng(1), sex)
    alphabetic, ideographic, phonetic = name.dicom.split("=")
    assert alphabetic == f"{name.family_roman}^{name.given_roman}"
    assert len(ideographic.replace("^", "")) == len(phonetic.replace("^", "")) == 3
    assert name.hangul == phonetic.replace("^", "")


@pytest.mark.parametrize("site", SITES)
def test_addresses_and_phones(site: str) -> None:
    rng = np.random.default_rng(5)
    address = random_address(rng, site)
    assert address.startswith("경기도 ") and len(address) <= 64
    assert re.fullmatch(r"010-[2-9]\d{3}-\d{4}", random_phone(rng))


@pytest.mark.parametrize("patients", [9, 24, 60])
def test_plan_covers_every_cell(patients: int) -> None:
    plan = plan_cohort(patients, seed=4)
    cells = {(s.site, s.task, s.positive) for s in plan}
    assert cells == {(site, task, pos) for site in SITES for task in TASKS for pos in (True, False)}
    assert {s.person.index for s in plan} == set(range(patients))
    assert all(s.person.sex == "F" for s in plan if s.task == "breast_mg")
    assert all(s.age_at_study() >= 62 for s in plan if s.task == "dementia_mr")
    assert all(PERIOD[0] <= s.study_date <= PERIOD[1] for s in plan)


@pytest.mark.parametrize("patients", [20, 60])
def test_plan_has_two_center_patients_and_mixed_charsets(patients: int) -> None:
    plan = plan_cohort(patients, seed=0)
    sites: dict[int, set[str]] = {}
    for s in plan:
        sites.setdefault(s.person.index, set()).add(s.site)
    multi = sum(len(v) > 1 for v in sites.values())
    assert 0.10 <= multi / patients <= 0.20
    visits = {(s.person.index, s.site): s.utf8 for s in plan}
    assert 0.15 <= sum(visits.values()) / len(visits) <= 0.25


def test_plan_ids_are_unique_per_site() -> None:
    plan = plan_cohort(60, seed=2)
    for site in SITES:
        mrn_of = {s.person.index: s.mrn for s in plan if s.site == site}
        assert len(set(mrn_of.values())) == len(mrn_of)
        accessions = [s.accession for s in plan if s.site == site]
        assert len(set(accessions)) == len(accessions)
    assert len({s.person.rrn for s in plan}) == 60


def test_site_formats_differ() -> None:
    formats = {"SUWON": r"\d{8}", "ANSEONG": r"A\d{7}", "ICHEON": r"IC-\d{6}"}
    for site in SITES:
        mrn = SITE_PROFILES[site].mrn(3, 0)
        assert [s for s in SITES if re.fullmatch(formats[s], mrn)] == [site]
    accessions = {site: SITE_PROFILES[site].accession(12, dt.date(2026, 6, 1)) for site in SITES}
    assert all(len(a) <= 16 for a in accessions.values())
    assert len({a[:2] for a in accessions.values()}) == 3


def test_uids_and_generators_are_derived_from_keys() -> None:
    uid = derive_uid(0, "a", 1)
    assert uid == derive_uid(0, "a", 1)
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid
    assert len({uid, derive_uid(1, "a", 1), derive_uid(0, "a", 2), derive_uid(0, "b", 1)}) == 4
    assert derive_rng(3, "x").random() == derive_rng(3, "x").random()
    assert derive_rng(3, "x").random() != derive_rng(3, "y").random()
