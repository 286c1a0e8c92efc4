"""The platform home (``GAI_HOME``): its layout, its permissions, and the secret key.

Identified data (spool, quarantine, vault, key, the simulated site PACS, the audit
trail) and pseudonymized data (store, catalog) are separate trees; the identified
ones are private to the steward's account (0700, key 0600).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gai_research.config import Settings
from gai_research.errors import HomeError

__all__ = ["InitResult", "check_home", "init_home", "key_fingerprint", "layout", "read_key"]

MIN_KEY_CHARS = 32
RESTRICTED_MODE = 0o700
SHARED_MODE = 0o755
KEY_MODE = 0o600


def layout(settings: Settings) -> dict[Path, int]:
    """Every folder of the home with the mode it must have."""
    restricted = (
        settings.secrets_dir,
        settings.vault_dir,
        settings.quarantine_dir,
        settings.spool_dir,
        settings.pacs_dir,
        settings.audit_dir,
    )
    shared = (settings.store_dir, settings.catalog_dir, settings.mlflow_dir, settings.reports_dir)
    folders = {settings.home: SHARED_MODE}
    folders.update({p: RESTRICTED_MODE for p in restricted})
    folders.update({p: SHARED_MODE for p in shared})
    return folders


@dataclass
class InitResult:
    """What ``init_home`` did."""

    home: Path
    created: list[Path] = field(default_factory=list)
    tightened: list[Path] = field(default_factory=list)
    key_path: Path | None = None
    key_created: bool = False
    key_fingerprint: str = ""


def init_home(settings: Settings) -> InitResult:
    """Create the home layout and a fresh key if there is none. Idempotent.

    An existing key is never overwritten; restricted folders that are too open are
    tightened to 0700 and reported.
    """
    result = InitResult(home=settings.home)
    for folder, mode in layout(settings).items():
        if folder.exists() and not folder.is_dir():
            raise HomeError(
                f"{folder} exists and is not a folder", hint="move it away and run gai init again"
            )
        if not folder.exists():
            folder.mkdir(parents=True, mode=mode)
            folder.chmod(mode)  # mkdir's mode is filtered by the umask
            result.created.append(folder)
        elif mode == RESTRICTED_MODE and stat.S_IMODE(folder.stat().st_mode) & 0o077:
            folder.chmod(mode)
            result.tightened.append(folder)
    key = settings.key_path
    result.key_path = key
    if key.exists():
        read_key(key)  # refuses an unsafe or short key with a clear error
    else:
        key.parent.mkdir(parents=True, exist_ok=True, mode=RESTRICTED_MODE)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        result.key_created = True
    result.key_fingerprint = key_fingerprint(read_key(key))
    return result


def read_key(path: Path) -> bytes:
    """The secret key's bytes (the file's text, surrounding whitespace removed).

    Refused with a :class:`HomeError` when missing, readable by group or others, or
    shorter than 32 characters.
    """
    path = Path(path)
    if not path.is_file():
        raise HomeError(f"key file {path} not found", hint="run `gai init` or set GAI_KEY_FILE")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HomeError(
            f"key file {path} is readable by others (mode {mode:04o})",
            hint=f"run `chmod 600 {path}`; consider the key exposed and ask the data steward",
        )
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < MIN_KEY_CHARS:
        raise HomeError(
            f"key file {path} holds {len(text)} characters, fewer than {MIN_KEY_CHARS}",
            hint="use the key `gai init` writes (64 hex characters)",
        )
    return text.encode("utf-8")


def key_fingerprint(key: bytes) -> str:
    """A short, non-reversible name for a key, safe to print and to audit."""
    return hashlib.sha256(b"gai-key-fingerprint\0" + key).hexdigest()[:16]


def check_home(settings: Settings) -> None:
    """Raise a :class:`HomeError` unless ``gai init`` has made the home."""
    missing = [p for p in layout(settings) if not p.is_dir()]
    if missing:
        raise HomeError(
            f"platform home {settings.home} is not initialised ({missing[0]} missing)",
            hint="run `gai init`",
        )
