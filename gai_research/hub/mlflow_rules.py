"""Who may do what to MLflow: the method/path rules the hub's MLflow proxy enforces.

MLflow's own server has no notion of our users, so the proxy in front of it decides
every request from the hub identity (name and ``custom:mlflow:*`` scopes) and the
request's method, path and JSON body. Pure functions, no I/O: the proxy does the
look-ups a decision asks for (who owns this run?) and the body rewriting.

The rules (``docs/hub.md`` has the same table):

1. Reading is open to every platform role (``custom:mlflow:read``; researchers and
   admins hold it through their wider scopes): any GET or HEAD, and the POST endpoints
   that only search (``runs/search``, ``experiments/search``, ``logged-models/search``,
   GraphQL, ...). Leads and stewards can do nothing else.
2. Researchers (``custom:mlflow:write``) may
   - create an experiment: the proxy stamps the tag ``gai.owner`` = their name (a custom
     ``artifact_location`` is refused: it could point into someone else's artifacts);
   - create a run in an experiment they own: the proxy stamps ``gai.owner``,
     ``mlflow.user`` and ``user_id``;
   - change a run they own (log metrics, params, tags, inputs, outputs, models, upload
     or delete its artifacts, end, delete, restore it);
   - change an experiment they own (rename, tags, delete, restore) and the logged
     models in it;
   - never set or delete the tags ``gai.owner`` or ``mlflow.user``.
3. Admins (``custom:mlflow:admin``) may do anything.
4. Everything else that writes (model registry, traces, prompts, webhooks, the AI
   gateway, datasets, scorers, workspaces ...) is for admins only: unknown means no.

Ownership is the ``gai.owner`` tag, which only the proxy writes. Runs logged straight to
the store by platform jobs (the evaluation runner) have none, so only admins change them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

__all__ = [
    "OWNER_TAG",
    "PROTECTED_TAGS",
    "Decision",
    "Principal",
    "decide",
    "is_owner",
    "stamp_body",
]

OWNER_TAG = "gai.owner"
PROTECTED_TAGS = frozenset({OWNER_TAG, "mlflow.user"})

Level = Literal["admin", "write", "read"]
Kind = Literal["run", "experiment", "logged-model"]

_API = re.compile(r"^/(?:ajax-)?api/[23]\.0/mlflow/(?P<rest>.+?)/?$")
_ARTIFACTS = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/(?:artifacts|mpu/(?:create|complete|abort))/"
    r"(?P<path>.*)$"
)
_RUN_ARTIFACT = re.compile(r"^(?P<exp>[^/]+)/(?P<run>[0-9a-f]{32})(?:/|$)")
_MODEL_ARTIFACT = re.compile(r"^(?P<exp>[^/]+)/models/(?P<model>[^/]+)(?:/|$)")
_LOGGED_MODEL = re.compile(r"^logged-models/(?P<model>[^/]+)(?:/params|/tags(?:/[^/]+)?)?$")

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST endpoints that only read
_READ_POSTS = frozenset(
    {
        "runs/search",
        "experiments/search",
        "experiments/search-datasets",
        "logged-models/search",
        "registered-models/get-latest-versions",
        "model-versions/search",
        "traces/search",
        "traces/batchGetInfos",
        "traces/metrics",
        "traces/calculate-filter-correlation",
        "datasets/search",
        "issues/search",
        "prompt-optimization/jobs/search",
        "artifacts/presigned-download-url",
        "ui-telemetry",
    }
)
# non-API pages that accept POST but only read (MLflow's GraphQL schema has only searches)
_READ_POST_PATHS = frozenset({"/graphql"})
# changes to one run: the run id is in the body (run_id, or the older run_uuid)
_RUN_WRITES = frozenset(
    {
        "runs/log-metric",
        "runs/log-parameter",
        "runs/set-tag",
        "runs/delete-tag",
        "runs/log-batch",
        "runs/log-model",
        "runs/log-inputs",
        "runs/outputs",
        "runs/update",
        "runs/delete",
        "runs/restore",
    }
)
_EXPERIMENT_WRITES = frozenset(
    {
        "experiments/update",
        "experiments/delete",
        "experiments/restore",
        "experiments/set-experiment-tag",
        "experiments/delete-experiment-tag",
    }
)


@dataclass(frozen=True)
class Principal:
    """A hub identity as MLflow's proxy sees it: the name and the token's scopes."""

    name: str
    scopes: frozenset[str]

    @classmethod
    def from_hub_model(cls, model: Mapping[str, Any]) -> Principal:
        """From the user model ``HubAuth`` returns (``name``, ``scopes``)."""
        return cls(name=str(model["name"]), scopes=frozenset(model.get("scopes") or ()))

    @property
    def level(self) -> Level | None:
        for level in ("admin", "write", "read"):
            if f"custom:mlflow:{level}" in self.scopes:
                return level  # type: ignore[return-value]
        return None


@dataclass(frozen=True)
class Decision:
    """The verdict on one request.

    ``allowed`` with ``owned`` set means: allowed only if the principal owns that object
    (the proxy looks the owner up). ``experiment`` (artifact paths) must then also be
    the object's experiment. ``stamp`` asks the proxy to write the owner into the body.
    """

    allowed: bool
    reason: str
    owned: tuple[Kind, str] | None = None
    experiment: str | None = None
    stamp: Literal["experiment", "run"] | None = None


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def _tags_in(body: Mapping[str, Any]) -> list[str]:
    keys = [str(body.get("key", ""))] if "key" in body else []
    keys += [str(t.get("key", "")) for t in body.get("tags") or () if isinstance(t, Mapping)]
    return keys


def decide(
    principal: Principal,
    method: str,
    path: str,
    query: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide one request; ``path`` is relative to the service (``/api/2.0/mlflow/...``).

    ``body`` is the request's JSON object, ``{}`` for none, and None for a body that is
    not a JSON object (a write that needs its body to be judged is then refused).
    """
    method = method.upper()
    query = query or {}
    level = principal.level
    if level is None:
        return _deny("no MLflow role: ask an admin to add you to researchers, leads or stewards")
    api = _API.match(path)
    rest = api.group("rest") if api else None
    searching = method == "POST" and (path in _READ_POST_PATHS or rest in _READ_POSTS)
    if method in _READ_METHODS or searching:
        return Decision(True, "read")
    if level == "admin":
        stamp = {"experiments/create": "experiment", "runs/create": "run"}.get(rest or "")
        return Decision(True, "admin", stamp=stamp)  # type: ignore[arg-type]
    if level == "read":
        return _deny("read-only MLflow role (leads and stewards): nothing can be changed")
    artifacts = _ARTIFACTS.match(path)
    if artifacts:  # file contents, judged by their path
        return _artifact(artifacts.group("path"))
    if rest == "upload-artifact":  # the UI's upload form names the run in the query
        run = str(query.get("run_uuid") or query.get("run_id") or "")
        return Decision(True, rest, owned=("run", run)) if run else _deny("upload without run")
    if not isinstance(body, Mapping):
        return _deny("the request body must be one JSON object")
    return _researcher(method, path, rest, body)


