"""A small pseudonymized catalog for the researcher-API tests (no tests here).

:func:`pseudonymized_catalog` builds it once per test session, whichever data test
module asks first, and caches it under pytest's base temporary folder:

1. ``gai_research.synth.generate_cohort`` writes a small identified three-hospital
   cohort (Korean names, hospital IDs, RRNs, addresses, phone numbers);
2. every file goes through ``gai_research.deid.pseudonymize`` and
   ``CatalogWriter.store_instance`` into a private platform home;
3. the ground-truth CSVs, keyed by the *original* study/series/SOP UIDs, are imported
   with the ingest stage's ``gai_research.ingest.labels.import_synthetic`` (which maps
   them with the key's own UID derivation, ``KeyRing.uid``, as deid does); where that
   is missing, :func:`synth_label_rows` does the same mapping and ``add_labels`` stores
   the rows;
4. a snapshot is published.

It also collects the identifiers the synthetic cohort planted (names, hospital IDs,
RRNs, accession numbers, original UIDs, phone numbers, addresses, birth dates), so a
test can check that nothing the platform writes for researchers contains one.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gai_research.config import Settings, load_settings

PATIENTS = 6
SEED = 11
_DONE = "fixture.json"

# label CSV of the synthetic cohort -> catalog task
CSV_TASKS = {
    "nodules_ct.csv": "lung_nodule_ct",
    "findings_dx.csv": "lung_nodule_dx",
    "masses_mg.csv": "breast_mg",
    "volumes_mr.csv": "dementia_mr",
    "hemorrhage_ct.csv": "stroke_ct",
}


@dataclass(frozen=True)
class CatalogFixture:
    """A platform home with a published snapshot, and what the tests need to know about it."""

    root: Path
    home: Path
    synth_dir: Path
    snapshot: str
    identifiers: tuple[str, ...]  # planted identifiers: none may appear in researcher output
    key_text: str  # the secret, to check that it never appears either

    def settings(self) -> Settings:
        return load_settings(home=self.home, key_file=self.home / "secrets" / "pseudonym.key")


def pseudonymized_catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogFixture:
    """The session's shared catalog: built by the first caller, reused by the others."""
    root = tmp_path_factory.getbasetemp() / "gai-data-catalog"
    done = root / _DONE
    if not done.is_file():
        root.mkdir(parents=True, exist_ok=True)
        build_catalog(root)
    data = json.loads(done.read_text(encoding="utf-8"))
    return CatalogFixture(
        root=root,
        home=root / "home",
        synth_dir=root / "synth",
        snapshot=data["snapshot"],
        identifiers=tuple(data["identifiers"]),
        key_text=data["key_text"],
    )


