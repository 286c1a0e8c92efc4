"""Users' homes: where a user's server starts, and the example notebooks it starts with.

On the first spawn the home is created (0700, owned by the user in production) and the
platform's example notebooks (the repository's ``notebooks/``, outputs stripped) are
copied into ``examples/``. Later spawns never overwrite: the copies are the user's.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.hub.errors import HubError

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = ["EXAMPLES", "Home", "notebooks_source", "provision_home", "resolve_home"]

EXAMPLES = "examples"
HOME_MODE = 0o700


@dataclass(frozen=True)
class Home:
    """A user's home and the account that owns it (None: the hub's own account)."""

    path: Path
    uid: int | None = None
    gid: int | None = None


def notebooks_source(settings: Settings) -> Path | None:
    """The example notebooks: ``hub.notebooks_dir``, else the repository's ``notebooks/``."""
    if settings.hub.notebooks_dir is not None:
        return settings.hub.notebooks_dir
    repo = Path(__file__).resolve().parents[2] / "notebooks"
    return repo if repo.is_dir() else None


def resolve_home(settings: Settings, users_root: Path, name: str) -> Home:
    """Where ``name``'s server runs: under ``users_root`` (demo, or a configured
    ``hub.users_dir``), else the OS account's home; owned by that account in production."""
    if settings.hub.spawner == "demo":
        return Home(users_root / name)
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise HubError(
            f"there is no OS account {name!r} for this hub user",
            hint="create it (useradd, or your LDAP/SSSD) with the same name, "
            f"in the group {settings.hub.research_group}",
        ) from None
    path = users_root / name if settings.hub.users_dir else Path(account.pw_dir)
    return Home(path, account.pw_uid, account.pw_gid)


def provision_home(home: Home, notebooks: Path | None) -> list[Path]:
    """Create the home if needed and copy the example notebooks once; returns the copies."""
    path = home.path
    if not path.exists():
        path.mkdir(parents=True, mode=HOME_MODE)
        path.chmod(HOME_MODE)
        _chown(path, home)
    copied: list[Path] = []
    target = path / EXAMPLES
    if notebooks is None or not notebooks.is_dir() or target.exists():
        return copied
    target.mkdir(mode=0o755)
    _chown(target, home)
    for source in sorted(notebooks.iterdir()):
        if source.is_file() and source.suffix in (".ipynb", ".md"):
            dest = target / source.name
            shutil.copyfile(source, dest)
            dest.chmod(0o644)
            _chown(dest, home)
            copied.append(dest)
    return copied


def _chown(path: Path, home: Home) -> None:
    if home.uid is not None and os.geteuid() == 0:
        os.chown(path, home.uid, home.gid if home.gid is not None else -1)
