#!/usr/bin/env bash
# Lint, then the whole test suite. The suite starts real services (Orthanc, DICOM
# peers, later MLflow and JupyterHub) on loopback; where we may (root with
# unshare), it runs in a network namespace of its own that has only loopback, so
# no test can reach, or be reached from, any other address.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check gai_research tests benchmarks
pytest=(.venv/bin/python -m pytest "$@")
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null 2>&1; then
  echo "[test] running pytest in a loopback-only network namespace"
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "${pytest[@]}"
fi
echo "[test] no network namespace available (not root or no unshare): services stay on 127.0.0.1"
exec "${pytest[@]}"
