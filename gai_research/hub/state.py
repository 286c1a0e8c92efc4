"""The hub's private folder ``HOME/hub``: database, cookie secret, admin passwords, sockets.

Everything the hub keeps lives under the platform home, so one backup (or one
``make clean``) covers it. The folder is 0700 and its secrets 0600: a researcher's
process can read neither the hub's database (password hashes, tokens) nor the cookie
secret (which would let anyone forge a login).

The cookie secret is generated once and then kept, so restarting the hub keeps
everyone signed in. A bootstrap admin's password (``gai hub --demo`` / ``--admin``)
is generated once, printed once, and kept 0600 beside it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.hub.errors import HubError

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = [
    "HUB_DIR_MODE",
    "SECRET_MODE",
    "HubPaths",
    "ensure_admin_password",
    "ensure_cookie_secret",
    "hub_paths",
    "kernels_path",
    "prepare_hub_dir",
    "read_secret",
    "server_config_path",
]

HUB_DIR_MODE = 0o700
SECRET_MODE = 0o600
_SOCKET_MAX = 100  # sun_path holds 108 bytes; keep a margin


@dataclass(frozen=True)
class HubPaths:
    """Where the hub's files are."""

    root: Path  # HOME/hub (0700)
    db: Path
    cookie_secret: Path
    pid: Path
    proxy_pid: Path
    log: Path
    users: Path  # the demo's user homes
    mlflow_socket: Path  # the MLflow server's unix socket: only the hub's account can connect

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db}"

    def admin_password(self, name: str) -> Path:
        return self.root / f"admin-{name}.password"


def hub_paths(settings: Settings) -> HubPaths:
    root = settings.home / "hub"
    socket = root / "mlflow.sock"
    if len(str(socket)) > _SOCKET_MAX:  # deep homes (test folders): a short private folder
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        socket = Path(tempfile.gettempdir()) / f"gai-hub-{digest}" / "mlflow.sock"
    return HubPaths(
        root=root,
        db=root / "jupyterhub.sqlite",
        cookie_secret=root / "jupyterhub_cookie_secret",
        pid=root / "jupyterhub.pid",
        proxy_pid=root / "proxy.pid",
        log=root / "jupyterhub.log",
        users=settings.hub.users_dir or root / "users",
        mlflow_socket=socket,
    )


def kernels_path() -> Path:
    """A ``JUPYTER_PATH`` entry holding the ``gai-research`` kernel spec (package data)."""
    return Path(__file__).parent / "share" / "jupyter"


def server_config_path() -> Path:
    """A ``JUPYTER_CONFIG_PATH`` entry for user servers (package data): the platform has no
    internet, so JupyterLab asks for neither news nor updates."""
    return Path(__file__).parent / "etc" / "jupyter"


def _private_dir(path: Path) -> None:
    """Create ``path`` 0700, or tighten it; refuse one that belongs to someone else."""
    path.mkdir(parents=True, exist_ok=True, mode=HUB_DIR_MODE)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise HubError(
            f"{path} belongs to uid {info.st_uid}, not to this account ({os.geteuid()})",
            hint="run the hub as the account that owns GAI_HOME/hub",
        )
    if stat.S_IMODE(info.st_mode) != HUB_DIR_MODE:
        path.chmod(HUB_DIR_MODE)


def prepare_hub_dir(settings: Settings) -> HubPaths:
    """Create ``HOME/hub`` (0700) with its cookie secret; safe to call on every start."""
    paths = hub_paths(settings)
    _private_dir(paths.root)
    if paths.mlflow_socket.parent != paths.root:
        _private_dir(paths.mlflow_socket.parent)
    ensure_cookie_secret(paths.cookie_secret)
    return paths


def _write_secret(path: Path, text: str) -> bool:
    """Write ``text`` to a new 0600 file; False (and nothing written) if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return True


def read_secret(path: Path) -> str:
    """A secret file's text; refused if group or others may read it."""
    if not path.is_file():
        raise HubError(f"{path} not found", hint="run `gai hub` once to create it")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HubError(
            f"{path} is readable by others (mode {mode:04o})",
            hint=f"run `chmod 600 {path}` and consider the secret exposed: replace it",
        )
    return path.read_text(encoding="utf-8").strip()


def ensure_cookie_secret(path: Path) -> bool:
    """Generate the hub's cookie secret (hex, 0600) once; True if it was created now."""
    created = _write_secret(path, secrets.token_hex(32))
    read_secret(path)  # an existing one must be private too
    return created


def ensure_admin_password(paths: HubPaths, name: str) -> tuple[Path, str | None]:
    """The bootstrap password file of admin ``name``, created once with a random password.

    Returns the file and the password when it was created by this call (so the caller
    prints it once), or None when it already existed.
    """
    path = paths.admin_password(name)
    password = secrets.token_urlsafe(18)  # 24 characters, ~144 bits
    if _write_secret(path, password):
        return path, password
    read_secret(path)
    return path, None
