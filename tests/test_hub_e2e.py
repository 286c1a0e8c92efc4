"""The shared hub end to end: JupyterHub, configurable-http-proxy, MLflow and Chromium, real.

One hub serves the whole module (started by ``gai_research.hub.launch`` as ``gai hub``
does) on free loopback ports, over a hard-linked copy of the pseudonymized test catalog.
As root it runs in production mode: the home is hardened, the researcher is an OS
account, and their server runs as that account, so the file-permission boundaries are
tested for real. Without root it runs the demo spawner and the permission checks skip.

Start-up times (hub, MLflow, user server, first kernel run) are written to
``test-artifacts/hub/timings.json``; screenshots to ``test-artifacts/hub/*.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from gai_research.config import Settings, load_settings
from gai_research.hub.configure import proxy_command
from gai_research.hub.launch import hub_environment
from gai_research.hub.state import hub_paths
from tests.conftest import free_ports, require_tool
from tests.data_fixtures import pseudonymized_catalog
from tests.test_hub_support import (
    PREFIX,
    Browser,
    _closed_folders,
    execute,
    interpreter_view,
    is_root,
    kernel_probe_code,
    link_home,
    login,
    mlflow_probe_code,
    new_token,
    os_accounts,
    public_tempdir,
    signup,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "hub"
ADMIN = "gai-admin"
RESEARCHER = f"{PREFIX}alice"
LEAD = f"{PREFIX}lee"
PENDING = f"{PREFIX}pat"
RESEARCH_GROUP = f"{PREFIX}research"
STEWARD_GROUP = f"{PREFIX}steward"
MEM_LIMIT_GIB = 6


@dataclass
class Hub:
    settings: Settings
    url: str  # http://127.0.0.1:PORT/
    admin_password: str
    production: bool  # servers run as OS accounts on a hardened home
    snapshot: str
    env: dict[str, str]  # the settings as GAI_* variables, for `gai` commands
    welcome: str  # what `gai hub --demo` printed
    timings: dict[str, float] = field(default_factory=dict)

    def get(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        return self.call("GET", path, token, **kwargs)

    def call(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"token {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)


@dataclass
class Account:
    name: str
    password: str
    session: requests.Session
    token: str


def gai(env: dict[str, str], *args: str, wrapper: tuple[str, ...] = ()):
    """Run the ``gai`` command as a user would (a subprocess, its own settings)."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "gai_research", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """``gai hub --demo --detach`` on free ports over a copy of the catalog; stopped after."""
    if not Path(proxy_command(load_settings())).exists():
        require_tool("configurable-http-proxy")
    fixture = pseudonymized_catalog(tmp_path_factory)
    production = is_root()
    wrapper = interpreter_view() if production else None
    if production and wrapper is None and not _python_is_public():
        pytest.skip("other accounts cannot run this Python interpreter")
    with contextlib.ExitStack() as stack:
        root = public_tempdir("gai-hub-e2e-")
        stack.callback(shutil.rmtree, root, True)
        home = link_home(fixture.home, root / "home")
        ports = free_ports(4)
        settings = load_settings(
            home=home,
            key_file=home / "secrets" / "pseudonym.key",
            hub={
                "port": ports[0],
                "hub_port": ports[1],
                "proxy_api_port": ports[2],
                "mlflow_port": ports[3],
                "mem_limit": f"{MEM_LIMIT_GIB}G",
                "spawner": "local-users" if production else "demo",
                "users_dir": root / "users" if production else None,
                "research_group": RESEARCH_GROUP,
                "steward_group": STEWARD_GROUP,
            },
        )
        if production:
            stack.enter_context(
                os_accounts({RESEARCHER: [RESEARCH_GROUP]}, [RESEARCH_GROUP, STEWARD_GROUP], root)
            )
            hardened = gai(_env(settings), "hub", "harden")
            assert hardened.returncode == 0, hardened.stderr
        env = _env(settings)
        stack.callback(_keep_log, hub_paths(settings).log)
        started = time.monotonic()
        stack.callback(gai, env, "hub", "stop")
        done = gai(env, "hub", "--demo", "--detach", wrapper=wrapper or ())
        assert done.returncode == 0, done.stdout + done.stderr
        password = re.search(rf"admin {ADMIN}: password (\S+)", done.stdout)
        assert password, done.stdout
        hub = Hub(
            settings=settings,
            url=settings.hub.local_url,
            admin_password=password.group(1),
            production=production,
            snapshot=fixture.snapshot,
            env=env,
            welcome=done.stdout,
        )
        seconds = re.search(r"started in ([0-9.]+) s", done.stdout)
        hub.timings["hub_api_s"] = float(seconds.group(1)) if seconds else -1.0
        hub.timings["_launched"] = started
        yield hub
        _write_timings(hub.timings)


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_")}
    return {
        **env,
        **{k: v for k, v in hub_environment(settings, []).items() if k.startswith("GAI_")},
    }


def _python_is_public() -> bool:
    import sys

    paths = (Path(sys.base_prefix), Path(sys.prefix), Path(__file__).resolve().parents[1])
    return not any(_closed_folders(path) for path in paths)


def _keep_log(log: Path) -> None:
    if log.is_file():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "jupyterhub.log")


def _write_timings(timings: dict[str, float]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in timings.items() if not k.startswith("_")}
    (ARTIFACTS / "timings.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nhub start-up times (s): {data}")


def approve(hub: Hub, admin: Account, name: str) -> None:
    response = admin.session.get(f"{hub.url}hub/authorize/{name}", allow_redirects=False)
    assert response.status_code == 302


@pytest.fixture(scope="module")
def admin(hub: Hub) -> Account:
    session, response = login(hub.url, ADMIN, hub.admin_password)
    assert response.status_code == 302, response.text[-300:]
    return Account(ADMIN, hub.admin_password, session, new_token(hub.url, session, ADMIN))


def _approved(hub: Hub, admin: Account, name: str) -> Account:
    password = secrets.token_urlsafe(16)
    assert "sent to the admin" in signup(hub.url, name, password)
    approve(hub, admin, name)
    session, response = login(hub.url, name, password)
    assert response.status_code == 302, response.text[-300:]
    return Account(name, password, session, new_token(hub.url, session, name))


@pytest.fixture(scope="module")
def researcher(hub: Hub, admin: Account) -> Account:
    return _approved(hub, admin, RESEARCHER)


@pytest.fixture(scope="module")
def server(hub: Hub, researcher: Account) -> str:
    """The researcher's running server: its URL."""
    started = time.monotonic()
    response = hub.call("POST", f"hub/api/users/{RESEARCHER}/server", researcher.token)
    assert response.status_code in (201, 202), response.text
    deadline = started + 120
    while time.monotonic() < deadline:
        model = hub.get(f"hub/api/users/{RESEARCHER}", researcher.token).json()
        if (model.get("servers", {}).get("") or {}).get("ready"):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the researcher's server did not become ready in 120 s")
    hub.timings["user_server_s"] = round(time.monotonic() - started, 2)
    return f"{hub.url}user/{RESEARCHER}/"


