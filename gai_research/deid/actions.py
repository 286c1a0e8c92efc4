"""The action table: PS3.15 Table E.1-1 with the profile's options applied, built once per run.

Actions (PS3.15 E.1.1): ``D`` replace with a dummy value, ``Z`` zero-length, ``X``
remove, ``K`` keep, ``C`` clean (text: identifiers cut out; dates: shifted), ``U``
replace UIDs consistently. Combined actions (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``,
``X/Z/U*``) are resolved as the standard says, by the attribute's type in the
object's IOD (type 1: D or U, type 2: Z, otherwise X); a plain ``X`` on an attribute
that is type 1 or 2 in the IOD becomes D or Z so the output stays valid.

Attributes the table does not list are kept, except that UIDs are remapped (unless
they name a class, a transfer syntax or a coding scheme), dates follow the date
option, free text is cleaned and person names emptied (``[text] clean_unlisted``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from gai_research.deid.profile import OPTION_CODES, Profile
from gai_research.deid.tables import load_annex_e, load_iod_types

__all__ = ["CODED_TAGS", "TEXT_VRS", "ActionTable", "method_code_items"]

TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
# Code Sequence Macro values are coded, not free text: kept, never scrubbed.
CODED_TAGS = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080119})
_KEEP_UID_KEYWORD = re.compile(
    r"Class|TransferSyntax|CodingScheme|Context|MappingResource|CreatorUID|CreatorVersion|TemplateUID"
)
_MEMO_SIZE = 65536  # action() answers remembered
_PREFERENCE = {
    "required": ("U", "D", "Z", "X"),
    "empty": ("Z", "D", "U", "X"),
    "optional": ("X", "Z", "D", "U"),
    "unknown": ("U", "D", "Z", "X"),
}


def method_code_items(profile: Profile) -> list[Dataset]:
    """Items of DeidentificationMethodCodeSequence: 113100 and the code of each option in effect."""
    items = []
    for value, meaning in profile.method_codes():
        item = Dataset()
        item.add_new(0x00080100, "SH", value)
        item.add_new(0x00080102, "SH", "DCM")
        item.add_new(0x00080104, "LO", meaning)
        items.append(item)
    return items


def _encoded_sequence(tag: int, items: list[Dataset]) -> bytes:
    """A sequence's value (its items) encoded once as Explicit VR Little Endian."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, DataElement(tag, "SQ", items), ["iso8859"])
    return buffer.getvalue()[12:]  # after tag (4), VR (2), reserved (2) and length (4)


def _resolve_options(row: Mapping[str, str], enabled: set[str]) -> str:
    """The row's action once the options in effect are applied: any C wins, then any K, else the basic one."""
    chosen = [row[column] for column in enabled if column in row]
    if "C" in chosen:
        return "C"
    if "K" in chosen:
        return "K"
    return row["basicProfile"].replace(" ", "")


@dataclass(frozen=True)
class ActionTable:
    """Per-tag actions for one profile; immutable, built once per run and sent to every worker."""

    actions: Mapping[int, str]
    sop_class_iods: Mapping[str, str]
    iod_types: Mapping[str, Mapping[int, str]]
    keep_uid_tags: frozenset[int]
    safe_private: frozenset[tuple[str, int, int]]
    date_mode: str  # "shift", "keep" or "remove"
    clean_unlisted: bool
    remove_graphics: bool
    method_sequence: bytes  # DeidentificationMethodCodeSequence, encoded once
    # action() answers by (tag, VR, SOP class, top level): a pure cache, filled as elements come
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, profile: Profile) -> ActionTable:
        options = profile.options
        enabled = {OPTION_CODES[name][0] for name in options.enabled() if OPTION_CODES[name][0]}
        actions: dict[int, str] = {}
        for row in load_annex_e():
            try:
                tag = int(row["id"], 16)
            except (
                ValueError
            ):  # group patterns (curves, overlays, private) are handled by the engine
                continue
            actions[tag] = _resolve_options(row, enabled)
        sop_class_iods, iod_types = load_iod_types()
        keep_uid_tags = frozenset(
            tag
            for tag, entry in DicomDictionary.items()
            if entry[0] == "UI" and tag not in actions and _KEEP_UID_KEYWORD.search(entry[4] or "")
        )
        if options.retain_long_modified_dates:
            date_mode = "shift"
        elif options.retain_long_full_dates:
            date_mode = "keep"
        else:
            date_mode = "remove"
        safe = (
            frozenset(
                (entry.creator.strip(), entry.group, entry.element)
                for entry in profile.safe_private
            )
            if options.retain_safe_private
            else frozenset()
        )
        return cls(
            actions=actions,
            sop_class_iods=sop_class_iods,
            iod_types=iod_types,
            keep_uid_tags=keep_uid_tags,
            safe_private=safe,
            date_mode=date_mode,
            clean_unlisted=profile.text.clean_unlisted,
            remove_graphics=True,
            method_sequence=_encoded_sequence(0x00120064, method_code_items(profile)),
        )

    def attribute_type(self, tag: int, sop_class_uid: str | None) -> str | None:
        """The type (1, 1C, 2, 2C) of a top-level attribute in the IOD of a SOP class; None if optional or unknown."""
        iod = self.sop_class_iods.get(sop_class_uid or "")
        if iod is None:
            return "unknown"
        return self.iod_types.get(iod, {}).get(tag)

    def action(self, tag: int, vr: str, sop_class_uid: str | None, top_level: bool) -> str:
        """One letter: what to do with this (public) element."""
        key = (tag, vr, sop_class_uid, top_level)
        letter = self._memo.get(key)
        if letter is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            letter = self._memo[key] = self._action(tag, vr, sop_class_uid, top_level)
        return letter

    def _action(self, tag: int, vr: str, sop_class_uid: str | None, top_level: bool) -> str:
        listed = self.actions.get(tag)
        if listed is None:
            return self._unlisted(tag, vr)
        if listed in ("K", "C", "U", "D", "Z"):
            return listed
        if "U*" in listed:
            return "U"  # references (Referenced Image / Source Image Sequence) are kept, their UIDs remapped
        choices = listed.split("/")
        kind = self.attribute_type(tag, sop_class_uid) if top_level else "unknown"
        if listed == "X":
            return {"1": "D", "2": "Z"}.get(kind or "", "X")
        if kind in ("1", "1C"):
            order = _PREFERENCE["required"]
        elif kind in ("2", "2C"):
            order = _PREFERENCE["empty"]
        elif kind == "unknown":
            order = _PREFERENCE["unknown"]
        else:
            order = _PREFERENCE["optional"]
        return next(letter for letter in order if letter in choices)

    def _unlisted(self, tag: int, vr: str) -> str:
        if tag in CODED_TAGS:
            return "K"
        if vr == "UI":
            return "K" if tag in self.keep_uid_tags else "U"
        if vr in ("DA", "DT"):
            return {"shift": "C", "keep": "K", "remove": "Z"}[self.date_mode]
        if vr in TEXT_VRS:
            return "C" if self.clean_unlisted else "K"
        if vr == "PN":
            return "Z" if self.clean_unlisted else "K"
        return "K"
