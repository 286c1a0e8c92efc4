"""Keyed derivations: deterministic under one key, unrelated under another, valid DICOM values."""

from __future__ import annotations

import re

import pytest

from gai_research.deid.keys import KeyRing

KEY = b"0123456789abcdef" * 4
OTHER = b"fedcba9876543210" * 4
UID_SYNTAX = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.from_secret(KEY)


@pytest.mark.parametrize(
    "uid", ["1.2.3", "1.2.840.113619.2.55.3.604688119.971.1234567890.123", "9" * 64]
)
def test_uid_is_a_valid_2_25_uid(keys: KeyRing, uid: str) -> None:
    mapped = keys.uid(uid)
    assert UID_SYNTAX.match(mapped)
    assert len(mapped) <= 64


@pytest.mark.parametrize(
    "method, args",
    [
        ("uid", ("1.2.3.4",)),
        ("patient_pseudonym", ("rrn:8503151234567",)),
        ("accession_number", ("SUWON", "A123")),
        ("date_shift_days", ("site:SUWON:123", 365)),
    ],
)
def test_same_key_same_output_other_key_other_output(
    keys: KeyRing, method: str, args: tuple
) -> None:
    again = KeyRing.from_secret(KEY)
    other = KeyRing.from_secret(OTHER)
    assert getattr(keys, method)(*args) == getattr(again, method)(*args)
    assert getattr(keys, method)(*args) != getattr(other, method)(*args)


def test_uid_padding_does_not_change_the_mapping(keys: KeyRing) -> None:
    assert keys.uid("1.2.3.4") == keys.uid("1.2.3.4\0") == keys.uid(" 1.2.3.4 ")


@pytest.mark.parametrize("material", [f"site:SUWON:{n}" for n in range(50)])
def test_date_shift_is_never_zero_and_within_range(keys: KeyRing, material: str) -> None:
    assert -30 <= keys.date_shift_days(material, 30) <= -1


def test_pseudonym_and_accession_fit_their_vrs(keys: KeyRing) -> None:
    pseudonym = keys.patient_pseudonym("site:SUWON:1")
    accession = keys.accession_number("SUWON", "A1")
    assert re.fullmatch(r"GP[A-Z2-7]{16}", pseudonym)
    assert re.fullmatch(r"GA[A-Z2-7]{14}", accession) and len(accession) <= 16


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        KeyRing.from_secret(b"short")


def test_repr_shows_no_key_material(keys: KeyRing) -> None:
    assert "0123" not in repr(keys) and "patient_key" not in repr(keys)
