"""Korean identifiers in free text: names, resident registration numbers, phones, addresses.

Free text (descriptions, comments, SR text values) is cleaned, not dropped: only
the identifying parts are cut out, so "CT CHEST LOW DOSE 홍길동 850315-1234567"
becomes "CT CHEST LOW DOSE". What is removed:

- the patient's own name parts: Hangul, Hanja and romanized, in any order, with or
  without spaces, hyphens or carets between the syllables;
- resident registration numbers ``YYMMDD-GNNNNNN`` (hyphen optional): a valid
  birth date and a century/sex digit G of 1-8 (born 1900-2099; 5-8 are foreign
  residents). The check digit is only reported, never required: numbers issued
  since October 2020 end in random digits. Half-masked numbers
  (``YYMMDD-G******``) still give birth date and sex and are removed too;
- Korean phone numbers (mobile 01X, area codes 02 and 0NN, 070, +82 forms);
- Korean addresses: a run of two or more administrative or road-name words
  (시/도/군/구/읍/면/동/리/로/길 ...) with their numbers, or a romanized one
  (Suwon-si, Jangan-gu, Suseong-ro 245);
- the patient's own identifiers (hospital ID, accession number, birth date) if
  they appear literally.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["TextScrubber", "find_rrns", "normalize_rrn", "rrn_check_digit_ok"]

_RRN = (
    r"(?<!\d)(?P<rrn_birth>\d{6})[ \t]?[-‐–—]?[ \t]?(?P<rrn_g>[1-8])(?P<rrn_rest>\d{6}|\*{6})(?!\d)"
)
_PHONE = (
    r"(?<![\d+])(?:\+82[ \t.\-]?(?:\(0\))?|0)"
    r"(?:1[016789]|2|[3-6][1-5]|70|50[2-8])[ \t.\-)]{0,2}\d{3,4}[ \t.\-]?\d{4}(?!\d)"
)
_ADMIN = (
    r"[가-힣]{1,12}(?:특별시|광역시|특별자치시|특별자치도|시|도|군|구|읍|면|동|리|가)"
    r"(?:\d{1,3}(?:가|동))?(?![가-힣0-9])"
)
_ROAD = r"[가-힣0-9]{1,20}(?:대로|로|길)(?![가-힣])(?:[ \t]*\d{1,5}(?:-\d{1,5})?(?:번길|번지)?)?"
_NUMBER = r"\d{1,5}(?:-\d{1,5})?(?:번지|번길|동|호|층)?(?![가-힣0-9])|\((?:[^()]{1,40})\)"
_BUILDING = r"[가-힣A-Za-z0-9]{1,20}(?:아파트|빌라|맨션|오피스텔|타워)(?![가-힣])"
_ADDRESS = (
    rf"(?<![가-힣])(?:{_ADMIN}|{_ROAD})(?:[ \t,]+(?:{_ROAD}|{_ADMIN}|{_BUILDING}|{_NUMBER}))+"
)
_ROMAN_PART = r"[A-Za-z]{2,20}-(?:si|do|gu|gun|dong|eup|myeon|ri|ro|gil|daero)\b(?:[ \t]+\d{1,5}(?:-\d{1,5})?\b)?"
_ROMAN_ADDRESS = rf"(?i:(?<![A-Za-z0-9])(?:\d{{1,5}}(?:-\d{{1,5}})?,?[ \t]+)?{_ROMAN_PART}(?:[ \t,]+{_ROMAN_PART})+)"
_PROVINCES = re.compile(
    r"^(?:서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|충청|전북|전남|전라|경북|경남|경상|제주)"
)
# Anyone's Korean name right after a role word ("보호자 홍영철", "담당의: 김철수"): the name goes, the role stays.
_SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍전고문양손배백허남심노하곽성차주우구민유진"
# three-syllable words that follow role words and start like a surname but are not names
_NOT_NAMES = "정상|이상|안정|장기|조영|한쪽|신경|오른|왼쪽|전체|전반|고열|문제|양측|손상|배뇨|심한|하루|주의|유지|진행|성실"
_ROLE_NAME = (
    r"(?P<keep>보호자|환자명|환자|담당의|주치의|의뢰의|판독의|의사|기사|간호사|남편|아내|부인|아들|딸|모친|부친|어머니"
    rf"|아버지|배우자|성명|이름)[ \t:：]*(?!{_NOT_NAMES})[{_SURNAMES}][가-힣]{{2}}(?:(?![가-힣])|(?=씨|님))"
)
_ROLE_NAME_RE = re.compile(_ROLE_NAME)
_ANY_GLOBAL_RE = re.compile("|".join((_RRN, _PHONE, _ADDRESS, _ROMAN_ADDRESS, _ROLE_NAME)))
_ADDRESS_WORD = re.compile(rf"(?:{_ADMIN}|{_ROAD})")

# The pattern-only passes, compiled once (immutable constants, not state).
_RRN_RE = re.compile(_RRN)
_PHONE_RE = re.compile(_PHONE)
_ADDRESS_RE = re.compile(_ADDRESS)
_ROMAN_ADDRESS_RE = re.compile(_ROMAN_ADDRESS)
_TIDY_SPACES = re.compile(r"[ \t]{2,}")
_TIDY_BRACKETS = re.compile(r"\([ \t,]*\)|\[[ \t,]*\]")
_TIDY_EDGES = " \t,;:/-·|^"
_TWO_CHAR_SURNAMES = frozenset(
    [
        "남궁",
        "황보",
        "제갈",
        "사공",
        "선우",
        "서문",
        "독고",
        "동방",
        "어금",
        "망절",
        "을지",
        "소봉",
        "장곡",
        "諸葛",
        "南宮",
        "皇甫",
        "司空",
        "鮮于",
        "西門",
        "獨孤",
        "東方",
    ]
)
_MEMO_SIZE = 4096  # texts remembered per scrubber
_CJK = re.compile(r"[\u3400-\u9fff\uac00-\ud7a3\uf900-\ufaff]")


def rrn_check_digit_ok(digits: str) -> bool:
    """The pre-2020 check digit of a 13-digit resident registration number."""
    if len(digits) != 13 or not digits.isdigit():
        return False
    total = sum(
        int(d) * w for d, w in zip(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True)
    )
    return (11 - total % 11) % 10 == int(digits[12])


def _rrn_birth_ok(birth: str, g: str) -> bool:
    century = 1900 if g in "1256" else 2000
    try:
        dt.date(century + int(birth[:2]), int(birth[2:4]), int(birth[4:6]))
    except ValueError:
        return False
    return True


def normalize_rrn(value: str) -> str | None:
    """The 13 digits of a valid resident registration number written in ``value``, or None."""
    match = re.fullmatch(r"\s*" + _RRN + r"\s*", value or "")
    if (
        not match
        or not match["rrn_rest"].isdigit()
        or not _rrn_birth_ok(match["rrn_birth"], match["rrn_g"])
    ):
        return None
    return match["rrn_birth"] + match["rrn_g"] + match["rrn_rest"]


def find_rrns(text: str) -> list[str]:
    """Every valid (full or half-masked) resident registration number in a text, as written."""
    found = []
    for match in re.finditer(_RRN, text):
        if _rrn_birth_ok(match["rrn_birth"], match["rrn_g"]):
            found.append(match[0])
    return found


def _name_parts(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split DICOM PN strings into (family names, given names), per component group."""
    families: list[str] = []
    givens: list[str] = []
    for name in names:
        for group in str(name or "").split("="):
            parts = [p.strip() for p in group.split("^")[:2]]
            if len(parts) == 1 or not parts[1]:
                words = parts[0].replace(",", " ").split()
                if len(words) == 1 and _CJK.match(words[0]) and 2 <= len(words[0]) <= 5:
                    cut = 2 if words[0][:2] in _TWO_CHAR_SURNAMES and len(words[0]) >= 3 else 1
                    families.append(words[0][:cut])
                    givens.append(words[0][cut:])
                else:
                    givens.extend(words)
                continue
            families.append(parts[0])
            givens.append(parts[1])
    return [f for f in families if f], [g for g in givens if g]


