"""What differs between the three hospitals: names, equipment, ID formats."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["SITE_PROFILES", "Equipment", "SiteProfile"]


@dataclass(frozen=True)
class Equipment:
    """One scanner of a site (the General Equipment module)."""

    manufacturer: str
    model: str
    software: str
    serial: str
    station: str
    field_strength: float = 0.0  # MR only, tesla


@dataclass(frozen=True)
class SiteProfile:
    """A hospital: its names, scanners and the formats of its IDs."""

    code: str
    institution: str
    address: str
    department: str
    issuer: str  # IssuerOfPatientID of the hospital's MRNs
    mrn_prefix: str
    mrn_digits: int
    accession_style: str  # "date", "year" or "plain"
    equipment: dict[str, Equipment]  # by DICOM modality

    def mrn(self, patient_index: int, seed: int) -> str:
        """The hospital's MRN of a patient; a bijection of the index, so never a collision."""
        modulus = 10**self.mrn_digits
        number = (patient_index * 7_919_011 + seed * 104_729 + 3_141_593) % modulus
        return f"{self.mrn_prefix}{number:0{self.mrn_digits}d}"

    def accession(self, sequence: int, study_date: dt.date) -> str:
        """The accession number of the site's ``sequence``-th study (at most 16 characters)."""
        if self.accession_style == "date":
            return f"SW{study_date:%Y%m%d}{sequence % 100_000:05d}"
        if self.accession_style == "year":
            return f"AS{study_date:%y}-{sequence % 10_000_000:07d}"
        return f"{study_date:%y%m}IC{sequence % 1_000_000:06d}"


SITE_PROFILES: dict[str, SiteProfile] = {
    "SUWON": SiteProfile(
        code="SUWON",
        institution="경기도의료원 수원병원",
        address="경기도 수원시 장안구 수성로 245",
        department="영상의학과",
        issuer="GPMC-SUWON",
        mrn_prefix="",
        mrn_digits=8,
        accession_style="date",
        equipment={
            "CT": Equipment("SIEMENS", "SOMATOM go.Top", "syngo CT VA40A", "118204", "SWCT01"),
            "DX": Equipment("FUJIFILM Corporation", "FDR Smart X", "V2.3", "52713", "SWDR01"),
            "MG": Equipment(
                "FUJIFILM Corporation", "AMULET Innovality", "V8.2", "7M0451", "SWMG01"
            ),
            "MR": Equipment("SIEMENS", "MAGNETOM Vida", "syngo MR XA31", "175512", "SWMR01", 3.0),
        },
    ),
    "ANSEONG": SiteProfile(
        code="ANSEONG",
        institution="경기도의료원 안성병원",
        address="경기도 안성시 남파로 95",
        department="영상의학과",
        issuer="GPMC-ANSEONG",
        mrn_prefix="A",
        mrn_digits=7,
        accession_style="year",
        equipment={
            "CT": Equipment(
                "GE MEDICAL SYSTEMS", "Revolution EVO", "revo_ev.64", "RV4421CT", "ASCT01"
            ),
            "DX": Equipment(
                "GE Healthcare", "Definium 656 HD", "DM_Platform_2.6", "DF3381", "ASDR01"
            ),
            "MG": Equipment(
                "HOLOGIC, Inc.", "Selenia Dimensions", "1.11.2.6", "SUD21043", "ASMG01"
            ),
            "MR": Equipment(
                "GE MEDICAL SYSTEMS", "SIGNA Explorer", "DV29.1", "MR2207", "ASMR01", 1.5
            ),
        },
    ),
    "ICHEON": SiteProfile(
        code="ICHEON",
        institution="경기도의료원 이천병원",
        address="경기도 이천시 경충대로 2742",
        department="영상의학과",
        issuer="GPMC-ICHEON",
        mrn_prefix="IC-",
        mrn_digits=6,
        accession_style="plain",
        equipment={
            "CT": Equipment("Philips", "Incisive CT", "4.1.0", "200387", "ICCT01"),
            "DX": Equipment("SAMSUNG ELECTRONICS", "GC85A", "1.02.07", "S85A0912", "ICDR01"),
            "MG": Equipment(
                "Siemens Healthineers", "MAMMOMAT Revelation", "VB10", "32091", "ICMG01"
            ),
            "MR": Equipment("Philips Medical Systems", "Ingenia", "5.7.1", "45122", "ICMR01", 1.5),
        },
    ),
}
