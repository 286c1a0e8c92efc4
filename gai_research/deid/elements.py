"""Reading element values without changing the dataset.

``ds[tag]`` and ``ds.get(keyword)`` decode a raw element and store the decoded
form back into the dataset, so pydicom must re-encode it on writing. Reading
through :func:`peek` leaves unchanged elements raw, and the writer copies them
byte for byte; that is most of what makes ``gai deid`` as fast as a plain copy.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

from pydicom import config
from pydicom.charset import encode_string
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName
from pydicom.values import convert_value

from gai_research.deid.rawio import decode_sequence

__all__ = [
    "peek",
    "peek_strings",
    "peek_text",
    "peek_value",
    "store",
    "text_values",
    "values_of",
]

_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
_MULTI_TEXT_VRS = frozenset({"SH", "LO", "UC"})  # split at backslashes; ST, LT, UT are not


@lru_cache(maxsize=1024)
def tag_of(keyword: str) -> int | None:
    """The tag of a keyword (a pure cache over pydicom's dictionary)."""
    return tag_for_keyword(keyword)


def peek(ds: Dataset, tag: int) -> DataElement:
    """The element with its value decoded, without storing the decoded form in ``ds``."""
    element = ds.get_item(tag)
    if isinstance(element, RawDataElement):
        if element.VR == "SQ":
            decoded = decode_sequence(element, ds._character_set)
            if decoded is not None:
                return decoded
        return convert_raw_data_element(element, encoding=ds._character_set, ds=ds)
    return element


def peek_value(ds: Dataset, keyword: str, default: object = None) -> object:
    """The value of an attribute by keyword (``default`` if absent), without storing it decoded.

    ASCII-only VRs (CS, UI, DA, ...) and single US values are decoded straight from
    the raw bytes, as ``str`` (a list for several values) and ``int``; text and
    person names (SH, LO, ..., PN) as ``str`` or a list of ``str`` (:func:`text_values`).
    """
    tag = tag_of(keyword)
    element = ds._dict.get(tag) if tag is not None else None
    if element is None:
        return default
    if isinstance(element, RawDataElement) and element.value is not None:
        raw, vr = element.value, element.VR
        if vr in _ASCII_VRS and raw.isascii():
            text = raw.decode("ascii").strip(" \0")
            if "\\" in text:
                return [part.strip(" \0") for part in text.split("\\")]
            return text
        if vr == "US" and len(raw) == 2:
            return int.from_bytes(raw, "little" if element.is_little_endian else "big")
        if vr in _TEXT_VRS or vr == "PN":
            values = _raw_text(ds, element)
            return values[0] if len(values) == 1 else list(values)
    return peek(ds, tag).value


def peek_strings(ds: Dataset, tag: int) -> list[str]:
    """An element's values as strings; ASCII VRs straight from the raw bytes."""
    element = ds._dict[tag]
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


def text_values(ds: Dataset, tag: int, encodings: list[str] | None = None) -> list[str]:
    """A text or PN element's values as strings, as ``values_of(peek(ds, tag).value)`` gives them.

    ``encodings`` are ``ds._character_set``, when the caller has them at hand.
    """
    element = ds._dict[tag]
    if (
        isinstance(element, RawDataElement)
        and element.value is not None
        and (element.VR in _TEXT_VRS or element.VR == "PN")
    ):
        return list(_raw_text(ds, element, encodings))
    return values_of(peek(ds, tag).value)


def _raw_text(
    ds: Dataset, element: RawDataElement, encodings: list[str] | None = None
) -> tuple[str, ...]:
    """The strings of a raw text or PN element.

    ASCII values without escape sequences read the same in every character set,
    so they are taken straight from the bytes; others are decoded by pydicom, once
    per distinct value (the slices of a series repeat their names and comments).
    """
    raw, vr = element.value, element.VR
    mode = config.settings.reading_validation_mode
    if raw.isascii() and b"\x1b" not in raw and mode != config.RAISE:
        if vr == "PN":
            return tuple(_person_name(v) for v in raw.rstrip(b"\0 ").decode("ascii").split("\\"))
        text = raw.decode("ascii")
        if vr in _MULTI_TEXT_VRS:
            return tuple(v.rstrip("\0 ") for v in text.split("\\"))
        return (text.rstrip("\0 "),)
    codecs = ds._character_set if encodings is None else encodings
    codecs = (codecs,) if isinstance(codecs, str) else tuple(codecs)
    return _decoded(raw, vr, codecs, mode)


@lru_cache(maxsize=512)
def _decoded(raw: bytes, vr: str, encodings: tuple[str, ...], mode: int) -> tuple[str, ...]:
    """pydicom's decoding of a text value as strings (a pure cache: same bytes, same strings)."""
    element = RawDataElement(BaseTag(0), vr, len(raw), raw, 0, False, True)
    return tuple(values_of(convert_value(vr, element, list(encodings))))


def _person_name(value: str) -> str:
    """``str(PersonName(value))``: its groups, without empty trailing ones."""
    groups = value.split("=")
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


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


@lru_cache(maxsize=64)
def _ascii_safe(codecs: tuple[str, ...]) -> bool:
    """Whether pydicom encodes ASCII text under these codecs as plain ASCII bytes (nearly all do)."""
    sample = "".join(map(chr, range(0x80)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a probe: pydicom's complaints are not news
            return (
                encode_string(sample, list(codecs)) == sample.encode("ascii")
                and encode_string("", list(codecs)) == b""  # pydicom fails here for iso2022_jp
            )
    except Exception:  # an unknown codec, or that failure: leave it to pydicom every time
        return False


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
    elif vr in _TEXT_VRS or vr == "PN":
        codecs = _encodings(ds, encodings)
        if (
            all(v.isascii() for v in values)
            and _ascii_safe(tuple(codecs))
            and (vr != "PN" or config.settings.reading_validation_mode != config.RAISE)
        ):
            names = (_person_name(v) for v in values) if vr == "PN" else values
            encoded = "\\".join(names).encode("ascii")
        elif vr == "PN":
            encoded = b"\\".join(PersonName(v).encode(codecs) for v in values)
        else:
            encoded = b"\\".join(encode_string(v, codecs) for v in values)
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
    old = ds._dict.get(tag)
    if isinstance(old, RawDataElement):
        implicit, little = old.is_implicit_VR, old.is_little_endian
    else:
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = False, True
    key = BaseTag(tag)
    element = RawDataElement(key, vr, len(encoded), encoded, 0, implicit, little)
    if tag >> 16 & 1 or tag >> 16 == 0x7FE0:
        ds[key] = element  # private and pixel elements: pydicom's bookkeeping
    else:
        ds._dict[key] = element  # what ds[key] = element comes down to for these