def _spaced(word: str) -> str:
    """A pattern for a word whose letters may be separated by spaces, hyphens or apostrophes; any case."""
    letters = [c for c in word if c.isalnum()]
    return r"[ \t\-'.]?".join(
        f"[{c.upper()}{c.lower()}]" if c.isascii() and c.isalpha() else re.escape(c)
        for c in letters
    )


def _name_alternatives(names: Iterable[str]) -> list[str]:
    families, givens = _name_parts(names)
    sep = r"[ \t\^,.\-]*"
    patterns: list[str] = []
    for family in families:
        for given in givens:
            if bool(_CJK.search(family)) != bool(_CJK.search(given)):
                continue
            patterns += [
                _spaced(family) + sep + _spaced(given),
                _spaced(given) + sep + _spaced(family),
            ]
    words = sorted(set(givens + families), key=len, reverse=True)
    for word in words:
        letters = "".join(c for c in word if c.isalnum())
        if _CJK.search(letters):
            if len(letters) >= 2:
                patterns.append(_spaced(letters))
            elif (
                letters in families
            ):  # a one-syllable surname: as a word of its own or before an honorific
                patterns.append(
                    rf"(?<!\w){re.escape(letters)}(?:(?!\w)|(?=씨|님|氏|군|양|선생|환자))"
                )
        elif len(letters) >= 3:
            patterns.append(rf"(?<![A-Za-z]){_spaced(letters)}(?![A-Za-z])")
    return patterns  # whole names before their parts


