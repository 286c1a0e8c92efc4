"""File I/O of the runner: tolerant reading, atomic writing, quarantine.

Kept apart from :mod:`gai_research.deid.engine`, which never touches a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from gai_research.deid.elements import peek_strings, peek_text, peek_value
from gai_research.deid.errors import RejectedError
from gai_research.deid.rawio import encode_parts, read_explicit_le
from gai_research.deid.types import QuarantineReason

__all__ = ["encode_fast", "output_relpath", "quarantine_file", "read_dataset", "write_dataset"]

_EOF_MESSAGES = ("end of file", "eof", "truncat", "premature", "fewer bytes")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_IOV_MAX = 1024


def read_dataset(path: Path) -> Dataset:
    """Read one file tolerantly; raise :class:`RejectedError` saying why it cannot pass.

    A file with the ``DICM`` prefix is DICOM; one without is accepted only when
    pydicom, forced, finds a SOP Class and SOP Instance UID in it (a raw dataset).
    Plain Explicit VR Little Endian files are read by :func:`read_explicit_le`
    (the same dataset, faster), everything else by ``dcmread``.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            has_prefix = True
            ds = read_explicit_le(path)
            if ds is None:
                try:
                    ds = dcmread(path)
                except InvalidDicomError:
                    ds = dcmread(path, force=True)
                    has_prefix = False
    except Exception as exc:  # pydicom raises many kinds on broken input
        raise RejectedError(
            QuarantineReason.UNREADABLE, f"pydicom cannot read it ({type(exc).__name__})"
        ) from None
    if not _has_uid(ds, 0x00080016) or not _has_uid(ds, 0x00080018):
        if not has_prefix:
            raise RejectedError(
                QuarantineReason.NOT_DICOM, "no DICOM prefix and no SOP instance in it"
            )
        raise RejectedError(
            QuarantineReason.INCOMPLETE, "DICOM file without SOP Class UID or SOP Instance UID"
        )
    if any(any(word in str(w.message).lower() for word in _EOF_MESSAGES) for w in caught):
        raise RejectedError(
            QuarantineReason.TRUNCATED, "the file ends inside an element or sequence"
        )
    _check_complete(ds)
    return ds


def _has_uid(ds: Dataset, tag: int) -> bool:
    try:
        return tag in ds and bool("\\".join(peek_strings(ds, tag)).strip())
    except Exception:
        return False


def _check_complete(ds: Dataset) -> None:
    """Raise TRUNCATED when the last element or the native pixel data is shorter than declared."""
    tags = list(ds._dict)
    if tags:
        last = ds.get_item(tags[-1])
        short = (
            isinstance(last, RawDataElement)
            and last.value is not None
            and last.length != 0xFFFFFFFF
        )
        if short and len(last.value) < last.length:
            raise RejectedError(
                QuarantineReason.TRUNCATED, "the last element is shorter than its declared length"
            )
    if "PixelData" not in ds:
        return
    meta = getattr(ds, "file_meta", None)
    syntax = peek_value(meta, "TransferSyntaxUID") if meta is not None else None
    if syntax is not None and UID(syntax).is_compressed:
        return
    try:
        rows, columns = int(peek_value(ds, "Rows")), int(peek_value(ds, "Columns"))
        samples = int(peek_value(ds, "SamplesPerPixel", 1) or 1)
        bits = int(peek_value(ds, "BitsAllocated"))
        frames = int(peek_value(ds, "NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return  # the IOD check (and dciodvfy) will say what is missing
    expected = (rows * columns * samples * frames * bits + 7) // 8
    if "YBR_FULL_422" in str(peek_value(ds, "PhotometricInterpretation", "")):
        expected = expected * 2 // 3
    pixels = ds.get_item(0x7FE00010)
    if pixels.value is None:  # deferred: the file is still there, its length is what counts
        return
    actual = len(pixels.value)
    if actual < expected:
        raise RejectedError(
            QuarantineReason.TRUNCATED, f"pixel data holds {actual} of {expected} bytes"
        )


def output_relpath(ds: Dataset) -> Path:
    """``<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``, from pseudonymous UIDs only."""
    parts = [
        peek_text(ds, keyword) or "unknown" for keyword in ("StudyInstanceUID", "SeriesInstanceUID")
    ]
    return Path(*parts) / f"{peek_text(ds, 'SOPInstanceUID')}.dcm"


def write_dataset(ds: Dataset, output_dir: Path, relpath: Path) -> bool:
    """Write the file; ``True`` if written, ``False`` if the same bytes were already there.

    The name is claimed with an exclusive create, so two workers can never both
    write one instance; a different file already at that name raises
    DUPLICATE_INSTANCE, and a file cut short by an interrupted earlier run (a
    prefix of the new bytes) is replaced. A failed write removes its partial file.
    """
    parts = encode_parts(ds)
    if parts is None:
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts = [buffer.getvalue()]
    target = output_dir / relpath
    try:
        fd = _create(target)
    except FileExistsError:
        data = b"".join(parts)
        existing = target.read_bytes()
        if existing == data:
            return False
        if len(existing) < len(data) and data.startswith(existing):
            _replace(target, data)
            return True
        raise RejectedError(
            QuarantineReason.DUPLICATE_INSTANCE,
            f"output {relpath.name} exists with different content",
        ) from None
    try:
        _write_all(fd, parts)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


def _create(target: Path) -> int:
    """Claim ``target`` with an exclusive create; its folders are made when missing."""
    try:
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:  # the first file of a series: no folder yet
        target.parent.mkdir(parents=True, exist_ok=True)
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write every part, in order, without joining them (no copy of the pixel data)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while written and written >= len(views[0]):
            written -= len(views.pop(0))
        if written:
            views[0] = views[0][written:]


def _replace(target: Path, data: bytes) -> None:
    temp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        temp.write_bytes(data)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def encode_fast(ds: Dataset) -> bytes | None:
    """The file's bytes for the common case, Explicit VR Little Endian in and out, else None.

    Elements still raw (untouched by pseudonymization) are copied byte for byte;
    changed ones and sequences are encoded by pydicom's own element writer. The
    result is what ``ds.save_as(enforce_file_format=True)`` writes, without the
    per-element overhead for the majority of elements that did not change
    (:func:`~gai_research.deid.rawio.encode_parts`).
    """
    parts = encode_parts(ds)
    return None if parts is None else b"".join(parts)


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quarantine_file(path: Path, quarantine_dir: Path, reason: dict) -> str:
    """Copy ``path`` unchanged to ``quarantine_dir/<sha256><suffix>``, ``<sha256>.reason.json`` beside it.

    The name is the content hash, so it shows nothing of the patient or the input
    path, and the same file quarantined twice is stored once. Returns the name.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = content_hash(path)[:32]
    suffix = (
        path.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", path.suffix.lower()) else ".bin"
    )
    target = quarantine_dir / f"{name}{suffix}"
    if not target.exists():
        temp = quarantine_dir / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(path, temp)
        temp.chmod(0o600)
        os.replace(temp, target)
    note = quarantine_dir / f"{name}.reason.json"
    temp = quarantine_dir / f".{name}.reason.{os.getpid()}.tmp"
    temp.write_text(
        json.dumps(dict(reason, file=target.name), indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    temp.chmod(0o600)
    os.replace(temp, note)
    return target.name
