"""How fast `gai` answers: its start-up against the interpreter's floor and a heavy import.

`gai --help` must answer in about a second on 2 cores, so the CLI imports nothing heavy at
start-up. This measures, in one run: `python -c pass` (the floor), `gai --help`, `gai config`
(loads the settings), and `python -c "import torch"` (what a careless import would cost).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def timed(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10, help="runs per command (default 10)")
    args = parser.parse_args(argv)
    gai = str(VENV_BIN / "gai")
    cases = {
        "floor: python -c pass": [sys.executable, "-c", "pass"],
        "gai --help": [gai, "--help"],
        "gai config": [gai, "config"],
        "peer: python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    timed(cases["gai --help"], 1)  # warm the file cache
    results = {name: statistics.median(timed(cmd, args.repeat)) for name, cmd in cases.items()}
    floor = results["floor: python -c pass"]
    print(f"{'command':<34} {'median s':>9} {'x floor':>8}")
    for name, seconds in results.items():
        print(f"{name:<34} {seconds:>9.3f} {seconds / floor:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
