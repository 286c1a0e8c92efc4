"""The re-identification vault: pseudonym -> original identifiers, for the data steward only.

An SQLite file ``HOME/vault/vault.sqlite3`` (folder 0700, file 0600) with one row
per (pseudonym, site, hospital patient ID) and one per study. Only the runner's
parent process writes it, once per run, so workers never contend for it. The
vault remembers the fingerprint of the key its pseudonyms were made with and
refuses to mix in another key's pseudonyms.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from gai_research.deid.errors import VaultError
from gai_research.deid.types import DeidRecord

__all__ = ["VAULT_FILE", "Vault"]

VAULT_FILE = "vault.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
    pseudonym TEXT NOT NULL, site TEXT NOT NULL, patient_id TEXT NOT NULL,
    issuer_of_patient_id TEXT, patient_name TEXT, birth_date TEXT, rrn_masked TEXT,
    linkage TEXT, date_shift_days INTEGER, first_run TEXT, last_run TEXT, last_seen TEXT,
    PRIMARY KEY (pseudonym, site, patient_id)
);
CREATE TABLE IF NOT EXISTS studies (
    pseudo_study_uid TEXT PRIMARY KEY, pseudonym TEXT NOT NULL, site TEXT NOT NULL,
    study_uid TEXT, accession_number TEXT, pseudo_accession_number TEXT, study_date TEXT,
    first_run TEXT, last_run TEXT
);
CREATE INDEX IF NOT EXISTS studies_by_pseudonym ON studies (pseudonym);
CREATE INDEX IF NOT EXISTS studies_by_accession ON studies (pseudo_accession_number);
"""


class Vault:
    """The vault under a folder; the file is created (0600) on first write."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / VAULT_FILE

    def _connect(self, create: bool) -> sqlite3.Connection:
        if not self.path.exists():
            if not create:
                raise VaultError(
                    f"no vault at {self.path}", hint="run `gai deid` first, or check GAI_HOME"
                )
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise VaultError(
                f"vault {self.path} is readable by others (mode {mode:04o})",
                hint=f"run `chmod 600 {self.path}` and ask the data steward whether it was exposed",
            )
        connection = sqlite3.connect(self.path)
        connection.executescript(_SCHEMA)
        return connection

    def check_key(self, fingerprint: str) -> None:
        """Refuse a key other than the one the vault's pseudonyms were made with."""
        if not fingerprint or not self.path.exists():
            return
        with closing(self._connect(create=False)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'key_fingerprint'").fetchone()
        if row and row[0] != fingerprint:
            raise VaultError(
                f"the vault was written under key {row[0]}, not under this key ({fingerprint})",
                hint="use the platform's key (GAI_KEY_FILE), or a separate GAI_HOME for another key",
            )

    def record(
        self, records: Iterable[DeidRecord | None], *, run_id: str, key_fingerprint: str = ""
    ) -> Path:
        """Insert or refresh the rows of a run's records; returns the vault file."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patients: dict[tuple, tuple] = {}
        studies: dict[str, tuple] = {}
        for rec in records:
            if rec is None:
                continue
            who = rec.identity
            patients[(rec.pseudonym, who.site, who.patient_id)] = (
                rec.pseudonym, who.site, who.patient_id, who.issuer_of_patient_id, who.patient_name,
                who.birth_date, who.rrn_masked, rec.linkage, rec.date_shift_days, run_id, run_id, now,
            )  # fmt: skip
            if rec.study is not None:
                s = rec.study
                studies[s.pseudo_study_uid] = (
                    s.pseudo_study_uid, rec.pseudonym, who.site, s.study_uid, s.accession_number,
                    s.pseudo_accession_number, s.study_date, run_id, run_id,
                )  # fmt: skip
        with closing(self._connect(create=True)) as db, db:
            if key_fingerprint:
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('key_fingerprint', ?)", (key_fingerprint,)
                )
            db.executemany(
                "INSERT INTO patients VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (pseudonym, site, patient_id) "
                "DO UPDATE SET last_run = excluded.last_run, last_seen = excluded.last_seen, "
                "rrn_masked = CASE WHEN excluded.rrn_masked != '' THEN excluded.rrn_masked ELSE rrn_masked END",
                list(patients.values()),
            )
            db.executemany(
                "INSERT INTO studies VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (pseudo_study_uid) "
                "DO UPDATE SET last_run = excluded.last_run",
                list(studies.values()),
            )
        return self.path

    def lookup(self, term: str) -> dict[str, list[dict]]:
        """Rows for a patient pseudonym, a pseudonymous Study Instance UID or accession number."""
        term = term.strip()
        with closing(self._connect(create=False)) as db:
            db.row_factory = sqlite3.Row
            pseudonyms = {term}
            for row in db.execute(
                "SELECT pseudonym FROM studies WHERE pseudo_study_uid = ? OR pseudo_accession_number = ?",
                (term, term),
            ):
                pseudonyms.add(row["pseudonym"])
            marks = ",".join("?" * len(pseudonyms))
            patients = db.execute(
                f"SELECT * FROM patients WHERE pseudonym IN ({marks}) ORDER BY site, patient_id",
                tuple(pseudonyms),
            ).fetchall()
            studies = db.execute(
                f"SELECT * FROM studies WHERE pseudonym IN ({marks}) ORDER BY study_date, site",
                tuple(pseudonyms),
            ).fetchall()
        return {"patients": [dict(r) for r in patients], "studies": [dict(r) for r in studies]}
