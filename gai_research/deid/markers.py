"""What the engine writes into every pseudonymized dataset: identity markers and the file meta."""

from __future__ import annotations

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from gai_research.deid.actions import ActionTable, method_code_items
from gai_research.deid.elements import peek_text, peek_value, store
from gai_research.deid.profile import Profile

__all__ = ["IMPLEMENTATION_VERSION", "set_file_meta", "set_markers"]

IMPLEMENTATION_VERSION = "GAI_DEID_1"
_DATE_MARKER = {"shift": "MODIFIED", "keep": "UNMODIFIED", "remove": "REMOVED"}


def set_markers(
    ds: Dataset, pseudonym: str, profile: Profile, table: ActionTable, accession: str
) -> None:
    """The pseudonym in the patient module, the keyed accession number and the PS3.15 markers.

    PatientIdentityRemoved YES, DeidentificationMethod, DeidentificationMethodCodeSequence
    (113100 and the option codes in effect) and LongitudinalTemporalInformationModified.
    """
    codecs = ds._character_set
    store(ds, 0x00100010, "PN", pseudonym, codecs)
    store(ds, 0x00100020, "LO", pseudonym, codecs)
    if peek_text(ds, "AccessionNumber"):
        store(ds, 0x00080050, "SH", accession, codecs)
    store(ds, 0x00120062, "CS", "YES")
    method = ["gai-research deid, PS3.15 E.1-1 2024b", f"profile {profile.name[:40]}"]
    store(ds, 0x00120063, "LO", method, codecs)
    if ds.original_encoding in ((False, True), (None, None)):
        codes = table.method_sequence  # encoded once per run (Explicit VR Little Endian)
        ds[0x00120064] = RawDataElement(Tag(0x00120064), "SQ", len(codes), codes, 0, False, True)
    else:
        ds.add_new(0x00120064, "SQ", method_code_items(profile))
    store(ds, 0x00280303, "CS", _DATE_MARKER[table.date_mode])


def set_file_meta(ds: Dataset) -> None:
    """A fresh file meta matching the dataset (same transfer syntax), and a zeroed preamble."""
    old = getattr(ds, "file_meta", None) or FileMetaDataset()
    syntax = old.get("TransferSyntaxUID")
    if not syntax:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit:
            syntax = ImplicitVRLittleEndian
        else:
            syntax = ExplicitVRBigEndian if little is False else ExplicitVRLittleEndian
    elements: dict[BaseTag, RawDataElement | DataElement] = {}
    for tag, vr, value in (
        (0x00020002, "UI", peek_value(ds, "SOPClassUID")),
        (0x00020003, "UI", peek_value(ds, "SOPInstanceUID")),
        (0x00020010, "UI", syntax),
        (0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID),
        (0x00020013, "SH", IMPLEMENTATION_VERSION),
    ):
        if isinstance(value, str) and value.isascii():  # encoded now: written as it is
            encoded = value.encode("ascii")
            if len(encoded) % 2:
                encoded += b"\0" if vr == "UI" else b" "
            key = BaseTag(tag)
            elements[key] = RawDataElement(key, vr, len(encoded), encoded, 0, False, True)
        else:
            elements[BaseTag(tag)] = DataElement(tag, vr, value)
    ds.file_meta = FileMetaDataset(elements)
    ds.preamble = b"\0" * 128
