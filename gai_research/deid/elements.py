"""Reading element values without changing the dataset.

``ds[tag]`` and ``ds.get(keyword)`` decode a raw element and store the decoded
form back into the dataset, so pydicom must re-encode it on writing. Reading
through :func:`peek` leaves unchanged elements raw, and the writer copies them
byte for byte; that is most of what makes ``gai deid`` as fast as a plain copy.
"""

from __future__ import annotations

from pydicom.charset import encode_string
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.valuerep import PersonName

__all__ = ["peek", "peek_strings", "peek_text", "peek_value", "store", "values_of"]

_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})


def peek(ds: Dataset, tag: int) -> DataElement:
    """The element with its value decoded, without storing the decoded form in ``ds``."""
    element = ds.get_item(tag)
    if isinstance(element, RawDataElement):
        return convert_raw_data_element(element, encoding=ds._character_set, ds=ds)
    return element


def peek_value(ds: Dataset, keyword: str, default: object = None) -> object:
    """The value of an attribute by keyword (``default`` if absent), without storing it decoded.

    ASCII-only VRs (CS, UI, DA, ...) and single US values are decoded straight from
    the raw bytes, as ``str`` (a list for several values) and ``int``.
    """
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return default
    element = ds.get_item(tag)
    if isinstance(element, RawDataElement) and element.value is not None:
        raw, vr = element.value, element.VR
        if vr in _ASCII_VRS and raw.isascii():
            text = raw.decode("ascii").strip(" \0")
            if "\\" in text:
                return [part.strip(" \0") for part in text.split("\\")]
            return text
        if vr == "US" and len(raw) == 2:
            return int.from_bytes(raw, "little" if element.is_little_endian else "big")
    return peek(ds, tag).value


def peek_strings(ds: Dataset, tag: int) -> list[str]:
    """An element's values as strings; ASCII VRs straight from the raw bytes."""
    element = ds.get_item(tag)
    if (
        isinstance(element, RawDataElement)
        and element.value is not None
        and element.VR in _ASCII_VRS
    ):
        raw = element.value
        if raw.isascii():
            text = raw.decode("ascii").strip(" \0")
            return [part.strip(" \0") for part in text.split("\\")] if text else []
    return values_of(peek(ds, tag).value)


def values_of(value: object) -> list[str]:
    """A value as a list of strings: ``[]`` for empty, one item per value for multi-valued ones."""
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def peek_text(ds: Dataset, keyword: str) -> str:
    """An attribute's value as one stripped string (multiple values joined by backslashes)."""
    return "\\".join(values_of(peek_value(ds, keyword))).strip()


def _encodings(ds: Dataset, encodings: list[str] | None) -> list[str]:
    if encodings is None:
        encodings = ds._character_set
    return [encodings] if isinstance(encodings, str) else list(encodings)


def encode_value(
    ds: Dataset, vr: str, value: object, encodings: list[str] | None = None
) -> bytes | None:
    """A string value encoded as pydicom's writer would (charset, padding), or None for other VRs.

    ``encodings`` are the Python codecs in effect (a nested item inherits its
    parent's); by default those of ``ds``.
    """
    values = values_of(value)
    if vr in _ASCII_VRS:
        text = "\\".join(values)
        if not text.isascii():
            return None
        encoded = text.encode("ascii")
    elif vr in _TEXT_VRS:
        codecs = _encodings(ds, encodings)
        encoded = b"\\".join(encode_string(v, codecs) for v in values)
    elif vr == "PN":
        codecs = _encodings(ds, encodings)
        encoded = b"\\".join(PersonName(v).encode(codecs) for v in values)
    else:
        return None
    if len(encoded) % 2:
        encoded += b"\0" if vr == "UI" else b" "
    return encoded


def store(
    ds: Dataset, tag: int, vr: str, value: object, encodings: list[str] | None = None
) -> None:
    """Set an element's value, encoded right away and kept raw when it is a string VR.

    A raw element is written byte for byte, so a changed value costs no more to
    write than an unchanged one; other VRs (numbers, sequences) are stored as
    ordinary data elements.
    """
    encoded = encode_value(ds, vr, value, encodings)
    if encoded is None:
        ds[tag] = DataElement(tag, vr, value)
        return
    old = ds.get_item(tag) if tag in ds else None
    if isinstance(old, RawDataElement):
        implicit, little = old.is_implicit_VR, old.is_little_endian
    else:
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = False, True
    ds[tag] = RawDataElement(Tag(tag), vr, len(encoded), encoded, 0, implicit, little)
