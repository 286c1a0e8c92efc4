"""The file store: paths from pseudonymous UIDs, atomic and idempotent writes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from gai_research.store import (
    DuplicateInstanceError,
    FileStore,
    InstanceStore,
    InvalidDatasetError,
    NotPseudonymizedError,
)
from tests.test_store_support import base, ct_slice


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def test_file_store_is_an_instance_store(store: FileStore) -> None:
    assert isinstance(store, InstanceStore)


def test_path_is_built_from_pseudonymous_uids_only(store: FileStore) -> None:
    ds = ct_slice(0)
    stored = store.write_instance(ds)
    assert stored.relpath == (
        f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    )
    assert stored.path == store.root / stored.relpath
    assert ds.PatientID not in stored.relpath


def test_write_reports_size_and_sha256_of_the_file(store: FileStore) -> None:
    stored = store.write_instance(ct_slice(0))
    data = stored.path.read_bytes()
    assert stored.new
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o644


def test_same_instance_twice_is_stored_once(store: FileStore) -> None:
    first = store.write_instance(ct_slice(0))
    mtime = first.path.stat().st_mtime_ns
    second = store.write_instance(ct_slice(0))
    assert not second.new
    assert (second.relpath, second.sha256, second.size) == (first.relpath, first.sha256, first.size)
    assert first.path.stat().st_mtime_ns == mtime
    assert [e.relpath for e in store.iter_files()] == [first.relpath]


def test_write_bytes_stores_the_same_file(store: FileStore, tmp_path: Path) -> None:
    stored = FileStore(tmp_path / "other").write_instance(ct_slice(0))
    again = store.write_bytes(stored.path.read_bytes())
    assert (again.relpath, again.sha256, again.new) == (stored.relpath, stored.sha256, True)


def test_different_bytes_for_a_stored_instance_are_refused_unless_replacing(
    store: FileStore,
) -> None:
    store.write_instance(ct_slice(0))
    changed = ct_slice(0)
    changed.SeriesDescription = "another series description"
    with pytest.raises(DuplicateInstanceError, match="duplicate_instance"):
        store.write_instance(changed)
    replaced = store.write_instance(changed, replace=True)
    assert replaced.new
    assert replaced.sha256 == hashlib.sha256(replaced.path.read_bytes()).hexdigest()


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
@pytest.mark.filterwarnings("ignore:The value length:UserWarning")
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"marker": None}, NotPseudonymizedError),
        ({"marker": "NO"}, NotPseudonymizedError),
        ({"StudyInstanceUID": "1.2.840.113619.2.55.3"}, NotPseudonymizedError),
        ({"SOPInstanceUID": "2.25.01"}, InvalidDatasetError),
        ({"SeriesInstanceUID": "2.25.1/../../etc"}, InvalidDatasetError),
        ({"SOPInstanceUID": "2.25." + "1" * 70}, InvalidDatasetError),
    ],
    ids=["no-marker", "marker-NO", "original-uid", "leading-zero", "path-traversal", "too-long"],
)
def test_refuses_what_is_not_pseudonymized_output(
    store: FileStore, change: dict, error: type[Exception]
) -> None:
    ds = base(marker=change.pop("marker", "YES"))
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    with pytest.raises(error):
        store.write_instance(ds)
    assert not store.root.exists() or not list(store.iter_files())


def test_a_failed_write_leaves_neither_target_nor_temp_file(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        store.write_instance(ct_slice(0))
    monkeypatch.undo()
    assert list(store.iter_files()) == []
    assert list(store.temp_files()) == []


def test_temp_files_are_not_stored_files(store: FileStore) -> None:
    stored = store.write_instance(ct_slice(0))
    (stored.path.parent / ".tmp-abc.part").write_bytes(b"half")
    assert [e.relpath for e in store.iter_files()] == [stored.relpath]
    assert list(store.temp_files()) == [f"{Path(stored.relpath).parent.as_posix()}/.tmp-abc.part"]
