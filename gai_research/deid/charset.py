"""Character sets: read Korean text right even when the Specific Character Set lies.

pydicom decodes text with the dataset's Specific Character Set (ISO 2022 IR 149,
ISO_IR 192, ...). Korean PACS often send EUC-KR (or UTF-8) bytes under a Latin
label, or none: decoded as Latin-1 a name like 홍길동 turns into "È«±æµ¿" and no
name rule would find it. :func:`repair_charset` detects that from the raw bytes
and re-decodes every text value; the dataset is then labelled ISO_IR 192 (UTF-8)
so that the written file is consistent with its label.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from gai_research.deid.elements import peek, peek_value

__all__ = ["TEXT_VRS", "repair_charset"]

TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_KOREAN_LABELS = ("ISO 2022 IR 149", "ISO_IR 192", "GB18030", "GBK")
_HANGUL = range(0xAC00, 0xD7A4)


def _raw_text_values(
    ds: Dataset, found: list[tuple[Dataset, int, str, bytes]], *, keep: bool = True
) -> None:
    """Collect (dataset, tag, VR, raw bytes) of every still-undecoded non-ASCII text element.

    ``keep``: sequences are decoded into the dataset (their items are about to be
    changed); otherwise they are only read, and stay raw (written as they were).
    """
    for tag in list(ds._dict):
        element = ds.get_item(tag)
        vr = element.VR
        if vr == "SQ" or (vr is None and not isinstance(element, RawDataElement)):
            for item in _items(ds, tag, keep):
                _raw_text_values(item, found, keep=keep)
            continue
        if not isinstance(element, RawDataElement):
            continue
        if vr is None:
            from pydicom.datadict import dictionary_VR

            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            if vr == "SQ":
                for item in _items(ds, tag, keep):
                    _raw_text_values(item, found, keep=keep)
                continue
        if vr in TEXT_VRS and element.value and not element.value.isascii():
            found.append((ds, tag, vr, element.value))


def _items(ds: Dataset, tag: int, keep: bool) -> list[Dataset]:
    return list((ds[tag] if keep else peek(ds, tag)).value or ())


def _decodes_as(values: list[bytes], codec: str) -> bool:
    """Every value decodes strictly, and Hangul makes up most of the non-ASCII characters."""
    hangul = other = 0
    for value in values:
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            return False
        for char in text:
            if ord(char) > 0x7F:
                if ord(char) in _HANGUL:
                    hangul += 1
                else:
                    other += 1
    return hangul > 0 and hangul >= other


def detect_mislabel(ds: Dataset) -> str | None:
    """The Python codec the text really is in when the label is wrong (``utf-8``/``cp949``), else None."""
    label = peek_value(ds, "SpecificCharacterSet", "") or ""
    label = "\\".join(label) if not isinstance(label, str) else label
    utf8 = "ISO_IR 192" in label
    if not utf8 and any(name in label for name in _KOREAN_LABELS):
        return None  # declared Korean-capable: pydicom decodes it right
    found: list[tuple[Dataset, int, str, bytes]] = []
    _raw_text_values(ds, found, keep=False)  # only looking: sequences stay raw
    values = [raw for _, _, _, raw in found]
    if not values:
        return None
    if utf8:
        return (
            None
            if all(_strict_utf8(v) for v in values)
            else ("cp949" if _decodes_as(values, "cp949") else None)
        )
    if "ISO 2022" in label and any(b"\x1b" in v for v in values):
        return None  # code extensions in use: pydicom switches sets as the bytes say
    for codec in ("utf-8", "cp949"):
        if _decodes_as(values, codec):
            return codec
    return None


def _strict_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def repair_charset(ds: Dataset) -> str | None:
    """Re-decode mislabelled Korean text and relabel the dataset ISO_IR 192; the codec used, or None."""
    codec = detect_mislabel(ds)
    if codec is None:
        return None
    found: list[tuple[Dataset, int, str, bytes]] = []
    _raw_text_values(ds, found)
    for item, tag, vr, raw in found:
        text = raw.decode(codec).rstrip(" \0")
        item[tag] = DataElement(tag, vr, text.split("\\") if "\\" in text else text)
    ds.SpecificCharacterSet = "ISO_IR 192"
    return codec
