"""Coded concepts our TID 1500 reports use, and the wider sets the reader accepts.

The writer picks one code per concept (standard codes where DICOM PS3.16 has one, our
private scheme ``99GAI`` where it has none); the reader recognises those plus the
alternatives vendors are seen to use (a probability may come as "Probability of cancer",
"Certainty of Finding", "Score" or a private code whose meaning says so). Codes are kept
as plain ``(scheme, value, meaning)`` tuples here so this module imports nothing heavy;
:func:`code` turns one into a highdicom ``CodedConcept`` when writing.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "GAI_SCHEME",
    "SCORE_CONCEPTS",
    "code",
    "concept_key",
    "label_code",
    "label_from_concept",
    "laterality_code",
    "laterality_from_concept",
    "procedure_code",
    "slug",
    "volume_site",
]

Concept = tuple[str, str, str]  # (coding scheme designator, code value, code meaning)

GAI_SCHEME = "99GAI"  # private coding scheme (PS3.16 8.2: designators starting with 99)
GAI_SCHEME_NAME = "gai-research platform concepts"

# report structure
STUDY_GROUP_ID = "study"  # tracking identifier of the study-level measurement group

# measurements
DIAMETER: Concept = ("SCT", "81827009", "Diameter")
VOLUME: Concept = ("SCT", "118565006", "Volume")
FINDING_SCORE: Concept = ("DCM", "111012", "Certainty of Finding")
STUDY_SCORE: Concept = ("DCM", "111013", "Certainty of Impression")

# units
MM: Concept = ("UCUM", "mm", "millimeter")
ML: Concept = ("UCUM", "mL", "milliliter")
NO_UNITS: Concept = ("UCUM", "1", "no units")

# concepts the reader takes as a score/probability (scheme, value)
SCORE_CONCEPTS = {
    ("DCM", "111012"),  # Certainty of Finding
    ("DCM", "111013"),  # Certainty of Impression
    ("DCM", "111011"),  # Certainty of Feature
    ("DCM", "111047"),  # Probability of cancer
    ("DCM", "122157"),  # Probability
    ("DCM", "113270"),  # Bayesian-Probability
    ("SCT", "246262008"),  # Score
}
STUDY_SCORE_CONCEPTS = {("DCM", "111013"), ("DCM", "111047")}
SCORE_WORDS = ("probab", "score", "certainty", "likelihood", "confidence", "malignan")
DIAMETER_CONCEPTS = {
    ("SCT", "81827009"),  # Diameter
    ("SCT", "103339001"),  # Long axis
    ("DCM", "113933"),  # Derived Effective Diameter
    ("SCT", "131192006"),  # Diameter of circumscribed circle
}
VOLUME_CONCEPTS = {("SCT", "118565006")}  # Volume; others are recognised by their meaning

# finding labels <-> finding type codes
LABEL_CODES: dict[str, Concept] = {
    "nodule": ("SCT", "27925004", "Nodule"),
    "mass": ("SCT", "4147007", "Mass"),
    "hemorrhage": ("SCT", "50960005", "Hemorrhage"),
    "": ("SCT", "404684003", "Clinical finding"),
}
_LABEL_ALIASES = {
    ("SCT", "1386000"): "hemorrhage",  # Intracranial hemorrhage
    ("SCT", "129788004"): "mass",  # Mammographic breast mass
    ("DCM", "111126"): "mass",  # Image detected mass
    ("DCM", "112122"): "nodule",  # Micronodule
    ("SCT", "404684003"): "",
    ("SCT", "365853002"): "",  # Imaging finding
    ("DCM", "121071"): "",
}

# laterality (CID 244)
LATERALITY_CODES: dict[str, Concept] = {
    "R": ("SCT", "24028007", "Right"),
    "L": ("SCT", "7771000", "Left"),
    "B": ("SCT", "51440002", "Right and left"),
}
LATERALITY_CONCEPT: Concept = ("SCT", "272741003", "Laterality")

# anatomic sites of named volumes: name stem -> site code
SITE_CODES: dict[str, Concept] = {
    "hippocampus": ("SCT", "5366008", "Hippocampus"),
    "brain": ("SCT", "12738006", "Brain"),
    "breast": ("SCT", "76752008", "Breast"),
    "lung": ("SCT", "39607008", "Lung"),
}

# procedure reported (TID 1500 row 3), by (modality, task)
_PROCEDURES: dict[tuple[str, str | None], Concept] = {
    ("CT", "lung_nodule_ct"): ("LN", "24627-2", "CT Chest"),
    ("CT", "stroke_ct"): ("LN", "24725-4", "CT Head"),
    ("CT", None): ("LN", "25045-6", "CT unspecified body region"),
    ("MR", "dementia_mr"): ("LN", "24590-2", "MRI Head"),
    ("MR", None): ("LN", "25056-3", "MRI unspecified body region"),
    ("MG", None): ("LN", "24606-6", "MG Breast Screening"),
    ("DX", None): ("LN", "43468-8", "XR unspecified body region"),
    ("CR", None): ("LN", "43468-8", "XR unspecified body region"),
}
IMAGING_PROCEDURE: Concept = ("SCT", "363679005", "Imaging procedure")


def code(concept: Concept) -> Any:
    """A highdicom ``CodedConcept`` for a ``(scheme, value, meaning)`` tuple."""
    from highdicom.sr import CodedConcept

    scheme, value, meaning = concept
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def private(name: str, meaning: str | None = None) -> Concept:
    """A concept of our private scheme; the code value is the name cut to 16 characters
    (SH), the full name is kept in the meaning (LO, 64)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:16] or "unnamed"
    return (GAI_SCHEME, value, (meaning or name)[:64])


