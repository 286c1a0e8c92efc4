"""Helpers for the hub tests (no tests here): OS accounts, a hub home, kernels, a browser.

- :func:`os_accounts` creates OS groups and accounts for a test (root only) and removes
  them afterwards; names start with ``gaitest-`` so a leftover of a killed run is known
  to be ours and replaced.
- :func:`link_home` copies a platform home with hard links (fast; the copy's folders get
  their own modes, the files are shared read-only data).
- :func:`signup`, :func:`login`, :func:`new_token` use the hub's forms and API as a person.
- :func:`execute` runs code in a kernel through the Jupyter server's websocket API.
- :class:`Browser` drives headless Chromium over the DevTools protocol.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests

PREFIX = "gaitest-"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--window-size=1280,800",
)


def is_root() -> bool:
    return os.geteuid() == 0


def _exists(kind: str, name: str) -> bool:
    try:
        (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
    except KeyError:
        return False
    return True


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def os_accounts(
    users: dict[str, list[str]], groups: list[str], homes: Path
) -> Iterator[dict[str, int]]:
    """Create ``groups`` and ``users`` (name -> extra groups), homes under ``homes``.

    Yields name -> uid. Everything created is removed afterwards.
    """
    for name in [*users, *groups]:
        assert name.startswith(PREFIX), name
    made_users: list[str] = []
    made_groups: list[str] = []
    try:
        for user in users:  # leftovers of a killed run
            if _exists("user", user):
                _run("userdel", user)
        for group in groups:
            if not _exists("group", group):
                _run("groupadd", "--system", group)
                made_groups.append(group)
        for user, extra in users.items():
            argv = ["useradd", "--system", "--user-group", "--no-create-home"]
            argv += ["--home-dir", str(homes / user), "--shell", "/usr/sbin/nologin"]
            if extra:
                argv += ["--groups", ",".join(extra)]
            _run(*argv, user)
            made_users.append(user)
        yield {user: pwd.getpwnam(user).pw_uid for user in users}
    finally:
        for user in made_users:
            subprocess.run(["userdel", user], capture_output=True, check=False)
        for group in made_groups:
            subprocess.run(["groupdel", group], capture_output=True, check=False)


def _closed_folders(path: Path) -> list[Path]:
    """The folders on the way to ``path`` (itself included) that other accounts cannot enter."""
    path = path.resolve()
    chain = [p for p in reversed(path.parents) if p != Path("/")] + [path]
    return [p for p in chain if not p.stat().st_mode & 1]


def interpreter_view() -> tuple[str, ...] | None:
    """A command prefix under which other accounts can run this Python and import the
    checked-out package, or None if they already can (or it cannot be arranged).

    Some machines keep the interpreter in root's home (pyenv under /root, mode 0700), and a
    fresh clone may sit in a private temporary folder (``mktemp -d``, mode 0700). A
    production install has both in /usr or /opt; to test servers running as other accounts
    here, the hub runs in a private mount namespace where each closed folder is an empty,
    traversable tmpfs holding only the trees needed below it (bind-mounted back, with their
    own permissions). Nothing outside that process tree changes.
    """
    import sys

    needed = {Path(sys.base_prefix), Path(sys.prefix), Path(__file__).resolve().parents[1]}
    trees: dict[Path, set[Path]] = {}
    for path in needed:
        closed = _closed_folders(path)
        if not closed:
            continue
        top = closed[0]
        if len(closed) > 1 or top == path.resolve():
            return None  # more than one closed folder on the way: give up (the caller skips)
        trees.setdefault(top, set()).add(top / path.resolve().relative_to(top).parts[0])
    if not trees or shutil.which("unshare") is None:
        return None
    # per closed folder: bind its needed trees aside, cover it with a tmpfs, bind them back
    script = ["set -e"]
    args: list[str] = []
    for top, wanted in sorted(trees.items()):
        n = len(args)
        names = [f'"${{{n + 2 + i}}}"' for i in range(len(wanted))]
        args += [str(top), *map(str, sorted(wanted))]
        script.append(f'top="${{{n + 1}}}"; d=$(mktemp -d)')
        for i, name in enumerate(names):
            script.append(f'mkdir "$d/{i}"; mount --bind {name} "$d/{i}"')
        script.append('mount -t tmpfs -o mode=0755,size=1m gai-view "$top"')
        for i, name in enumerate(names):
            script.append(f'mkdir -p {name}; mount --bind "$d/{i}" {name}; umount "$d/{i}"')
        script.append('rm -r "$d"')
    script.append(f'shift {len(args)}; exec "$@"')
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", "; ".join(script), "sh", *args)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_home(source: Path, dest: Path) -> Path:
    """A copy of a platform home whose files are hard links (folders are real copies)."""
    shutil.copytree(source, dest, copy_function=_link_or_copy, symlinks=True)
    return dest


def public_tempdir(prefix: str) -> Path:
    """A temporary folder other accounts can traverse (pytest's own base folder is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


# --- accounts through the web forms ----------------------------------------------------------
def _xsrf(html: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert match, "no _xsrf field in the form"
    return match.group(1)


def signup(url: str, name: str, password: str) -> str:
    """Sign up through the hub's form (with its XSRF field); returns the answer page."""
    session = requests.Session()
    page = session.get(url + "hub/signup", timeout=30)
    done = session.post(
        url + "hub/signup",
        data={
            "_xsrf": _xsrf(page.text),
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password,
        },
        timeout=60,
    )
    assert done.status_code == 200
    return done.text


def login(url: str, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Log in through the hub's form; the response is not followed (302 on success)."""
    session = requests.Session()
    page = session.get(url + "hub/login", timeout=30)
    response = session.post(
        url + "hub/login",
        data={"_xsrf": _xsrf(page.text), "username": name, "password": password},
        allow_redirects=False,
        timeout=60,
    )
    return session, response


def new_token(url: str, session: requests.Session, name: str) -> str:
    """A hub API token of ``name``'s own, made with the login cookie (and its XSRF token)."""
    session.get(url + "hub/home", timeout=30)
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    response = session.post(
        f"{url}hub/api/users/{name}/tokens",
        json={"note": "test", "expires_in": 3600},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


# --- kernels -------------------------------------------------------------------------------
async def _execute(ws_url: str, headers: dict[str, str], code: str, timeout_s: float):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    msg_id = uuid.uuid4().hex
    conn.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    out: list[str] = []
    error = None
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out), error
    finally:
        conn.close()


def execute(
    server_url: str, kernel_id: str, token: str, code: str, timeout_s: float = 180
) -> tuple[str, str | None]:
    """Run ``code`` in a kernel; returns its printed output and the error, if any."""
    ws = server_url.replace("http://", "ws://", 1).rstrip("/")
    url = f"{ws}/api/kernels/{kernel_id}/channels"
    return asyncio.run(_execute(url, {"Authorization": f"token {token}"}, code, timeout_s))


# --- a browser -----------------------------------------------------------------------------
class Browser:
    """Headless Chromium driven over the DevTools protocol (one page)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._id = 0
        self._conn = None

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def connect(self, timeout_s: float = 30) -> None:
        from tornado.httpclient import AsyncHTTPClient
        from tornado.websocket import websocket_connect

        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not marker.is_file() or not marker.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = marker.read_text().split()[0]
        while True:
            targets = json.loads(
                (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/json/list")).body
            )
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            await asyncio.sleep(0.1)
        self._conn = await websocket_connect(pages[0]["webSocketDebuggerUrl"])
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def send(self, method: str, **params):
        self._id += 1
        my_id = self._id
        self._conn.write_message(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            raw = await asyncio.wait_for(self._conn.read_message(), 60)
            if raw is None:
                raise RuntimeError("the DevTools connection closed")
            msg = json.loads(raw)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait_for(self, expression: str, timeout_s: float = 60) -> None:
        """Wait until the JavaScript ``expression`` is true on the page."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if await self.evaluate(f"Boolean({expression})"):
                    return
            await asyncio.sleep(0.25)
        url = await self.evaluate("location.href")
        raise TimeoutError(f"{expression} still false after {timeout_s} s at {url}")

    async def screenshot(self, path: Path) -> Path:
        data = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- what the tests run in a kernel ----------------------------------------------------------
def kernel_probe_code(over_limit_gib: int) -> str:
    """Code for a researcher's kernel: load a series, try the boundaries, print a JSON report."""
    return KERNEL_PROBE.replace("OVER_LIMIT_GIB", str(over_limit_gib))


KERNEL_PROBE = r"""
import json, os, tempfile
import gai_research
from gai_research.data.volume import read_series
from gai_research.store.snapshot import snapshots_dir

report = {"uid": os.getuid(), "gai_home": os.environ["GAI_HOME"]}
cat = gai_research.open_catalog()
series = cat.series()
ct = series[series.modality == "CT"].series_uid.iloc[0]
volume = read_series(ct, space="LPS")
report.update(snapshot=cat.snapshot, n_series=len(series), shape=list(volume.array.shape))
home = cat.settings.home
for name in ("secrets", "vault", "spool", "quarantine", "audit"):
    try:
        os.listdir(home / name)
        report[name] = "readable"
    except PermissionError:
        report[name] = "refused"
try:
    open(cat.settings.key_path, "rb").read(1)
    report["key"] = "readable"
except PermissionError:
    report["key"] = "refused"
for name in ("store", "catalog"):
    try:
        tempfile.NamedTemporaryFile(dir=home / name).close()
        report[name + "_write"] = "written"
    except PermissionError:
        report[name + "_write"] = "refused"
parquet = snapshots_dir(cat.settings) / cat.snapshot / "series.parquet"
report["parquet"] = open(parquet, "rb").read(4).decode()
try:
    block = bytearray(OVER_LIMIT_GIB * 2**30)
    report["alloc"] = "allocated"
    del block
except MemoryError:
    report["alloc"] = "MemoryError"
print(json.dumps(report))
"""


def mlflow_probe_code(user: str) -> str:
    """Code for a kernel: log a run to the hub's MLflow, print a JSON summary."""
    return MLFLOW_PROBE.replace("RESEARCHER", user)


MLFLOW_PROBE = r"""
import json, mlflow, os, tempfile
mlflow.set_experiment("RESEARCHER-sandbox")
with mlflow.start_run(run_name="probe") as run:
    mlflow.log_metric("auc", 0.91)
    mlflow.log_param("model", "baseline-lung-nodule-ct")
    path = os.path.join(tempfile.mkdtemp(), "note.txt")
    open(path, "w").write("from the hub")
    mlflow.log_artifact(path)
print(json.dumps({"run": run.info.run_id, "experiment": run.info.experiment_id,
                  "user": run.info.user_id, "uri": mlflow.get_tracking_uri()}))
"""
