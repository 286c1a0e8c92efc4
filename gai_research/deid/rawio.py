"""Explicit VR Little Endian files at the byte level: read into raw elements, written back as bytes.

Nearly every file a PACS sends is Explicit VR Little Endian with defined lengths.
For those, :func:`read_explicit_le` builds the same dataset ``dcmread`` would
(raw elements, file meta, preamble, original encoding) without pydicom's
per-element reading overhead, reading the header in one call and each large
value (pixel data) with one exact-size read; anything else (no ``DICM`` prefix,
another transfer syntax, undefined lengths, a command set, a short element)
returns ``None`` and is left to ``dcmread``. :func:`encode_parts` is the
converse: the file's bytes, unchanged raw elements copied as they were read,
large values kept as separate parts so that they are written without a copy.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

__all__ = ["decode_sequence", "encode_parts", "read_explicit_le"]

_HEAD = 16384  # bytes read at once for element headers and small values
_BIG = 8192  # a value at least this long is read (and written) as a part of its own
_VRS = {vr.value.encode("ascii"): vr.value for vr in VR if len(vr.value) == 2}
_LONG = frozenset(vr.value.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_LONG_STR = frozenset(vr.value for vr in EXPLICIT_VR_LENGTH_32)
_HEADER = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")
_ITEM = struct.Struct("<HHL")
_SHORT = struct.Struct("<HH2sH").pack
_LONG_HEADER = struct.Struct("<HH2sHL").pack
_STRING_PADDING = {"AE": b" ", "AS": b" ", "CS": b" ", "UI": b"\0"}
_META_REQUIRED = frozenset({0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013})
_META_TAGS = _META_REQUIRED | {0x00020001}  # what a plain file meta holds, besides its group length


class _Short(Exception):
    """The file does not fit the fast path (a short read, an odd element): use ``dcmread``."""


class _File:
    """A file's bytes by offset: a window for headers and small values, exact reads for big ones.

    With ``data`` (and no file), the window is those bytes: an element value in memory.
    """

    def __init__(self, fd: int, size: int, data: bytes = b"") -> None:
        self.fd, self.size = fd, size
        self.base, self.window = 0, data

    def _read(self, length: int, offset: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise _Short
        return data

    def move(self, offset: int, length: int = 0) -> None:
        """Let the window start at ``offset`` (holding at least ``length`` bytes, if the file has them)."""
        if self.fd < 0:
            raise _Short  # in memory: there is nothing beyond the window
        self.base = offset
        self.window = self._read(min(max(_HEAD, length), self.size - offset), offset)

    def bytes(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``."""
        start = offset - self.base
        if start >= 0 and offset + length <= self.base + len(self.window):
            return self.window[start : start + length]
        if length >= _BIG:
            return self._read(length, offset)
        self.move(offset, length)
        return self.window[:length]


def _elements(
    source: _File, pos: int, end: int, group_only: int | None
) -> tuple[dict[int, RawDataElement], int]:
    """Raw elements from ``pos``, Explicit VR Little Endian, defined lengths only; and where they end.

    Raises ``_Short`` for anything else (an unknown VR, an undefined length, an
    item tag, an element running past ``end``).
    """
    found: dict[int, RawDataElement] = {}
    header, long_length = _HEADER.unpack_from, _LENGTH.unpack_from
    vrs, long_vrs = _VRS, _LONG
    window, base = source.window, source.base
    while end - pos >= 8:
        if pos < base or pos + 8 > base + len(window):
            source.move(pos, 12)
            window, base = source.window, source.base
        group, number, vr_bytes, length = header(window, pos - base)
        if group_only is not None and group != group_only:
            break
        vr = vrs.get(vr_bytes)
        if vr is None or group == 0xFFFE:
            raise _Short
        start = pos + 8
        if vr_bytes in long_vrs:
            if end - pos < 12:
                raise _Short
            if pos + 12 > base + len(window):
                source.move(pos, 12)
                window, base = source.window, source.base
            length = long_length(window, pos - base + 8)[0]
            start += 4
        pos = start + length
        if length == 0xFFFFFFFF or pos > end:
            raise _Short
        if not length:
            value = empty_value_for_VR(vr, raw=True)
        elif pos <= base + len(window):
            value = window[start - base : pos - base]
        else:
            value = source.bytes(start, length)
            window, base = source.window, source.base
        tag = BaseTag(group << 16 | number)
        found[tag] = RawDataElement(tag, vr, length, value, start, False, True)
    return found, pos


