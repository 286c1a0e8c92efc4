#!/usr/bin/env bash
# Run every benchmark in benchmarks/ with its defaults, one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in benchmarks/bench_*.py; do
  printf '\n== %s\n' "$bench"
  .venv/bin/python "$bench"
done
