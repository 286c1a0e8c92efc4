"""Burned-in text: which images may show it, and masking it by manufacturer/model rules.

An image goes to quarantine when BurnedInAnnotation is YES, or when it is of a
modality that typically carries burned-in text (SC, US, OT, ..., and the DX/CR
the profile names) without a clear NO, unless the Clean Pixel Data option is on
and a pixel rule for its manufacturer, model and size masks the regions.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset

from gai_research.deid.elements import peek_text, peek_value, values_of
from gai_research.deid.errors import RejectedError
from gai_research.deid.profile import PixelRule, Profile
from gai_research.deid.types import QuarantineReason

__all__ = ["apply_pixel_rule", "check_burned_in"]

_SECONDARY_CAPTURE = re.compile(r"1\.2\.840\.10008\.5\.1\.4\.1\.1\.7(\.[1-4])?")
_ENCAPSULATED = "1.2.840.10008.5.1.4.1.1.104."
_ENCAPSULATED_DOCUMENT = 0x00420011
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # pixel data, float and double float


_text = peek_text


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value, flags=re.IGNORECASE) is not None


def _suspect(ds: Dataset, profile: Profile) -> bool:
    modality = _text(ds, "Modality").upper()
    if modality in {m.upper() for m in profile.burned_in.modalities}:
        return True
    if _SECONDARY_CAPTURE.fullmatch(_text(ds, "SOPClassUID")):
        return True
    image_type = {v.strip().upper() for v in values_of(peek_value(ds, "ImageType"))}
    manufacturer, model = _text(ds, "Manufacturer"), _text(ds, "ManufacturerModelName")
    for rule in profile.burned_in.suspect:
        if not (_matches(rule.modality, modality) and _matches(rule.manufacturer, manufacturer)):
            continue
        if not _matches(rule.model, model):
            continue
        if rule.image_type is None or rule.image_type.upper() in image_type:
            return True
    return False


def check_burned_in(ds: Dataset, profile: Profile) -> PixelRule | None:
    """The pixel rule to apply, ``None`` when nothing needs masking; raise when it must be quarantined."""
    if _text(ds, "SOPClassUID").startswith(_ENCAPSULATED) or _ENCAPSULATED_DOCUMENT in ds._dict:
        raise RejectedError(
            QuarantineReason.ENCAPSULATED_DOCUMENT,
            "encapsulated document: its content cannot be cleaned",
        )
    if not any(tag in ds._dict for tag in _PIXEL_TAGS):
        return None
    flag = _text(ds, "BurnedInAnnotation").upper()
    if flag == "NO":
        return None
    if flag != "YES" and not _suspect(ds, profile):
        return None
    if profile.options.clean_pixel_data:
        rule = _find_rule(ds, profile)
        if rule is not None:
            return rule
    modality = _text(ds, "Modality") or "unknown modality"
    raise RejectedError(
        QuarantineReason.BURNED_IN_TEXT,
        f"{modality} image, BurnedInAnnotation {flag or 'absent'}, and no pixel rule for its manufacturer/model",
        hint="add a [[pixel_rules]] entry to the profile once the text regions of this device are known",
    )


def _find_rule(ds: Dataset, profile: Profile) -> PixelRule | None:
    manufacturer, model = _text(ds, "Manufacturer"), _text(ds, "ManufacturerModelName")
    rows, columns = peek_value(ds, "Rows"), peek_value(ds, "Columns")
    for rule in profile.pixel_rules:
        if not re.search(rule.manufacturer, manufacturer, flags=re.IGNORECASE):
            continue
        if not re.search(rule.model, model, flags=re.IGNORECASE):
            continue
        if rule.rows is not None and rule.rows != rows:
            continue
        if rule.columns is not None and rule.columns != columns:
            continue
        return rule
    return None


def apply_pixel_rule(ds: Dataset, rule: PixelRule) -> None:
    """Fill the rule's rectangles with the image's minimum value, in every frame, then mark the image clean.

    Compressed pixel data are decoded and written back uncompressed (Explicit VR
    Little Endian); colour images come back as RGB.
    """
    try:
        pixels = ds.pixel_array.copy()
    except Exception as exc:
        raise RejectedError(
            QuarantineReason.BURNED_IN_TEXT,
            f"pixel rule {rule.name!r} matched but the pixels cannot be decoded",
        ) from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    view = pixels if frames > 1 else pixels[None, ...]
    fill = pixels.min()
    for x0, y0, x1, y1 in rule.regions:
        view[:, y0:y1, x0:x1, ...] = fill
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples == 3 and photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converted it
    ds.set_pixel_data(
        pixels, photometric_interpretation=photometric, bits_stored=int(ds.BitsStored)
    )
    ds.BurnedInAnnotation = "NO"
