"""The platform's C-STORE receiver (`gai receive`) with real senders: DCMTK's storescu and
pynetdicom, over loopback on free ports."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gai_research.config import Settings, Site
from gai_research.home import init_home
from gai_research.ingest import (
    AssociationClosed,
    AssociationRejected,
    ObjectReceived,
    ObjectRejected,
    ReceiverError,
    Spool,
    StorageSCP,
)
from tests.conftest import free_ports, require_tool

pytestmark = pytest.mark.services

# pydicom's test files (on disk with pydicom) in the transfer syntaxes a PACS may send,
# with the storescu option that makes DCMTK propose that syntax
TRANSFER_SYNTAXES: dict[str, tuple[str, str]] = {
    "explicit VR little endian": ("CT_small.dcm", "-xe"),
    "implicit VR little endian": ("MR_small_implicit.dcm", "-xi"),
    "deflated explicit VR little endian": ("image_dfl.dcm", "-xd"),
    "JPEG baseline": ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),
    "JPEG extended": ("JPEG-lossy.dcm", "-xx"),
    "JPEG lossless SV1": ("SC_rgb_jpeg_gdcm.dcm", "-xs"),
    "JPEG-LS lossless": ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
    "JPEG 2000 lossless": ("MR_small_jp2klossless.dcm", "-xv"),
    "JPEG 2000": ("JPEG2000.dcm", "-xw"),
    "RLE lossless": ("MR_small_RLE.dcm", "-xr"),
}
UNCOMPRESSED = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "test-SR.dcm", "waveform_ecg.dcm"]


def _file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(name))


def _meta(path: Path) -> tuple[str, str]:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPInstanceUID), str(meta.TransferSyntaxUID)


@pytest.fixture
def home_settings(settings: Settings) -> Settings:
    init_home(settings)
    return settings


@pytest.fixture
def receiver(home_settings: Settings):
    """A running receiver on a free loopback port; yields (receiver, events)."""
    events: list = []
    scp = StorageSCP.for_settings(home_settings, port=0, host="127.0.0.1", on_event=events.append)
    with scp:
        yield scp, events


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _storescu(
    port: int, files: list[Path], calling: str, called: str = "GAI_PLATFORM", propose: str = "-xe"
):
    """storescu proposing only the files' SOP classes (``-R``) in ``propose``'s syntaxes."""
    storescu = require_tool("storescu")
    return subprocess.run(
        [
            storescu,
            "-aet",
            calling,
            "-aec",
            called,
            "-R",
            propose,
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- `gai receive` as a process -----------------------------------------------------------
GAI = "import sys, gai_research.cli as cli\nsys.exit(cli.main(sys.argv[1:]))\n"


@pytest.mark.slow
def test_storescu_push_to_gai_receive_lands_every_file(home_settings: Settings) -> None:
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_")}
    env["GAI_HOME"] = str(home_settings.home)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            GAI,
            "receive",
            "--spool-only",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _listening(port) or process.poll() is not None, timeout=20)
        assert process.poll() is None, process.stderr.read()
        files = [_file(name) for name in UNCOMPRESSED]
        run = _storescu(port, files, "ANSEONG_PACS")
        assert run.returncode == 0, run.stderr
        j2k = _file(TRANSFER_SYNTAXES["JPEG 2000"][0])
        run = _storescu(port, [j2k], "ICHEON_PACS", propose="-xw")
        assert run.returncode == 0, run.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    spool = Spool(home_settings)
    assert len(spool.entries(Site.ANSEONG)) == len(files)
    assert [e.source for e in spool.entries()] == ["c-store:ANSEONG_PACS"] * len(files) + [
        "c-store:ICHEON_PACS"
    ]
    assert _meta(spool.entries(Site.ICHEON)[0].path) == _meta(j2k)
    lines = out.splitlines()
    assert lines[0].startswith(f"receiving as GAI_PLATFORM on 127.0.0.1:{port}")
    assert lines[1].startswith("ANSEONG_PACS (ANSEONG) from 127.0.0.1:")
    assert f": {len(files)} received; released" in lines[1]
    assert lines[2].startswith("ICHEON_PACS (ICHEON) from 127.0.0.1:")
    assert lines[-1].startswith(f"stopped: 2 association(s), {len(files) + 1} object(s) received")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- the receiver in-process ----------------------------------------------------------------
@pytest.mark.parametrize("sender", ["storescu", "pynetdicom"])
@pytest.mark.parametrize("syntax", list(TRANSFER_SYNTAXES))
def test_every_transfer_syntax_is_accepted_as_sent(receiver, syntax: str, sender: str) -> None:
    from gai_research.dicom.net import DicomNode, store_files

    scp, events = receiver
    name, propose = TRANSFER_SYNTAXES[syntax]
    path = _file(name)
    if sender == "storescu":
        run = _storescu(scp.port, [path], "SUWON_PACS", propose=propose)
        assert run.returncode == 0, run.stderr
    else:  # pynetdicom proposes exactly the file's own syntax
        node = DicomNode("GAI_PLATFORM", "127.0.0.1", scp.port)
        result = store_files(node, [path], "SUWON_PACS")
        assert result.sent == 1, result.reasons
    (received,) = [e for e in events if isinstance(e, ObjectReceived)]
    assert received.site == Site.SUWON
    # accepted in the syntax it was sent in: nothing decompressed on the way
    assert (received.sop_instance_uid, received.transfer_syntax_uid) == _meta(path)
    assert _meta(received.entry.path) == _meta(path)


def _corrupt_files(folder: Path) -> dict[str, Path]:
    """Part-10 files whose file meta is fine but whose data set is not."""
    import struct
    from io import BytesIO

    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    def element(group: int, elem: int, value: bytes) -> bytes:
        return struct.pack("<HHI", group, elem, len(value)) + value

    ct = b"1.2.840.10008.5.1.4.1.1.2\0"
    bodies = {
        "garbage in a sequence": element(8, 0x16, ct)
        + element(8, 0x18, b"1.2.826.0.1.3680043.10.1\0")
        + element(0x20, 0x0D, b"1.2.826.0.1.3680043.10.2\0")
        + struct.pack("<HHI", 8, 0x1140, 0xFFFFFFFF)
        + b"\x01\x02\x03\x04\x05\x06\x07\x08garbage",
        "no SOP Instance UID": element(8, 0x16, ct)
        + element(0x20, 0x0D, b"1.2.826.0.1.3680043.10.3\0"),
    }
    paths = {}
    for number, (name, body) in enumerate(bodies.items()):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.9{number}"
        meta.TransferSyntaxUID = "1.2.840.10008.1.2"  # implicit VR little endian
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.99"
        buffer = BytesIO()
        buffer.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(buffer, meta)
        paths[name] = folder / f"corrupt-{number}.dcm"
        paths[name].write_bytes(buffer.getvalue() + body)
    return paths


def test_a_corrupt_object_is_refused_and_the_rest_stored(
    receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender streams raw data sets from files (pynetdicom's chunked mode), so the
    corrupt bytes reach the wire as they are."""
    from pydicom.filereader import read_file_meta_info
    from pynetdicom import AE, _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    scp, events = receiver
    corrupt = _corrupt_files(tmp_path)
    stream = [
        _file("CT_small.dcm"),
        corrupt["garbage in a sequence"],
        corrupt["no SOP Instance UID"],
        _file("MR_small_implicit.dcm"),
    ]
    ae = AE("SUWON_PACS")
    for path in stream:
        meta = read_file_meta_info(path)
        ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="GAI_PLATFORM")
    assert assoc.is_established
    try:
        statuses = [int(assoc.send_c_store(path).Status) for path in stream]
    finally:
        assoc.release()
    assert statuses == [0x0000, 0xC000, 0xA900, 0x0000]
    _wait_for(lambda: any(isinstance(e, AssociationClosed) for e in events))
    (closed,) = [e for e in events if isinstance(e, AssociationClosed)]
    assert (closed.received, closed.failed, closed.aborted) == (2, 2, False)
    assert closed.reasons == {"cannot decode the object (OSError)": 1, "no SOP Instance UID": 1}
    assert [e.status for e in events if isinstance(e, ObjectRejected)] == [0xC000, 0xA900]
    assert len(scp.handler.spool.entries()) == 2


