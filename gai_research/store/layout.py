"""The local file store: pseudonymized DICOM files named by pseudonymous UIDs only.

Layout: ``STORE/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``. A write
goes to a temporary file in the target folder, is fsynced, then renamed over the
target (``os.replace``), so a reader sees either no file or the whole file. Writing
the same SOP instance again with the same bytes is a no-op (``new=False``); different
bytes for an instance already stored are refused unless ``replace=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gai_research.store.errors import DuplicateInstanceError, InvalidDatasetError, StoreError
from gai_research.store.extract import check_uid, require_pseudonymized
from gai_research.store.types import StoredFile, StoreEntry

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["SUFFIX", "TEMP_PREFIX", "FileStore", "atomic_write", "sha256_file"]

SUFFIX = ".dcm"
TEMP_PREFIX = ".tmp-"
FILE_MODE = 0o644
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(target: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``target`` through a fsynced temporary file in the same folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


class FileStore:
    """The local :class:`~gai_research.store.types.InstanceStore` under one root folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def relpath(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        """The path of an instance relative to the root; every part is a pseudonymous UID."""
        parts = (
            check_uid(study_uid, "StudyInstanceUID"),
            check_uid(series_uid, "SeriesInstanceUID"),
            check_uid(sop_uid, "SOPInstanceUID") + SUFFIX,
        )
        return "/".join(parts)

    def path(self, relpath: str) -> Path:
        return self.root.joinpath(*relpath.split("/"))

    def write_instance(self, dataset: Dataset, *, replace: bool = False) -> StoredFile:
        """Serialize a pseudonymized dataset (DICOM file format) and store it atomically."""
        from pydicom import dcmwrite

        require_pseudonymized(dataset)
        relpath = self._relpath_of(dataset)
        buffer = io.BytesIO()
        try:
            dcmwrite(buffer, dataset, enforce_file_format=True)
        except (ValueError, AttributeError, TypeError) as exc:
            raise InvalidDatasetError(
                f"cannot write the dataset as a DICOM file: {type(exc).__name__}",
                hint="give it file meta with a TransferSyntaxUID",
            ) from None
        return self._store(relpath, buffer.getvalue(), replace)

    def write_bytes(self, data: bytes, *, replace: bool = False) -> StoredFile:
        """Store an already-encoded pseudonymized DICOM file; its header names the path."""
        from pydicom import dcmread
        from pydicom.errors import InvalidDicomError

        try:
            dataset = dcmread(io.BytesIO(data), stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
            raise InvalidDatasetError(
                f"the bytes are not a readable DICOM file: {type(exc).__name__}",
                hint="pass the file that deid wrote",
            ) from None
        require_pseudonymized(dataset)
        return self._store(self._relpath_of(dataset), data, replace)

    def iter_files(self) -> Iterator[StoreEntry]:
        """Every stored ``.dcm`` file, in no particular order."""
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if name.endswith(SUFFIX) and not name.startswith(TEMP_PREFIX):
                    full = os.path.join(folder, name)
                    rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                    yield StoreEntry(rel, os.stat(full).st_size)

    def temp_files(self) -> Iterator[str]:
        """Temporary files left by interrupted writes (safe to delete when no ingest runs)."""
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    rel = os.path.relpath(os.path.join(folder, name), self.root)
                    yield rel.replace(os.sep, "/")

    # --- internals ---------------------------------------------------------------------
    def _relpath_of(self, dataset: Dataset) -> str:
        return self.relpath(
            dataset.get("StudyInstanceUID"),
            dataset.get("SeriesInstanceUID"),
            dataset.get("SOPInstanceUID"),
        )

    def _store(self, relpath: str, data: bytes, replace: bool) -> StoredFile:
        target = self.path(relpath)
        digest = hashlib.sha256(data).hexdigest()
        if target.is_file():
            if target.stat().st_size == len(data) and sha256_file(target) == digest:
                return StoredFile(relpath, target, len(data), digest, new=False)
            if not replace:
                raise DuplicateInstanceError(
                    f"the store already holds a different file for {relpath}",
                    hint="quarantine the new file as duplicate_instance, or write with replace=True",
                )
        elif target.exists():
            raise StoreError(f"{target} exists and is not a file", hint="move it out of the store")
        atomic_write(target, data)
        return StoredFile(relpath, target, len(data), digest, new=True)
