"""What the gateway database holds: the states, the schema, a study row and a job.

* study: ``received`` -> ``complete`` -> ``routed`` | ``no-match`` | ``failed``
* job:   ``complete`` -> ``dispatched`` -> ``result`` -> ``returned`` | ``failed``

Timestamps are epoch seconds (``time.time()``), so they survive a restart.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from enum import StrEnum

__all__ = ["SCHEMA", "Job", "JobState", "StudyRow", "StudyState"]


class StudyState(StrEnum):
    RECEIVED = "received"
    COMPLETE = "complete"
    ROUTED = "routed"
    NO_MATCH = "no-match"
    FAILED = "failed"


class JobState(StrEnum):
    COMPLETE = "complete"  # queued for its model
    DISPATCHED = "dispatched"  # handed to the model, answer pending
    RESULT = "result"  # answer received, not yet stored back
    RETURNED = "returned"  # result stored in the originating PACS
    FAILED = "failed"


SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    key TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    trigger TEXT,
    n_instances INTEGER NOT NULL DEFAULT 0,
    n_late INTEGER NOT NULL DEFAULT 0,
    received_first REAL NOT NULL,
    received_last REAL NOT NULL,
    complete_at REAL,
    routed_at REAL,
    purged_at REAL
);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state, received_last);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    study_key TEXT NOT NULL REFERENCES studies(key),
    series_uid TEXT NOT NULL,
    path TEXT NOT NULL,
    facts TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_key);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    study_key TEXT NOT NULL REFERENCES studies(key),
    site TEXT NOT NULL,
    model TEXT NOT NULL,
    rules TEXT NOT NULL,
    series_uids TEXT NOT NULL,
    pseudonymize INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    return_attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    model_version TEXT,
    task TEXT,
    origin TEXT,
    model_info TEXT,
    model_seconds REAL,
    received_first REAL NOT NULL,
    complete_at REAL NOT NULL,
    sent_to_model REAL,
    result_at REAL,
    stored_back_at REAL,
    prediction TEXT,
    result_sop_uid TEXT,
    updated_at REAL NOT NULL,
    UNIQUE (study_key, model)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, model, not_before);
CREATE INDEX IF NOT EXISTS jobs_result ON jobs(result_sop_uid);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    study_key TEXT NOT NULL,
    job_id INTEGER,
    state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS history_study ON history(study_key);
"""


@dataclass(frozen=True)
class StudyRow:
    key: str
    study_uid: str  # original: restricted
    site: str
    calling_ae: str
    state: str
    reason: str | None
    trigger: str | None
    n_instances: int
    n_late: int
    received_first: float
    received_last: float
    complete_at: float | None
    routed_at: float | None
    purged_at: float | None = None  # when its images left the spool


@dataclass(frozen=True)
class Job:
    """One (study, model) job as stored; ``series_uids`` are original UIDs (restricted)."""

    id: int
    study_key: str
    site: str
    model: str
    rules: tuple[str, ...]
    series_uids: tuple[str, ...]
    pseudonymize: bool
    state: str
    reason: str | None
    error: str | None
    attempts: int
    return_attempts: int
    not_before: float
    model_version: str | None
    task: str | None
    origin: str | None
    model_info: str | None
    model_seconds: float | None
    received_first: float
    complete_at: float
    sent_to_model: float | None
    result_at: float | None
    stored_back_at: float | None
    prediction: str | None
    result_sop_uid: str | None
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = {f.name: row[f.name] for f in fields(cls)}
        data["rules"] = tuple(json.loads(data["rules"]))
        data["series_uids"] = tuple(json.loads(data["series_uids"]))
        data["pseudonymize"] = bool(data["pseudonymize"])
        return cls(**data)

    @property
    def time_to_result(self) -> float | None:
        """Seconds from the first instance received to the result stored in the PACS."""
        if self.stored_back_at is None:
            return None
        return self.stored_back_at - self.received_first

    @property
    def overhead(self) -> float | None:
        """The gateway's part of the time to result: all of it but the model's own time."""
        ttr = self.time_to_result
        if ttr is None or self.model_seconds is None:
            return None
        return max(0.0, ttr - self.model_seconds)
