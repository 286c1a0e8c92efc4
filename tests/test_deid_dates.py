"""Date shifting and patient age."""

from __future__ import annotations

import datetime as dt

import pytest

from gai_research.deid.dates import age_string, parse_da, shift_da, shift_dt


@pytest.mark.parametrize(
    "value, days, expected",
    [
        ("20240301", -1, "20240229"),
        ("20240101", -365, "20230101"),
        ("2024.03.01", -10, "20240220"),  # ACR-NEMA form comes back as DA
        ("20240101-20240301", -1, "20231231-20240229"),  # query range
        ("garbage", -1, ""),
        ("", -3, ""),
        ("20241332", -1, ""),
    ],
)
def test_shift_da(value: str, days: int, expected: str) -> None:
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(
    "value, days, expected",
    [
        ("20240301123000.000+0900", -1, "20240229123000.000+0900"),
        ("20240301", -1, "20240229"),
        ("202403", -40, "202402"),
        ("2024", -400, "2023"),
        ("x", -1, ""),
    ],
)
def test_shift_dt_keeps_time_precision_and_offset(value: str, days: int, expected: str) -> None:
    assert shift_dt(value, days) == expected


def test_intervals_survive_the_shift() -> None:
    first, second = "20240110", "20240305"
    gap = parse_da(second) - parse_da(first)
    assert parse_da(shift_da(second, -123)) - parse_da(shift_da(first, -123)) == gap


@pytest.mark.parametrize(
    "birth, on, expected",
    [
        (dt.date(1980, 5, 2), dt.date(2024, 5, 1), "043Y"),
        (dt.date(1980, 5, 2), dt.date(2024, 5, 2), "044Y"),
        (dt.date(2024, 1, 1), dt.date(2024, 1, 10), "009D"),
        (dt.date(2023, 1, 1), dt.date(2024, 6, 10), "017M"),
        (dt.date(2024, 1, 2), dt.date(2024, 1, 1), None),
    ],
)
def test_age_string(birth: dt.date, on: dt.date, expected: str | None) -> None:
    assert age_string(birth, on) == expected
