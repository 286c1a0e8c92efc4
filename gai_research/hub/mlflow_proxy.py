"""MLflow behind the hub's login: a small HubOAuth-authenticated reverse proxy (tornado).

The MLflow server listens only on a unix socket inside the hub's private folder, so
this proxy is the one way in. For every request it

1. identifies the user with the hub (the OAuth cookie a browser gets after the hub's
   login, or a hub token in ``Authorization: token|bearer``, which is how notebooks'
   MLflow clients authenticate with ``MLFLOW_TRACKING_TOKEN``);
2. decides by :func:`gai_research.hub.mlflow_rules.decide`, looking up owners
   (the ``gai.owner`` tag) where the decision needs one, and writing the owner into the
   body of ``experiments/create`` and ``runs/create``;
3. forwards the request without the hub's cookies or token, streaming both ways.

Without a login, a page is redirected to the hub's login and an API call gets 401
(JSON, as MLflow's clients expect). Cookie-authenticated writes from a browser must come
from the same origin (``Sec-Fetch-Site``/``Origin``) or carry the hub's XSRF token.
``/health`` answers without a login (it says only whether MLflow is up).
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
import time
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import httpclient, web
from tornado.httputil import HTTPHeaders, url_concat
from tornado.netutil import Resolver

from gai_research.hub.mlflow_rules import Decision, Principal, decide, is_owner, stamp_body

__all__ = ["OwnerLookup", "UnixResolver", "make_app"]

log = logging.getLogger(__name__)

_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length"}
# never passed to MLflow: the hub's credentials, and the browser origin we checked ourselves
_PRIVATE = frozenset({"cookie", "authorization", "origin"})
_UPSTREAM_HOST = "localhost"  # what MLflow's --allowed-hosts accepts
_MAX_JSON = 16 * 1024 * 1024
_MAX_BODY = 10 * 1024**3
_SPOOL = 8 * 1024 * 1024
_OWNER_TTL_S = 60.0


class UnixResolver(Resolver):
    """Resolve every host to one unix socket (tornado's HTTP client then speaks over it)."""

    def initialize(self, socket_path: str) -> None:  # type: ignore[override]
        self.socket_path = socket_path

    async def resolve(self, host: str, port: int, family: int = socket.AF_UNSPEC):  # type: ignore[override]
        return [(socket.AF_UNIX, self.socket_path)]


class OwnerLookup:
    """Who owns a run, an experiment or a logged model (``gai.owner``), cached briefly."""

    def __init__(self, client: httpclient.AsyncHTTPClient, base: str) -> None:
        self.client = client
        self.base = base  # http://localhost/services/mlflow
        self._cache: dict[tuple[str, str], tuple[float, str | None, str | None]] = {}

    async def _get(self, path: str, **params: str) -> dict[str, Any] | None:
        response = await self.client.fetch(
            url_concat(f"{self.base}{path}", params),
            headers={"Host": _UPSTREAM_HOST},
            raise_error=False,
        )
        if response.code == 200:
            return json.loads(response.body)
        if response.code in (400, 404):
            return None
        raise web.HTTPError(502, f"MLflow answered {response.code} to an owner look-up")

    @staticmethod
    def _owner_of(tags: list[dict[str, str]] | None) -> str | None:
        for tag in tags or ():
            if tag.get("key") == "gai.owner":
                return tag.get("value")
        return None

    async def owner(self, kind: str, key: str) -> tuple[bool, str | None, str | None]:
        """``(exists, owner, experiment_id)`` of one object."""
        cached = self._cache.get((kind, key))
        if cached and cached[0] > time.monotonic():
            return True, cached[1], cached[2]
        owner = experiment = None
        if kind == "run":
            data = await self._get("/api/2.0/mlflow/runs/get", run_id=key)
            if data is None:
                return False, None, None
            run = data.get("run", {})
            owner = self._owner_of(run.get("data", {}).get("tags"))
            experiment = run.get("info", {}).get("experiment_id")
        elif kind == "experiment":
            data = await self._get("/api/2.0/mlflow/experiments/get", experiment_id=key)
            if data is None:
                return False, None, None
            owner = self._owner_of(data.get("experiment", {}).get("tags"))
            experiment = key
        else:  # a logged model belongs to whoever owns its experiment
            data = await self._get(f"/api/2.0/mlflow/logged-models/{key}")
            if data is None:
                return False, None, None
            experiment = data.get("model", {}).get("info", {}).get("experiment_id")
            found, owner, _ = await self.owner("experiment", str(experiment))
            if not found:
                return False, None, None
        self._cache[(kind, key)] = (time.monotonic() + _OWNER_TTL_S, owner, experiment)
        return True, owner, experiment


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/ajax-api/", "/graphql"))


@web.stream_request_body
class MlflowProxyHandler(HubOAuthenticated, web.RequestHandler):
    """Authenticate, authorize, forward (see the module's docstring)."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, prefix: str, client: httpclient.AsyncHTTPClient, owners: OwnerLookup):
        self.prefix = prefix.rstrip("/")
        self.client = client
        self.owners = owners
        self._body = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - closed in on_finish
        self._size = 0
        self._status_set = False

    # --- authentication ------------------------------------------------------------
    def check_xsrf_cookie(self) -> None:
        """Browsers' same-origin requests (the MLflow UI's own calls) need no XSRF token."""
        headers = self.request.headers
        if headers.get("Sec-Fetch-Site") == "same-origin":
            return
        origin = headers.get("Origin")
        proto = headers.get("X-Forwarded-Proto", self.request.protocol)
        if origin and origin == f"{proto}://{self.request.host}":
            return
        super().check_xsrf_cookie()

    @property
    def relative_path(self) -> str:
        return self.request.path[len(self.prefix) :] or "/"

    async def prepare(self) -> None:
        self.request.connection.set_max_body_size(_MAX_BODY)  # type: ignore[union-attr]
        if self.relative_path == "/health":
            return
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                model = self.check_hub_user(model)
            except UserNotAllowed:
                self._deny(403, "your account has no MLflow role: ask an admin for a group")
                return
        self._hub_auth_user_cache = model
        if not model:
            if _is_api(self.relative_path) or self.request.method != "GET":
                self._deny(401, "sign in to the hub, or send a hub token (MLFLOW_TRACKING_TOKEN)")
            else:
                self.redirect(self.get_login_url())
            return
        self.principal = Principal.from_hub_model(model)

    def _deny(self, code: int, message: str) -> None:
        error = "UNAUTHENTICATED" if code == 401 else "PERMISSION_DENIED"
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error_code": error, "message": message}))

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        self._body.write(chunk)

    # --- authorization -------------------------------------------------------------
    def _json_body(self) -> dict[str, Any] | None:
        """The body as a JSON object: ``{}`` when empty, None when it is not one.

        Read whatever the Content-Type says: the rules must see what MLflow will parse.
        """
        if self._size == 0:
            return {}
        if self._size > _MAX_JSON:
            return None
        self._body.seek(0)
        try:
            data = json.loads(self._body.read())
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def _authorize(self) -> tuple[Decision, dict[str, Any] | None] | None:
        body = self._json_body()
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        decision = decide(self.principal, self.request.method, self.relative_path, query, body)
        if decision.allowed and decision.owned:
            kind, key = decision.owned
            exists, owner, experiment = await self.owners.owner(kind, key)
            if not exists:
                self._deny(404, f"no {kind} {key}")
                return None
            if decision.experiment is not None and decision.experiment != experiment:
                decision = Decision(False, f"that path is not the {kind}'s experiment")
            elif not is_owner(self.principal, owner):
                reason = f"the {kind} {key} belongs to {owner or 'the platform'}"
                if decision.stamp == "run":
                    reason += "; log to an experiment of your own: mlflow.set_experiment('name')"
                decision = Decision(False, reason)
        log.info(
            "mlflow %s %s %s: %s (%s)",
            self.principal.name,
            self.request.method,
            self.relative_path,
            "allow" if decision.allowed else "deny",
            decision.reason,
        )
        if not decision.allowed:
            self._deny(403, decision.reason)
            return None
        return decision, body

    # --- forwarding ------------------------------------------------------------------
    async def _proxy(self) -> None:
        if self.relative_path == "/health":
            await self._health()
            return
        verdict = await self._authorize()
        if verdict is None:
            return
        decision, body = verdict
        headers = HTTPHeaders()
        for name, value in self.request.headers.get_all():
            if name.lower() not in _NOT_FORWARDED | _PRIVATE:
                headers.add(name, value)
        headers["Host"] = _UPSTREAM_HOST
        headers["X-Forwarded-User"] = self.principal.name
        payload: Any = None
        if decision.stamp and body is not None:
            payload = json.dumps(stamp_body(decision.stamp, body, self.principal.name)).encode()
        elif self._size:
            payload = self._stream_body
        elif self.request.method in ("POST", "PUT", "PATCH"):
            payload = b""
        if isinstance(payload, bytes):
            headers["Content-Length"] = str(len(payload))
        elif payload is not None:
            headers["Content-Length"] = str(self._size)
        request = httpclient.HTTPRequest(
            f"http://{_UPSTREAM_HOST}{self.request.uri}",
            method=self.request.method,
            headers=headers,
            body=payload if isinstance(payload, bytes) else None,
            body_producer=payload if callable(payload) else None,
            follow_redirects=False,
            decompress_response=False,
            header_callback=self._upstream_header,
            streaming_callback=self._upstream_chunk,
            request_timeout=3600,
            allow_nonstandard_methods=True,
        )
        try:
            await self.client.fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError):
            if not self._status_set:
                self.set_header("Retry-After", "5")
                self._deny(503, "MLflow is starting or down; try again in a few seconds")
                return
            raise
        if not self._finished:
            self.finish()

    async def _stream_body(self, write) -> None:
        self._body.seek(0)
        while chunk := self._body.read(1024 * 1024):
            await write(chunk)

    def _upstream_header(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            self.set_status(int(parts[1]), parts[2] if len(parts) > 2 else None)
            self._status_set = True
            self.clear_header("Content-Type")
            self.clear_header("Server")
            return
        if not line or ":" not in line:
            return
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() in _HOP_BY_HOP or name.lower() == "set-cookie":
            return
        if name.lower() == "location" and value.startswith(f"http://{_UPSTREAM_HOST}"):
            value = value[len(f"http://{_UPSTREAM_HOST}") :] or "/"
        self.add_header(name, value)

    def _upstream_chunk(self, chunk: bytes) -> None:
        if self.request.method != "HEAD":
            self.write(chunk)
            self.flush()

    async def _health(self) -> None:
        try:
            response = await self.client.fetch(
                f"http://{_UPSTREAM_HOST}{self.prefix}/health",
                headers={"Host": _UPSTREAM_HOST},
                raise_error=False,
                request_timeout=5,
            )
            up = response.code == 200
        except (OSError, httpclient.HTTPClientError):
            up = False
        self.set_status(200 if up else 503)
        self.finish("OK" if up else "MLflow is starting")

    get = head = post = put = patch = delete = options = _proxy  # type: ignore[assignment]

    def on_finish(self) -> None:
        self._body.close()


def make_app(prefix: str, socket_path: str, *, cookie_secret: bytes) -> web.Application:
    """The proxy application for the service mounted at ``prefix`` (``/services/mlflow/``)."""
    prefix = "/" + prefix.strip("/")
    client = httpclient.AsyncHTTPClient(
        force_instance=True,
        resolver=UnixResolver(socket_path=socket_path),
        max_clients=64,
        max_body_size=_MAX_BODY,
        max_buffer_size=64 * 1024 * 1024,
    )
    owners = OwnerLookup(client, f"http://{_UPSTREAM_HOST}{prefix}")
    kwargs = {"prefix": prefix, "client": client, "owners": owners}
    return web.Application(
        [
            (f"{prefix}/oauth_callback", HubOAuthCallbackHandler),
            (f"{prefix}(?:/.*)?", MlflowProxyHandler, kwargs),
        ],
        cookie_secret=cookie_secret,
    )
