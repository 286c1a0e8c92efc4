"""How fast the platform receives a C-STORE push, against Orthanc and DCMTK's storescp.

One deterministic corpus of CT-like slices (512x512, 16-bit, generated with pydicom
into a temporary folder, with a Korean patient name, an RRN and a phone number in the
header) is pushed by the same ``storescu`` command to:

* peer: Orthanc on loopback (a simulated site PACS, as ``gai pacs up`` runs it);
* ``gai receive --spool-only``: header check, sha256, fsync, rename into the spool;
* ``gai receive`` with the pipeline: the same, and a drainer that pseudonymizes each
  object, writes it into the store (fsync), catalogs it, records the vault, removes
  the spool entry and publishes a snapshot after each burst; pseudonymization in a
  thread of the receiver (``--workers 0``) or in 1 or 2 worker processes;
* reference: DCMTK's ``storescp`` writing plain files (C++, no index, no fsync). It
  answers each object only after Linux's delayed ACK (40 ms) when the sender keeps
  Nagle's algorithm on, as storescu does by default; ``--nodelay`` runs storescu
  with ``TCP_NODELAY=1`` to show the difference.

Each target starts fresh (a new home) for every repetition. Two times per target:
*answered*, the storescu run (what the sender sees), and *done*, until every object
is where the target keeps it - for the pipeline, until the last object is in a
published catalog snapshot (for the others, the same as answered). Reports files/s
and each target's ratio to Orthanc. Needs Orthanc and DCMTK (``make setup``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

# run as a plain script from the repository: make the package importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PLATFORM_AE = "GAI_PLATFORM"
SENDER_AE = "SUWON_PACS"

GAI_RECEIVE = "import sys, gai_research.cli as cli\nsys.exit(cli.main(sys.argv[1:]))\n"


def make_corpus(folder: Path, count: int, rows: int, cols: int, seed: int) -> list[Path]:
    """``count`` CT slices of one series, 16-bit, deterministic for (count, rows, cols, seed)."""
    import numpy as np
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = (
        (yy - rows / 2) ** 2 / (rows * 0.42) ** 2 + (xx - cols / 2) ** 2 / (cols * 0.45) ** 2
    ) < 1
    base = np.where(body, 1040, 24).astype(
        np.int32
    )  # air -1000, soft tissue ~40 with intercept -1024
    study = generate_uid(entropy_srcs=["bench-receive", str(seed), "study"])
    series = generate_uid(entropy_srcs=["bench-receive", str(seed), "series"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        noise = rng.normal(0, 12, size=(rows, cols)).astype(np.int32)
        pixels = np.clip(base + noise + (index % 50), 0, 4095).astype(np.uint16)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series, str(index)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName, ds.PatientID = "Hong^Gildong=洪^吉童=홍^길동", "BENCH0001"
        other = Dataset()
        other.PatientID, other.IssuerOfPatientID = "850315-1234561", "KR-RRN"
        ds.OtherPatientIDsSequence = [other]
        ds.PatientTelephoneNumbers = "010-1234-5678"
        ds.PatientBirthDate, ds.PatientSex = "19850315", "M"
        ds.AccessionNumber = "SW2026060100001"
        ds.StudyDate = ds.SeriesDate = "20260601"
        ds.Modality, ds.InstanceNumber = "CT", index + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -1.25 * index]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.98, 0.98], 1.25
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = pixels.tobytes()
        path = folder / f"CT{index:05}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


def push(files: list[Path], port: int, called: str, calling: str, nodelay: bool) -> float:
    """Seconds one storescu run takes to send ``files`` (one association)."""
    env = dict(os.environ)
    if nodelay:
        env["TCP_NODELAY"] = "1"  # DCMTK reads it: Nagle's algorithm off
    start = time.perf_counter()
    run = subprocess.run(
        ["storescu", "-R", "-xe", "-aet", calling, "-aec", called, "127.0.0.1", str(port)]
        + [str(p) for p in files],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"storescu failed: {run.stderr[-500:]}")
    return seconds


def _settings(home: Path, receiver_port: int):
    from gai_research.config import load_settings

    dicom, http = free_port(), free_port()
    return load_settings(
        home=home,
        platform_dicom_port=receiver_port,
        sites={"SUWON": {"pacs": {"dicom_port": dicom, "http_port": http}}},
    )


@contextmanager
def orthanc_target(workdir: Path, count: int):
    from gai_research.home import init_home
    from gai_research.pacs import pacs_down, pacs_up

    settings = _settings(workdir / "orthanc-home", free_port())
    init_home(settings)
    pacs_up(settings, ["SUWON"])
    pacs = settings.site("SUWON").pacs
    try:
        yield pacs.dicom_port, pacs.ae_title, PLATFORM_AE, lambda: None
    finally:
        pacs_down(settings, ["SUWON"])


def _gai_receive(workdir: Path, extra: list[str], count: int | None):
    """``gai receive`` in a fresh home; ``count``: wait for that many catalogued instances."""
    from gai_research.home import init_home

    port = free_port()
    home = workdir / "gai-home"
    settings = _settings(home, port)
    init_home(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAI_")}
    env["GAI_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-c", GAI_RECEIVE, "receive", "--port", str(port), "--quiet", *extra],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def done() -> None:
        if count is not None:
            wait_catalogued(settings, count)

    try:
        wait_listening(port)
        yield port, PLATFORM_AE, SENDER_AE, done
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=300)
        if process.returncode != 0:
            raise RuntimeError(f"gai receive failed: {err[-500:]}")


def wait_catalogued(settings, count: int, timeout: float = 600.0) -> None:
    """Until the latest published snapshot lists ``count`` instances."""
    from gai_research.store.snapshot import latest_snapshot_id, read_snapshot, snapshots_dir

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sid = latest_snapshot_id(settings)
        snapshot = read_snapshot(snapshots_dir(settings) / sid) if sid else None
        if snapshot is not None and snapshot.tables.get("instances", 0) >= count:
            return
        time.sleep(0.01)
    raise RuntimeError(f"the pipeline did not catalogue {count} objects in {timeout:.0f} s")


@contextmanager
def gai_spool_target(workdir: Path, count: int):
    yield from _gai_receive(workdir, ["--spool-only"], None)


def pipeline_target(workers: int):
    @contextmanager
    def target(workdir: Path, count: int):
        yield from _gai_receive(workdir, ["--workers", str(workers)], count)

    return target


@contextmanager
def storescp_target(workdir: Path, count: int):
    port = free_port()
    out = workdir / "storescp-out"
    out.mkdir()
    process = subprocess.Popen(
        ["storescp", "-aet", PLATFORM_AE, "-od", str(out), "+xa", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port)
        yield port, PLATFORM_AE, SENDER_AE, lambda: None
    finally:
        process.terminate()
        process.wait(timeout=30)


TARGETS: dict[str, Callable[[Path, int], AbstractContextManager]] = {
    "peer: Orthanc 1.10": orthanc_target,
    "gai receive --spool-only": gai_spool_target,
    "gai receive, pipeline (thread)": pipeline_target(0),
    "gai receive, pipeline (1 proc)": pipeline_target(1),
    "gai receive, pipeline (2 proc)": pipeline_target(2),
    "ref: DCMTK storescp": storescp_target,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500, help="slices to push (default 500)")
    parser.add_argument("--rows", type=int, default=512, help="rows per slice (default 512)")
    parser.add_argument("--cols", type=int, default=512, help="columns per slice (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument(
        "--nodelay", action="store_true", help="run storescu with TCP_NODELAY=1 (Nagle off)"
    )
    parser.add_argument(
        "--skip-storescp", action="store_true", help="leave out the storescp reference"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="WORD",
        help="run only the targets whose name contains WORD (repeatable)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where corpus and targets live (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (run `make setup`)")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-receive-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        files = make_corpus(root / "corpus", args.files, args.rows, args.cols, args.seed)
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        print(
            f"corpus: {len(files)} CT slices {args.rows}x{args.cols} 16-bit, {megabytes:.0f} MB "
            f"(made in {time.perf_counter() - start:.1f} s); {args.repeat} run(s) per target, "
            f"{os.cpu_count()} CPU(s); storescu with Nagle "
            f"{'off (TCP_NODELAY=1)' if args.nodelay else 'on (its default)'}"
        )
        answered: dict[str, float] = {}
        finished: dict[str, float] = {}
        for name, target in TARGETS.items():
            if args.skip_storescp and "storescp" in name:
                continue
            if args.only and not any(word in name for word in args.only):
                continue
            times, totals = [], []
            for run in range(args.repeat):
                workdir = root / f"run-{len(answered)}-{run}"
                workdir.mkdir()
                with target(workdir, len(files)) as (port, called, calling, done):
                    start = time.perf_counter()
                    times.append(push(files, port, called, calling, args.nodelay))
                    done()
                    totals.append(time.perf_counter() - start)
                shutil.rmtree(workdir, ignore_errors=True)
            answered[name] = statistics.median(times)
            finished[name] = statistics.median(totals)
        peer = finished.get("peer: Orthanc 1.10")
        print(
            f"{'target':<26} {'answered s':>10} {'done s':>8} {'files/s':>8} {'MB/s':>6} "
            f"{'x Orthanc':>9}"
        )
        for name, seconds in finished.items():
            ratio = f"{peer / seconds:>9.2f}" if peer else f"{'-':>9}"
            print(
                f"{name:<26} {answered[name]:>10.2f} {seconds:>8.2f} {len(files) / seconds:>8.1f} "
                f"{megabytes / seconds:>6.1f} {ratio}"
            )
        print(
            "files/s, MB/s and the ratio use 'done': every object stored where the target keeps it"
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
