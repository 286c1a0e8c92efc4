"""Pseudonymization profiles: Annex E options, linkage, dates, burned-in and pixel rules.

A profile is a TOML file validated by pydantic; ``load_profile()`` without a path
gives the packaged ``data/default_profile.toml``. Every run records the profile's
hash, so an output can always be traced to the exact rules that made it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gai_research.deid.errors import ProfileError

__all__ = [
    "OPTION_CODES",
    "BurnedInRule",
    "Linkage",
    "Options",
    "PixelRule",
    "Profile",
    "SafePrivate",
    "load_profile",
]

# option field -> (column of Table E.1-1, code of CID 7050)
OPTION_CODES: dict[str, tuple[str | None, str, str]] = {
    "clean_pixel_data": (None, "113101", "Clean Pixel Data Option"),
    "clean_structured_content": ("cleanStructContOpt", "113104", "Clean Structured Content Option"),
    "clean_descriptors": ("cleanDescOpt", "113105", "Clean Descriptors Option"),
    "retain_long_full_dates": (
        "rtnLongFullDatesOpt",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain_long_modified_dates": (
        "rtnLongModifDatesOpt",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": (
        "rtnPatCharsOpt",
        "113108",
        "Retain Patient Characteristics Option",
    ),
    "retain_device_identity": ("rtnDevIdOpt", "113109", "Retain Device Identity Option"),
    "retain_uids": ("rtnUIDsOpt", "113110", "Retain UIDs Option"),
    "retain_safe_private": ("rtnSafePrivOpt", "113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("rtnInstIdOpt", "113112", "Retain Institution Identity Option"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Options(_Strict):
    """The PS3.15 Annex E options in effect (the basic profile always is)."""

    retain_long_modified_dates: bool = True
    retain_long_full_dates: bool = False
    retain_patient_characteristics: bool = True
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_uids: bool = False
    clean_descriptors: bool = True
    clean_structured_content: bool = True
    clean_pixel_data: bool = True
    retain_safe_private: bool = False

    @model_validator(mode="after")
    def _dates_exclusive(self) -> Options:
        if self.retain_long_modified_dates and self.retain_long_full_dates:
            raise ValueError(
                "retain_long_modified_dates and retain_long_full_dates exclude each other"
            )
        return self

    def enabled(self) -> list[str]:
        """The names of the options switched on, in CID 7050 order."""
        return [name for name in OPTION_CODES if getattr(self, name)]


class Linkage(_Strict):
    cross_site: bool = True
    rrn_tags: list[str] = Field(
        default_factory=lambda: ["OtherPatientIDsSequence", "OtherPatientIDs"]
    )

    @field_validator("rrn_tags")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from pydicom.datadict import tag_for_keyword

        for name in value:
            if tag_for_keyword(name) is None and not re.fullmatch(
                r"[0-9A-Fa-f]{4},?[0-9A-Fa-f]{4}", name
            ):
                raise ValueError(
                    f"rrn_tags: {name!r} is neither a DICOM keyword nor a tag like 0010,1002"
                )
        return value


class Dates(_Strict):
    max_shift_days: int = Field(365, ge=1, le=36500)


class Text(_Strict):
    clean_unlisted: bool = True


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r}: {exc}") from None
    return value


class BurnedInRule(_Strict):
    """Images matching every given field are suspected of burned-in text."""

    modality: str = ".*"
    manufacturer: str = ".*"
    model: str = ".*"
    image_type: str | None = None  # one value of ImageType, e.g. SECONDARY

    @field_validator("modality", "manufacturer", "model")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)


class Burned(_Strict):
    modalities: list[str] = Field(
        default_factory=lambda: ["SC", "US", "OT", "XC", "ES", "GM", "SM", "IVUS"]
    )
    suspect: list[BurnedInRule] = Field(default_factory=list)


class PixelRule(_Strict):
    """Masks rectangles ``[x0, y0, x1, y1]`` (x1, y1 exclusive) in images of one manufacturer/model."""

    name: str
    manufacturer: str
    model: str = ".*"
    rows: int | None = Field(None, ge=1)
    columns: int | None = Field(None, ge=1)
    regions: list[tuple[int, int, int, int]] = Field(min_length=1)

    @field_validator("manufacturer", "model")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)

    @field_validator("regions")
    @classmethod
    def _ordered(cls, value: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
        for x0, y0, x1, y1 in value:
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise ValueError(
                    f"region {[x0, y0, x1, y1]} must have 0 <= x0 < x1 and 0 <= y0 < y1"
                )
        return value


class SafePrivate(_Strict):
    """One private element kept under the Retain Safe Private option."""

    creator: str
    group: int = Field(ge=0x0009, le=0xFFFF)
    element: int = Field(ge=0x00, le=0xFF)  # offset inside the creator's block

    @field_validator("group")
    @classmethod
    def _odd(cls, value: int) -> int:
        if not value & 1:
            raise ValueError(f"group {value:04X} is not private (private groups are odd)")
        return value


class Profile(_Strict):
    """A pseudonymization profile. Build it with :func:`load_profile`."""

    name: str = "gai-default"
    options: Options = Field(default_factory=Options)
    linkage: Linkage = Field(default_factory=Linkage)
    dates: Dates = Field(default_factory=Dates)
    text: Text = Field(default_factory=Text)
    burned_in: Burned = Field(default_factory=Burned)
    pixel_rules: list[PixelRule] = Field(default_factory=list)
    safe_private: list[SafePrivate] = Field(default_factory=list)

    def sha256(self) -> str:
        """A hash of the effective rules (not of the file's formatting), for the audit trail."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def method_codes(self) -> list[tuple[str, str]]:
        """(code, meaning) of CID 7050 for the basic profile and each option in effect."""
        codes = [("113100", "Basic Application Confidentiality Profile")]
        codes += [(OPTION_CODES[name][1], OPTION_CODES[name][2]) for name in self.options.enabled()]
        return codes


def load_profile(path: Path | str | None = None) -> Profile:
    """Read and validate a profile TOML file; ``None`` gives the packaged default profile."""
    if path is None:
        text = (
            resources.files("gai_research.deid")
            .joinpath("data", "default_profile.toml")
            .read_text("utf-8")
        )
        where = "the default profile"
    else:
        path = Path(path)
        if not path.is_file():
            raise ProfileError(
                f"profile {path} not found", hint="check the path given to --profile"
            )
        text = path.read_text(encoding="utf-8")
        where = f"profile {path}"
    try:
        return Profile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(
            f"{where} is not valid TOML: {exc}", hint="fix the file's syntax"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"]) or "profile"
        raise ProfileError(
            f"{where}: {at}: {first['msg']}", hint="see docs/deid.md for the profile's fields"
        ) from None