def test_unknown_calling_ae_is_rejected_with_a_log_line(receiver, caplog) -> None:
    scp, events = receiver
    with caplog.at_level(logging.WARNING, logger="gai_research.ingest.scp"):
        run = _storescu(scp.port, [_file("CT_small.dcm")], "INTRUDER")
        _wait_for(lambda: any(isinstance(e, AssociationRejected) for e in events))
    assert run.returncode != 0
    assert "Calling AE Title Not Recognized" in run.stderr
    (rejected,) = [e for e in events if isinstance(e, AssociationRejected)]
    assert rejected.peer == "INTRUDER" and "not a configured site PACS" in rejected.reason
    assert "rejected association from 'INTRUDER'" in caplog.text
    assert scp.handler.spool.entries() == []


def test_wrong_called_ae_title_is_rejected(receiver) -> None:
    scp, events = receiver
    run = _storescu(scp.port, [_file("CT_small.dcm")], "SUWON_PACS", "SOMEONE_ELSE")
    assert run.returncode != 0
    _wait_for(lambda: any(isinstance(e, AssociationRejected) for e in events))
    assert "is not ours" in next(e for e in events if isinstance(e, AssociationRejected)).reason


def test_one_site_for_every_caller(home_settings: Settings) -> None:
    events: list = []
    scp = StorageSCP.for_settings(
        home_settings, port=0, host="127.0.0.1", site="icheon", on_event=events.append
    )
    with scp:
        run = _storescu(scp.port, [_file("CT_small.dcm")], "MODALITY_CT1")
        assert run.returncode == 0, run.stderr
    (received,) = [e for e in events if isinstance(e, ObjectReceived)]
    assert (received.site, received.peer) == (Site.ICHEON, "MODALITY_CT1")


def test_echo_answers(receiver) -> None:
    scp, _events = receiver
    echoscu = require_tool("echoscu")
    run = subprocess.run(
        [echoscu, "-aet", "SUWON_PACS", "-aec", "GAI_PLATFORM", "127.0.0.1", str(scp.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr


def test_same_object_pushed_twice_is_one_spool_entry(receiver) -> None:
    scp, events = receiver
    for _ in range(2):
        assert _storescu(scp.port, [_file("CT_small.dcm")], "SUWON_PACS").returncode == 0
    _wait_for(lambda: sum(isinstance(e, AssociationClosed) for e in events) == 2)
    received = [e for e in events if isinstance(e, ObjectReceived)]
    assert [e.entry.new for e in received] == [True, False]
    assert len(scp.handler.spool.entries()) == 1
    closed = [e for e in events if isinstance(e, AssociationClosed)]
    assert "1 already spooled" in closed[1].summary()


def test_a_busy_port_is_a_clear_error(home_settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        scp = StorageSCP.for_settings(home_settings, port=port, host="127.0.0.1")
        with pytest.raises(ReceiverError, match=f"port {port}.*gai receive"):
            scp.start()


def test_receive_help_names_the_options() -> None:
    run = subprocess.run(
        [sys.executable, "-c", GAI, "receive", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0
    for option in ("--port", "--ae-title", "--site", "--bind"):
        assert option in run.stdout
