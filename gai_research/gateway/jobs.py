"""The gateway's durable state: studies, their instances, and one job per (study, model).

A SQLite database in WAL mode under ``HOME/gateway/`` (0700: it holds original UIDs,
which are identifiers). Every state change is one transaction, so a gateway killed at
any moment restarts where it stopped:

* study: ``received`` -> ``complete`` -> ``routed`` | ``no-match`` | ``failed``
* job:   ``complete`` -> ``dispatched`` -> ``result`` -> ``returned`` | ``failed``

A job that was ``dispatched`` when the process died is sent again on restart (its
answer never arrived); a job with a ``result`` is stored back again under the same
result UIDs, so the PACS keeps one copy. The latency log is the jobs' timestamps:
``received_first``, ``complete_at``, ``sent_to_model``, ``result_at``, ``stored_back_at``
(epoch seconds).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gai_research.gateway.errors import GatewayError
from gai_research.gateway.facts import InstanceFacts
from gai_research.gateway.states import SCHEMA, Job, JobState, StudyRow, StudyState

__all__ = ["GatewayDB", "Job", "JobState", "StudyRow", "StudyState"]

BUSY_STEP_S = 0.005  # SQLite's own wait, per try (reads rarely need it in WAL mode)
BUSY_DEADLINE_S = 30.0


class GatewayDB:
    """Thread-safe access to the gateway database (one connection, one lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_STEP_S
            )
        except sqlite3.Error as exc:
            raise GatewayError(
                f"cannot open the gateway database {self.path}: {exc}",
                hint="check that HOME/gateway exists and is writable (`gai init`)",
            ) from None
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._begin()
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write in short, jittered steps.

        SQLite's own busy handler sleeps ever longer (up to 100 ms a try) and is not fair:
        measured here, the worker process waited up to a second to claim a job while the
        receiving process wrote one short transaction per instance. Retrying every
        ~1 ms takes the lock as soon as it is free.
        """
        deadline = time.monotonic() + BUSY_DEADLINE_S
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise GatewayError(
                        f"the gateway database stayed locked for {BUSY_DEADLINE_S:.0f} s",
                        hint="is another process holding it? (only one gateway per home)",
                    ) from None
                time.sleep(random.uniform(0.0002, 0.0015))

    def _history(
        self,
        conn: sqlite3.Connection,
        key: str,
        state: str,
        detail: str = "",
        job: int | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO history(at, study_key, job_id, state, detail) VALUES (?,?,?,?,?)",
            (time.time(), key, job, state, detail),
        )

    # --- receiving -----------------------------------------------------------------
    def add_instance(
        self,
        key: str,
        facts: InstanceFacts,
        *,
        site: str,
        calling_ae: str,
        path: str,
        now: float | None = None,
    ) -> str:
        """Record an arrived instance: ``new``, ``duplicate`` (known SOP instance) or ``late``.

        A new instance of a study that was already routed, but whose jobs have not been
        handed to a model yet (or that matched nothing), re-opens the study: it will be
        routed again with everything it has. Once a model has it, later instances are
        counted as ``late`` and kept, not sent.
        """
        return self.add_instances([(key, facts, site, calling_ae, path)], now=now)[0]

    def add_instances(
        self, items: Sequence[tuple[str, InstanceFacts, str, str, str]], now: float | None = None
    ) -> list[str]:
        """:meth:`add_instance` for (key, facts, site, calling AE, path) items, one transaction."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            return [self._add(conn, *item, now) for item in items]

    def _add(
        self,
        conn: sqlite3.Connection,
        key: str,
        facts: InstanceFacts,
        site: str,
        calling_ae: str,
        path: str,
        now: float,
    ) -> str:
        if conn.execute("SELECT 1 FROM instances WHERE sop_uid=?", (facts.sop_uid,)).fetchone():
            return "duplicate"
        study = conn.execute("SELECT * FROM studies WHERE key=?", (key,)).fetchone()
        outcome = "new"
        if study is None:
            conn.execute(
                "INSERT INTO studies(key, study_uid, site, calling_ae, state, n_instances,"
                " received_first, received_last) VALUES (?,?,?,?,?,0,?,?)",
                (key, facts.study_uid, site, calling_ae, StudyState.RECEIVED, now, now),
            )
            self._history(conn, key, StudyState.RECEIVED, f"first instance from {site}")
        elif study["state"] in (StudyState.ROUTED, StudyState.NO_MATCH, StudyState.FAILED):
            started = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE study_key=? AND state!=?",
                (key, JobState.COMPLETE),
            ).fetchone()[0]
            if started:
                outcome = "late"
            else:
                conn.execute("DELETE FROM jobs WHERE study_key=?", (key,))
                if study["purged_at"] is not None:  # its earlier images are gone
                    conn.execute("DELETE FROM instances WHERE study_key=?", (key,))
                    conn.execute("UPDATE studies SET n_instances=0 WHERE key=?", (key,))
                conn.execute(
                    "UPDATE studies SET state=?, reason=NULL, complete_at=NULL, routed_at=NULL,"
                    " purged_at=NULL WHERE key=?",
                    (StudyState.RECEIVED, key),
                )
                self._history(conn, key, StudyState.RECEIVED, "re-opened by a new instance")
        conn.execute(
            "INSERT INTO instances(sop_uid, study_key, series_uid, path, facts, received_at)"
            " VALUES (?,?,?,?,?,?)",
            (facts.sop_uid, key, facts.series_uid, path, json.dumps(facts.to_dict()), now),
        )
        column = "n_late" if outcome == "late" else "n_instances"
        conn.execute(
            f"UPDATE studies SET {column}={column}+1, received_last=MAX(received_last, ?)"
            " WHERE key=?",
            (now, key),
        )
        return outcome

    def is_own_result(self, sop_uid: str) -> bool:
        """Whether an arriving instance is a result this gateway stored in a PACS (which a
        PACS forwarding whole studies sends back): it is acknowledged and ignored."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM jobs WHERE result_sop_uid=? LIMIT 1", (sop_uid,)
            ).fetchone()
        return row is not None

    def study(self, key: str) -> StudyRow | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM studies WHERE key=?", (key,)).fetchone()
        return StudyRow(**dict(row)) if row is not None else None

    def study_by_uid(self, study_uid: str) -> StudyRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM studies WHERE study_uid=?", (study_uid,)
            ).fetchone()
        return StudyRow(**dict(row)) if row is not None else None

    def studies(self, states: Iterable[str] | None = None, limit: int = 1000) -> list[StudyRow]:
        query, args = "SELECT * FROM studies", []
        if states is not None:
            wanted = list(states)
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
            args = wanted
        query += " ORDER BY received_first DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*args, limit)).fetchall()
        return [StudyRow(**dict(r)) for r in rows]

    def instance_facts(self, key: str, *, late: bool = True) -> list[InstanceFacts]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT facts FROM instances WHERE study_key=? ORDER BY received_at, rowid", (key,)
            ).fetchall()
        return [InstanceFacts(**json.loads(r[0])) for r in rows]

    def instance_paths(self, key: str, series_uids: Sequence[str] | None = None) -> list[Path]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT series_uid, path FROM instances WHERE study_key=? ORDER BY rowid", (key,)
            ).fetchall()
        wanted = set(series_uids) if series_uids is not None else None
        return [Path(r[1]) for r in rows if wanted is None or r[0] in wanted]

    # --- completion and routing --------------------------------------------------------
    def due_studies(self, quiet_before: float) -> list[str]:
        """Studies still receiving whose last instance came before ``quiet_before``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key FROM studies WHERE state=? AND received_last<=? ORDER BY received_first",
                (StudyState.RECEIVED, quiet_before),
            ).fetchall()
        return [r[0] for r in rows]

    def mark_complete(self, key: str, trigger: str, now: float | None = None) -> bool:
        """``received`` -> ``complete``; False if the study was not receiving."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            changed = conn.execute(
                "UPDATE studies SET state=?, complete_at=?, trigger=? WHERE key=? AND state=?",
                (StudyState.COMPLETE, now, trigger, key, StudyState.RECEIVED),
            ).rowcount
            if changed:
                self._history(conn, key, StudyState.COMPLETE, trigger)
            return bool(changed)

    def complete_keys(self) -> list[str]:
        """Studies complete but not yet routed (routing was interrupted)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key FROM studies WHERE state=?", (StudyState.COMPLETE,)
            ).fetchall()
        return [r[0] for r in rows]

    def set_routes(self, key: str, routes: Sequence[Any], now: float | None = None) -> int:
        """Create one job per route (``match.Route``) and mark the study routed or no-match."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            study = conn.execute(
                "SELECT * FROM studies WHERE key=? AND state=?", (key, StudyState.COMPLETE)
            ).fetchone()
            if study is None:
                return 0
            if not routes:
                conn.execute(
                    "UPDATE studies SET state=?, reason=?, routed_at=? WHERE key=?",
                    (StudyState.NO_MATCH, "no rule matched", now, key),
                )
                self._history(conn, key, StudyState.NO_MATCH, "no rule matched")
                return 0
            for r in routes:
                cursor = conn.execute(
                    "INSERT INTO jobs(study_key, site, model, rules, series_uids, pseudonymize,"
                    " state, received_first, complete_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(study_key, model) DO NOTHING",
                    (
                        key,
                        study["site"],
                        r.model,
                        json.dumps(list(r.rules)),
                        json.dumps(list(r.series_uids)),
                        int(r.pseudonymize),
                        JobState.COMPLETE,
                        study["received_first"],
                        study["complete_at"],
                        now,
                    ),
                )
                self._history(
                    conn, key, JobState.COMPLETE, f"queued for {r.model}", cursor.lastrowid
                )
            conn.execute(
                "UPDATE studies SET state=?, routed_at=? WHERE key=?",
                (StudyState.ROUTED, now, key),
            )
            return len(routes)

    def finished_before(self, before: float) -> list[str]:
        """Studies done with (no job still open) since before ``before`` and not yet purged."""
        open_states = (JobState.COMPLETE, JobState.DISPATCHED, JobState.RESULT)
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.key FROM studies s WHERE s.purged_at IS NULL AND s.state IN (?,?,?)"
                " AND s.received_last < ? AND COALESCE(s.routed_at, s.received_last) < ?"
                " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.study_key = s.key"
                f" AND (j.state IN ({','.join('?' * len(open_states))}) OR j.updated_at >= ?))",
                (
                    StudyState.ROUTED,
                    StudyState.NO_MATCH,
                    StudyState.FAILED,
                    before,
                    before,
                    *open_states,
                    before,
                ),
            ).fetchall()
        return [r[0] for r in rows]

    def mark_purged(self, key: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as conn:
            conn.execute("UPDATE studies SET purged_at=? WHERE key=?", (now, key))
            self._history(conn, key, "purged", "images and results removed from the spool")

    def fail_study(self, key: str, reason: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as conn:
            conn.execute(
                "UPDATE studies SET state=?, reason=?, routed_at=? WHERE key=?",
                (StudyState.FAILED, reason, now, key),
            )
            self._history(conn, key, StudyState.FAILED, reason)

    # --- jobs --------------------------------------------------------------------------
    def job(self, job_id: int) -> Job:
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.from_row(row)

    def jobs(
        self,
        *,
        states: Iterable[str] | None = None,
        study_key: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        clauses, args = [], []
        if states is not None:
            wanted = list(states)
            clauses.append(f"state IN ({','.join('?' * len(wanted))})")
            args += wanted
        if study_key is not None:
            clauses.append("study_key=?")
            args.append(study_key)
        if since is not None:
            clauses.append("received_first>=?")
            args.append(since)
        query = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        query += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        return [Job.from_row(r) for r in rows]

    def claim(self, model: str, now: float | None = None) -> Job | None:
        """Take the oldest queued job of ``model`` that may run now: ``complete`` -> ``dispatched``."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            row = conn.execute(
                "SELECT id, study_key FROM jobs WHERE state=? AND model=? AND not_before<=?"
                " ORDER BY complete_at, id LIMIT 1",
                (JobState.COMPLETE, model, now),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state=?, attempts=attempts+1, sent_to_model=?, updated_at=?"
                " WHERE id=?",
                (JobState.DISPATCHED, now, now, row["id"]),
            )
            self._history(conn, row["study_key"], JobState.DISPATCHED, model, row["id"])
        return self.job(row["id"])

    def queued_models(self, now: float | None = None) -> set[str]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT model FROM jobs WHERE state=? AND not_before<=?",
                (JobState.COMPLETE, now),
            ).fetchall()
        return {r[0] for r in rows}

    def next_wake(self) -> float | None:
        """The earliest ``not_before`` of a job waiting for a retry."""
        with self._lock:
            row = self._conn.execute(
                "SELECT MIN(not_before) FROM jobs WHERE state IN (?,?) AND not_before>0",
                (JobState.COMPLETE, JobState.RESULT),
            ).fetchone()
        return row[0]

    def _update(self, job: Job, state: str, detail: str, **values: Any) -> None:
        values["state"] = state
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{name}=?" for name in values)
        with self._tx() as conn:
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id=?", (*values.values(), job.id))
            self._history(conn, job.study_key, state, detail, job.id)

    def retry_later(self, job: Job, reason: str, error: str, not_before: float) -> None:
        """A failed attempt with tries left: back to the queue after ``not_before``."""
        self._update(
            job,
            JobState.COMPLETE,
            f"attempt {job.attempts} failed ({reason}); retry",
            reason=reason,
            error=error,
            not_before=not_before,
        )

    def fail(self, job: Job, reason: str, error: str) -> None:
        self._update(job, JobState.FAILED, reason, reason=reason, error=error)

    def set_result(
        self,
        job: Job,
        *,
        prediction: str,
        model_version: str,
        task: str,
        origin: str,
        model_seconds: float,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        self._update(
            job,
            JobState.RESULT,
            "answer received",
            prediction=prediction,
            model_version=model_version,
            task=task,
            origin=origin,
            model_seconds=model_seconds,
            result_at=now,
            reason=None,
            error=None,
            not_before=0,
        )

    def set_model_info(self, job: Job, info: Any) -> None:
        """Remember who the model is (a ``ModelInfo``), also when it fails (operations metrics)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET model_version=?, task=?, origin=?, model_info=? WHERE id=?",
                (
                    info.version,
                    info.task,
                    str(info.origin),
                    json.dumps(info.to_dict(), ensure_ascii=False),
                    job.id,
                ),
            )

    def due_returns(self, now: float | None = None, *, fresh_s: float = 10.0) -> list[Job]:
        """Results waiting to be stored back: retries whose time has come, and results
        older than ``fresh_s`` (left by a restart). A fresh result is its worker's to store."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM jobs WHERE state=? AND not_before<=?"
                " AND (return_attempts>0 OR result_at<=?) ORDER BY result_at",
                (JobState.RESULT, now, now - fresh_s),
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def set_returned(self, job: Job, sop_uid: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._update(
            job,
            JobState.RETURNED,
            "stored back in the site PACS",
            result_sop_uid=sop_uid,
            stored_back_at=now,
            return_attempts=job.return_attempts + 1,
            reason=None,
            error=None,
        )

    def return_failed(self, job: Job, reason: str, error: str, *, not_before: float | None) -> None:
        """A failed store-back: retried after ``not_before``, or ``failed`` when None."""
        if not_before is None:
            self._update(
                job,
                JobState.FAILED,
                reason,
                reason=reason,
                error=error,
                return_attempts=job.return_attempts + 1,
            )
        else:
            self._update(
                job,
                JobState.RESULT,
                f"store-back failed ({reason}); retry",
                reason=reason,
                error=error,
                not_before=not_before,
                return_attempts=job.return_attempts + 1,
            )

    def recover(self) -> int:
        """After a restart: jobs left ``dispatched`` go back to the queue (their answer is lost)."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, study_key FROM jobs WHERE state=?", (JobState.DISPATCHED,)
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE jobs SET state=?, not_before=0, updated_at=? WHERE id=?",
                    (JobState.COMPLETE, time.time(), row["id"]),
                )
                self._history(
                    conn,
                    row["study_key"],
                    JobState.COMPLETE,
                    "re-queued after a restart",
                    row["id"],
                )
        return len(rows)

    # --- views -------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            studies = self._conn.execute(
                "SELECT state, COUNT(*) FROM studies GROUP BY state"
            ).fetchall()
            jobs = self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {"studies": {r[0]: r[1] for r in studies}, "jobs": {r[0]: r[1] for r in jobs}}

    def history(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT at, job_id, state, detail FROM history WHERE study_key=? ORDER BY id",
                (key,),
            ).fetchall()
        return [dict(r) for r in rows]
