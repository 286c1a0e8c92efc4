"""Synthetic Korean identities: names (romanized, Hanja, Hangul), RRNs, addresses, phones.

Every name is a random combination of common surnames and given-name syllables, so
no real person is meant. Resident registration numbers follow the pre-2020 layout
``YYMMDD-GRRRRSC``: G encodes century and sex, RRRR a registration office, S a
serial and C the check digit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

__all__ = [
    "KoreanName",
    "make_rrn",
    "random_address",
    "random_name",
    "random_phone",
    "rrn_birth_date",
    "rrn_check_digit",
    "rrn_is_valid",
]

# (Hangul, Hanja, romanization, relative frequency in %)
SURNAMES: tuple[tuple[str, str, str, float], ...] = (
    ("김", "金", "Kim", 21.5),
    ("이", "李", "Lee", 14.7),
    ("박", "朴", "Park", 8.4),
    ("최", "崔", "Choi", 4.7),
    ("정", "鄭", "Jung", 4.4),
    ("강", "姜", "Kang", 2.3),
    ("조", "趙", "Cho", 2.1),
    ("윤", "尹", "Yoon", 2.1),
    ("장", "張", "Jang", 2.0),
    ("임", "林", "Lim", 1.7),
    ("한", "韓", "Han", 1.5),
    ("오", "吳", "Oh", 1.5),
    ("서", "徐", "Seo", 1.5),
    ("신", "申", "Shin", 1.5),
    ("권", "權", "Kwon", 1.4),
    ("황", "黃", "Hwang", 1.4),
    ("안", "安", "Ahn", 1.4),
    ("송", "宋", "Song", 1.4),
    ("전", "全", "Jeon", 1.1),
    ("홍", "洪", "Hong", 1.1),
    ("유", "柳", "Yu", 1.0),
    ("고", "高", "Ko", 0.9),
    ("문", "文", "Moon", 0.9),
    ("양", "梁", "Yang", 0.9),
    ("손", "孫", "Son", 0.9),
)

# given-name syllables (Hangul, Hanja, romanization) usual for people born 1935-1985
GIVEN_MALE: tuple[tuple[str, str, str], ...] = (
    ("민", "敏", "min"), ("준", "俊", "jun"), ("성", "成", "seong"), ("호", "浩", "ho"),
    ("철", "哲", "cheol"), ("수", "洙", "su"), ("영", "永", "young"), ("진", "鎭", "jin"),
    ("현", "鉉", "hyun"), ("우", "宇", "woo"), ("재", "在", "jae"), ("동", "東", "dong"),
    ("석", "錫", "seok"), ("용", "龍", "yong"), ("태", "泰", "tae"), ("상", "相", "sang"),
    ("훈", "勳", "hoon"), ("기", "基", "ki"), ("광", "光", "kwang"), ("종", "鍾", "jong"),
    ("병", "炳", "byung"), ("승", "承", "seung"), ("창", "昌", "chang"), ("규", "圭", "kyu"),
)  # fmt: skip
GIVEN_FEMALE: tuple[tuple[str, str, str], ...] = (
    ("영", "英", "young"), ("숙", "淑", "sook"), ("순", "順", "soon"), ("자", "子", "ja"),
    ("희", "姬", "hee"), ("미", "美", "mi"), ("정", "貞", "jung"), ("옥", "玉", "ok"),
    ("경", "京", "kyung"), ("혜", "惠", "hye"), ("은", "恩", "eun"), ("선", "善", "sun"),
    ("화", "花", "hwa"), ("주", "珠", "joo"), ("연", "蓮", "yeon"), ("진", "眞", "jin"),
    ("현", "賢", "hyun"), ("지", "智", "ji"), ("수", "秀", "soo"), ("란", "蘭", "ran"),
    ("애", "愛", "ae"),
)  # fmt: skip

# Gyeonggi-do cities, districts and road names, for addresses near each hospital
ADDRESS_AREAS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "SUWON": (
        ("수원시 장안구", ("정자로", "수성로", "경수대로", "송정로")),
        ("수원시 권선구", ("권선로", "세화로", "호매실로")),
        ("수원시 팔달구", ("중부대로", "효원로", "매산로")),
        ("수원시 영통구", ("영통로", "봉영로", "광교중앙로")),
        ("화성시", ("봉담읍 동화길", "병점중앙로", "동탄대로")),
        ("오산시", ("오산로", "성호대로")),
    ),
    "ANSEONG": (
        ("안성시", ("중앙로", "안성맞춤대로", "공도로", "서동대로", "남파로")),
        ("평택시", ("평택로", "중앙로", "경기대로")),
        ("용인시 처인구", ("금령로", "중부대로")),
    ),
    "ICHEON": (
        ("이천시", ("중리천로", "경충대로", "이섭대천로", "증신로", "서희로")),
        ("여주시", ("세종로", "여흥로")),
        ("광주시", ("경안로", "회안대로")),
    ),
}

RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
# (first digit of the RRN's second half) -> (century, sex), for citizens; registered
# foreigners (5-8) use another check-digit rule and are never generated
RRN_CENTURY_SEX = {
    "9": (1800, "M"), "0": (1800, "F"), "1": (1900, "M"), "2": (1900, "F"),
    "3": (2000, "M"), "4": (2000, "F"),
}  # fmt: skip


@dataclass(frozen=True)
class KoreanName:
    """A Korean name in the three DICOM PN component groups."""

    family_roman: str
    given_roman: str
    family_hanja: str
    given_hanja: str
    family_hangul: str
    given_hangul: str

    @property
    def dicom(self) -> str:
        """``Kim^Minjun=金^珉俊=김^민준``: alphabetic=ideographic=phonetic."""
        return (
            f"{self.family_roman}^{self.given_roman}="
            f"{self.family_hanja}^{self.given_hanja}="
            f"{self.family_hangul}^{self.given_hangul}"
        )

    @property
    def hangul(self) -> str:
        """The name as written in Korean text, e.g. ``김민준``."""
        return self.family_hangul + self.given_hangul


def random_name(rng: np.random.Generator, sex: str) -> KoreanName:
    """A random name of the given sex ("M" or "F")."""
    weights = np.array([s[3] for s in SURNAMES])
    family = SURNAMES[int(rng.choice(len(SURNAMES), p=weights / weights.sum()))]
    pool = GIVEN_MALE if sex == "M" else GIVEN_FEMALE
    first, second = (pool[int(i)] for i in rng.choice(len(pool), size=2, replace=False))
    return KoreanName(
        family_roman=family[2],
        given_roman=(first[2] + second[2]).capitalize(),
        family_hanja=family[1],
        given_hanja=first[1] + second[1],
        family_hangul=family[0],
        given_hangul=first[0] + second[0],
    )


def rrn_check_digit(first12: str) -> int:
    """The check digit of the twelve digits of an RRN (without the hyphen)."""
    total = sum(int(d) * w for d, w in zip(first12, RRN_WEIGHTS, strict=True))
    return (11 - total % 11) % 10


def make_rrn(birth: dt.date, sex: str, office: int, serial: int) -> str:
    """An RRN ``YYMMDD-GRRRRSC`` for a birth date and sex, with a valid check digit."""
    century = birth.year // 100 * 100
    code = {(1800, "M"): 9, (1800, "F"): 0, (1900, "M"): 1, (1900, "F"): 2}.get(
        (century, sex), 3 if sex == "M" else 4
    )
    digits = f"{birth:%y%m%d}{code}{office % 10000:04d}{serial % 10}"
    return f"{digits[:6]}-{digits[6:]}{rrn_check_digit(digits)}"


def rrn_birth_date(rrn: str) -> tuple[dt.date, str]:
    """Birth date and sex encoded in an RRN; ValueError if it cannot be one."""
    digits = rrn.replace("-", "")
    if len(digits) != 13 or not digits.isdigit():
        raise ValueError(f"not an RRN: {rrn!r}")
    century, sex = RRN_CENTURY_SEX[digits[6]]
    return dt.date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6])), sex


def rrn_is_valid(rrn: str) -> bool:
    """Layout, birth date and check digit of an RRN are all valid."""
    try:
        rrn_birth_date(rrn)
    except (ValueError, KeyError):
        return False
    digits = rrn.replace("-", "")
    return rrn[6:7] == "-" and rrn_check_digit(digits[:12]) == int(digits[12])


def random_phone(rng: np.random.Generator) -> str:
    """A mobile number ``010-XXXX-XXXX``."""
    return f"010-{int(rng.integers(2000, 10000)):04d}-{int(rng.integers(0, 10000)):04d}"


def random_address(rng: np.random.Generator, site: str) -> str:
    """A street address in Gyeonggi-do near the given site."""
    areas = ADDRESS_AREAS[site]
    city, roads = areas[int(rng.integers(len(areas)))]
    road = roads[int(rng.integers(len(roads)))]
    number = int(rng.integers(1, 400))
    if rng.random() < 0.6:
        unit = f", {int(rng.integers(101, 120))}동 {int(rng.integers(1, 25))}{int(rng.integers(1, 5)):02d}호"
    else:
        unit = ""
    return f"경기도 {city} {road} {number}{unit}"