def _researcher(method: str, path: str, rest: str | None, body: Mapping[str, Any]) -> Decision:
    if PROTECTED_TAGS.intersection(_tags_in(body)) and rest != "runs/create":
        return _deny(f"the tags {sorted(PROTECTED_TAGS)} are set by the platform only")
    if rest == "experiments/create":
        if body.get("artifact_location"):
            return _deny("a custom artifact_location is for admins only")
        return Decision(True, "new experiment", stamp="experiment")
    if rest == "runs/create":
        experiment = str(body.get("experiment_id") or "")
        if not experiment:
            return _deny("runs/create without experiment_id")
        return Decision(True, "new run", owned=("experiment", experiment), stamp="run")
    if rest in _RUN_WRITES:
        run = str(body.get("run_id") or body.get("run_uuid") or "")
        return Decision(True, rest, owned=("run", run)) if run else _deny(f"{rest} without run_id")
    if rest in _EXPERIMENT_WRITES:
        experiment = str(body.get("experiment_id") or "")
        if not experiment:
            return _deny(f"{rest} without experiment_id")
        return Decision(True, rest, owned=("experiment", experiment))
    if rest == "logged-models" and method == "POST":
        experiment = str(body.get("experiment_id") or "")
        if not experiment:
            return _deny("logged-models without experiment_id")
        return Decision(True, "new logged model", owned=("experiment", experiment))
    logged = _LOGGED_MODEL.match(rest or "")
    if logged and method in ("POST", "PATCH", "DELETE"):
        return Decision(True, "logged model", owned=("logged-model", logged.group("model")))
    return _deny(f"{method} {path} is for MLflow admins only")


def _artifact(relative: str) -> Decision:
    relative = unquote(relative)  # judge the path MLflow will see
    if any(part in (".", "..") for part in relative.split("/")) or "\\" in relative:
        return _deny("artifact paths may not climb out of their folder")
    run = _RUN_ARTIFACT.match(relative)
    if run:
        return Decision(
            True, "run artifact", owned=("run", run.group("run")), experiment=run.group("exp")
        )
    model = _MODEL_ARTIFACT.match(relative)
    if model:
        return Decision(
            True,
            "model artifact",
            owned=("logged-model", model.group("model")),
            experiment=model.group("exp"),
        )
    return _deny("artifacts outside a run or logged model are for admins only")


def is_owner(principal: Principal, owner: str | None) -> bool:
    """Whether ``principal`` may change an object whose ``gai.owner`` tag is ``owner``."""
    return principal.level == "admin" or (owner is not None and owner == principal.name)


def stamp_body(kind: str, body: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """The body of ``experiments/create`` or ``runs/create`` with the owner written in.

    Caller-supplied protected tags are dropped: ownership is the proxy's to say.
    """
    stamped = dict(body)
    tags = [
        t
        for t in body.get("tags") or ()
        if isinstance(t, Mapping) and t.get("key") not in PROTECTED_TAGS
    ]
    tags.append({"key": OWNER_TAG, "value": owner})
    if kind == "run":
        tags.append({"key": "mlflow.user", "value": owner})
        stamped["user_id"] = owner
    stamped["tags"] = tags
    return stamped