@pytest.fixture(scope="module")
def kernel(hub: Hub, researcher: Account, server: str) -> str:
    response = requests.post(
        server + "api/kernels",
        json={"name": "gai-research"},
        headers={"Authorization": f"token {researcher.token}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def mlflow_up(hub: Hub) -> None:
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if hub.get("services/mlflow/health").status_code == 200:
                hub.timings["mlflow_s"] = round(time.monotonic() - hub.timings["_launched"], 2)
                return
        time.sleep(0.5)
    pytest.fail("MLflow did not answer through the hub within 150 s of the hub's launch")


@pytest.fixture(scope="module")
def kernel_report(hub: Hub, researcher: Account, server: str, kernel: str) -> dict:
    started = time.monotonic()
    out, error = execute(server, kernel, researcher.token, kernel_probe_code(MEM_LIMIT_GIB + 1))
    assert error is None, error
    hub.timings["first_kernel_run_s"] = round(time.monotonic() - started, 2)
    return json.loads(out.strip().splitlines()[-1])


# --- the hub ------------------------------------------------------------------------------------
def test_demo_prints_the_url_and_a_generated_password_once(hub: Hub) -> None:
    assert hub.url in hub.welcome and "hub/signup" in hub.welcome
    assert len(hub.admin_password) >= 20
    stored = hub_paths(hub.settings).admin_password(ADMIN)
    assert stored.read_text().strip() == hub.admin_password
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    again = gai(hub.env, "hub", "--demo", "--detach")  # `make demo` twice
    assert again.returncode == 0 and "already running" in again.stdout
    assert hub.admin_password not in again.stdout + again.stderr  # shown once only


def test_hub_status_says_up_and_the_boundaries_hold(hub: Hub) -> None:
    status = gai(hub.env, "hub", "status")
    assert status.returncode == 0, status.stdout
    assert "up (JupyterHub" in status.stdout
    assert "the boundaries hold" in status.stdout
    assert hub.get("hub/api/").json()["version"] in status.stdout


def test_services_hold_the_least_privilege(hub: Hub, admin: Account) -> None:
    services = hub.get("hub/api/services", admin.token).json()
    assert services["idle-culler"]["roles"] == ["idle-culler"]
    assert services["mlflow"]["roles"] == []  # it only identifies users
    assert services["mlflow"]["prefix"] == "/services/mlflow/"


def test_an_unapproved_account_cannot_log_in(hub: Hub, admin: Account) -> None:
    password = secrets.token_urlsafe(16)
    assert "sent to the admin" in signup(hub.url, PENDING, password)
    session, response = login(hub.url, PENDING, password)
    assert response.status_code == 200  # the form again, not a redirect into the hub
    assert "not been approved" in response.text
    assert "jupyterhub-hub-login" not in session.cookies


def test_approval_from_another_site_is_refused(hub: Hub, admin: Account) -> None:
    response = admin.session.get(
        f"{hub.url}hub/authorize/{PENDING}",
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "password",
    ["Short-9", "1qaz2wsx3edc"],  # too short; long enough but on the common-password list
)
def test_weak_passwords_are_refused_at_sign_up(hub: Hub, password: str) -> None:
    name = f"{PREFIX}weak{len(password)}"
    assert "alert-danger" in signup(hub.url, name, password)
    assert login(hub.url, name, password)[1].status_code == 200  # not signed in


def test_an_approved_researcher_logs_in_and_joins_researchers(
    hub: Hub, researcher: Account
) -> None:
    me = hub.get("hub/api/user", researcher.token).json()
    assert me["name"] == RESEARCHER
    assert me["groups"] == ["researchers"]
    assert "custom:mlflow:write" in me["scopes"]
    assert not any(s.startswith(("admin", "list:users")) for s in me["scopes"])


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", "hub/api/users", None, 403),
        ("POST", "hub/api/users", {"usernames": ["intruder"]}, 403),
        ("DELETE", f"hub/api/users/{ADMIN}", None, 403),
        ("POST", "hub/api/groups/leads/users", {"users": [RESEARCHER]}, 403),
        ("GET", "hub/api/proxy", None, 403),
        # another user's resources: 404, so that their existence is not revealed either
        ("POST", f"hub/api/users/{ADMIN}/server", None, 404),
        ("GET", f"hub/api/users/{ADMIN}/tokens", None, 404),
    ],
)
def test_the_admin_api_is_closed_to_researchers(
    hub: Hub, researcher: Account, method: str, path: str, body, code: int
) -> None:
    assert hub.call(method, path, researcher.token, json=body).status_code == code


