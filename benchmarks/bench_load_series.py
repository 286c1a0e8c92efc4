"""Benchmark: loading a CT series as a volume, against a bare pydicom floor and MONAI.

Writes its own deterministic CT series (256x256, 200 slices by default, 16-bit, HU
rescale), then times, on the same files with a warm page cache:

- **floor**: ``np.stack([pydicom.dcmread(f).pixel_array for f in files])`` - read and
  decode only: no sorting, no rescale, no geometry, no checks;
- **read_files**: ``gai_research.data.volume.read_files`` (numpy volume: sorted along
  the normal, checked, rescaled to float32 HU, affine);
- **load_files**: the same as a MONAI MetaTensor (what ``load_series`` returns);
- **monai_pydicom**: MONAI's ``LoadImage(reader="PydicomReader")`` on the folder (it
  sorts by InstanceNumber); **monai_itk** with ``ITKReader`` when ``itk`` is importable
  (not a dependency: ``uv pip install --target DIR itk-io``, then ``PYTHONPATH=DIR``).

Reports the median time of ``--repeat`` runs and speed relative to the floor (floor
time / tool time; the goal for ours is at least 0.8).

    .venv/bin/python benchmarks/bench_load_series.py
    .venv/bin/python benchmarks/bench_load_series.py --slices 400 --syntax rle --repeat 3
    .venv/bin/python benchmarks/bench_load_series.py --json out.json --keep /tmp/series
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg-ls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
}


def make_series(
    folder: Path, slices: int, *, size: int = 256, syntax: str = "explicit"
) -> list[Path]:
    """A CT series of ``slices`` axial slices (head first, 1.25 mm apart); deterministic."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:size, 0:size] - size / 2
    body = (xx / (0.42 * size)) ** 2 + (yy / (0.33 * size)) ** 2 < 1
    base = np.where(body, 1064, 24).astype(np.int16)
    uids = {
        name: generate_uid(entropy_srcs=[name, str(slices)]) for name in ("study", "series", "for")
    }
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        sop = generate_uid(entropy_srcs=["sop", str(slices), str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = sop
        ds.PatientName, ds.PatientID, ds.Modality = "BENCH^SERIES", "BENCH", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
        ds.FrameOfReferenceUID = uids["for"]
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-180.0, -180.0, round(-40.0 - 1.25 * k, 2)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.40625, 1.40625]
        ds.SliceThickness = 1.25
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        noise = rng.normal(0, 15, (size, size)).astype(np.int16)
        ds.PixelData = np.clip(base + noise + k % 40, 0, 4095).astype("<u2").tobytes()
        if syntax != "explicit":
            ds.compress(SYNTAXES[syntax])
        path = folder / f"{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def floor(files: list[Path]) -> np.ndarray:
    return np.stack([pydicom.dcmread(f).pixel_array for f in files])


def contestants(folder: Path, files: list[Path]) -> dict[str, Callable[[], object] | str]:
    from gai_research.data.volume import load_files, read_files

    tools: dict[str, Callable[[], object] | str] = {
        "floor": lambda: floor(files),
        "read_files": lambda: read_files(files),
        "load_files": lambda: load_files(files),
    }
    try:
        from monai.transforms import LoadImage

        pydicom_reader = LoadImage(reader="PydicomReader", image_only=True)
        tools["monai_pydicom"] = lambda: pydicom_reader(str(folder))
        if importlib.util.find_spec("itk") is not None:
            itk_reader = LoadImage(reader="ITKReader", image_only=True)
            tools["monai_itk"] = lambda: itk_reader(str(folder))
        else:
            tools["monai_itk"] = "skipped: itk is not installed"
    except ImportError as exc:
        tools["monai_pydicom"] = f"skipped: {exc}"
    return tools


def measure(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: imports, page cache
    times = []
    for _ in range(repeat):
        gc.collect()  # every tool starts with the last result freed (MetaTensors hold cycles)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def check(files: list[Path]) -> None:
    """Ours equals the floor sorted along +z and rescaled (the benchmark compares like with like)."""
    from gai_research.data.volume import read_files

    volume = read_files(files)
    expected = floor(files)[::-1].astype(np.float32) - 1024.0  # written head first
    if not np.array_equal(volume.array, expected.transpose(2, 1, 0)):
        raise SystemExit(
            "read_files and the floor disagree: the benchmark is not comparing like with like"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--slices", type=int, default=200, help="slices in the series (default 200)"
    )
    parser.add_argument("--size", type=int, default=256, help="rows and columns (default 256)")
    parser.add_argument(
        "--syntax", choices=sorted(SYNTAXES), default="explicit", help="transfer syntax"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="write the series here and keep it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="monai")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        folder = workdir / "series"
        if folder.exists():
            shutil.rmtree(folder)
        started = time.perf_counter()
        files = make_series(folder, args.slices, size=args.size, syntax=args.syntax)
        print(
            f"series: {args.slices} slices {args.size}x{args.size} {args.syntax}, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        check(files)
        results: dict[str, dict] = {}
        for name, fn in contestants(folder, files).items():
            if isinstance(fn, str):
                results[name] = {"skipped": fn}
                continue
            times = measure(fn, args.repeat)
            results[name] = {
                "median_ms": statistics.median(times) * 1000,
                "runs_ms": [t * 1000 for t in times],
            }
        base = results["floor"]["median_ms"]
        print(f"{'tool':<15}{'median ms':>10}{'speed vs floor':>16}")
        for name, row in results.items():
            if "skipped" in row:
                print(f"{name:<15}{row['skipped']}")
                continue
            row["speed_vs_floor"] = base / row["median_ms"]
            print(f"{name:<15}{row['median_ms']:>10.1f}{row['speed_vs_floor']:>15.2f}x")
        if args.json:
            meta = {
                "slices": args.slices,
                "size": args.size,
                "syntax": args.syntax,
                "repeat": args.repeat,
            }
            args.json.write_text(json.dumps({"setup": meta, "results": results}, indent=2) + "\n")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
