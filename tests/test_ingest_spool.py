"""The restricted spool: content-addressed, crash-safe, private, in arrival order."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gai_research.config import Settings, Site
from gai_research.errors import HomeError
from gai_research.home import init_home
from gai_research.ingest import Spool, SpoolEntry, SpoolError


@pytest.fixture
def spool(settings: Settings) -> Spool:
    init_home(settings)
    return Spool(settings)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_put_names_the_file_by_its_sha256(spool: Spool) -> None:
    data = b"DICM-like bytes of one object"
    entry = spool.put(data, site="suwon", source="c-store:SUWON_PACS")
    assert entry.new
    assert entry.digest == hashlib.sha256(data).hexdigest()
    assert entry.path == spool.root / "SUWON" / f"{entry.digest}.dcm"
    assert entry.path.read_bytes() == data
    assert (entry.site, entry.source, entry.size) == (Site.SUWON, "c-store:SUWON_PACS", len(data))


def test_identical_object_twice_is_one_entry(spool: Spool) -> None:
    first = spool.put(b"same", site=Site.ICHEON, source="c-move:ICHEON_PACS")
    second = spool.put(b"same", site=Site.ICHEON, source="wado-rs:ICHEON")
    assert not second.new
    assert second == first  # the first arrival's metadata is kept
    assert len(spool.entries()) == 1


def test_put_file_streams_the_same_entry_as_put(spool: Spool, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    path = tmp_path / "big.dcm"
    path.write_bytes(data)
    from_file = spool.put_file(path, site="ANSEONG", source="folder")
    again = spool.put(data, site="ANSEONG", source="folder")
    assert from_file.new and not again.new
    assert from_file.digest == hashlib.sha256(data).hexdigest()


def test_permissions_are_private(spool: Spool) -> None:
    entry = spool.put(b"x", site="SUWON", source="folder")
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.path.with_suffix(".json").stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.path.parent.stat().st_mode) == 0o700


def test_sidecar_holds_no_patient_data(spool: Spool) -> None:
    entry = spool.put(b"PatientName=HONG^GILDONG", site="SUWON", source="c-store:SUWON_PACS")
    meta = json.loads(entry.path.with_suffix(".json").read_text())
    assert set(meta) == {"site", "source", "received_at", "size"}
    assert "HONG" not in json.dumps(meta)


def test_entries_come_in_arrival_order_and_by_site(spool: Spool) -> None:
    puts = [(f"object {i}".encode(), site) for i, site in enumerate(["ICHEON", "SUWON"] * 4)]
    made = [spool.put(data, site=site, source="folder") for data, site in puts]
    assert [e.digest for e in spool.entries()] == [e.digest for e in made]
    assert [e.digest for e in spool.entries("SUWON")] == [
        e.digest for e in made if e.site == Site.SUWON
    ]
    assert spool.entries(Site.ANSEONG) == []
    assert len(spool) == 8


def test_remove_deletes_object_and_sidecar(spool: Spool) -> None:
    entry = spool.put(b"gone soon", site="SUWON", source="folder")
    assert spool.remove(entry)
    assert not entry.path.exists() and not entry.path.with_suffix(".json").exists()
    assert spool.entries() == []
    assert not spool.remove(entry)
    assert spool.put(b"gone soon", site="SUWON", source="folder").new  # can come again


def test_concurrent_puts_of_the_same_object_make_one_entry(spool: Spool) -> None:
    results: list[SpoolEntry] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(spool.put(b"race", site="SUWON", source="x"))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({e.digest for e in results}) == 1
    assert len(spool.entries()) == 1
    assert not [p for p in (spool.root / "SUWON").iterdir() if p.suffix == ".tmp"]


# --- crashes at every point of a write or a removal ---------------------------------
def _crash_leftovers(spool: Spool, point: str) -> tuple[bytes, str]:
    """Leave the files a writer killed at ``point`` would leave; returns (data, digest)."""
    data = f"object interrupted at {point}".encode()
    digest = hashlib.sha256(data).hexdigest()
    folder = spool.root / "SUWON"
    folder.mkdir(mode=0o700, exist_ok=True)
    dead = _dead_pid()
    if point == "object half written":
        (folder / f".{dead}-abc123.tmp").write_bytes(data[:5])
    elif point == "object committed, sidecar not":
        (folder / f"{digest}.dcm").write_bytes(data)
        (folder / f".{dead}-def456.tmp").write_bytes(b'{"site": "SU')
    elif point == "removal half done":
        (folder / f"{digest}.json").write_text('{"site": "SUWON"}')
    return data, digest


@pytest.mark.parametrize(
    ("point", "entries_after"),
    [("object half written", 0), ("object committed, sidecar not", 1), ("removal half done", 0)],
)
def test_reopening_after_a_crash_cleans_up(
    settings: Settings, point: str, entries_after: int
) -> None:
    init_home(settings)
    data, digest = _crash_leftovers(Spool(settings), point)
    spool = Spool(settings)  # opening recovers
    left = sorted(p.name for p in (spool.root / "SUWON").iterdir())
    assert not [name for name in left if name.endswith(".tmp")]
    assert len(spool.entries()) == entries_after
    if entries_after:
        (entry,) = spool.entries()
        assert entry.digest == digest and entry.source == "unknown"
        again = spool.put(data, site="SUWON", source="c-move:SUWON_PACS")
        assert not again.new
        assert entry.path.with_suffix(".json").exists()  # the lost sidecar is written back
    else:
        assert left == []
        assert spool.put(data, site="SUWON", source="folder").new


def test_temp_files_of_live_writers_are_kept(spool: Spool) -> None:
    folder = spool.root / "ICHEON"
    folder.mkdir(mode=0o700)
    ours = folder / f".{os.getpid()}-0a0b0c.tmp"
    ours.write_bytes(b"being written right now")
    assert spool.recover() == 0
    assert ours.exists()
    assert spool.entries() == []  # never mistaken for an entry


def test_spool_refuses_a_home_that_was_not_initialised(settings: Settings) -> None:
    with pytest.raises(HomeError, match="gai init"):
        Spool(settings)


def test_spool_refuses_a_folder_open_to_others(settings: Settings) -> None:
    init_home(settings)
    settings.spool_dir.chmod(0o755)
    with pytest.raises(SpoolError, match="open to other users"):
        Spool(settings)


def test_a_full_disk_is_a_spool_error(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(SpoolError, match="No space left"):
        spool.put(b"does not fit", site="SUWON", source="folder")
    monkeypatch.undo()
    assert spool.entries() == []
    assert not list((spool.root / "SUWON").iterdir())
