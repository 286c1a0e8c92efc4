"""The audit trail: one JSON line per run, appended to ``HOME/audit/deid.jsonl`` (0600).

A record says who ran what, when, at which site, with which profile (hash) and
key (fingerprint), and the counts. It never holds an identifier, nor a path that
might contain one (paths are recorded as hashes).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from pathlib import Path

from gai_research import __version__

__all__ = ["AUDIT_FILE", "append_audit", "path_digest", "read_audit"]

AUDIT_FILE = "deid.jsonl"


def path_digest(path: Path) -> str:
    """A short hash of an absolute path: the same folder is recognisable, its name is not shown."""
    return hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:16]


def append_audit(audit_dir: Path, record: dict) -> Path:
    """Append one record (plus user, host and version) as a JSON line; returns the audit file."""
    audit_dir = Path(audit_dir)
    audit_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = audit_dir / AUDIT_FILE
    line = json.dumps(
        {"user": getpass.getuser(), "host": socket.gethostname(), "version": __version__, **record},
        ensure_ascii=False,
        sort_keys=True,
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    return path


def read_audit(audit_dir: Path) -> list[dict]:
    """Every record of the audit trail, oldest first."""
    path = Path(audit_dir) / AUDIT_FILE
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
