#!/usr/bin/env bash
# Installs and starts SecantusDB, the MongoDB-wire server the MongoStore tests run against
# (MongoDB itself is not installable here). SecantusDB is GPL: it runs as a separate process and
# is never linked. Idempotent: reuses the virtualenv and a server already answering on the port.
#
#   bash scripts/mongodb.sh          # then: SERVER_SESSION_MONGODB_URL=$URL cargo test ...
#
# Environment: MONGODB_PORT (default 27017), MONGODB_DIR (its data, log and pid file; default
# target/secantusdb). The virtualenv is always target/secantusdb/venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${MONGODB_PORT:-27017}"
URL="mongodb://127.0.0.1:${PORT}/?directConnection=true"
VENV="target/secantusdb/venv"
DIR="${MONGODB_DIR:-target/secantusdb}"
DATA="$DIR/data"
LOG="$DIR/secantusd.log"
# Exact pins: pip finds the SecantusDB pre-release only when asked for this exact version.
PINS=(SecantusDB==0.7.0b3 pymongo==4.20.1 numpy==2.4.6 shapely==2.2.0 s2sphere==0.2.5
  python-dateutil==4.0.0 dnspython==2.9.2 future==1.0.0 tzdata==2026.6)

fail() { echo "mongodb.sh: $*" >&2; exit 1; }

install() {
  if [ -x "$VENV/bin/secantusd-py" ] && "$VENV/bin/python" -c 'import pymongo' 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || fail "python3 is required to install SecantusDB"
  echo "mongodb.sh: installing SecantusDB into $VENV"
  python3 -m venv "$VENV" || fail "could not create the virtualenv $VENV"
  "$VENV/bin/pip" install --quiet "${PINS[@]}" || fail "pip could not install ${PINS[*]}"
  [ -x "$VENV/bin/secantusd-py" ] || fail "the SecantusDB install has no secantusd-py"
}

# Succeeds when a MongoDB-wire server answers `ping` on the port within 2 seconds.
ping() {
  "$VENV/bin/python" - "$URL" <<'EOF' >/dev/null 2>&1
import sys
from pymongo import MongoClient
client = MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
client.admin.command("ping")
EOF
}

start() {
  mkdir -p "$DATA"
  echo "mongodb.sh: starting secantusd-py on 127.0.0.1:$PORT (log: $LOG)"
  nohup "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$PORT" \
    --storage-path "$DATA" --log-level WARNING >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$DIR/secantusd.pid"
  for _ in $(seq 1 60); do
    if ping; then
      echo "mongodb.sh: SecantusDB answers on $URL (pid $pid)"
      return
    fi
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOG" >&2; fail "secantusd-py exited at start"; }
    sleep 1
  done
  tail -n 20 "$LOG" >&2
  fail "SecantusDB did not answer ping on $URL within 60 s"
}

install
if ping; then
  echo "mongodb.sh: a MongoDB-wire server already answers on $URL"
else
  start
fi
