#!/usr/bin/env bash
# Idempotent platform set-up: system services (Debian), the Python environment
# (.venv: torch CPU from the local wheel with pip, the rest with uv), and the
# hub's proxy (npm, into this repository). Safe to run again: each step checks
# what is already there and skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
# pip on these machines warns about every empty local index folder; keep real messages only
quiet_pip() { .venv/bin/pip "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_VERSION=2.13.0

# --- 1. system services from Debian ------------------------------------------------
need_pkgs=()
command -v Orthanc >/dev/null 2>&1 || need_pkgs+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_pkgs+=(orthanc-dicomweb)
command -v storescu >/dev/null 2>&1 || need_pkgs+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || need_pkgs+=(dicom3tools)
# headless browser for page tests and the report's PDF; Korean fonts; PDF -> PNG checks
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need_pkgs+=(fonts-noto-cjk)
command -v pdftoppm >/dev/null 2>&1 || need_pkgs+=(poppler-utils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    # apt starts nothing we need; make sure a packaged Orthanc service is not left running
    if command -v service >/dev/null 2>&1; then service orthanc stop >/dev/null 2>&1 || true; fi
  else
    say "WARNING: missing Debian packages: ${need_pkgs[*]}"
    say "         run as root, or ask an administrator: apt-get install ${need_pkgs[*]}"
    say "         (the site PACS and the DICOM validator tests need them)"
  fi
fi

# --- 2. Python environment ---------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "installing torch $TORCH_VERSION (CPU build) with pip"
  quiet_pip install -q "torch==$TORCH_VERSION"
fi
if [ ! -x .venv/bin/uv ]; then
  say "installing uv"
  quiet_pip install -q uv
fi
stamp=.venv/.gai-setup-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing gai-research and its dependencies with uv"
  VIRTUAL_ENV=$PWD/.venv .venv/bin/uv pip install -q --compile-bytecode \
    --python .venv/bin/python -c constraints.txt -e '.[dev]'
  echo "$want" > "$stamp"
else
  say "python environment up to date"
fi

# --- 3. configurable-http-proxy for JupyterHub (npm, local to the repo) --------------
if [ ! -x node_modules/.bin/configurable-http-proxy ]; then
  if command -v npm >/dev/null 2>&1; then
    say "installing configurable-http-proxy with npm (into ./node_modules)"
    npm ci --silent --no-audit --no-fund >/dev/null 2>&1 || npm install --silent --no-audit --no-fund >/dev/null
  else
    say "WARNING: npm not found: the shared JupyterHub needs configurable-http-proxy (apt-get install npm)"
  fi
fi
say "done: .venv/bin/gai is ready"
