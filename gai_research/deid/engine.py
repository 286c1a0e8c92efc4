"""The pure pseudonymization function: one dataset, a profile and a key in; a dataset and a record out.

No file, no clock, no global state: the same dataset, profile and key give the
same output on any worker and in any order. Identifiers leave this module only
inside :class:`~gai_research.deid.types.DeidRecord` (for the vault), never in an
exception message.
"""

from __future__ import annotations

import copy as copy_module
import datetime as dt
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from gai_research.config import Site
from gai_research.deid.actions import CODED_TAGS, TEXT_VRS, ActionTable
from gai_research.deid.charset import repair_charset
from gai_research.deid.dates import age_string, parse_da, shift_da, shift_dt
from gai_research.deid.elements import (
    peek,
    peek_strings,
    peek_text,
    peek_value,
    store,
    tag_of,
    text_values,
    values_of,
)
from gai_research.deid.errors import RejectedError
from gai_research.deid.keys import KeyRing
from gai_research.deid.markers import set_file_meta, set_markers
from gai_research.deid.pixels import apply_pixel_rule, check_burned_in
from gai_research.deid.profile import Profile
from gai_research.deid.rawio import decode_sequence
from gai_research.deid.text import TextScrubber, normalize_rrn
from gai_research.deid.types import (
    DeidRecord,
    DeidResult,
    OriginalIdentity,
    QuarantineReason,
    StudyLink,
)
from gai_research.deid.validate import residual_check, validate_output

__all__ = ["pseudonymize"]


_DICOM_ROOT = "1.2.840.10008."
_SET_BY_ENGINE = frozenset(
    {
        0x00080005,  # SpecificCharacterSet
        0x00080050,  # AccessionNumber
        0x00100010,  # PatientName
        0x00100020,  # PatientID
        0x00120062,  # PatientIdentityRemoved
        0x00120063,  # DeidentificationMethod
        0x00120064,  # DeidentificationMethodCodeSequence
        0x00280303,  # LongitudinalTemporalInformationModified
    }
)
_DUMMY = {
    "PN": "REMOVED",
    "AE": "REMOVED",
    "CS": "REMOVED",
    "SH": "REMOVED",
    "LO": "REMOVED",
    "ST": "REMOVED",
    "LT": "REMOVED",
    "UT": "REMOVED",
    "UC": "REMOVED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
}
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "PN", *TEXT_VRS})
_CHECKED_VRS = frozenset({"PN", *TEXT_VRS})  # kept values of these are checked for identifiers
_LOOKED_AT_WHEN_KEPT = frozenset({"SQ", *_CHECKED_VRS})  # kept sequences are walked too
_NUMERIC = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
_OTHER_NAMES = (
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ResponsiblePerson",
)
_AGE_REFERENCE = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


_text = peek_text
_values = values_of


def _put(
    ds: Dataset, tag: int, vr: str, value: object, encodings: list[str] | None, depth: int
) -> None:
    """Store a new value: encoded raw at the top level (fast to write), decoded in nested items.

    A nested item built in memory does not know its parent's character set, so a
    raw value there would read back wrongly; items are few, so they take the
    ordinary (slower) path.
    """
    if depth == 0:
        store(ds, tag, vr, value, encodings)
    else:
        ds[tag] = DataElement(
            tag, vr, value if not isinstance(value, list) or len(value) != 1 else value[0]
        )


@lru_cache(maxsize=64)
def _scrubber(
    names: tuple[str, ...], literals: tuple[str, ...], birth: dt.date | None
) -> TextScrubber:
    """One patient's scrubber, memoized: a series' slices share it (a pure cache, not state)."""
    return TextScrubber(names=names, literals=literals, birth_date=birth)


@lru_cache(maxsize=1024)
def _shifted(vr: str, value: str, days: int) -> str:
    """A DA or DT value moved by ``days`` (a pure cache: a series' slices share their dates)."""
    return shift_da(value, days) if vr == "DA" else shift_dt(value, days)