def build_catalog(root: Path, *, patients: int = PATIENTS, seed: int = SEED) -> str:
    """Build the catalog under ``root`` (``home/``, ``synth/``); returns the snapshot hash."""
    import pydicom

    from gai_research.deid import ActionTable, KeyRing, load_profile, pseudonymize
    from gai_research.deid.audit import append_audit
    from gai_research.home import init_home, key_fingerprint, read_key
    from gai_research.store import CatalogWriter
    from gai_research.store.snapshot import resolve_snapshot
    from gai_research.synth import generate_cohort

    try:
        from gai_research.ingest.labels import import_synthetic
    except ImportError:  # before the ingest stage had its label import
        import_synthetic = None

    home = root / "home"
    settings = load_settings(home=home, key_file=home / "secrets" / "pseudonym.key")
    init_home(settings)
    summary = generate_cohort(root / "synth", patients=patients, seed=seed)
    secret = read_key(settings.key_path)
    keys = KeyRing.from_secret(secret)
    profile = load_profile()
    table = ActionTable.build(profile)
    identifiers: set[str] = set()
    with CatalogWriter(settings) as writer:
        with writer.batch():
            for site in sorted({s.site for s in summary.studies}):
                for path in sorted((root / "synth" / site).rglob("*.dcm")):
                    ds = pydicom.dcmread(path)
                    identifiers |= planted_identifiers(ds)
                    result = pseudonymize(ds, profile, keys, site, table=table, copy=False)
                    writer.store_instance(result.dataset, site)
        if import_synthetic is None:
            for task, rows in synth_label_rows(root / "synth" / "labels", keys.uid).items():
                writer.add_labels(task, rows)
        snapshot = writer.publish_snapshot()
    if import_synthetic is not None:  # the ingest stage's own label import
        report = import_synthetic(settings, root / "synth")
        assert report.ok, report.problems
        snapshot = resolve_snapshot(settings, report.snapshot)
    append_audit(  # what the deid runner records: the card reads profile hash and fingerprint
        settings.audit_dir,
        {
            "event": "deid.run",
            "site": "ALL",
            "written": summary.n_instances,
            "quarantined": {},
            "profile": profile.name,
            "profile_sha256": profile.sha256(),
            "key_fingerprint": key_fingerprint(secret),
        },
    )
    (root / _DONE).write_text(
        json.dumps(
            {
                "snapshot": snapshot.id,
                "identifiers": sorted(identifiers),
                "key_text": secret.decode("utf-8"),
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return snapshot.id


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def synth_label_rows(folder: Path, uid) -> dict[str, list[dict]]:
    """The synthetic ground truth as catalog label rows per task, with pseudonymous UIDs.

    ``uid`` maps an original UID to its pseudonym (``KeyRing.uid``). Every study gets a
    study-level class (``positive``: 0/1); nodules, findings and volumes follow it.
    """
    rows: dict[str, list[dict]] = defaultdict(list)
    for study in _read_csv(folder / "studies.csv"):
        rows[study["task"]].append(
            {
                "study_uid": uid(study["study_uid"]),
                "kind": "study",
                "name": "positive",
                "value": float(study["label"]),
                "source": "synth",
            }
        )
    for name, task in CSV_TASKS.items():
        for row in _read_csv(folder / name):
            base = {"study_uid": uid(row["study_uid"]), "source": "synth"}
            if name == "nodules_ct.csv":
                rows[task].append(
                    base
                    | {
                        "kind": "nodule",
                        "name": "nodule",
                        "series_uid": uid(row["series_uid"]),
                        **{k: float(row[k]) for k in ("x_mm", "y_mm", "z_mm", "diameter_mm")},
                    }
                )
            elif name in ("findings_dx.csv", "masses_mg.csv"):
                rows[task].append(
                    base
                    | {
                        "kind": "finding",
                        "name": "nodule" if name == "findings_dx.csv" else "mass",
                        "sop_uid": uid(row["sop_uid"]),
                        "row_px": float(row["row"]),
                        "col_px": float(row["col"]),
                        "diameter_mm": _float(row["diameter_mm"]),
                        "laterality": row.get("laterality") or None,
                        "view": row.get("view") or None,
                    }
                )
            elif name == "volumes_mr.csv":
                for structure, column in (
                    ("hippocampus_l", "hippocampus_left_ml"),
                    ("hippocampus_r", "hippocampus_right_ml"),
                    ("hippocampus", "hippocampus_ml"),
                ):
                    rows[task].append(
                        base
                        | {
                            "kind": "volume",
                            "name": structure,
                            "series_uid": uid(row["series_uid"]),
                            "volume_ml": float(row[column]),
                            "extra": {"group": row["group"]},
                        }
                    )
            else:  # hemorrhage_ct.csv: centre and volume of an irregular bleed
                rows[task].append(
                    base
                    | {
                        "kind": "volume",
                        "name": "hemorrhage",
                        "series_uid": uid(row["series_uid"]),
                        "volume_ml": float(row["volume_ml"]),
                        **{k: float(row[k]) for k in ("x_mm", "y_mm", "z_mm")},
                    }
                )
    return dict(rows)


_IDENTIFYING = (
    "PatientID",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientBirthDate",
    "StationName",
    "DeviceSerialNumber",
)


def leaked_identifiers(identifiers: Iterable[str], text: str) -> list[str]:
    """The planted identifiers found in ``text``.

    An all-digit identifier (an ID, a birth date) counts only as a whole number: a
    pseudonymous ``2.25.`` UID is a 39-digit random number, and six given digits turn up
    inside one now and then without anything having leaked.
    """
    found = []
    for value in identifiers:
        if value.isdigit():
            if re.search(rf"(?<!\d){value}(?!\d)", text):
                found.append(value)
        elif value in text:
            found.append(value)
    return found


def planted_identifiers(ds) -> set[str]:
    """Identifying values of one identified synthetic dataset, as they could be printed."""
    found: set[str] = set()
    for keyword in _IDENTIFYING:
        value = str(ds.get(keyword, "") or "").strip()
        if len(value) >= 5:
            found.add(value)
    for item in ds.get("OtherPatientIDsSequence", []):
        rrn = str(item.get("PatientID", "")).strip()
        if rrn:
            found |= {rrn, rrn.replace("-", "")}
    for keyword in ("PatientName", "ReferringPhysicianName", "PerformingPhysicianName"):
        for group in str(ds.get(keyword, "") or "").split("="):
            parts = [p for p in group.split("^") if p]
            if len(parts) >= 2:
                found |= {" ".join(parts), "".join(parts), f"{parts[1]} {parts[0]}"}
                if parts[1].isascii() and len(parts[1]) >= 5:
                    found.add(parts[1])  # a romanized given name on its own
    return found


def copy_home(
    fixture: CatalogFixture, dest: Path, *, audit: bool = True, key: bool = True
) -> Settings:
    """A private copy of the fixture's home (the store linked, not copied): for tests that
    publish another snapshot, save cohorts freely, or take away the steward's files."""
    import os
    import shutil

    home = dest / "home"
    shutil.copytree(fixture.home, home, ignore=shutil.ignore_patterns("store", "cohorts"))
    os.symlink(fixture.home / "store", home / "store")
    if not audit:
        shutil.rmtree(home / "audit")
        (home / "audit").mkdir(mode=0o700)
    if not key:
        (home / "secrets" / "pseudonym.key").unlink()
    return load_settings(home=home, key_file=home / "secrets" / "pseudonym.key")
