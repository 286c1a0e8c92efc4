"""Strict on write: checks a pseudonymized dataset must pass before it is written.

- the markers are set and the file meta matches the dataset;
- every value the engine wrote conforms to its VR (length, characters);
- no private element is left unless the profile lists it as safe;
- no free text anywhere, at any depth, still holds one of the patient's
  identifiers or anyone's RRN, phone number or address (a last check behind the
  rules, so that a rule that missed one quarantines the file instead of leaking):
  :func:`residual_check`, which the engine runs on every text value it cleans or
  keeps, while it has the value decoded anyway.
"""

from __future__ import annotations

from pydicom import config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import validate_value

from gai_research.deid.elements import peek_value
from gai_research.deid.errors import RejectedError
from gai_research.deid.text import TextScrubber
from gai_research.deid.types import DeidRecord, QuarantineReason

__all__ = ["validate_output"]


def _fail(message: str) -> RejectedError:
    return RejectedError(QuarantineReason.INVALID_OUTPUT, message)


def residual_check(keyword: str, text: str, scrubber: TextScrubber) -> None:
    """Raise INVALID_OUTPUT when ``text`` (a value about to be written) still holds an identifier."""
    kind = scrubber.detect(text)
    if kind is not None:
        raise _fail(f"{keyword or 'an attribute'} still holds a {kind.replace('_', ' ')}")


def validate_output(
    ds: Dataset,
    record: DeidRecord,
    written: list[tuple[str, object]],
    *,
    safe_private: bool = False,
) -> None:
    """Raise INVALID_OUTPUT (a message naming attributes, never values) when a check fails."""
    meta = ds.file_meta
    if peek_value(meta, "MediaStorageSOPInstanceUID") != peek_value(ds, "SOPInstanceUID"):
        raise _fail("file meta SOP Instance UID differs from the dataset's")
    if peek_value(meta, "MediaStorageSOPClassUID") != peek_value(ds, "SOPClassUID"):
        raise _fail("file meta SOP Class UID differs from the dataset's")
    if (
        peek_value(ds, "PatientIdentityRemoved") != "YES"
        or peek_value(ds, "PatientID") != record.pseudonym
    ):
        raise _fail("pseudonymization markers are missing")
    for vr, value in written:
        values = value if isinstance(value, MultiValue | list) else [value]
        for one in values:
            try:
                validate_value(vr, one, config.RAISE)
            except (ValueError, TypeError) as exc:
                detail = (
                    str(exc).split(" for VR")[0] if "length" in str(exc) else "invalid characters"
                )
                raise _fail(f"a written {vr} value does not conform ({detail})") from None
    if not safe_private:
        for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset itself would decode every element)
            if tag >> 16 & 1:
                raise _fail(f"private element ({tag >> 16:04X},xx{tag & 0xFF:02X}) left")
