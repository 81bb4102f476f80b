#!/usr/bin/env bash
# One-command set-up and use, on Python 3.10 to 3.13:
#   bash dev.sh run     # makes a virtual environment, installs recbole-diffrec, runs DiffRec on the bundled ml-100k
#   bash dev.sh test    # same set-up, then the test suite
# Extra arguments go to the command: bash dev.sh run --model=TDiffRec --epochs=20; bash dev.sh test -m "not slow"
# PYTHON=python3.13 picks the interpreter (default: the first of python3.11, 3.12, 3.13, 3.10 found).
# VENV=/path picks the virtual environment folder (default: .venv for Python 3.11, .venv-3.X for the others).
set -euo pipefail
cd "$(dirname "$0")"

runs() { "$1" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 13)' 2>/dev/null; }

resolve() {  # an interpreter by name or path; a pyenv shim that needs PYENV_VERSION is looked up in pyenv's folder
  local name=$1 found
  if runs "$name"; then command -v "$name" || echo "$name"; return 0; fi
  for found in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/"$(basename "$name")" 2>/dev/null | sort -rV); do
    if runs "$found"; then echo "$found"; return 0; fi
  done
  return 1
}

if [ -n "${PYTHON:-}" ]; then
  PY=$(resolve "$PYTHON") || { echo "dev.sh: error: PYTHON=$PYTHON is not a Python 3.10 to 3.13 interpreter" >&2; exit 2; }
else
  PY=""
  for name in python3.11 python3.12 python3.13 python3.10 python3; do
    if PY=$(resolve "$name"); then break; fi
  done
  [ -n "$PY" ] || { echo "dev.sh: error: no Python 3.10 to 3.13 found; set PYTHON=/path/to/python3.X" >&2; exit 2; }
fi
VERSION=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$VERSION" = "3.11" ]; then VENV=${VENV:-.venv}; else VENV=${VENV:-.venv-$VERSION}; fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import recbole, recbole_diffrec, pytest, hypothesis" 2>/dev/null \
   || [ setup.py -nt "$VENV/.installed" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, pinned. On Python 3.11 this is a CPU build from this machine's disk; on 3.10, 3.12 and 3.13
  # PyPI serves a CUDA build of several GB (it runs on the CPU too). A bare 'torch' would fetch the newest.
  "$VENV/bin/pip" install -q "torch==${TORCH_VERSION:-2.13.0}"
  "$VENV/bin/pip" install -q ".[test]"
  # RecBole without its dependencies, last (so no later install re-checks its metadata): it pins ray<=2.6.3,
  # which has no wheels for Python 3.12+ and which recbole-diffrec never imports; setup.py lists what RecBole
  # needs at run time instead.
  "$VENV/bin/pip" install -q --no-deps "recbole==1.2.1"
  touch "$VENV/.installed"
fi

what=${1:-run}
shift || true
case "$what" in
  run)  exec "$VENV/bin/recbole-diffrec" run --model=DiffRec "$@" ;;
  test) exec "$VENV/bin/python" -m pytest -q tests "$@" ;;
  *) echo "usage: bash dev.sh [run|test] [args...]" >&2; exit 2 ;;
esac
