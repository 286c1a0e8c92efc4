"""The restricted spool: raw objects as received, waiting to be pseudonymized.

Layout: ``GAI_HOME/spool/<SITE>/<sha256>.dcm`` with a sidecar ``<sha256>.json``
holding only the site, how the object arrived and when (never patient data). The
name is the SHA-256 of the bytes, so the same object received twice is one entry,
and nothing identifying shows in a listing. Folders are 0700, files 0600.

Crash safety: bytes go to a temporary file (``.<pid>-<random>.tmp``), are fsynced,
then renamed onto their final name; the rename of the ``.dcm`` is the commit, and the
folder is fsynced before ``put`` returns (a receiver answers Success only then). The
sidecar is written the same way right after, without its own fsync; an entry whose
sidecar was lost to a crash is still an entry (its metadata then comes from the
folder and the file time, and the next put of the same bytes writes it back). Removal unlinks the object first, then the sidecar. Leftover temporary files
of dead processes and sidecars without an object are cleaned when a Spool is opened
(:meth:`Spool.recover`); they are never listed as entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from gai_research.config import Settings, Site
from gai_research.home import RESTRICTED_MODE, check_home
from gai_research.ingest.errors import SpoolError
from gai_research.ingest.types import SpoolEntry

__all__ = ["Spool"]

log = logging.getLogger(__name__)

FILE_MODE = 0o600
OBJECT_SUFFIX = ".dcm"
SIDECAR_SUFFIX = ".json"
TEMP_SUFFIX = ".tmp"
STALE_TEMP_S = 3600.0  # a temp file this old is garbage even if its pid is alive again
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TEMP = re.compile(r"^\.(\d+)-[0-9a-f]+\.tmp$")
_CHUNK = 1 << 20


class Spool:
    """The spool of one platform home. Safe to share between threads and processes."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.spool_dir
        if not self.root.is_dir():
            check_home(settings)  # says "run gai init"
            raise SpoolError(f"spool folder {self.root} is missing", hint="run `gai init`")
        mode = stat.S_IMODE(self.root.stat().st_mode)
        if mode & 0o077:
            raise SpoolError(
                f"spool folder {self.root} is open to other users (mode {mode:04o})",
                hint="run `gai init` (it tightens restricted folders to 0700)",
            )
        self.recover()

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r})"

    # --- writing -------------------------------------------------------------------
    def put(self, data: bytes, *, site: Site | str, source: str) -> SpoolEntry:
        """Store ``data`` for ``site``; returns its entry (``new`` False when already spooled)."""
        site = Site.parse(site)
        digest = hashlib.sha256(data).hexdigest()
        existing = self._existing(site, digest, source, len(data))
        if existing is not None:
            return existing

        def write(handle) -> None:
            handle.write(data)

        return self._commit(site, digest, source, len(data), write)

    def put_file(self, path: Path, *, site: Site | str, source: str) -> SpoolEntry:
        """Store a file's bytes, streamed (for large objects read from media)."""
        site = Site.parse(site)
        hasher = hashlib.sha256()
        size = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        digest = hasher.hexdigest()
        existing = self._existing(site, digest, source, size)
        if existing is not None:
            return existing

        def write(out) -> None:
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    out.write(chunk)

        return self._commit(site, digest, source, size, write)

    def _existing(self, site: Site, digest: str, source: str, size: int) -> SpoolEntry | None:
        path = self._folder(site) / f"{digest}{OBJECT_SUFFIX}"
        if not path.exists():
            return None
        entry = self._entry(path, site)
        if entry is None:  # removed meanwhile
            return None
        if not path.with_suffix(SIDECAR_SUFFIX).exists():  # sidecar lost to a crash
            self._write_sidecar(path, site, source, size, entry.received_at)
        return entry

    def _commit(self, site: Site, digest: str, source: str, size: int, write) -> SpoolEntry:
        folder = self._folder(site)
        final = folder / f"{digest}{OBJECT_SUFFIX}"
        received_at = datetime.now(UTC)
        try:
            self._atomic_write(folder, final, write)
            self._write_sidecar(final, site, source, size, received_at)
            _fsync_dir(folder)
        except OSError as exc:
            raise SpoolError(
                f"cannot write to the spool ({exc.strerror or exc})",
                hint=f"check free space and permissions of {self.root}",
            ) from None
        return SpoolEntry(
            path=final,
            digest=digest,
            site=site,
            source=source,
            received_at=received_at,
            size=size,
            new=True,
        )

    def _write_sidecar(
        self, final: Path, site: Site, source: str, size: int, received_at: datetime
    ) -> None:
        meta = {
            "site": site.value,
            "source": source,
            "received_at": received_at.isoformat(timespec="microseconds"),
            "size": size,
        }
        text = json.dumps(meta, sort_keys=True).encode()
        # not fsynced: a sidecar lost to a power cut is tolerated (see _entry)
        self._atomic_write(
            final.parent, final.with_suffix(SIDECAR_SUFFIX), lambda h: h.write(text), sync=False
        )

    @staticmethod
    def _atomic_write(folder: Path, final: Path, write, *, sync: bool = True) -> None:
        temp = folder / f".{os.getpid()}-{secrets.token_hex(6)}{TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise

    def _folder(self, site: Site) -> Path:
        folder = self.root / site.value
        if not folder.is_dir():
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=RESTRICTED_MODE)
            folder.chmod(RESTRICTED_MODE)
        return folder

    # --- reading -------------------------------------------------------------------
    def entries(self, site: Site | str | None = None) -> list[SpoolEntry]:
        """Every entry (of one site, or of all), oldest arrival first."""
        sites = [Site.parse(site)] if site is not None else list(Site)
        found = [entry for s in sites for entry in self._scan(s)]
        return sorted(found, key=lambda e: (e.received_at, e.digest))

    def __iter__(self) -> Iterator[SpoolEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return sum(1 for s in Site for _ in self._object_paths(s))

    def get(self, site: Site | str, digest: str) -> SpoolEntry | None:
        """The entry with this digest, or None."""
        site = Site.parse(site)
        if not _DIGEST.match(digest):
            return None
        return self._entry(self.root / site.value / f"{digest}{OBJECT_SUFFIX}", site)

    def _object_paths(self, site: Site) -> Iterator[Path]:
        folder = self.root / site.value
        if not folder.is_dir():
            return
        with os.scandir(folder) as it:
            for item in it:
                name = item.name
                if name.endswith(OBJECT_SUFFIX) and _DIGEST.match(name[: -len(OBJECT_SUFFIX)]):
                    yield Path(item.path)

    def _scan(self, site: Site) -> Iterator[SpoolEntry]:
        for path in self._object_paths(site):
            entry = self._entry(path, site)
            if entry is not None:
                yield entry

    def _entry(self, path: Path, site: Site) -> SpoolEntry | None:
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        source, received_at = "unknown", datetime.fromtimestamp(info.st_mtime, UTC)
        try:
            meta = json.loads(path.with_suffix(SIDECAR_SUFFIX).read_bytes())
            source = str(meta.get("source", source))
            received_at = datetime.fromisoformat(meta["received_at"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no or damaged sidecar: the folder and file time stand in
        return SpoolEntry(
            path=path,
            digest=path.name[: -len(OBJECT_SUFFIX)],
            site=site,
            source=source,
            received_at=received_at,
            size=info.st_size,
        )

    # --- removing and recovering ---------------------------------------------------------
    def remove(self, entry: SpoolEntry) -> bool:
        """Delete an entry (after it was stored downstream); False when it was already gone."""
        path = self.root / entry.site.value / f"{entry.digest}{OBJECT_SUFFIX}"
        try:
            path.unlink()
            removed = True
        except FileNotFoundError:
            removed = False
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(SIDECAR_SUFFIX).unlink()
        return removed

    def recover(self) -> int:
        """Remove temporary files left by dead writers and sidecars without an object.

        Temporary files of live processes (other writers right now) are kept unless they
        are older than an hour. Returns how many files were removed.
        """
        removed = 0
        now = time.time()
        for site in Site:
            folder = self.root / site.value
            if not folder.is_dir():
                continue
            with os.scandir(folder) as it:
                items = list(it)
            names = {item.name for item in items}
            for item in items:
                name = item.name
                stale = False
                match = _TEMP.match(name)
                if match:
                    try:
                        age = now - item.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    stale = not _alive(int(match.group(1))) or age > STALE_TEMP_S
                elif name.endswith(SIDECAR_SUFFIX):
                    stem = name[: -len(SIDECAR_SUFFIX)]
                    stale = bool(_DIGEST.match(stem)) and f"{stem}{OBJECT_SUFFIX}" not in names
                    if stale:  # the object may have been committed since the listing
                        stale = not (folder / f"{stem}{OBJECT_SUFFIX}").exists()
                if stale:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(item.path)
                        removed += 1
        if removed:
            log.info("spool: removed %d leftover file(s) of interrupted writes", removed)
        return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
