"""Benchmark: ``gai deid`` against a plain pydicom read+write loop, dicognito and deid.

Generates its own deterministic corpus (CT slices, 512x512, 16-bit, Korean-hospital
headers with planted identifiers), runs the four tools side by side on it, and
reports files/s, the ratio to the floor, and leaks: planted identifiers still found
in each tool's output.

    .venv/bin/python benchmarks/bench_deid.py                 # 1,000 slices (the issue's size)
    .venv/bin/python benchmarks/bench_deid.py --slices 200    # quicker
    .venv/bin/python benchmarks/bench_deid.py --json out.json --keep /tmp/bench

The peers are the ``bench`` extra (``uv pip install -e '.[bench]'``): dicognito
(``Anonymizer().anonymize(ds)``, seeded MD5, one process) and pydicom/deid
(``replace_identifiers`` with its default recipe). A tool that is not installed is
reported as skipped. Planted identifiers: the patient's Korean name (Hangul, Hanja,
romanized) in PatientName and in free text, the hospital ID, the resident
registration number (in OtherPatientIDsSequence and in comments, with and without
hyphen), a phone number, an address, and private tags holding the name and RRN.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from gai_research.deid.samples import PATIENTS, make_ct_slice, planted_bytes


def make_corpus(folder: Path, slices: int, seed: int = 3) -> list[Path]:
    """Write ``slices`` CT slices (512x512, 16-bit) in per-patient/per-series folders; deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-256:256, -256:256]
    body = (xx**2 / 200**2 + yy**2 / 150**2) < 1
    base = np.where(body, 1064, 24).astype(np.int16) + rng.normal(0, 12, (512, 512)).astype(
        np.int16
    )
    per_patient = max(1, slices // len(PATIENTS))
    files = []
    for index in range(slices):
        p = min(index // per_patient, len(PATIENTS) - 1)
        number = index - p * per_patient
        ds = make_ct_slice(PATIENTS[p], number, pixels=base + np.int16(number % 50))
        path = folder / f"patient{p}" / "series2" / f"p{p}_{number:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def header_bytes(path: Path) -> bytes:
    """The file's bytes before its pixel data (identifiers in pixels are not this check's business)."""
    data = path.read_bytes()
    cut = data.rfind(b"\xe0\x7f\x10\x00")
    return data[:cut] if cut > 0 else data


def leaks(output_dir: Path) -> dict[str, int]:
    """Files whose header still holds a planted identifier, per kind; and files with private tags."""
    found = {
        "files": 0,
        "hospital_id": 0,
        "rrn": 0,
        "name": 0,
        "phone": 0,
        "address": 0,
        "private_tags": 0,
    }
    patterns = {}
    for patient in PATIENTS:
        for kind, values in planted_bytes(patient).items():
            patterns.setdefault(kind, []).extend(values)
    for path in sorted(output_dir.rglob("*")):
        if not path.is_file():
            continue
        found["files"] += 1
        header = header_bytes(path)
        for kind, values in patterns.items():
            if any(value in header for value in values):
                found[kind] += 1
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if any(element.tag.is_private for element in ds.iterall()):
            found["private_tags"] += 1
    return found


# --- the four tools ------------------------------------------------------------------------
def run_floor(files: list[Path], out: Path) -> None:
    for path in files:
        ds = pydicom.dcmread(path)
        ds.save_as(out / path.name)


# `gai ARGS`, also before the lead has listed the deid command in gai_research.cli.COMMAND_MODULES
_GAI = """import argparse, sys
from gai_research import cli
if "gai_research.cli.deid" in cli.COMMAND_MODULES:
    sys.exit(cli.main())
from gai_research.cli import deid
parser = argparse.ArgumentParser(prog="gai")
parser.add_argument("--config")
parser.set_defaults(verbose=0)
deid.register(parser.add_subparsers(dest="command"))
args = parser.parse_args()
sys.exit(args.handler(args))
"""


def run_gai(files: list[Path], out: Path, workers: int | None, input_dir: Path, home: Path) -> None:
    command = [
        sys.executable,
        "-c",
        _GAI,
        "deid",
        str(input_dir),
        str(out),
        "--site",
        "SUWON",
        "--quiet",
    ]
    if workers:
        command += ["--workers", str(workers)]
    env = dict(os.environ, GAI_HOME=str(home), GAI_KEY_FILE=str(home / "bench.key"))
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"gai deid failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def run_dicognito(files: list[Path], out: Path) -> None:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer(seed="gai-bench")
    for path in files:
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        ds.save_as(out / path.name)


def run_deid(files: list[Path], out: Path) -> None:
    import logging

    from deid.dicom import replace_identifiers

    logging.getLogger("deid").setLevel(logging.ERROR)
    replace_identifiers(
        dicom_files=[str(p) for p in files], save=True, output_folder=str(out), overwrite=True
    )


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--slices", type=int, default=1000, help="CT slices in the corpus (default 1000)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="gai deid workers (default: its own, CPU count)"
    )
    parser.add_argument(
        "--tools", default="floor,gai,dicognito,deid", help="comma-separated subset to run"
    )
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temp folder)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per tool; the best one counts (default 3)"
    )
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="gai-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    try:
        if corpus.exists():
            shutil.rmtree(corpus)
        start = time.perf_counter()
        files = make_corpus(corpus, args.slices)
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"corpus: {len(files)} CT slices 512x512 16-bit, {size_mb:.0f} MB, made in "
              f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs")  # fmt: skip
        home = work / "home"
        home.mkdir(exist_ok=True)
        key = home / "bench.key"
        key.write_text("b" * 64 + "\n")
        key.chmod(0o600)
        runners = {
            "floor": ("pydicom read+write (1 process)", lambda out: run_floor(files, out), None),
            "gai": (
                f"gai deid (workers {args.workers or os.cpu_count()})",
                lambda out: run_gai(files, out, args.workers, corpus, home),
                "gai_research",
            ),
            "dicognito": (
                "dicognito 0.19 (1 process)",
                lambda out: run_dicognito(files, out),
                "dicognito",
            ),
            "deid": (
                "deid 0.4 default recipe (1 process)",
                lambda out: run_deid(files, out),
                "deid",
            ),
        }
        results = []
        for name in [t.strip() for t in args.tools.split(",") if t.strip()]:
            label, runner, module = runners[name]
            if module and not available(module):
                print(
                    f"{name}: skipped ({module} is not installed; `uv pip install -e '.[bench]'`)"
                )
                continue
            out = work / f"out-{name}"
            times, loads = [], []
            for _ in range(args.repeat):
                shutil.rmtree(out, ignore_errors=True)
                if name == "gai":
                    shutil.rmtree(home / "vault", ignore_errors=True)
                out.mkdir(parents=True)
                _settle(files)
                loads.append(os.getloadavg()[0])  # others' work on a shared machine skews a run
                start = time.perf_counter()
                runner(out)
                times.append(time.perf_counter() - start)
            seconds = min(times)
            found = leaks(out) if name != "floor" else {"files": len(files)}
            results.append({"tool": name, "label": label, "seconds": round(seconds, 2),
                            "runs_s": [round(t, 2) for t in times],
                            "load_1min": [round(load, 2) for load in loads],
                            "files_per_s": round(len(files) / seconds, 1), **found})  # fmt: skip
            runs = ", ".join(f"{t:.2f}" for t in times)
            load = ", ".join(f"{load:.1f}" for load in loads)
            print(
                f"{name}: {len(files) / seconds:.1f} files/s (best of {args.repeat}: {seconds:.2f} s; "
                f"runs {runs} s; load before each run {load})"
            )
        floor = next((r["files_per_s"] for r in results if r["tool"] == "floor"), None)
        print()
        print("| tool | files/s | vs floor | files written | leaks: files with RRN / name / hospital ID / "
              "phone / address / private tags |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | --- |")
        for r in results:
            ratio = f"{r['files_per_s'] / floor:.2f}x" if floor else "-"
            r["vs_floor"] = round(r["files_per_s"] / floor, 2) if floor else None
            leak = (
                "-"
                if r["tool"] == "floor"
                else " / ".join(
                    str(r[k])
                    for k in ("rrn", "name", "hospital_id", "phone", "address", "private_tags")
                )
            )
            print(f"| {r['label']} | {r['files_per_s']} | {ratio} | {r['files']} | {leak} |")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"slices": len(files), "cpus": os.cpu_count(), "results": results}, indent=1
                )
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _settle(files: list[Path]) -> None:
    """The same start for every tool: earlier outputs flushed to disk, the corpus in the page cache."""
    os.sync()
    for path in files:
        path.read_bytes()


if __name__ == "__main__":
    sys.exit(main())