@pytest.mark.parametrize("page", ["hub/admin", "hub/authorize", f"hub/authorize/{PENDING}"])
def test_admin_pages_are_closed_to_researchers(hub: Hub, researcher: Account, page: str) -> None:
    response = researcher.session.get(hub.url + page, allow_redirects=False, timeout=30)
    assert response.status_code == 403


# --- the researcher's server and kernel ------------------------------------------------------
def test_server_has_the_gai_kernel_and_the_examples(
    hub: Hub, researcher: Account, server: str
) -> None:
    auth = {"Authorization": f"token {researcher.token}"}
    specs = requests.get(server + "api/kernelspecs", headers=auth, timeout=30).json()
    assert specs["default"] == "gai-research"
    listing = requests.get(server + "api/contents/examples", headers=auth, timeout=30).json()
    names = {item["name"] for item in listing["content"]}
    assert "01_explore_store.ipynb" in names
    lab = requests.get(server + "lab", headers=auth, timeout=30).text
    assert '"news": {"disabled": true}' in lab  # no internet look-ups from JupyterLab


def test_kernel_opens_the_catalog_snapshot_and_loads_a_series(
    hub: Hub, kernel_report: dict
) -> None:
    assert kernel_report["gai_home"] == str(hub.settings.home)
    assert kernel_report["snapshot"] == hub.snapshot
    assert kernel_report["n_series"] > 0
    assert len(kernel_report["shape"]) == 3 and min(kernel_report["shape"]) > 1
    assert kernel_report["parquet"] == "PAR1"


