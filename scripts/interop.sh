#!/usr/bin/env bash
# Creates target/interop-venv, the pinned Flask-Session 0.8 stack that tests/interop.rs drives
# (flask==3.1.3, flask-session==0.8.0 and the Python client of every shared backend; the pins
# are in tests/interop/requirements.txt). Idempotent: an up-to-date venv is reused as it is.
#
#   bash scripts/interop.sh
#   SERVER_SESSION_INTEROP_PYTHON=$PWD/target/interop-venv/bin/python cargo test --all-features --test interop
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="target/interop-venv"
REQUIREMENTS="tests/interop/requirements.txt"
STAMP="$VENV/requirements.installed"
IMPORTS="import flask, flask_session, msgspec, redis, redis.cluster, pymemcache, flask_sqlalchemy, psycopg2, pymongo"

fail() { echo "interop.sh: $*" >&2; exit 1; }

if [ -x "$VENV/bin/python" ] && cmp -s "$REQUIREMENTS" "$STAMP" \
  && "$VENV/bin/python" -c "$IMPORTS" 2>/dev/null; then
  echo "interop.sh: $VENV is up to date"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 is required to create $VENV"
echo "interop.sh: creating $VENV ($(python3 --version))"
rm -rf "$VENV"
python3 -m venv "$VENV" || fail "could not create the virtualenv $VENV"
# --no-deps: the requirements list every package, so nothing unpinned comes in; pip check
# then proves the list complete.
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
  -r "$REQUIREMENTS" || fail "pip could not install $REQUIREMENTS"
"$VENV/bin/pip" check --disable-pip-version-check || fail "$REQUIREMENTS is missing a dependency"
"$VENV/bin/python" -c "$IMPORTS" || fail "the venv cannot import its packages"
cp "$REQUIREMENTS" "$STAMP"
echo "interop.sh: $VENV is ready (SERVER_SESSION_INTEROP_PYTHON=$PWD/$VENV/bin/python)"
