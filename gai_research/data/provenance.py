"""How the data of a cohort were pseudonymized, from what this account may read.

Three sources, each used when it can be read, none required:

- the pseudonymized images themselves (one per site of the cohort): the profile name in
  DeidentificationMethod, the PS3.15 options in DeidentificationMethodCodeSequence and
  whether dates were shifted (LongitudinalTemporalInformationModified);
- the steward's audit trail (``HOME/audit/deid.jsonl``, restricted): the profile's
  sha256, the key's fingerprint and the quarantine counts of every recorded run;
- the key file (restricted): its fingerprint. The key itself is never returned.

Researchers' accounts usually read only the first; the card then says where the rest
is kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = ["Provenance", "read_provenance"]

_MARKERS = (
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
    "PatientIdentityRemoved",
)


@dataclass
class Provenance:
    """What is known about the pseudonymization of a set of files."""

    methods: list[str] = field(default_factory=list)  # DeidentificationMethod values
    options: list[tuple[str, str]] = field(default_factory=list)  # (code, meaning)
    dates: str | None = None  # MODIFIED / UNMODIFIED / REMOVED
    identity_removed: bool | None = None
    profiles: list[tuple[str, str]] = field(default_factory=list)  # (name, sha256), audit
    audit_fingerprints: list[str] = field(default_factory=list)
    key_fingerprint: str | None = None  # of the key file, when readable
    quarantined: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    audit_readable: bool = False


def _from_images(paths: list[Path], found: Provenance) -> None:
    import pydicom

    methods, options = [], []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_MARKERS))
        except (OSError, ValueError, pydicom.errors.InvalidDicomError):
            continue
        method = ds.get("DeidentificationMethod")
        values = list(method) if isinstance(method, pydicom.multival.MultiValue) else [method]
        methods += [str(v) for v in values if v]
        for item in ds.get("DeidentificationMethodCodeSequence", []):
            options.append((str(item.get("CodeValue", "")), str(item.get("CodeMeaning", ""))))
        found.dates = found.dates or (
            str(ds.get("LongitudinalTemporalInformationModified", "")) or None
        )
        if "PatientIdentityRemoved" in ds:
            removed = str(ds.PatientIdentityRemoved).upper() == "YES"
            found.identity_removed = (
                removed if found.identity_removed is None else (found.identity_removed and removed)
            )
    found.methods = list(dict.fromkeys(methods))
    found.options = list(dict.fromkeys(options))


def _from_audit(settings: Settings, found: Provenance) -> None:
    from gai_research.deid.audit import read_audit

    try:
        found.audit_readable = (settings.audit_dir / "deid.jsonl").is_file()
        records = read_audit(settings.audit_dir)
    except (OSError, ValueError):
        found.audit_readable = False
        return
    quarantined: Counter[str] = Counter()
    profiles, fingerprints = [], []
    for record in records:
        if "profile_sha256" not in record and "key_fingerprint" not in record:
            continue
        found.runs += 1
        profiles.append((str(record.get("profile", "")), str(record.get("profile_sha256", ""))))
        if record.get("key_fingerprint"):
            fingerprints.append(str(record["key_fingerprint"]))
        for reason, count in (record.get("quarantined") or {}).items():
            quarantined[str(reason)] += int(count)
    found.profiles = list(dict.fromkeys(profiles))
    found.audit_fingerprints = list(dict.fromkeys(fingerprints))
    found.quarantined = dict(sorted(quarantined.items()))


def _from_key(settings: Settings, found: Provenance) -> None:
    from gai_research.errors import GaiError
    from gai_research.home import key_fingerprint, read_key

    try:
        found.key_fingerprint = key_fingerprint(read_key(settings.key_path))
    except (GaiError, OSError):
        found.key_fingerprint = None


def read_provenance(settings: Settings, sample_files: list[Path]) -> Provenance:
    """The pseudonymization facts readable here, from ``sample_files`` (store paths) and HOME."""
    found = Provenance()
    _from_images(sample_files, found)
    _from_audit(settings, found)
    _from_key(settings, found)
    return found