@lru_cache(maxsize=256)
def _item_ids(raw: bytes, codecs: tuple[str, ...]) -> tuple[str, ...] | None:
    """PatientID of each item of a raw OtherPatientIDsSequence value; None if not plain.

    A pure cache over the value's bytes and character set: a patient's slices repeat them.
    """
    element = RawDataElement(BaseTag(0x00101002), "SQ", len(raw), raw, 0, False, True)
    decoded = decode_sequence(element, list(codecs))
    if decoded is None:
        return None
    return tuple(_text(item, "PatientID") for item in decoded.value)


def _codecs(ds: Dataset) -> list[str]:
    value = ds._character_set
    return [value] if isinstance(value, str) else list(value)


def _set(ds: Dataset, tag: int, value: object) -> None:
    """Set a non-string value (numbers, binary), decoding the element first."""
    ds[tag].value = value


class _Pseudonymizer:
    """The state of one call: the patient's keys and scrubber, and what was done."""

    def __init__(
        self, ds: Dataset, profile: Profile, keys: KeyRing, site: Site, table: ActionTable
    ) -> None:
        self.ds = ds
        self.profile = profile
        self.keys = keys
        self.site = site
        self.table = table
        self.sop_class = _text(ds, "SOPClassUID")
        self.removed: Counter = Counter()
        self.written: list[tuple[str, object]] = []  # (VR, value) of every value this call set
        self.uid_cache: dict[str, str] = {}
        self.shift = 0
        self.scrubber: TextScrubber  # set by identify()
        self.encodings: list[str] | None = (
            None  # Python codecs of the dataset (or item) being walked
        )
        self.changes = 0  # every change counts, so unchanged sequences can stay raw
        self._originals: dict[int, list[str]] = {}  # top-level values read before the walk
        self._sequence_ids: tuple[str, ...] | None = None  # OtherPatientIDsSequence IDs, once read

    def _original(self, keyword: str) -> list[str]:
        """A top-level attribute's values before any change (read once)."""
        tag = tag_of(keyword)
        values = self._originals.get(tag)
        if values is None:
            value = peek_value(self.ds, keyword)
            values = self._originals[tag] = _values(value)
        return values

    def _original_text(self, keyword: str) -> str:
        return "\\".join(self._original(keyword)).strip()

    def _other_patient_ids(self) -> tuple[str, ...] | None:
        """PatientID of each item of a plain raw OtherPatientIDsSequence (None: not plain, decode it).

        Read from the sequence's bytes once per distinct value, without storing the
        decoded items (the walk removes or keeps the sequence as it is).
        """
        if self._sequence_ids is None:
            element = self.ds._dict.get(0x00101002)
            if not isinstance(element, RawDataElement) or element.VR != "SQ" or not element.value:
                return None
            if element.is_implicit_VR or not element.is_little_endian:
                return None
            self._sequence_ids = _item_ids(element.value, tuple(_codecs(self.ds)))
        return self._sequence_ids

    # --- identity -----------------------------------------------------------------
    def identify(self) -> tuple[str, str, OriginalIdentity]:
        """(pseudonym, linkage kind, original identity), and prepare the scrubber and date shift."""
        profile = self.profile
        patient_id = self._original_text("PatientID")
        rrn = self._find_rrn()
        if rrn and profile.linkage.cross_site:
            material, linkage = f"rrn:{rrn}", "rrn"
        elif patient_id:
            material, linkage = f"site:{self.site.value}:{patient_id}", "site_id"
        elif rrn:
            material, linkage = f"site:{self.site.value}:rrn:{rrn}", "site_id"
        else:
            material, linkage = (
                f"site:{self.site.value}:study:{self._original_text('StudyInstanceUID')}",
                "study",
            )
        pseudonym = self.keys.patient_pseudonym(material)
        self.shift = self.keys.date_shift_days(material, profile.dates.max_shift_days)
        patient_name = self._original_text("PatientName")
        names = [patient_name] + [v for k in _OTHER_NAMES for v in self._original(k)]
        literals = [patient_id, self._original_text("AccessionNumber"), *self._other_ids()]
        birth_date = self._original_text("PatientBirthDate")
        self.scrubber = _scrubber(tuple(names), tuple(literals), parse_da(birth_date))
        identity = OriginalIdentity(
            site=self.site.value,
            patient_id=patient_id,
            issuer_of_patient_id=self._original_text("IssuerOfPatientID"),
            patient_name=patient_name,
            birth_date=birth_date,
            rrn_masked=f"{rrn[:6]}-{rrn[6]}******" if rrn else "",
        )
        return pseudonym, linkage, identity

    def _find_rrn(self) -> str | None:
        candidates = list(self._original("PatientID"))
        for name in self.profile.linkage.rrn_tags:
            tag = tag_of(name)
            tag = tag if tag is not None else int(name.replace(",", ""), 16)
            if tag not in self.ds._dict:
                continue
            ids = self._other_patient_ids() if tag == 0x00101002 else None
            if ids is not None:  # OtherPatientIDsSequence, read once
                candidates += ids
                continue
            element = peek(self.ds, tag)
            if element.VR == "SQ":
                candidates += [_text(item, "PatientID") for item in element.value or ()]
            else:
                candidates += _values(element.value)
        for candidate in candidates:
            rrn = normalize_rrn(candidate)
            if rrn:
                return rrn
        return None

    def _other_ids(self) -> Iterable[str]:
        ids = self._other_patient_ids()
        if ids is None:
            ids = tuple(
                _text(item, "PatientID")
                for item in peek_value(self.ds, "OtherPatientIDsSequence") or ()
            )
        yield from ids
        yield from self._original("OtherPatientIDs")

    def add_age(self) -> None:
        """PatientAge from birth date and study date, before either is changed (Retain Patient Characteristics)."""
        if not self.profile.options.retain_patient_characteristics or self._original_text(
            "PatientAge"
        ):
            return
        birth = parse_da(self._original_text("PatientBirthDate"))
        reference = next(
            (d for d in (parse_da(self._original_text(k)) for k in _AGE_REFERENCE) if d), None
        )
        if birth and reference:
            age = age_string(birth, reference)
            if age:
                store(self.ds, 0x00101010, "AS", age)

    # --- the walk -----------------------------------------------------------------
    def walk(self, ds: Dataset, depth: int) -> None:
        outer = self.encodings
        if depth == 0 or 0x00080005 in ds:
            self.encodings = _codecs(ds)
        try:
            self._walk(ds, depth)
        finally:
            self.encodings = outer

    def _walk(self, ds: Dataset, depth: int) -> None:
        private: list[int] = []
        top = depth == 0
        action_of, sop_class = self.table.action, self.sop_class
        for tag, item in list(ds._dict.items()):
            group = tag >> 16
            if group & 1:
                private.append(tag)
                continue
            if (tag & 0xFFFF == 0 and group > 0x0002) or group in (0xFFFA, 0xFFFC):
                del ds[tag]  # group lengths would be stale; digital signatures, padding
                self.changes += 1
                continue
            if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                del ds[tag]  # curves and overlays (graphics may carry text): removed
                self.removed["graphics"] += 1
                self.changes += 1
                continue
            if top and tag in _SET_BY_ENGINE:
                continue
            vr = item.VR
            if vr is None or vr == "UN" or " or " in vr:
                vr = self._vr(ds, tag)
            action = action_of(int(tag), vr, sop_class, top)  # int: cheaper to compare than a Tag
            if action == "K" and vr not in _LOOKED_AT_WHEN_KEPT:
                continue  # most elements: kept as read, nothing to look at
            self._apply(ds, tag, vr, action, depth)
        if private:
            self._private(ds, private, depth)

    def _vr(self, ds: Dataset, tag: int) -> str:
        vr = ds.get_item(tag).VR
        if vr is None or vr == "UN" or " or " in vr:
            try:
                known = dictionary_VR(tag)
            except KeyError:
                return vr or "UN"
            vr = ds[tag].VR if " or " in known or vr is None else known
            if vr == "SQ" or " or " in vr:
                vr = ds[tag].VR  # let pydicom convert (UN sequences, ambiguous VRs)
        return vr

    def _apply(self, ds: Dataset, tag: int, vr: str, action: str, depth: int) -> None:
        if action == "X":
            del ds[tag]
            self.removed["attribute"] += 1
            self.changes += 1
        elif vr == "SQ":
            if action == "Z":
                ds[tag].value = Sequence()
                self.removed["emptied"] += 1
                self.changes += 1
            else:  # K, C, D, U: the items stay and are cleaned at every depth
                self._walk_sequence(ds, tag, depth)
        elif action == "K":
            if vr in TEXT_VRS or vr == "PN":
                self._check_kept(ds, tag, depth)
        elif action == "Z":
            if vr in _STRING_VRS:
                _put(ds, tag, vr, "", self.encodings, depth)
            else:
                _set(ds, tag, None)
            self.removed["emptied"] += 1
            self.changes += 1
        elif vr == "UI" and action in ("U", "D", "C"):
            self._remap(ds, tag, depth)
        elif action == "C" and vr in ("DA", "DT"):
            self._shift(ds, tag, vr, depth)
        elif action == "C" and vr == "TM":
            return  # whole-day shifts leave the time of day as it is
        elif action == "C" and (vr in TEXT_VRS or vr == "PN"):
            self._clean(ds, tag, vr, depth)
        else:  # D, and U or C on anything else
            self._dummy(ds, tag, vr, depth)

    def _walk_sequence(self, ds: Dataset, tag: int, depth: int) -> None:
        """Clean a sequence's items; a sequence that needed no change stays raw (copied as read)."""
        element = ds.get_item(tag)
        if not isinstance(element, RawDataElement):
            for item in element.value or ():
                self.walk(item, depth + 1)
            return
        decoded = peek(ds, tag)
        before = self.changes
        for item in decoded.value or ():
            self.walk(item, depth + 1)
        if self.changes != before:
            ds[tag] = decoded

    def _remap(self, ds: Dataset, tag: int, depth: int) -> None:
        values = peek_strings(ds, tag)
        if not values:
            return
        mapped = [self._uid(v) for v in values]
        if mapped != values:
            _put(ds, tag, "UI", mapped, self.encodings, depth)
            self.changes += 1
            self.written.append(("UI", mapped))

    def _uid(self, value: str) -> str:
        value = value.strip().rstrip("\0")
        if not value or value.startswith(_DICOM_ROOT):
            return value  # registered UIDs (well-known frames of reference, ...) stay
        mapped = self.uid_cache.get(value)
        if mapped is None:
            mapped = self.uid_cache[value] = self.keys.uid(value)
        return mapped

    def _shift(self, ds: Dataset, tag: int, vr: str, depth: int) -> None:
        values = peek_strings(ds, tag)
        if not values:
            return
        moved = [_shifted(vr, v, self.shift) for v in values]
        _put(ds, tag, vr, moved, self.encodings, depth)
        self.changes += 1
        self.removed["date_shifted"] += 1

    def _clean(self, ds: Dataset, tag: int, vr: str, depth: int) -> None:
        values = text_values(ds, tag, self.encodings if depth == 0 else None)
        cleaned = []
        for value in values:
            text, removed = self.scrubber.clean(value)
            cleaned.append(text)
            if removed:
                self.removed.update(removed)
                residual_check(keyword_for_tag(tag), text, self.scrubber)
        if cleaned != values:
            _put(ds, tag, vr, cleaned, self.encodings, depth)
            self.changes += 1
            self.written.append((vr, cleaned))

    def _check_kept(self, ds: Dataset, tag: int, depth: int) -> None:
        """Text the profile keeps must still hold no identifier (else the file is quarantined)."""
        if tag in CODED_TAGS:
            return
        detect = self.scrubber.detect
        for value in text_values(ds, tag, self.encodings if depth == 0 else None):
            if detect(value) is not None:
                residual_check(keyword_for_tag(tag), value, self.scrubber)

    def _dummy(self, ds: Dataset, tag: int, vr: str, depth: int) -> None:
        if vr in _DUMMY:
            _put(ds, tag, vr, _DUMMY[vr], self.encodings, depth)
            self.written.append((vr, _DUMMY[vr]))
        elif vr in _NUMERIC:
            _set(ds, tag, 0)
        else:  # binary and URLs: nothing meaningful to put in, so empty
            _set(ds, tag, None)
        self.removed["dummy"] += 1
        self.changes += 1

    def _private(self, ds: Dataset, tags: list[int], depth: int) -> None:
        safe = self.table.safe_private
        if not safe:  # the default: every private element and creator goes, unread
            for tag in tags:
                del ds[tag]
                if not 0x10 <= tag & 0xFFFF <= 0xFF:
                    self.removed["private"] += 1
                self.changes += 1
            return
        creators = {
            (t >> 16, t & 0xFF): str(ds[t].value or "").strip()
            for t in tags
            if 0x10 <= t & 0xFFFF <= 0xFF
        }
        kept_blocks: set[tuple[int, int]] = set()
        for tag in tags:
            group, element = tag >> 16, tag & 0xFFFF
            if 0x10 <= element <= 0xFF:
                continue
            block = (group, element >> 8)
            creator = creators.get(block)
            if (
                safe
                and element > 0xFF
                and creator is not None
                and (creator, group, element & 0xFF) in safe
            ):
                kept_blocks.add(block)
                vr = self._vr(ds, tag)
                if vr == "SQ":
                    for item in ds[tag].value or ():
                        self.walk(item, depth + 1)
                elif vr in TEXT_VRS or vr == "PN":
                    self._check_kept(ds, tag, depth)
                continue
            del ds[tag]
            self.removed["private"] += 1
            self.changes += 1
        for tag in tags:
            if 0x10 <= tag & 0xFFFF <= 0xFF and (tag >> 16, tag & 0xFF) not in kept_blocks:
                del ds[tag]
                self.changes += 1