def test_kernel_is_refused_identified_data_and_cannot_write_the_store(
    hub: Hub, kernel_report: dict
) -> None:
    if not hub.production:
        pytest.skip("demo mode: servers run as the hub's account (needs root for OS accounts)")
    assert kernel_report["uid"] == pwd.getpwnam(RESEARCHER).pw_uid
    for name in ("secrets", "vault", "spool", "quarantine", "audit", "key"):
        assert kernel_report[name] == "refused", name
    assert kernel_report["store_write"] == kernel_report["catalog_write"] == "refused"


def test_kernel_memory_is_capped(kernel_report: dict) -> None:
    assert kernel_report["alloc"] == "MemoryError"


@pytest.fixture(scope="module")
def notebook_run(hub: Hub, researcher: Account, server: str, kernel: str, mlflow_up: None) -> dict:
    out, error = execute(server, kernel, researcher.token, mlflow_probe_code(RESEARCHER))
    assert error is None, error
    return json.loads(out.strip().splitlines()[-1])


def test_a_notebook_logs_to_mlflow_through_the_hub(
    hub: Hub, researcher: Account, notebook_run: dict
) -> None:
    assert notebook_run["uri"] == f"{hub.url}services/mlflow"
    assert notebook_run["user"] == RESEARCHER
    run = hub.get(
        "services/mlflow/api/2.0/mlflow/runs/get",
        researcher.token,
        params={"run_id": notebook_run["run"]},
    ).json()["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["gai.owner"] == RESEARCHER
    assert run["data"]["metrics"][0]["value"] == 0.91
    artifact = hub.get(
        f"services/mlflow/api/2.0/mlflow-artifacts/artifacts/{notebook_run['experiment']}/"
        f"{notebook_run['run']}/artifacts/note.txt",
        researcher.token,
    )
    assert artifact.text == "from the hub"


# --- MLflow behind the hub's login -------------------------------------------------------------
def test_mlflow_without_a_login_sends_you_to_the_hub_login(hub: Hub, mlflow_up: None) -> None:
    page = requests.get(hub.url + "services/mlflow/", timeout=30)
    assert page.url.startswith(hub.url + "hub/login")
    api = requests.post(hub.url + "services/mlflow/api/2.0/mlflow/experiments/search", json={})
    assert api.status_code == 401
    assert api.json()["error_code"] == "UNAUTHENTICATED"


def test_mlflow_with_the_hub_login(hub: Hub, researcher: Account, mlflow_up: None) -> None:
    page = researcher.session.get(hub.url + "services/mlflow/", timeout=30)
    if page.status_code == 503:
        # configurable-http-proxy now and then answers 503 "socket hang up" when it reuses a
        # kept-alive connection the service has just reset (seen once in a CI-like run);
        # this test is about the login, so one more try. Noted for follow-up.
        page = researcher.session.get(hub.url + "services/mlflow/", timeout=30)
    assert page.status_code == 200
    assert "<title>MLflow</title>" in page.text
    search = hub.url + "services/mlflow/ajax-api/2.0/mlflow/experiments/search"
    same_site = researcher.session.post(
        search, json={"max_results": 10}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same_site.status_code == 200
    cross_site = researcher.session.post(
        search, json={"max_results": 10}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 401  # a cookie alone does not authorize a cross-site write


def _mlflow(hub: Hub, account: Account, endpoint: str, body: dict) -> requests.Response:
    return hub.call("POST", f"services/mlflow/api/2.0/mlflow/{endpoint}", account.token, json=body)


@pytest.fixture(scope="module")
def admin_run(hub: Hub, admin: Account, mlflow_up: None) -> str:
    experiment = _mlflow(hub, admin, "experiments/create", {"name": "gai-admin-reference"})
    assert experiment.status_code == 200, experiment.text
    run = _mlflow(hub, admin, "runs/create", {"experiment_id": experiment.json()["experiment_id"]})
    assert run.status_code == 200, run.text
    return run.json()["run"]["info"]["run_id"]


def test_researchers_cannot_change_or_delete_others_runs(
    hub: Hub, researcher: Account, admin_run: str, notebook_run: dict
) -> None:
    refused = _mlflow(hub, researcher, "runs/delete", {"run_id": admin_run})
    assert refused.status_code == 403
    assert ADMIN in refused.json()["message"]
    metric = {"run_id": admin_run, "key": "auc", "value": 0.1, "timestamp": 0}
    assert _mlflow(hub, researcher, "runs/log-metric", metric).status_code == 403
    assert (
        _mlflow(hub, researcher, "runs/delete", {"run_id": notebook_run["run"]}).status_code == 200
    )
    assert (
        _mlflow(hub, researcher, "runs/restore", {"run_id": notebook_run["run"]}).status_code == 200
    )


def test_leads_read_every_experiment_and_change_nothing(
    hub: Hub, admin: Account, notebook_run: dict, admin_run: str
) -> None:
    lead = _approved(hub, admin, LEAD)
    moved = hub.call("POST", "hub/api/groups/leads/users", admin.token, json={"users": [LEAD]})
    assert moved.status_code == 200
    left = hub.call(
        "DELETE", "hub/api/groups/researchers/users", admin.token, json={"users": [LEAD]}
    )
    assert left.status_code == 200
    lead.token = new_token(hub.url, lead.session, LEAD)  # a token made after the move
    found = _mlflow(hub, lead, "experiments/search", {"max_results": 50})
    assert found.status_code == 200
    names = {e["name"] for e in found.json()["experiments"]}
    assert {f"{RESEARCHER}-sandbox", "gai-admin-reference"} <= names
    assert _mlflow(hub, lead, "experiments/create", {"name": "lead-notes"}).status_code == 403
    assert _mlflow(hub, lead, "runs/delete", {"run_id": notebook_run["run"]}).status_code == 403


# --- a browser ---------------------------------------------------------------------------------
def test_browser_signs_in_and_opens_jupyterlab_and_mlflow(
    hub: Hub, researcher: Account, server: str, notebook_run: dict, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")

    async def scenario() -> dict[str, Path]:
        shots: dict[str, Path] = {}
        with Browser(chromium, tmp_path / "profile") as browser:
            await browser.connect()
            await browser.navigate(hub.url + "hub/login")
            await browser.wait_for("document.getElementById('username_input')")
            shots["login"] = await browser.screenshot(ARTIFACTS / "login.png")
            await browser.evaluate(
                f"document.getElementById('username_input').value = {json.dumps(RESEARCHER)};"
                f"document.getElementById('password_input').value = "
                f"{json.dumps(researcher.password)};"
                "document.getElementById('username_input').form.submit(); true"
            )
            await browser.wait_for("location.pathname.includes('/lab')", 90)
            await browser.wait_for(
                "document.querySelector('.jp-LabShell') && "
                "document.querySelector('.jp-Launcher') && "
                "document.querySelector('.jp-DirListing-item')",
                90,
            )
            await asyncio.sleep(0.5)  # let the last layout settle
            shots["jupyterlab"] = await browser.screenshot(ARTIFACTS / "jupyterlab.png")
            await browser.navigate(hub.url + "services/mlflow/")
            await browser.wait_for(
                f"document.body.innerText.includes({json.dumps(RESEARCHER + '-sandbox')})", 90
            )
            await asyncio.sleep(0.5)
            shots["mlflow"] = await browser.screenshot(ARTIFACTS / "mlflow.png")
        return shots

    shots = asyncio.run(scenario())
    for name, path in shots.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size > 5_000, name
