"""The folder runner: outputs, quarantine, vault and audit, counts that reconcile."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pydicom
import pytest

from gai_research.deid import DeidError, QuarantineReason, Vault, VaultError, run_folder
from gai_research.deid.samples import PATIENTS, make_ct_slice, planted_bytes

KEY = b"k" * 64


def _write(path: Path, ds) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A hospital drop folder: two patients' CT slices, a text file, a truncated and a burned-in file."""
    folder = tmp_path / "spool"
    for patient in PATIENTS[:2]:
        for n in range(3):
            _write(folder / patient.hangul / f"slice{n}.dcm", make_ct_slice(patient, n, size=16))
    (folder / "notes" / "README.txt").parent.mkdir(parents=True)
    (folder / "notes" / "README.txt").write_text(f"export for {PATIENTS[0].hangul}\n")
    whole = _write(folder / "broken" / "full.dcm", make_ct_slice(PATIENTS[0], 9, size=16))
    data = whole.read_bytes()
    whole.unlink()
    (folder / "broken" / f"{PATIENTS[0].hospital_id}.dcm").write_bytes(data[:-100])
    us = make_ct_slice(PATIENTS[1], 7, size=16)
    us.Modality = "US"
    del us.BurnedInAnnotation
    _write(folder / "us" / "us.dcm", us)
    return folder


def _run(
    tmp_path: Path,
    spool: Path,
    workers: int = 1,
    key: bytes = KEY,
    fingerprint: str = "fp1",
    **kwargs,
):
    outcomes = []
    summary = run_folder(
        spool,
        tmp_path / "out",
        site="SUWON",
        key=key,
        quarantine_dir=tmp_path / "quarantine",
        vault_dir=tmp_path / "vault",
        audit_dir=tmp_path / "audit",
        workers=workers,
        on_file=outcomes.append,
        key_fingerprint=fingerprint,
        **kwargs,
    )
    return summary, outcomes


@pytest.mark.parametrize("workers", [1, 2])
def test_every_input_is_accounted_for(tmp_path: Path, spool: Path, workers: int) -> None:
    summary, outcomes = _run(tmp_path, spool, workers=workers)
    assert summary.read == 9 == len(outcomes)
    assert summary.written == 6
    assert summary.quarantined == {
        QuarantineReason.NOT_DICOM: 1,
        QuarantineReason.TRUNCATED: 1,
        QuarantineReason.BURNED_IN_TEXT: 1,
    }
    assert summary.reconciles
    assert summary.patients == 2 and summary.studies == 2


def test_output_names_are_pseudonymous_uids_only(tmp_path: Path, spool: Path) -> None:
    _run(tmp_path, spool)
    files = sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert len(files) == 6
    for path in files:
        parts = path.relative_to(tmp_path / "out").parts
        assert len(parts) == 3 and parts[2].endswith(".dcm")
        assert all(part.removesuffix(".dcm").startswith("2.25.") for part in parts)


def test_written_files_hold_no_planted_identifier(tmp_path: Path, spool: Path) -> None:
    _run(tmp_path, spool)
    for path in (tmp_path / "out").rglob("*.dcm"):
        data = path.read_bytes()
        for patient in PATIENTS[:2]:
            for values in planted_bytes(patient).values():
                assert not any(value in data for value in values)


def test_quarantine_copies_unchanged_with_a_reason_and_a_hashed_name(
    tmp_path: Path, spool: Path
) -> None:
    summary, outcomes = _run(tmp_path, spool)
    quarantine = tmp_path / "quarantine"
    originals = {p.read_bytes() for p in spool.rglob("*") if p.is_file()}
    for outcome in (o for o in outcomes if not o.written):
        copy = quarantine / outcome.output
        assert copy.read_bytes() in originals
        reason = json.loads((quarantine / f"{copy.stem}.reason.json").read_text())
        assert reason["reason"] == outcome.reason.value
        assert reason["run_id"] == summary.run_id
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    names = " ".join(p.name for p in quarantine.iterdir())
    assert PATIENTS[0].hospital_id not in names and PATIENTS[0].hangul not in names


