"""Checking received objects and putting them into the DICOM file format.

Every source hands the spool Part-10 bytes (preamble, ``DICM``, file meta, data
set). Before an object is kept, its header must decode and name its SOP class,
SOP instance and study; pixel data is not decoded here (the pseudonymizer reads
tolerantly and quarantines what it cannot pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

__all__ = ["ObjectInfo", "UnusableObject", "inspect_part10", "is_part10", "to_part10"]

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage


class UnusableObject(Exception):
    """An object that cannot be kept; ``status`` is the C-STORE failure status to answer."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


CANNOT_UNDERSTAND = 0xC000
MISSING_UIDS = 0xA900  # "data set does not match SOP class"


@dataclass(frozen=True)
class ObjectInfo:
    """The header facts ingest needs about one object (identified UIDs: keep them inside)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    transfer_syntax_uid: str
    study_date: str = ""
    modality: str = ""


def _info(ds, transfer_syntax: str) -> ObjectInfo:
    sop_class = str(ds.get("SOPClassUID", "") or "")
    sop_instance = str(ds.get("SOPInstanceUID", "") or "")
    study = str(ds.get("StudyInstanceUID", "") or "")
    if not sop_instance:
        raise UnusableObject("no SOP Instance UID", MISSING_UIDS)
    if not sop_class:
        raise UnusableObject("no SOP Class UID", MISSING_UIDS)
    if not study and sop_class != DICOMDIR_SOP_CLASS:
        raise UnusableObject("no Study Instance UID", MISSING_UIDS)
    return ObjectInfo(
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        study_uid=study,
        transfer_syntax_uid=transfer_syntax,
        study_date=str(ds.get("StudyDate", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
    )


def inspect_part10(source: bytes | Path) -> ObjectInfo:
    """Decode the header of a Part-10 object (bytes or a file); raise UnusableObject if unfit."""
    from pydicom import dcmread

    try:
        fp = BytesIO(source) if isinstance(source, bytes | bytearray) else open(source, "rb")  # noqa: SIM115
        with fp:
            ds = dcmread(fp, stop_before_pixels=True)
            transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
            for _element in ds:  # convert every raw element: corrupt values fail here
                pass
    except UnusableObject:
        raise
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise UnusableObject(
            f"cannot decode the object ({type(exc).__name__})", CANNOT_UNDERSTAND
        ) from None
    return _info(ds, transfer_syntax)


def to_part10(path: Path) -> tuple[bytes, ObjectInfo]:
    """A DICOM file without a preamble/file meta (as some media carry), as Part-10 bytes.

    Read with ``force``; accepted only when it names its SOP class and instance, so
    arbitrary files are not mistaken for DICOM.
    """
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    try:
        ds = dcmread(path, force=True)
        implicit, little = ds.original_encoding
        if not ds.get("SOPInstanceUID") or not ds.get("SOPClassUID"):
            raise UnusableObject("not DICOM", CANNOT_UNDERSTAND)
        meta = ds.file_meta if ds.file_meta is not None else FileMetaDataset()
        if not meta.get("TransferSyntaxUID"):
            meta.TransferSyntaxUID = (
                ImplicitVRLittleEndian
                if implicit
                else ExplicitVRLittleEndian
                if little
                else ExplicitVRBigEndian
            )
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "ImplementationClassUID" not in meta:
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    except UnusableObject:
        raise
    except Exception:
        raise UnusableObject("not DICOM", CANNOT_UNDERSTAND) from None
    data = buffer.getvalue()
    return data, inspect_part10(data)


def is_part10(path: Path) -> bool:
    """Whether a file starts with a 128-byte preamble and ``DICM``."""
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"
