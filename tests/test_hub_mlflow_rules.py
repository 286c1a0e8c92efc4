"""The MLflow proxy's rules: who may read, create, change and delete what."""

from __future__ import annotations

import pytest

from gai_research.hub.mlflow_rules import (
    OWNER_TAG,
    Principal,
    decide,
    is_owner,
    stamp_body,
)

RUN = "0123456789abcdef0123456789abcdef"
ADMIN = Principal("root-admin", frozenset({"custom:mlflow:admin", "custom:mlflow:write"}))
RESEARCHER = Principal("alice", frozenset({"custom:mlflow:write", "custom:mlflow:read"}))
LEAD = Principal("lee", frozenset({"custom:mlflow:read"}))
NOBODY = Principal("nemo", frozenset({"access:servers!user=nemo"}))

API = "/api/2.0/mlflow"


@pytest.mark.parametrize("who", [ADMIN, RESEARCHER, LEAD])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/static-files/favicon.ico"),
        ("GET", f"{API}/experiments/get"),
        ("GET", f"{API}/runs/get"),
        ("POST", f"{API}/runs/search"),
        ("POST", f"{API}/experiments/search"),
        ("POST", "/ajax-api/2.0/mlflow/runs/search"),
        ("POST", f"{API}/logged-models/search"),
        ("POST", "/api/3.0/mlflow/traces/search"),
        ("POST", "/graphql"),
        ("GET", f"/api/2.0/mlflow-artifacts/artifacts/1/{RUN}/artifacts/model.pkl"),
        ("GET", "/get-artifact"),
    ],
)
def test_every_platform_role_reads_everything(who: Principal, method: str, path: str) -> None:
    decision = decide(who, method, path)
    assert decision.allowed and decision.owned is None


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"{API}/experiments/create", {"name": "x"}),
        ("POST", f"{API}/runs/create", {"experiment_id": "1"}),
        ("POST", f"{API}/runs/log-metric", {"run_id": RUN, "key": "auc", "value": 1}),
        ("POST", f"{API}/runs/delete", {"run_id": RUN}),
        ("POST", f"{API}/experiments/delete", {"experiment_id": "1"}),
        ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/1/{RUN}/artifacts/a.txt", None),
        ("DELETE", f"{API}/registered-models/delete", {"name": "m"}),
    ],
)
def test_leads_cannot_change_anything(method: str, path: str, body) -> None:
    decision = decide(LEAD, method, path, body=body)
    assert not decision.allowed
    assert "read-only" in decision.reason


def test_no_mlflow_scope_no_access() -> None:
    decision = decide(NOBODY, "GET", "/")
    assert not decision.allowed and "researchers" in decision.reason


@pytest.mark.parametrize(
    ("method", "path", "body", "owned"),
    [
        ("POST", f"{API}/runs/create", {"experiment_id": "7"}, ("experiment", "7")),
        ("POST", f"{API}/runs/log-metric", {"run_id": RUN}, ("run", RUN)),
        ("POST", f"{API}/runs/log-batch", {"run_id": RUN, "metrics": []}, ("run", RUN)),
        ("POST", f"{API}/runs/set-tag", {"run_id": RUN, "key": "k", "value": "v"}, ("run", RUN)),
        ("POST", f"{API}/runs/update", {"run_id": RUN, "status": "FINISHED"}, ("run", RUN)),
        ("POST", f"{API}/runs/delete", {"run_id": RUN}, ("run", RUN)),
        ("POST", f"{API}/runs/restore", {"run_uuid": RUN}, ("run", RUN)),
        ("POST", f"{API}/experiments/update", {"experiment_id": "7"}, ("experiment", "7")),
        ("POST", f"{API}/experiments/delete", {"experiment_id": "7"}, ("experiment", "7")),
        ("POST", f"{API}/logged-models", {"experiment_id": "7"}, ("experiment", "7")),
        ("PATCH", f"{API}/logged-models/m-1", {}, ("logged-model", "m-1")),
        ("POST", f"{API}/logged-models/m-1/params", {}, ("logged-model", "m-1")),
        ("DELETE", f"{API}/logged-models/m-1/tags/k", {}, ("logged-model", "m-1")),
        ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/7/{RUN}/artifacts/a", None, ("run", RUN)),
        ("DELETE", f"/api/2.0/mlflow-artifacts/artifacts/7/{RUN}/artifacts/a", None, ("run", RUN)),
        (
            "PUT",
            "/api/2.0/mlflow-artifacts/artifacts/7/models/m-1/artifacts/model.pkl",
            None,
            ("logged-model", "m-1"),
        ),
    ],
)
def test_researchers_change_only_what_they_own(method, path, body, owned) -> None:
    decision = decide(RESEARCHER, method, path, body=body)
    assert decision.allowed
    assert decision.owned == owned


