"""Date shifting (DA, DT) and patient age (AS), for the Modified Dates option.

Every date of a patient moves by the same whole number of days, so intervals
between one patient's studies survive; times of day stay as they are. Values that
cannot be parsed are emptied rather than kept, since they might still be a date.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["age_string", "parse_da", "shift_da", "shift_dt"]

_DA = re.compile(r"^\s*(\d{4})[.\-]?(\d{2})[.\-]?(\d{2})\s*$")  # YYYYMMDD, and ACR-NEMA YYYY.MM.DD
_DT = re.compile(r"^\s*(\d{4})(\d{2})?(\d{2})?(.*?)\s*$")


def parse_da(value: str) -> dt.date | None:
    """A DA value (``YYYYMMDD`` or ACR-NEMA ``YYYY.MM.DD``) as a date, or None."""
    match = _DA.match(value or "")
    if not match:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _shift(day: dt.date, days: int) -> dt.date | None:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return None


def shift_da(value: str, days: int) -> str:
    """Shift one DA value (or a ``A-B`` range of a query); unparseable values become empty."""
    if "-" in value.strip() and not _DA.match(value):
        return "-".join(shift_da(part, days) if part else "" for part in value.split("-"))
    day = parse_da(value)
    if day is None:
        return ""
    moved = _shift(day, days)
    return moved.strftime("%Y%m%d") if moved and moved.year >= 1 else ""


def shift_dt(value: str, days: int) -> str:
    """Shift the date part of a DT value, keeping its precision, time and UTC offset."""
    match = _DT.match(value or "")
    if not match:
        return ""
    year, month, day, rest = match[1], match[2], match[3], match[4]
    if month and day:
        start = parse_da(year + month + day)
        moved = _shift(start, days) if start else None
        return moved.strftime("%Y%m%d") + rest if moved else ""
    # year or year+month precision: shift the middle of the period, keep the precision
    try:
        middle = dt.date(int(year), int(month or 7), 15 if month else 1)
    except ValueError:
        return ""
    moved = _shift(middle, days)
    if moved is None:
        return ""
    return moved.strftime("%Y%m" if month else "%Y") + rest


def age_string(birth: dt.date, on: dt.date) -> str | None:
    """PatientAge (AS) on a day: ``nnnD`` under a month, ``nnnM`` under two years, else ``nnnY``."""
    if on < birth:
        return None
    days = (on - birth).days
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    years = months // 12
    if days < 31:
        return f"{days:03d}D"
    if months < 24:
        return f"{months:03d}M"
    return f"{min(years, 999):03d}Y"