def _date_alternatives(birth: dt.date | None) -> list[str]:
    if birth is None:
        return []
    y, m, d = f"{birth.year:04d}", f"{birth.month:02d}", f"{birth.day:02d}"
    return [rf"(?<!\d){y}[.\-/ ]?{m}[.\-/ ]?{d}(?!\d)", rf"(?<!\d){y[2:]}[.\-/]{m}[.\-/]{d}(?!\d)"]


class TextScrubber:
    """Removes one patient's identifiers, and anyone's RRNs, phones and addresses, from text.

    Build one per patient (names, literal IDs, birth date); :meth:`clean` is then a
    single regular-expression pass per value.
    """

    def __init__(
        self,
        names: Iterable[str] = (),
        literals: Iterable[str] = (),
        birth_date: dt.date | None = None,
    ) -> None:
        ids = sorted(
            {v.strip() for v in literals if v and len(v.strip()) >= 4}, key=len, reverse=True
        )
        own: list[tuple[str, str]] = [
            ("identifier", rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])") for v in ids
        ]
        own += [("birth_date", p) for p in _date_alternatives(birth_date)]
        own += [("name", p) for p in _name_alternatives(names)]
        # global passes one per kind, so that a rejected candidate of one kind never hides another;
        # the patient's own identifiers in one pass (one compile per patient), kind told by group name
        self._passes: list[tuple[str, re.Pattern, bool]] = [
            ("rrn", _RRN_RE, True),
            ("phone", _PHONE_RE, False),
        ]
        groups = []
        for kind in ("identifier", "birth_date", "name"):
            alternatives = [p for k, p in own if k == kind]
            if alternatives:
                groups.append(f"(?P<own_{kind}>{'|'.join(alternatives)})")
        self._own = re.compile("|".join(groups)) if groups else None
        if self._own is not None:
            self._passes.append(("own", self._own, False))
        self._passes.append(("name", _ROLE_NAME_RE, False))
        self._passes += [("address", _ADDRESS_RE, True), ("address", _ROMAN_ADDRESS_RE, False)]
        # what this patient's values came to: a series' slices repeat them (pure caches, bounded)
        self._cleaned: dict[str, tuple[str, Counter]] = {}
        self._clean_texts: set[str] = set()

    def _maybe(self, text: str) -> bool:
        """A quick test: could any pass match? (Most values are plain text with nothing to remove.)"""
        return bool(
            _ANY_GLOBAL_RE.search(text) or (self._own is not None and self._own.search(text))
        )

    def clean(self, text: str) -> tuple[str, Counter]:
        """``(cleaned text, Counter of what was removed by kind)``; unchanged text is returned as is."""
        known = self._cleaned.get(text)
        if known is None:
            if len(self._cleaned) >= _MEMO_SIZE:
                self._cleaned.clear()
            known = self._cleaned[text] = self._clean(text)
        return known[0], Counter(known[1])

    def _clean(self, text: str) -> tuple[str, Counter]:
        removed: Counter = Counter()
        if not text or not self._maybe(text):
            return text, removed
        cleaned = text
        for kind, pattern, check in self._passes:

            def cut(match: re.Match, kind: str = kind, check: bool = check) -> str:
                if check and not _valid(kind, match):
                    return match[0]
                removed[match.lastgroup[4:] if kind == "own" else kind] += 1
                return (match.groupdict().get("keep") or "") + " "

            cleaned = pattern.sub(cut, cleaned)
        if not removed:
            return text, removed
        cleaned = _TIDY_BRACKETS.sub(" ", cleaned)
        cleaned = "\n".join(
            _TIDY_SPACES.sub(" ", line).strip(_TIDY_EDGES) for line in cleaned.split("\n")
        )
        return cleaned.strip(), removed

    def detect(self, text: str) -> str | None:
        """The kind of the first identifier found in ``text`` (``"rrn"``, ``"name"``, ...), or None."""
        if text in self._clean_texts:
            return None
        kind = self._detect(text)
        if kind is None:
            if len(self._clean_texts) >= _MEMO_SIZE:
                self._clean_texts.clear()
            self._clean_texts.add(text)
        return kind

    def _detect(self, text: str) -> str | None:
        if not text or not self._maybe(text):
            return None
        for kind, pattern, check in self._passes:
            for match in pattern.finditer(text):
                if not check or _valid(kind, match):
                    return match.lastgroup[4:] if kind == "own" else kind
        return None


def _valid(kind: str, match: re.Match) -> bool:
    if kind == "rrn":
        return _rrn_birth_ok(match["rrn_birth"], match["rrn_g"])
    return _is_address(match[0])


def _is_address(candidate: str) -> bool:
    """Two address words, or one after a province name; romanized runs are checked by their pattern."""
    if not _CJK.search(candidate):
        return True
    words = _ADDRESS_WORD.findall(candidate)
    return len(words) >= 2 or bool(_PROVINCES.match(candidate))
