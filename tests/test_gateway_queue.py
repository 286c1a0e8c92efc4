"""The durable queue (states, retries, restart recovery), latency log, keys, mapping back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gai_research.gateway.facts import InstanceFacts
from gai_research.gateway.identity import redact, result_uid, study_key
from gai_research.gateway.jobs import GatewayDB
from gai_research.gateway.operations import operations_groups, operations_metrics
from gai_research.gateway.pseudo import UidMap, map_back
from gai_research.gateway.status import gateway_status
from gai_research.models.errors import MalformedResultError
from gai_research.models.types import Finding, Prediction, VolumeMeasurement

SECRET = b"k" * 64
STUDY = "1.2.410.2000.1.7"


@dataclass(frozen=True)
class Route:  # what gateway.match.Route carries, for set_routes
    model: str
    rules: tuple[str, ...] = ("r",)
    series_uids: tuple[str, ...] = ("1.2.410.2000.1.7.1",)
    pseudonymize: bool = False


def instance(n: int, study: str = STUDY) -> InstanceFacts:
    return InstanceFacts(
        study_uid=study,
        series_uid=f"{study}.1",
        sop_uid=f"{study}.1.{n}",
        sop_class="1.2.840.10008.5.1.4.1.1.2",
    )


@pytest.fixture
def db(tmp_path: Path):
    database = GatewayDB(tmp_path / "gateway.db")
    yield database
    database.close()


def receive(db: GatewayDB, n: int, *, at: float = 1000.0, study: str = STUDY) -> str:
    key = study_key(SECRET, study)
    for i in range(n):
        db.add_instance(
            key,
            instance(i, study),
            site="SUWON",
            calling_ae="SUWON_PACS",
            path=f"/s/{i}",
            now=at + i,
        )
    return key


def test_a_study_goes_through_every_state(db: GatewayDB) -> None:
    key = receive(db, 3)
    assert db.study(key).state == "received" and db.study(key).n_instances == 3
    assert db.due_studies(quiet_before=1001.0) == []  # the last instance came at 1002
    assert db.due_studies(quiet_before=1002.0) == [key]
    assert db.mark_complete(key, "quiet period", now=1010.0)
    assert not db.mark_complete(key, "again")  # only once
    assert db.set_routes(key, [Route("m1"), Route("m2")], now=1011.0) == 2
    assert db.study(key).state == "routed"
    job = db.claim("m1", now=1012.0)
    assert (job.state, job.attempts, job.sent_to_model) == ("dispatched", 1, 1012.0)
    assert db.claim("m1") is None  # nothing else queued for m1
    db.set_result(
        job,
        prediction="{}",
        model_version="1",
        task="t",
        origin="simulator",
        model_seconds=2.0,
        now=1015.0,
    )
    assert db.due_returns(now=1016.0) == []  # fresh: its worker stores it
    assert [j.id for j in db.due_returns(now=1030.0)] == [job.id]  # left by a restart
    db.set_returned(job, "2.25.1", now=1016.0)
    done = db.job(job.id)
    assert done.state == "returned"
    assert done.time_to_result == pytest.approx(16.0)  # first instance at 1000
    assert done.overhead == pytest.approx(14.0)
    states = [h["state"] for h in db.history(key)]
    assert states[:2] == ["received", "complete"] and states[-1] == "returned"
    assert db.counts() == {
        "studies": {"routed": 1},
        "jobs": {"complete": 1, "returned": 1},
    }


def test_duplicates_are_counted_once(db: GatewayDB) -> None:
    key = receive(db, 2)
    outcome = db.add_instance(key, instance(0), site="SUWON", calling_ae="SUWON_PACS", path="/s/0")
    assert outcome == "duplicate" and db.study(key).n_instances == 2


def test_no_match_and_a_late_series_reopens_the_study(db: GatewayDB) -> None:
    key = receive(db, 1)
    db.mark_complete(key, "association released")
    assert db.set_routes(key, []) == 0
    assert (db.study(key).state, db.study(key).reason) == ("no-match", "no rule matched")
    assert (
        db.add_instance(key, instance(5), site="SUWON", calling_ae="SUWON_PACS", path="/s/5")
        == "new"
    )
    assert db.study(key).state == "received"  # routed again once complete


def test_instances_after_a_model_has_the_study_are_late(db: GatewayDB) -> None:
    key = receive(db, 1)
    db.mark_complete(key, "t")
    db.set_routes(key, [Route("m")])
    db.claim("m")
    assert (
        db.add_instance(key, instance(9), site="SUWON", calling_ae="SUWON_PACS", path="/s/9")
        == "late"
    )
    study = db.study(key)
    assert (study.state, study.n_instances, study.n_late) == ("routed", 1, 1)


def test_retries_wait_for_their_time_and_failures_keep_the_reason(db: GatewayDB) -> None:
    key = receive(db, 1)
    db.mark_complete(key, "t")
    db.set_routes(key, [Route("m")])
    job = db.claim("m", now=2000.0)
    db.retry_later(job, "unavailable", "connection refused", not_before=2005.0)
    assert db.claim("m", now=2004.0) is None
    again = db.claim("m", now=2005.0)
    assert again.attempts == 2 and again.reason == "unavailable"
    db.fail(again, "timeout", "no answer within 1 s")
    failed = db.job(job.id)
    assert (failed.state, failed.reason, failed.error) == (
        "failed",
        "timeout",
        "no answer within 1 s",
    )


def test_a_restart_requeues_what_a_model_had_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    db = GatewayDB(path)
    key = receive(db, 1)
    db.mark_complete(key, "t")
    db.set_routes(key, [Route("with-model"), Route("answered"), Route("queued")])
    db.claim("with-model")
    answered = db.claim("answered")
    db.set_result(
        answered, prediction="{}", model_version="1", task="t", origin="o", model_seconds=1.0
    )
    db.close()  # the process dies here

    db = GatewayDB(path)
    assert db.recover() == 1
    states = {j.model: (j.state, j.attempts) for j in db.jobs()}
    assert states == {
        "with-model": ("complete", 1),  # sent again: attempt 2 when claimed
        "answered": ("result", 1),  # stored back, not asked again
        "queued": ("complete", 0),
    }
    assert "re-queued after a restart" in [h["detail"] for h in db.history(key)]
    db.close()


def test_claims_follow_completion_order_per_model(db: GatewayDB) -> None:
    first = receive(db, 1, study="1.2.410.2000.1.1", at=100.0)
    second = receive(db, 1, study="1.2.410.2000.1.2", at=50.0)
    db.mark_complete(second, "t", now=300.0)
    db.mark_complete(first, "t", now=200.0)
    for key in (first, second):
        db.set_routes(key, [Route("m")])
    assert [db.claim("m").study_key, db.claim("m").study_key] == [first, second]


def test_status_shows_study_keys_and_latencies_not_uids(db: GatewayDB) -> None:
    key = receive(db, 2)
    db.mark_complete(key, "t")
    db.set_routes(key, [Route("m")])
    other = receive(db, 1, study="1.2.410.2000.9")
    db.mark_complete(other, "t")
    db.set_routes(other, [])
    status = gateway_status(db, window_s=1e12)
    text = json.dumps(status)
    assert key in text and other in text
    assert "1.2.410" not in text
    assert status["jobs"]["complete"] == 1 and status["studies"]["no-match"] == 1
    assert status["studies_without_jobs"][0]["reason"] == "no rule matched"


def _job(
    db: GatewayDB,
    study: str,
    *,
    site: str,
    model: str,
    hour_at: float,
    ttr: float | None,
    model_s: float = 1.0,
    reason: str | None = None,
):
    key = receive(db, 1, study=study, at=hour_at)
    db.mark_complete(key, "t", now=hour_at + 0.1)
    with db._tx() as conn:
        conn.execute("UPDATE studies SET site=? WHERE key=?", (site, key))
    db.set_routes(key, [Route(model)])
    job = db.claim(model, now=hour_at + 0.2)

    class Info:
        version, task, origin = "1", "lung_nodule_ct", "simulator"

        @staticmethod
        def to_dict():
            return {}

    db.set_model_info(job, Info)
    if ttr is None:
        db.fail(job, reason or "timeout", "x")
        return
    db.set_result(
        job,
        prediction="{}",
        model_version="1",
        task="lung_nodule_ct",
        origin="simulator",
        model_seconds=model_s,
        now=hour_at + ttr - 0.1,
    )
    db.set_returned(db.job(job.id), "2.25.1", now=hour_at + ttr)


def test_operations_metrics_by_group(db: GatewayDB) -> None:
    base = 1_700_000_000.0
    _job(db, "1.2.1", site="SUWON", model="m", hour_at=base, ttr=2.0)
    _job(db, "1.2.2", site="SUWON", model="m", hour_at=base + 10, ttr=4.0)
    _job(db, "1.2.3", site="ICHEON", model="m", hour_at=base + 20, ttr=6.0, model_s=5.5)
    _job(db, "1.2.4", site="ICHEON", model="m", hour_at=base + 30, ttr=None)
    groups = {(g.site, g.model): g for g in operations_groups(db.jobs())}
    assert set(groups) == {("SUWON", "m"), ("ICHEON", "m"), ("ALL", "m")}
    metrics, by_hour = operations_metrics(groups[("ALL", "m")].jobs)
    assert metrics["n_studies"] == 4 and metrics["n_failed"] == 1 and metrics["n_timeout"] == 1
    assert metrics["ttr_median_s"] == pytest.approx(4.0)
    assert metrics["ttr_p95_s"] == pytest.approx(5.8)
    assert metrics["gateway_overhead_median_s"] == pytest.approx(1.0)  # 1.0, 3.0, 0.5
    assert metrics["throughput_per_h"] == pytest.approx(3 / (26.0 / 3600))
    assert list(by_hour.values()) == [pytest.approx(4.0)]


def test_keys_and_result_uids_are_keyed_and_stable() -> None:
    key = study_key(SECRET, STUDY)
    assert key == study_key(SECRET, STUDY) != study_key(b"x" * 64, STUDY)
    assert key.startswith("GS") and STUDY not in key
    uid = result_uid(SECRET, key, "m", "instance")
    assert (
        uid == result_uid(SECRET, key, "m", "instance") != result_uid(SECRET, key, "m2", "instance")
    )
    assert uid.startswith("2.25.") and len(uid) <= 64


def test_redact_cuts_uids_values_and_numbers() -> None:
    text = redact("study 1.2.840.113619.2.55 of 'KIM^MINSU' id 12345678 failed")
    assert "1.2.840" not in text and "KIM" not in text and "12345678" not in text
    assert "failed" in text


def test_a_prediction_is_mapped_back_to_the_original_uids() -> None:
    uids = UidMap()
    uids.add(("2.25.1", "2.25.2", "2.25.3"), ("1.2.9", "1.2.9.1", "1.2.9.1.1"))
    pseudo = Prediction(
        study_uid="2.25.1",
        score=0.7,
        findings=(Finding(score=0.7, series_uid="2.25.2", sop_uid="2.25.3", row_px=1, col_px=2),),
        volumes=(VolumeMeasurement(name="hemorrhage", volume_ml=3.0, series_uid="2.25.2"),),
    )
    back = map_back(pseudo, uids)
    assert back.study_uid == "1.2.9"
    assert (back.findings[0].series_uid, back.findings[0].sop_uid) == ("1.2.9.1", "1.2.9.1.1")
    assert back.findings[0].row_px == 1 and back.volumes[0].series_uid == "1.2.9.1"
    wrong = Prediction(study_uid="2.25.1", findings=(Finding(score=1, sop_uid="2.25.999"),))
    with pytest.raises(MalformedResultError, match="not in the study sent"):
        map_back(wrong, uids)


def test_finished_studies_are_purged_after_their_retention(db: GatewayDB) -> None:
    done = receive(db, 1, study="1.2.410.2000.5", at=100.0)
    db.mark_complete(done, "t", now=101.0)
    db.set_routes(done, [Route("m")], now=102.0)
    db.fail(db.claim("m", now=103.0), "timeout", "x")
    busy = receive(db, 1, study="1.2.410.2000.6", at=100.0)
    db.mark_complete(busy, "t", now=101.0)
    db.set_routes(busy, [Route("m")], now=102.0)  # still queued
    nomatch = receive(db, 1, study="1.2.410.2000.7", at=100.0)
    db.mark_complete(nomatch, "t", now=101.0)
    db.set_routes(nomatch, [], now=102.0)
    later = time.time() + 10
    assert db.finished_before(50.0) == []
    assert sorted(db.finished_before(later)) == sorted([done, nomatch])
    db.mark_purged(nomatch)
    assert db.finished_before(later) == [done]
    # a new series for the purged no-match study starts it afresh, without the lost files
    db.add_instance(nomatch, instance(7, "1.2.410.2000.7"), site="SUWON", calling_ae="X", path="/n")
    study = db.study(nomatch)
    assert (study.state, study.n_instances, study.purged_at) == ("received", 1, None)
    assert db.instance_paths(nomatch) == [Path("/n")]
