#!/usr/bin/env bash
# One-command set-up and use. On a fresh machine (Python 3.11):
#   bash dev.sh run     # makes .venv, installs recbole-diffrec, runs DiffRec on the bundled ml-100k
#   bash dev.sh test    # same set-up, then the test suite
# Extra arguments go to the command: bash dev.sh run --model=TDiffRec --epochs=20
# VENV=/path picks another virtual environment folder.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import recbole_diffrec, pytest, hypothesis" 2>/dev/null \
   || [ setup.py -nt "$VENV/.installed" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, pinned: a CPU build. A bare 'torch' requirement would fetch a multi-GB CUDA build;
  # setup.py's torch>=2.6 is then already satisfied.
  "$VENV/bin/pip" install -q "torch==${TORCH_VERSION:-2.13.0}"
  "$VENV/bin/pip" install -q ".[test]"
  touch "$VENV/.installed"
fi

what=${1:-run}
shift || true
case "$what" in
  run)  exec "$VENV/bin/recbole-diffrec" run --model=DiffRec "$@" ;;
  test) exec "$VENV/bin/python" -m pytest -q tests "$@" ;;
  *) echo "usage: bash dev.sh [run|test] [args...]" >&2; exit 2 ;;
esac
