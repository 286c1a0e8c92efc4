"""Korean identifiers in free text, and mislabelled character sets."""

from __future__ import annotations

import datetime as dt
import io

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from gai_research.deid.charset import detect_mislabel, repair_charset
from gai_research.deid.text import TextScrubber, find_rrns, normalize_rrn, rrn_check_digit_ok


@pytest.fixture(scope="module")
def scrubber() -> TextScrubber:
    return TextScrubber(
        names=["Hong^Gildong=洪^吉童=홍^길동"],
        literals=["SW0012345"],
        birth_date=dt.date(1985, 3, 15),
    )


@pytest.mark.parametrize(
    "text, expected, kinds",
    [
        ("CT CHEST LOW DOSE 홍길동 850315-1234567", "CT CHEST LOW DOSE", {"name", "rrn"}),
        ("환자 홍 길동 (8503151234567) 010-1234-5678", "환자", {"name", "rrn", "phone"}),
        ("길동 홍 님 내원", "님 내원", {"name"}),
        ("Gildong Hong, Gil-dong HONG tel +82-10-1234-5678", "tel", {"name", "phone"}),
        ("HONG^GILDONG", "", {"name"}),
        ("洪吉童 검사", "검사", {"name"}),
        ("홍씨 내원", "씨 내원", {"name"}),
        ("850315-1****** 추적", "추적", {"rrn"}),
        ("경기도 수원시 장안구 수성로 245 (정자동) 101동 1001호 거주", "거주", {"address"}),
        ("123 Suseong-ro, Jangan-gu, Suwon-si, Gyeonggi-do", "", {"address"}),
        ("서울특별시 강남구 테헤란로 123", "", {"address"}),
        ("031-888-0114 흉부", "흉부", {"phone"}),
        ("DOB 1985-03-15 ID SW0012345", "DOB ID", {"birth_date", "identifier"}),
        ("보호자 홍영철 연락처", "보호자 연락처", {"name"}),
    ],
)
def test_identifiers_are_cut_out(
    scrubber: TextScrubber, text: str, expected: str, kinds: set[str]
) -> None:
    cleaned, removed = scrubber.clean(text)
    assert cleaned == expected
    assert set(removed) == kinds


@pytest.mark.parametrize(
    "text",
    [
        "CT CHEST LOW DOSE",
        "경기도의료원 수원병원 CT",
        "우측 상엽 결절 2개, 정도 경미",
        "각도 20",
        "환자 상태 양호",
        "홍수 피해",
        "Window 0.5 2 3 4",
        "1.2.840.10008.5.1.4.1.1.2",
        "8513151234567",  # month 13: not a resident registration number
        "9912319234567",  # century digit 9 (born in the 1800s): not matched
    ],
)
def test_ordinary_text_stays(scrubber: TextScrubber, text: str) -> None:
    assert scrubber.clean(text) == (text, {})
    assert scrubber.detect(text) is None


@pytest.mark.parametrize(
    "value, expected",
    [
        ("850315-1234567", "8503151234567"),
        ("8503151234567", "8503151234567"),
        ("010304-4234567", "0103044234567"),  # born 2001
        ("850315-9234567", None),
        ("851315-1234567", None),
        ("850315-1******", None),  # half-masked: removed from text, but no linkage key
    ],
)
def test_normalize_rrn(value: str, expected: str | None) -> None:
    assert normalize_rrn(value) == expected


def test_check_digit_is_only_a_hint() -> None:
    # a number with a wrong check digit (as issued since October 2020) is still found
    assert not rrn_check_digit_ok("8503151234567")
    assert find_rrns("주민번호 850315-1234567") == ["850315-1234567"]


def _mislabelled(label: str | None, codec: str) -> Dataset:
    ds = Dataset()
    if label is not None:
        ds.SpecificCharacterSet = label
    ds.add_new(0x00081030, "LO", "흉부 CT 홍길동".encode(codec))
    ds.add_new(0x00100010, "PN", "홍^길동".encode(codec))
    item = Dataset()
    item.add_new(0x0040A160, "UT", "홍길동 소견".encode(codec))
    ds.add_new(0x0040A730, "SQ", [item])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()), force=True)


@pytest.mark.parametrize(
    "label, codec, found",
    [
        ("ISO_IR 100", "euc_kr", "cp949"),
        (None, "euc_kr", "cp949"),
        ("ISO_IR 100", "utf-8", "utf-8"),
    ],
)
def test_mislabelled_korean_is_repaired_and_relabelled(
    label: str | None, codec: str, found: str
) -> None:
    ds = _mislabelled(label, codec)
    assert repair_charset(ds) == found
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.StudyDescription == "흉부 CT 홍길동"
    assert str(ds.PatientName) == "홍^길동"
    assert ds.ContentSequence[0].TextValue == "홍길동 소견"
    written = io.BytesIO()
    ds.save_as(written, implicit_vr=False, little_endian=True)
    again = pydicom.dcmread(io.BytesIO(written.getvalue()), force=True)
    assert again.StudyDescription == "흉부 CT 홍길동"


@pytest.mark.parametrize(
    "name", [f.rsplit("/", 1)[-1] for f in pydicom.data.get_charset_files("*.dcm")]
)
def test_correctly_labelled_charset_files_are_left_alone(name: str) -> None:
    ds = pydicom.dcmread(pydicom.data.get_charset_files(name)[0], force=True)
    assert detect_mislabel(ds) is None
