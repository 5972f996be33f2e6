#!/usr/bin/env bash
# The project's own Python (scripts/*.py): pyflakes, then the unit tests (scripts/test_*.py).
# pyflakes is installed, pinned, into target/lint-venv on first use; without PyPI the files
# are at least compiled.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/lint-venv
FILES=(scripts/*.py)
if ! "$VENV/bin/python" -m pyflakes --version >/dev/null 2>&1; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet pyflakes==4.1.0 \
    || echo "python_checks.sh: pyflakes could not be installed; compiling only" >&2
fi
if "$VENV/bin/python" -m pyflakes --version >/dev/null 2>&1; then
  "$VENV/bin/python" -m pyflakes "${FILES[@]}"
else
  python3 -m py_compile "${FILES[@]}"
fi
python3 -m unittest discover -s scripts -p 'test_*.py'