def test_vault_maps_pseudonyms_back_for_the_steward(tmp_path: Path, spool: Path) -> None:
    _, outcomes = _run(tmp_path, spool)
    vault = Vault(tmp_path / "vault")
    assert stat.S_IMODE(vault.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault.folder.stat().st_mode) == 0o700
    record = next(o.record for o in outcomes if o.written)
    found = vault.lookup(record.pseudonym)
    assert {row["patient_id"] for row in found["patients"]} == {record.identity.patient_id}
    assert found["studies"][0]["study_uid"] == record.study.study_uid
    by_study = vault.lookup(record.study.pseudo_study_uid)
    assert by_study["patients"] == found["patients"]


def test_audit_has_counts_and_no_identifiers(tmp_path: Path, spool: Path) -> None:
    summary, _ = _run(tmp_path, spool)
    text = summary.audit_file.read_text(encoding="utf-8")
    record = json.loads(text.splitlines()[-1])
    assert record["read"] == 9 and record["written"] == 6
    assert record["quarantined"] == {"burned_in_text": 1, "not_dicom": 1, "truncated": 1}
    assert record["key_fingerprint"] == "fp1" and len(record["profile_sha256"]) == 64
    assert record["site"] == "SUWON" and record["user"]
    for patient in PATIENTS[:2]:
        for word in (patient.hangul, patient.hospital_id, patient.rrn, patient.phone, patient.name):
            assert word not in text
    assert str(tmp_path) not in text
    assert stat.S_IMODE(summary.audit_file.stat().st_mode) == 0o600


def test_rerun_finds_the_same_output(tmp_path: Path, spool: Path) -> None:
    _run(tmp_path, spool)
    again, _ = _run(tmp_path, spool)
    assert again.written == 6 and again.unchanged == 6
    assert len(list((tmp_path / "audit").glob("*.jsonl"))) == 1
    assert len((tmp_path / "audit" / "deid.jsonl").read_text().splitlines()) == 2


def test_vault_refuses_another_key(tmp_path: Path, spool: Path) -> None:
    _run(tmp_path, spool)
    with pytest.raises(VaultError, match="not under this key"):
        _run(tmp_path, spool, key=b"z" * 64, fingerprint="fp2")


@pytest.mark.parametrize("inside", ["out", "quarantine"])
def test_output_inside_input_is_refused(tmp_path: Path, spool: Path, inside: str) -> None:
    target = spool / "nested"
    kwargs = {"output": target} if inside == "out" else {"quarantine": target}
    with pytest.raises(DeidError, match="inside the input folder"):
        run_folder(
            spool,
            kwargs.get("output", tmp_path / "out"),
            site="SUWON",
            key=KEY,
            quarantine_dir=kwargs.get("quarantine", tmp_path / "q"),
            vault_dir=tmp_path / "v",
            audit_dir=tmp_path / "a",
        )


def test_missing_input_folder(tmp_path: Path) -> None:
    with pytest.raises(DeidError, match="does not exist"):
        run_folder(
            tmp_path / "nope",
            tmp_path / "out",
            site="SUWON",
            key=KEY,
            quarantine_dir=tmp_path / "q",
            vault_dir=tmp_path / "v",
            audit_dir=tmp_path / "a",
        )


def test_two_sites_into_one_vault_link_the_patient(tmp_path: Path) -> None:
    patient = PATIENTS[0]
    for site, hospital_id in (("SUWON", "SW1"), ("ICHEON", "IC1")):
        ds = make_ct_slice(patient, 0, size=8, site_key=site)
        ds.PatientID = hospital_id
        _write(tmp_path / site / "a.dcm", ds)
        run_folder(
            tmp_path / site,
            tmp_path / "store",
            site=site,
            key=KEY,
            quarantine_dir=tmp_path / "q",
            vault_dir=tmp_path / "vault",
            audit_dir=tmp_path / "audit",
            workers=1,
        )
    vault = Vault(tmp_path / "vault")
    pseudonyms = {pydicom.dcmread(p).PatientID for p in (tmp_path / "store").rglob("*.dcm")}
    assert len(pseudonyms) == 1
    found = vault.lookup(pseudonyms.pop())
    assert {(r["site"], r["patient_id"]) for r in found["patients"]} == {
        ("SUWON", "SW1"),
        ("ICHEON", "IC1"),
    }