def test_artifact_paths_name_their_experiment() -> None:
    decision = decide(RESEARCHER, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/7/{RUN}/artifacts/a")
    assert decision.experiment == "7"


def test_the_ui_upload_names_the_run_in_the_query() -> None:
    decision = decide(
        RESEARCHER, "POST", "/ajax-api/2.0/mlflow/upload-artifact", query={"run_uuid": RUN}
    )
    assert decision.allowed and decision.owned == ("run", RUN)


def test_new_experiments_and_runs_are_stamped() -> None:
    assert decide(RESEARCHER, "POST", f"{API}/experiments/create", body={"name": "a"}).stamp == (
        "experiment"
    )
    assert decide(RESEARCHER, "POST", f"{API}/runs/create", body={"experiment_id": "1"}).stamp == (
        "run"
    )
    assert decide(ADMIN, "POST", f"{API}/runs/create", body={"experiment_id": "1"}).stamp == "run"


@pytest.mark.parametrize(
    ("path", "body", "why"),
    [
        (f"{API}/experiments/create", {"name": "x", "artifact_location": "/srv"}, "artifact"),
        (f"{API}/runs/set-tag", {"run_id": RUN, "key": OWNER_TAG, "value": "me"}, "platform"),
        (f"{API}/runs/set-tag", {"run_id": RUN, "key": "mlflow.user", "value": "me"}, "platform"),
        (
            f"{API}/runs/log-batch",
            {"run_id": RUN, "tags": [{"key": OWNER_TAG, "value": "me"}]},
            "platform",
        ),
        (f"{API}/runs/delete", {}, "run_id"),
        (f"{API}/runs/create", {}, "experiment_id"),
        (f"{API}/registered-models/create", {"name": "m"}, "admins"),
        (f"{API}/webhooks", {"name": "w"}, "admins"),
        ("/api/3.0/mlflow/traces", {}, "admins"),
        ("/gateway/chat/invocations", {}, "admins"),
    ],
)
def test_researchers_are_refused(path: str, body: dict, why: str) -> None:
    decision = decide(RESEARCHER, "POST", path, body=body)
    assert not decision.allowed
    assert why in decision.reason


@pytest.mark.parametrize(
    "path", [f"{API}/experiments/create", f"{API}/runs/create", f"{API}/runs/log-metric"]
)
def test_a_body_that_is_not_json_is_refused_to_researchers(path: str) -> None:
    # the proxy reads the body whatever its Content-Type; None means it is not a JSON object
    decision = decide(RESEARCHER, "POST", path, body=None)
    assert not decision.allowed and "JSON" in decision.reason
    assert decide(ADMIN, "POST", path, body=None).allowed


@pytest.mark.parametrize(
    "tail",
    [
        f"7/{RUN}/artifacts/../../{RUN[::-1]}/artifacts/a",
        f"7/{RUN}/artifacts/%2e%2e/%2E%2E/{RUN[::-1]}/artifacts/a",
        f"7/{RUN}/artifacts/./a",
    ],
)
def test_artifact_paths_cannot_climb_out(tail: str) -> None:
    decision = decide(RESEARCHER, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{tail}")
    assert not decision.allowed and "climb" in decision.reason


def test_artifacts_outside_runs_are_for_admins() -> None:
    path = "/api/2.0/mlflow-artifacts/artifacts/7/somewhere/else"
    assert not decide(RESEARCHER, "PUT", path).allowed
    assert decide(ADMIN, "PUT", path).allowed


@pytest.mark.parametrize(
    ("who", "owner", "expected"),
    [
        (RESEARCHER, "alice", True),
        (RESEARCHER, "bob", False),
        (RESEARCHER, None, False),  # platform jobs' runs carry no owner
        (ADMIN, "bob", True),
        (ADMIN, None, True),
    ],
)
def test_ownership(who: Principal, owner: str | None, expected: bool) -> None:
    assert is_owner(who, owner) is expected


def test_stamping_replaces_caller_supplied_owner_tags() -> None:
    body = {
        "experiment_id": "1",
        "user_id": "mallory",
        "tags": [{"key": OWNER_TAG, "value": "mallory"}, {"key": "note", "value": "n"}],
    }
    stamped = stamp_body("run", body, "alice")
    assert stamped["user_id"] == "alice"
    tags = {t["key"]: t["value"] for t in stamped["tags"]}
    assert tags == {"note": "n", OWNER_TAG: "alice", "mlflow.user": "alice"}
    assert body["user_id"] == "mallory"  # the original is not modified


def test_principal_from_a_hub_model() -> None:
    model = {"name": "alice", "scopes": ["custom:mlflow:write", "custom:mlflow:read"]}
    assert Principal.from_hub_model(model).level == "write"
    assert Principal.from_hub_model({"name": "x", "scopes": []}).level is None
