"""Data-access boundaries: who may read and write which part of the platform home.

In production every user's server runs as that user's OS account
(:class:`~gai_research.hub.spawners.LocalUserSpawner`, SystemdSpawner, KubeSpawner), so
ordinary file permissions draw the line:

==========================================  ==========================  ======================
folder                                      owner:group, mode           researchers' servers
==========================================  ==========================  ======================
secrets/ vault/ quarantine/ spool/ pacs/    service:gai-steward 0700    no access
audit/
store/ catalog/ reports/                    service:gai-research 0750   read only
cohorts/                                    service:gai-research 3770   add their own cohorts
mlflow/ hub/                                service 0700                none (MLflow: the hub)
==========================================  ==========================  ======================

``service`` is the account that runs ingest and the hub (root or a ``gai`` account);
stewards act through it. The files inside keep the modes the platform writes them with
(0644 files, 0755 folders, snapshots 0444): the top folder's group decides who gets in.

:func:`apply_production_layout` sets this once (``gai hub harden``), :func:`audit_home`
checks it (``gai hub status``), :func:`probe_access` shows it from a user's side by
trying as that user (root only).
"""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.hub.errors import BoundaryError

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = [
    "Finding",
    "apply_production_layout",
    "audit_home",
    "probe_access",
    "research_dirs",
    "restricted_dirs",
]

RESTRICTED_MODE = 0o700
RESEARCH_MODE = 0o750
COHORTS_MODE = 0o3770  # setgid (group stays gai-research) + sticky (no deleting others')


def restricted_dirs(settings: Settings) -> list[Path]:
    """Identified data and the steward's tools: closed to researchers."""
    return [
        settings.secrets_dir,
        settings.vault_dir,
        settings.quarantine_dir,
        settings.spool_dir,
        settings.pacs_dir,
        settings.audit_dir,
    ]


def research_dirs(settings: Settings) -> list[Path]:
    """Pseudonymized data and results: readable by researchers, written by the platform."""
    return [settings.store_dir, settings.catalog_dir, settings.reports_dir]


def _private_dirs(settings: Settings) -> list[Path]:
    return [settings.mlflow_dir, settings.home / "hub"]


@dataclass(frozen=True)
class Finding:
    """One permission problem and its fix."""

    path: Path
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} (fix: {self.fix})"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def audit_home(settings: Settings, *, production: bool | None = None) -> list[Finding]:
    """Permission problems of the home; empty when the boundaries hold.

    ``production`` (default: unless the hub runs the demo spawner) also requires that
    MLflow's store and the hub's folder are private.
    """
    if production is None:
        production = settings.hub.spawner != "demo"
    findings: list[Finding] = []
    for path in restricted_dirs(settings):
        if path.is_dir() and _mode(path) & 0o077:
            findings.append(
                Finding(path, f"mode {_mode(path):04o} lets others in", f"chmod 700 {path}")
            )
    key = settings.key_path
    if key.is_file() and _mode(key) & 0o077:
        findings.append(Finding(key, f"key mode {_mode(key):04o}", f"chmod 600 {key}"))
    for path in research_dirs(settings):
        if path.is_dir() and _mode(path) & 0o022:
            findings.append(
                Finding(path, f"mode {_mode(path):04o} lets others write", f"chmod go-w {path}")
            )
    if production:
        for path in _private_dirs(settings):
            if path.is_dir() and _mode(path) & 0o077:
                findings.append(
                    Finding(path, "readable by researchers (only the hub may)", f"chmod 700 {path}")
                )
    return findings


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise BoundaryError(
            f"there is no OS group {name!r}", hint=f"create it: groupadd {name}"
        ) from None


def apply_production_layout(
    settings: Settings, *, research_group: str | None = None, steward_group: str | None = None
) -> list[str]:
    """Set the production owners and modes (table above) on the home's top folders.

    Needs root (or the owner of the home). Returns what it changed, one line each.
    """
    research = _group_id(research_group or settings.hub.research_group)
    steward = _group_id(steward_group or settings.hub.steward_group)
    cohorts = settings.home / "cohorts"
    cohorts.mkdir(exist_ok=True)
    plan: list[tuple[Path, int, int]] = [(settings.home, -1, 0o755)]
    plan += [(p, steward, RESTRICTED_MODE) for p in restricted_dirs(settings)]
    plan += [(p, research, RESEARCH_MODE) for p in research_dirs(settings)]
    plan += [(cohorts, research, COHORTS_MODE)]
    plan += [(p, -1, 0o700) for p in _private_dirs(settings)]
    changes: list[str] = []
    for path, gid, mode in plan:
        if not path.is_dir():
            continue
        info = path.stat()
        if gid != -1 and info.st_gid != gid:
            os.chown(path, -1, gid)
            changes.append(f"{path}: group {grp.getgrgid(gid).gr_name}")
        if stat.S_IMODE(info.st_mode) != mode:
            path.chmod(mode)
            changes.append(f"{path}: mode {mode:04o}")
    key = settings.key_path
    if key.is_file() and _mode(key) != 0o600:
        key.chmod(0o600)
        changes.append(f"{key}: mode 0600")
    return changes


_PROBE = r"""
import json, os, sys, tempfile
result = {}
for path in json.loads(sys.argv[1]):
    entry = {}
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(4)
        entry["read"] = True
    except OSError:
        entry["read"] = False
    try:
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        entry["write"] = True
    except OSError:
        entry["write"] = False
    result[path] = entry
print(json.dumps(result))
"""


def probe_access(
    user: str, paths: list[Path], *, python: str | None = None
) -> dict[Path, dict[str, bool]]:
    """Try to read and write each path as OS account ``user`` (in its own groups).

    Reading a folder means listing it; writing means creating a file in it (or in a
    file's folder). Needs root: the probe runs in a child process as that account, with
    ``python`` (default this interpreter; the probe needs only the standard library).
    """
    if os.geteuid() != 0:
        raise BoundaryError("probing as another account needs root", hint="run it as root")
    import pwd

    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise BoundaryError(f"no OS account {user!r}", hint="check the name") from None
    groups = os.getgrouplist(user, account.pw_gid)
    done = subprocess.run(
        [python or sys.executable, "-I", "-c", _PROBE, json.dumps([str(p) for p in paths])],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=groups,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": account.pw_dir},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise BoundaryError(
            f"the access probe failed as {user}: {done.stderr.strip().splitlines()[-1:]}",
            hint=f"{user} must be able to run {python or sys.executable}",
        )
    return {Path(k): v for k, v in json.loads(done.stdout).items()}
