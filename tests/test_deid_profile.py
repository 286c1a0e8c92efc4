"""Profiles, the Annex E action table and the packaged standard tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gai_research.deid.actions import ActionTable
from gai_research.deid.errors import ProfileError
from gai_research.deid.profile import load_profile
from gai_research.deid.tables import generate_iod_types, load_annex_e, load_iod_types

CT = "1.2.840.10008.5.1.4.1.1.2"
REFERENCE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "confidentiality_profile_attributes.json"
)


@pytest.fixture(scope="module")
def table() -> ActionTable:
    return ActionTable.build(load_profile())


def test_default_profile_has_the_issue_defaults() -> None:
    options = load_profile().options
    assert options.retain_long_modified_dates and options.retain_patient_characteristics
    assert options.clean_descriptors and options.clean_structured_content
    assert not options.retain_device_identity and not options.retain_safe_private


def test_method_codes_name_the_basic_profile_and_options() -> None:
    codes = [code for code, _ in load_profile().method_codes()]
    assert codes[0] == "113100"
    assert {"113105", "113107", "113108"} <= set(codes)
    assert "113109" not in codes


def test_profile_hash_changes_with_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[options]\nretain_device_identity = true\n")
    assert load_profile(path).sha256() != load_profile().sha256()
    assert load_profile().sha256() == load_profile().sha256()


@pytest.mark.parametrize(
    "text, where",
    [
        ("[options\n", "not valid TOML"),
        ("[options]\nno_such_option = true\n", "no_such_option"),
        ("[options]\nretain_long_full_dates = true\n", "exclude each other"),
        (
            "[[pixel_rules]]\nname='x'\nmanufacturer='('\nregions=[[0,0,1,1]]\n",
            "regular expression",
        ),
        ("[[pixel_rules]]\nname='x'\nmanufacturer='A'\nregions=[[5,0,1,1]]\n", "x0 < x1"),
        ("[[safe_private]]\ncreator='X'\ngroup=0x0010\nelement=1\n", "not private"),
        ("[linkage]\nrrn_tags=['NoSuchKeyword']\n", "neither a DICOM keyword"),
    ],
)
def test_bad_profiles_are_refused_with_the_place(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=where):
        load_profile(path)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "tag, vr, top_level, expected",
    [
        (0x00080080, "LO", True, "X"),  # Institution Name X/Z/D, type 3 in CT: removed
        (0x00080080, "LO", False, "D"),  # nested, type unknown: dummy keeps any IOD valid
        (0x00081010, "SH", True, "X"),  # Station Name (Retain Device Identity is off)
        (0x00080020, "DA", True, "C"),  # Study Date Z, Modified Dates option: shifted
        (0x00080022, "DA", True, "C"),
        (0x00081030, "LO", True, "C"),  # Study Description X, Clean Descriptors: cleaned
        (0x00101010, "AS", True, "K"),  # Patient's Age X, Retain Patient Characteristics: kept
        (0x00100030, "DA", True, "Z"),  # Patient's Birth Date Z
        (0x00080018, "UI", True, "U"),
        (0x00080016, "UI", True, "K"),  # SOP Class UID: not listed, a class: kept
        (0x00081150, "UI", True, "K"),  # Referenced SOP Class UID
        (
            0x00081140,
            "SQ",
            True,
            "U",
        ),  # Referenced Image Sequence X/Z/U*: references kept, remapped
        (0x00081110, "SQ", True, "X"),  # Referenced Study Sequence X/Z, type 3 in CT
        (0x00400555, "SQ", True, "C"),  # Acquisition Context Sequence, Clean Structured Content
        (0x0040A160, "UT", False, "C"),  # SR Text Value: not listed, free text: cleaned
        (0x00080100, "SH", False, "K"),  # Code Value: coded, never scrubbed
        (0x00140104, "PN", True, "Z"),  # an unlisted person name: emptied
    ],
)
def test_actions(table: ActionTable, tag: int, vr: str, top_level: bool, expected: str) -> None:
    assert table.action(tag, vr, CT, top_level) == expected


def test_x_on_a_type_1_attribute_becomes_a_dummy(tmp_path: Path) -> None:
    # Presentation Creation Date is X in the basic profile but type 1 in presentation states:
    # without a date option it gets a dummy value instead of leaving the object invalid
    path = tmp_path / "no-dates.toml"
    path.write_text("[options]\nretain_long_modified_dates = false\n")
    table = ActionTable.build(load_profile(path))
    gsps = "1.2.840.10008.5.1.4.1.1.11.1"
    assert table.action(0x00700082, "DA", gsps, True) == "D"
    assert table.action(0x00700082, "DA", CT, True) == "X"
    assert table.attribute_type(0x00700082, "1.2.3.private.class") == "unknown"


def test_packaged_table_is_the_reference_copy() -> None:
    if not REFERENCE.is_file():
        pytest.skip("shared/reference is not beside this checkout")
    assert load_annex_e() == json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_packaged_iod_types_match_highdicom() -> None:
    generated = generate_iod_types()
    sop_classes, iods = load_iod_types()
    assert sop_classes == generated["sop_classes"]
    assert iods == {
        iod: {int(t, 16): k for t, k in types.items()} for iod, types in generated["iods"].items()
    }