def read_explicit_le(path: Path) -> FileDataset | None:
    """The dataset ``dcmread(path)`` gives, for a plain Explicit VR Little Endian file; else ``None``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < 144:
            return None
        source = _File(fd, size)
        if source.bytes(128, 4) != b"DICM":
            return None
        preamble = source.bytes(0, 128)
        meta_elements, pos = _elements(source, 132, size, 0x0002)
        if not meta_elements:
            return None
        file_meta = FileMetaDataset(meta_elements)
        file_meta.set_original_encoding(False, True, default_encoding)
        file_meta[next(iter(meta_elements))]  # as dcmread does: the first element must decode
        if file_meta.get("TransferSyntaxUID") != ExplicitVRLittleEndian:  # decoded, as dcmread
            return None
        if size - pos < 8 or _HEADER.unpack(source.bytes(pos, 8))[0] == 0x0000:
            return None  # an empty dataset, or a command set: dcmread's business
        elements, pos = _elements(source, pos, size, None)
    except (_Short, NotImplementedError, ValueError, struct.error):
        return None
    finally:
        os.close(fd)
    ds = FileDataset(os.fspath(path), elements, preamble, file_meta, False, True)
    charset = ds._character_set  # decodes (0008,0005) in place, as dcmread does
    ds.set_original_encoding(False, True, charset)
    return ds


def decode_sequence(element: RawDataElement, encodings: str | list[str]) -> DataElement | None:
    """The decoded form of a raw Explicit VR Little Endian sequence, as pydicom decodes it; else None.

    For a sequence of defined length whose items have defined lengths and hold
    elements of defined length (what nearly every writer produces): each item is
    a dataset of raw elements, as ``convert_raw_data_element`` would give.
    Anything else (undefined lengths, implicit VR items, empty items) returns
    ``None``, for pydicom to decode.
    """
    raw = element.value
    if (
        element.VR != "SQ"
        or not raw
        or element.length == 0xFFFFFFFF
        or element.is_implicit_VR
        or not element.is_little_endian
    ):
        return None
    encodings = [encodings] if isinstance(encodings, str) else list(encodings)
    source = _File(-1, len(raw), raw)
    items = []
    pos, end, offset = 0, len(raw), element.value_tell
    try:
        while pos < end:
            if end - pos < 8:
                return None
            group, number, length = _ITEM.unpack_from(raw, pos)
            start = pos + 8
            if (group, number) != (0xFFFE, 0xE000) or not length or start + length > end:
                return None  # also an undefined length (0xFFFFFFFF) item
            elements, stop = _elements(source, start, start + length, None)
            if stop != start + length:
                return None
            item = Dataset(elements, parent_encoding=encodings)
            encoding: str | list[str] = encodings
            if 0x00080005 in elements:
                encoding = convert_encodings(convert_raw_data_element(elements[0x00080005]).value)
            item.set_original_encoding(False, True, encoding)
            item.is_undefined_length_sequence_item = False
            item.seq_item_tell = item.file_tell = pos + offset
            items.append(item)
            pos = stop
    except (_Short, struct.error):
        return None
    sequence = Sequence(items)
    sequence.is_undefined_length = False
    return DataElement(
        element.tag, "SQ", sequence, element.value_tell, False, already_converted=True
    )


def _raw_value(element: object) -> bytes | None:
    """The value bytes of a raw element read (or stored) as Explicit VR Little Endian, defined length; else None."""
    if (
        not isinstance(element, RawDataElement)
        or element.VR is None
        or element.is_implicit_VR
        or not element.is_little_endian
        or element.length == 0xFFFFFFFF
    ):
        return None
    if element.value is None:
        return b"" if element.length == 0 else None
    return element.value


def _string_value(element: DataElement) -> bytes | None:
    """An ASCII string element (CS, AE, AS, UI) encoded as pydicom writes it, or None."""
    padding = _STRING_PADDING.get(element.VR)
    value = element.value
    if padding is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, MultiValue | list) and all(isinstance(v, str) for v in value):
        text = "\\".join(value)
    else:
        return None
    if not text.isascii():
        return None
    encoded = text.encode("ascii")
    return encoded + padding if len(encoded) % 2 else encoded


def _syntax(meta: Dataset) -> str | None:
    """The transfer syntax UID, straight from the raw bytes when they are plain ASCII."""
    element = meta._dict.get(0x00020010)
    value = _raw_value(element)
    if value is not None and value.isascii() and b"\\" not in value:
        return value.decode("ascii").rstrip("\0 ")  # as pydicom's UI conversion
    return meta.get("TransferSyntaxUID")


def _meta_bytes(ds: Dataset) -> bytes:
    """Preamble, prefix and file meta as ``write_file_meta_info(enforce_standard=True)`` writes them."""
    meta = ds.file_meta
    prefix = (getattr(ds, "preamble", None) or b"\0" * 128) + b"DICM"
    tags = [tag for tag in meta.keys() if tag != 0x00020000]  # noqa: SIM118
    body = []
    if 0x00020001 not in meta:
        body.append((0x00020001, _LONG_HEADER(2, 1, b"OB", 0, 2) + b"\0\1"))
    plain = _META_TAGS.issuperset(tags) and _META_REQUIRED.issubset(tags)
    for tag in tags if plain else ():
        element = meta.get_item(tag)
        value = _raw_value(element)
        if value is None and not isinstance(element, RawDataElement):
            value = _string_value(element)
        if value is None or not value:
            plain = False
            break
        vr = element.VR
        if vr in _LONG_STR:
            head = _LONG_HEADER(2, tag & 0xFFFF, vr.encode(), 0, len(value))
        else:
            head = _SHORT(2, tag & 0xFFFF, vr.encode(), len(value))
        body.append((tag, head + value))
    if not plain:
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        write_file_meta_info(buffer, meta, enforce_standard=True)
        return prefix + buffer.getvalue()
    body.sort()
    content = b"".join(part for _, part in body)
    return prefix + _SHORT(2, 0, b"UL", 4) + _LENGTH.pack(len(content)) + content


def encode_parts(ds: Dataset) -> list[bytes] | None:
    """The file's bytes in parts (large values on their own), Explicit VR Little Endian in and out; else None.

    Elements still raw (untouched by pseudonymization) are copied byte for byte;
    changed ones and sequences are encoded by pydicom's own element writer. The
    parts joined are what ``ds.save_as(enforce_file_format=True)`` writes, without
    the per-element overhead for the majority of elements that did not change.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None or _syntax(meta) != ExplicitVRLittleEndian:
        return None
    if ds.original_encoding != (False, True) or ds.original_character_set != ds._character_set:
        return None
    parts: list[bytes] = []
    run = [_meta_bytes(ds)]  # small parts, joined into one before each large value
    encodings = None
    elements = ds._dict
    for tag in sorted(elements, key=int):
        group, number = tag >> 16, tag & 0xFFFF
        if number == 0 and group > 6:
            continue
        element = elements[tag]
        vr = element.VR
        value = _raw_value(element)
        if value is None and not isinstance(element, RawDataElement):
            value = _string_value(element)
        if value is not None and (vr in _LONG_STR or len(value) <= 0xFFFF):
            if vr in _LONG_STR:
                run.append(_LONG_HEADER(group, number, vr.encode(), 0, len(value)))
            else:
                run.append(_SHORT(group, number, vr.encode(), len(value)))
            if len(value) >= _BIG:
                parts += (b"".join(run), value)
                run = []
            else:
                run.append(value)
            continue
        if encodings is None:
            encodings = ds.get("SpecificCharacterSet", "iso8859")
        body = DicomBytesIO()
        body.is_little_endian, body.is_implicit_VR = True, False
        write_data_element(body, element, encodings)
        run.append(body.getvalue())
    if run:
        parts.append(b"".join(run))
    return parts