def concept_key(item: Any) -> tuple[str, str, str]:
    """(scheme, value, meaning) of a pydicom code item (a ConceptNameCodeSequence item or
    similar); long codes (LongCodeValue, URNCodeValue) are accepted too."""
    scheme = str(getattr(item, "CodingSchemeDesignator", "") or "").strip()
    value = (
        getattr(item, "CodeValue", None)
        or getattr(item, "LongCodeValue", None)
        or getattr(item, "URNCodeValue", None)
        or ""
    )
    meaning = str(getattr(item, "CodeMeaning", "") or "").strip()
    return scheme, str(value).strip(), meaning


def label_code(label: str) -> Concept:
    """Finding type code for a finding label (our labels map to SNOMED CT; others are
    private codes carrying the label as their meaning)."""
    return LABEL_CODES.get(label.strip().lower()) or private(label, label)


def label_from_concept(concept: tuple[str, str, str]) -> str:
    """Finding label from a finding type code, ours or a vendor's."""
    scheme, value, meaning = concept
    if scheme == GAI_SCHEME:
        return meaning
    for label, (s, v, _) in LABEL_CODES.items():
        if (s, v) == (scheme, value):
            return label
    if (scheme, value) in _LABEL_ALIASES:
        return _LABEL_ALIASES[(scheme, value)]
    return slug(meaning)


def laterality_code(laterality: str | None) -> Concept | None:
    if not laterality:
        return None
    return LATERALITY_CODES.get(laterality.strip().upper()[:1])


def laterality_from_concept(concept: tuple[str, str, str]) -> str | None:
    scheme, value, meaning = concept
    for short, (s, v, _) in LATERALITY_CODES.items():
        if (s, v) == (scheme, value):
            return short
    word = meaning.lower()
    if ("right" in word and "left" in word) or "bilateral" in word:
        return "B"
    if word.startswith("right"):
        return "R"
    if word.startswith("left"):
        return "L"
    return None


def volume_site(name: str) -> tuple[Concept, Concept | None] | None:
    """Finding site (and laterality) of a named volume such as ``hippocampus_l``.

    Only canonical names (``<site>`` or ``<site>_l`` / ``<site>_r``, lower case) get one,
    so that :func:`volume_name_from_site` gives the very same name back.
    """
    stem, _, side = name.rpartition("_")
    if stem in SITE_CODES and side in ("l", "r"):
        return SITE_CODES[stem], laterality_code(side.upper())
    if name in SITE_CODES:
        return SITE_CODES[name], None
    return None


def volume_name_from_site(site: tuple[str, str, str], laterality: str | None) -> str:
    """``hippocampus_l`` from (Hippocampus, Left): the inverse of :func:`volume_site`."""
    scheme, value, meaning = site
    stem = next(
        (name for name, (s, v, _) in SITE_CODES.items() if (s, v) == (scheme, value)),
        slug(meaning),
    )
    return f"{stem}_{laterality.lower()}" if laterality in ("L", "R") else stem


def procedure_code(modality: str, task: str | None) -> Concept:
    modality = modality.upper()
    return (
        _PROCEDURES.get((modality, task)) or _PROCEDURES.get((modality, None)) or IMAGING_PROCEDURE
    )


def is_score(concept: tuple[str, str, str]) -> bool:
    scheme, value, meaning = concept
    if (scheme, value) in SCORE_CONCEPTS:
        return True
    if scheme == GAI_SCHEME:
        return True  # our private NUM concepts are named scores
    return any(word in meaning.lower() for word in SCORE_WORDS)


def is_diameter(concept: tuple[str, str, str]) -> bool:
    scheme, value, meaning = concept
    word = meaning.lower()
    return (scheme, value) in DIAMETER_CONCEPTS or "diameter" in word or "long axis" in word


def is_volume(concept: tuple[str, str, str]) -> bool:
    scheme, value, meaning = concept
    return (scheme, value) in VOLUME_CONCEPTS or meaning.lower().startswith("volume")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