def pseudonymize(
    dataset: Dataset,
    profile: Profile,
    key: KeyRing | bytes,
    site: Site | str,
    *,
    table: ActionTable | None = None,
    copy: bool = True,
) -> DeidResult:
    """Pseudonymize one dataset under a profile and a key.

    ``key`` is the secret (bytes of the key file's text) or a :class:`KeyRing`
    derived from it; ``table`` is :meth:`ActionTable.build(profile)`, passed in to
    build it once per run. With ``copy=False`` the dataset is changed in place
    (the runner does that with datasets it has just read).

    Raises :class:`~gai_research.deid.errors.RejectedError` when the dataset must
    be quarantined (burned-in text without a cleaning rule, encapsulated
    documents, output that fails validation).
    """
    keys = key if isinstance(key, KeyRing) else KeyRing.from_secret(key)
    table = table if table is not None else ActionTable.build(profile)
    site = Site.parse(site)
    ds = copy_module.deepcopy(dataset) if copy else dataset
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise RejectedError(
            QuarantineReason.INCOMPLETE, "dataset without SOP Class UID or SOP Instance UID"
        )
    rule = check_burned_in(ds, profile)
    repaired = repair_charset(ds)
    worker = _Pseudonymizer(ds, profile, keys, site, table)
    pseudonym, linkage, identity = worker.identify()
    original_study = worker._original_text("StudyInstanceUID")
    original_accession = worker._original_text("AccessionNumber")
    original_study_date = worker._original_text("StudyDate")
    worker.add_age()
    worker.walk(ds, 0)
    set_markers(
        ds, pseudonym, profile, table, keys.accession_number(site.value, original_accession)
    )
    if rule is not None:
        apply_pixel_rule(ds, rule)
    set_file_meta(ds)
    if repaired:
        worker.removed["charset_repaired"] += 1
    study = None
    if original_study:
        study = StudyLink(
            study_uid=original_study,
            pseudo_study_uid=_text(ds, "StudyInstanceUID"),
            accession_number=original_accession,
            pseudo_accession_number=_text(ds, "AccessionNumber"),
            study_date=original_study_date,
        )
    record = DeidRecord(
        pseudonym=pseudonym,
        linkage=linkage,
        date_shift_days=worker.shift,
        identity=identity,
        study=study,
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        removed=worker.removed,
        pixels_cleaned=rule is not None,
    )
    validate_output(ds, record, worker.written, safe_private=bool(table.safe_private))
    return DeidResult(dataset=ds, record=record)
