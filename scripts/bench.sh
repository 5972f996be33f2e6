#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: one command, about 10-15 minutes, nothing here gates CI.
#
#   bash scripts/bench.sh
#
# 1. Criterion, pinned to CPU 0 together with every thread of the servers (design.md,
#    "Benchmarking on these machines"): per store our full request cycle and its raw floor in
#    the same run (benches/local.rs for memory and file, benches/<store>.rs for the servers;
#    benches/ is the workspace package server-session-benches),
#    the same cycle with merging of concurrent changes off and a request whose commit merges
#    once (benches/support/merging.rs, in every store bench), the cookie/signature/id
#    micro-benchmarks (core) and the codecs (codec). Medians are read from criterion's
#    estimates.json files under target/bench-run/criterion by scripts/bench_report.py, which
#    writes the report.
# 2. Flask-Session 0.8's per-request session cost on the same servers (benches/flask/bench.py,
#    Flask-Session from PyPI in a virtualenv under target/flask-bench/venv), also pinned.
# 3. Heap allocations per MemoryStore request cycle (benches/alloc.rs, a counting allocator), and
#    instructions per cycle of six kinds counted by callgrind (scripts/instructions.sh).
# 4. wrk against the demo (examples/demo.rs) and a session-less baseline (examples/baseline.rs)
#    with the same worker threads, servers on CPU 0 and wrk on CPU 1: MemoryStore, FileStore,
#    Redis and SQLite, with the cookie sent back (32 sessions reused) and without (a new
#    session per request); then the demo on MemoryStore through >= 1 million new sessions (and
#    >= 150 s) with a 2-second lifetime, sampling VmRSS.
#
# Servers are not started here unless BENCH_START_SERVICES=1 (which runs scripts/services.sh,
# scripts/mongodb.sh and scripts/cluster.sh for the memcached of SERVER_SESSION_MEMCACHED_URL
# first, and leaves them running); a store whose server does not answer is reported as skipped.
# Server CPU affinity is restored on exit.
#
# Environment: BENCH_STORES (default "memory file redis memcached sqlite postgres mongodb"),
# BENCH_SKIP_LOAD=1 (no wrk), BENCH_RSS_REQUESTS (1000000), BENCH_RSS_SECONDS (150),
# BENCH_REPORT_ONLY=1 (rewrite BENCHMARKS.md from the last run's files in target/bench-run),
# and the SERVER_SESSION_*_URL variables.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STARTED=$(date +%s)

OUT=target/bench-run
# --- the report (BENCH_REPORT_ONLY=1 rewrites it from the last run's target/bench-run) ------
write_report() { # scripts/bench_report.py; BENCHMARKS.md is replaced only when it succeeds
  python3 scripts/bench_report.py "$OUT" >"$OUT/BENCHMARKS.md" && cp "$OUT/BENCHMARKS.md" BENCHMARKS.md
}

if [ "${BENCH_REPORT_ONLY:-0}" = 1 ]; then
  write_report
  exit
fi

rm -rf "$OUT"
mkdir -p "$OUT/logs"
export CRITERION_HOME="$ROOT/$OUT/criterion"
CRITERION_ARGS=(--warm-up-time 1 --measurement-time 3 --noplot)
FEATURES="redis,memcached,sqlite,postgres,mongodb"
STORES=${BENCH_STORES:-"memory file redis memcached sqlite postgres mongodb"}
RSS_REQUESTS=${BENCH_RSS_REQUESTS:-1000000}
RSS_SECONDS=${BENCH_RSS_SECONDS:-150}
VENV=target/flask-bench/venv
LAST_CPU=$(($(nproc) - 1))
export SERVER_SESSION_REDIS_URL="${SERVER_SESSION_REDIS_URL:-redis://127.0.0.1:6379/}"
export SERVER_SESSION_MEMCACHED_URL="${SERVER_SESSION_MEMCACHED_URL:-memcache://127.0.0.1:11211}"
export SERVER_SESSION_POSTGRES_URL="${SERVER_SESSION_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SERVER_SESSION_MONGODB_URL="${SERVER_SESSION_MONGODB_URL:-mongodb://127.0.0.1:27017/?directConnection=true}"

say() { echo "bench.sh: $*"; }
host_port() { local rest=${1#*://}; rest=${rest##*@}; echo "${rest%%/*}"; }

# --- the machine --------------------------------------------------------------------------
{
  echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "cores=$(nproc)"
  echo "kernel=$(uname -sr)"
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
} >"$OUT/machine.txt"
say "$(sed -n 's/^load_start=/load average at start: /p' "$OUT/machine.txt")"

# --- which stores can run (BENCH_START_SERVICES=1 starts them first) ------------------------
if [ "${BENCH_START_SERVICES:-0}" = 1 ]; then
  bash scripts/services.sh >"$OUT/logs/services.log" 2>&1 || say "services.sh failed (see $OUT/logs/services.log)"
  bash scripts/mongodb.sh >>"$OUT/logs/services.log" 2>&1 || say "mongodb.sh failed (see $OUT/logs/services.log)"
  SERVER_SESSION_MEMCACHED_CLUSTER_URL=$SERVER_SESSION_MEMCACHED_URL bash scripts/cluster.sh memcached \
    >>"$OUT/logs/services.log" 2>&1 || say "cluster.sh memcached failed (see $OUT/logs/services.log)"
fi
python_venv() {
  if ! "$VENV/bin/python" -c 'import flask_session' 2>/dev/null; then
    say "installing Flask-Session 0.8 and its clients into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r benches/flask/requirements.txt
  fi
}
python_venv

redis_up() { [ "$(redis-cli -u "$SERVER_SESSION_REDIS_URL" ping 2>/dev/null)" = PONG ]; }
memcached_up() {
  local hp; hp=$(host_port "$SERVER_SESSION_MEMCACHED_URL")
  (exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}" && printf 'version\r\n' >&3 && timeout 2 head -c 8 <&3) 2>/dev/null \
    | grep -q VERSION
}
postgres_up() { psql "$SERVER_SESSION_POSTGRES_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; }
mongodb_up() {
  "$VENV/bin/python" - "$SERVER_SESSION_MONGODB_URL" <<'EOF' >/dev/null 2>&1
import sys
from pymongo import MongoClient
MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000).admin.command("ping")
EOF
}
: >"$OUT/stores.tsv"
UP=()
for store in $STORES; do
  case $store in
    memory|file|sqlite) ok=1 ;;
    redis) redis_up && ok=1 || ok=0 ;;
    memcached) memcached_up && ok=1 || ok=0 ;;
    postgres) postgres_up && ok=1 || ok=0 ;;
    mongodb) mongodb_up && ok=1 || ok=0 ;;
    *) say "unknown store $store"; exit 2 ;;
  esac
  if [ "$ok" = 1 ]; then
    UP+=("$store"); printf '%s\tup\t\n' "$store" >>"$OUT/stores.tsv"
  else
    say "$store: server not answering, skipped"
    printf '%s\tskipped\tserver not answering\n' "$store" >>"$OUT/stores.tsv"
  fi
done
is_up() { [[ " ${UP[*]} " == *" $1 "* ]]; }

# --- build everything first, so the timed part is not compiling -----------------------------
build() {
  cargo bench -p server-session-benches --no-run --features "$FEATURES" >"$OUT/logs/build.log" 2>&1 \
    && cargo build --release --features "$FEATURES" --example demo --example baseline \
      >>"$OUT/logs/build.log" 2>&1
}
say "building benches and examples (features $FEATURES)"
if ! build; then
  say "build failed (another engineer's file half-written?); retrying in 60 s"
  sleep 60
  if ! build; then
    if is_up mongodb && FEATURES="redis,memcached,sqlite,postgres" build; then
      FEATURES="redis,memcached,sqlite,postgres"
      say "built without the mongodb feature; mongodb skipped"
      sed -i 's/^mongodb\tup\t$/mongodb\tskipped\tdid not build/' "$OUT/stores.tsv"
      UP=("${UP[@]/mongodb/}")
    else
      tail -30 "$OUT/logs/build.log" >&2
      exit 1
    fi
  fi
fi

# --- pin the servers to CPU 0 (all threads), restore on exit --------------------------------
SAVED_AFFINITY=()
STARTED_PIDS=()
listener_pid() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}
pin_server() { # PORT: the listening process and its children (PostgreSQL's backends)
  local pid child
  pid=$(listener_pid "$1")
  [ -n "$pid" ] || return 0
  for child in "$pid" $(pgrep -P "$pid" || true); do
    local mask
    mask=$(taskset -p "$child" 2>/dev/null | sed -n 's/.*: //p') || continue
    [ -n "$mask" ] || continue
    SAVED_AFFINITY+=("$child:$mask")
    taskset -apc 0 "$child" >/dev/null 2>&1 || true
  done
}
restore() {
  local entry pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for entry in "${SAVED_AFFINITY[@]}"; do
    taskset -ap "${entry#*:}" "${entry%%:*}" >/dev/null 2>&1 || true
  done
}
trap restore EXIT
is_up redis && pin_server "$(host_port "$SERVER_SESSION_REDIS_URL" | cut -d: -f2)"
is_up memcached && pin_server "$(host_port "$SERVER_SESSION_MEMCACHED_URL" | cut -d: -f2)"
is_up postgres && pin_server "$(host_port "$SERVER_SESSION_POSTGRES_URL" | cut -d: -f2)"
is_up mongodb && pin_server "$(host_port "$SERVER_SESSION_MONGODB_URL" | sed 's/?.*//' | cut -d: -f2)"
say "pinned ${#SAVED_AFFINITY[@]} server processes to CPU 0"

# --- criterion ----------------------------------------------------------------------------
bench() { # NAME
  say "criterion: $1"
  if ! taskset -c 0 timeout 900 cargo bench -p server-session-benches --features "$FEATURES" --bench "$1" -- \
      "${CRITERION_ARGS[@]}" >"$OUT/logs/$1.log" 2>&1; then
    say "bench $1 failed (see $OUT/logs/$1.log)"
    printf '%s\tfailed\tsee %s\n' "$1" "$OUT/logs/$1.log" >>"$OUT/stores.tsv"
  fi
}
bench core
bench codec
if is_up memory || is_up file; then bench local; fi
for store in redis memcached sqlite postgres mongodb; do
  if is_up "$store"; then bench "$store"; fi
done
say "allocation count"
taskset -c 0 cargo bench -p server-session-benches --features "$FEATURES" --bench alloc >"$OUT/logs/alloc.log" 2>&1 \
  || say "alloc bench failed (see $OUT/logs/alloc.log)"
ALLOC_TRACE=1 taskset -c 0 cargo bench -p server-session-benches --features "$FEATURES" --bench alloc \
  >"$OUT/logs/alloc-trace.log" 2>&1 || true
say "instruction counts (callgrind)"
INSTRUCTIONS_OUT="$OUT/instructions" bash scripts/instructions.sh >"$OUT/logs/instructions.log" 2>&1 \
  || say "instruction count failed (see $OUT/logs/instructions.log)"

# --- Flask-Session ------------------------------------------------------------------------
FLASK=()
for store in redis memcached sqlite postgres mongodb; do
  if is_up "$store"; then FLASK+=("$store"); fi
done
if [ ${#FLASK[@]} -gt 0 ]; then
  say "Flask-Session 0.8: ${FLASK[*]}"
  taskset -c 0 "$VENV/bin/python" benches/flask/bench.py "${FLASK[@]}" >"$OUT/flask.jsonl" \
    2>"$OUT/logs/flask.log" || say "the Flask harness failed (see $OUT/logs/flask.log)"
fi

# --- load test ----------------------------------------------------------------------------
DEMO=target/release/examples/demo
BASELINE=target/release/examples/baseline
THREADS=8
DEMO_PORT=18080
BASE_PORT=18081
: >"$OUT/load.tsv"
: >"$OUT/rss.tsv"

wait_port() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; return 1; }
start_server() { # LOG COMMAND...: starts it on CPU 0, prints its pid
  taskset -c 0 "${@:2}" >"$1" 2>&1 &
  echo $!
}
# The servers are not children of this shell (started in a command substitution): poll until
# the process is gone and its port free, so the next server can bind it.
stop_server() { # PID
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
}
wait_free() { # PORT
  for _ in $(seq 1 100); do [ -z "$(listener_pid "$1")" ] && return 0; sleep 0.05; done
  say "port $1 is still taken"; return 1
}

TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_ticks() { [ -n "${1:-}" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# One wrk run on CPU 1; prints "requests/s p99_us requests server_cpu_us_per_request
# store_cpu_us_per_request": CPU time (user + system, all threads) of the server process PID
# and of the store's server STORE_PID (0 when none) over the run, per request.
wrk_run() { # PORT SECONDS LUA|"" PID [STORE_PID]
  local script=() before store_before result
  [ -n "$3" ] && script=(-s "$3")
  before=$(cpu_ticks "$4")
  store_before=$(cpu_ticks "${5:-}")
  result=$(taskset -c "$LAST_CPU" wrk -t1 -c"$THREADS" -d"$2"s --latency "${script[@]}" \
    "http://127.0.0.1:$1/" | awk '
      function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
      $1 == "99%" { p99 = us($2) }
      $2 == "requests" && $3 == "in" { n = $1 }
      $1 == "Requests/sec:" { rps = $2 }
      END { printf "%s %s %s\n", rps, p99, n }')
  local n=${result##* } cpu store_cpu
  cpu=$(( ($(cpu_ticks "$4") - before) * TICK_US ))
  store_cpu=$(( ($(cpu_ticks "${5:-}") - store_before) * TICK_US ))
  awk -v r="$result" -v n="${n:-0}" -v c="$cpu" -v s="$store_cpu" \
    'BEGIN { n = n > 0 ? n : 1; printf "%s %.2f %.2f\n", r, c / n, s / n }'
}

# A wrk script that sends the cookies of 32 sessions, round robin.
cookie_script() { # PORT FILE
  {
    echo 'local cookies = {'
    for _ in $(seq 1 32); do
      curl -s -D - -o /dev/null "http://127.0.0.1:$1/" | tr -d '\r' \
        | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\);.*/  "\1",/p'
    done
    cat <<'EOF'
}
local requests, i = {}, 0
function init(args)
  for n, cookie in ipairs(cookies) do requests[n] = wrk.format("GET", "/", { Cookie = cookie }) end
end
function request()
  i = i % #requests + 1
  return requests[i]
end
EOF
  } >"$2"
  [ "$(grep -c '"session=' "$2")" = 32 ]
}

load_store() { # STORE URL [STORE_SERVER_PORT]
  local store=$1 url=$2 demo base lua=$OUT/cookies-$1.lua round line store_pid=
  [ -n "${3:-}" ] && store_pid=$(listener_pid "$3")
  wait_free "$DEMO_PORT" && wait_free "$BASE_PORT" || return 0
  demo=$(start_server "$OUT/logs/demo-$store.log" "$DEMO" --addr "127.0.0.1:$DEMO_PORT" \
    --threads "$THREADS" --store "$url" --secret bench-secret-key --lifetime 60)
  STARTED_PIDS+=("$demo")
  base=$(start_server "$OUT/logs/baseline-$store.log" "$BASELINE" --addr "127.0.0.1:$BASE_PORT" \
    --threads "$THREADS")
  STARTED_PIDS+=("$base")
  if ! wait_port "$DEMO_PORT" || ! wait_port "$BASE_PORT" || ! cookie_script "$DEMO_PORT" "$lua"; then
    say "load test $store: the servers did not come up (see $OUT/logs/demo-$store.log)"
    stop_server "$demo"; stop_server "$base"
    return
  fi
  wrk_run "$BASE_PORT" 2 "$lua" "$base" >/dev/null
  wrk_run "$DEMO_PORT" 2 "$lua" "$demo" >/dev/null
  # All cookie rounds first: the new-session rounds fill the store (and can push a FileStore
  # over its threshold, which then prunes the 32 reused sessions too).
  for mode in cookie new; do
    for round in 1 2 3; do
      local script=$lua
      [ "$mode" = new ] && script=
      line=$(wrk_run "$BASE_PORT" 4 "$script" "$base")
      printf '%s\t%s\t%s\tbaseline\t%s\n' "$store" "$mode" "$round" "${line// /$'\t'}" >>"$OUT/load.tsv"
      line=$(wrk_run "$DEMO_PORT" 4 "$script" "$demo" "$store_pid")
      printf '%s\t%s\t%s\tdemo\t%s\n' "$store" "$mode" "$round" "${line// /$'\t'}" >>"$OUT/load.tsv"
    done
  done
  stop_server "$demo"
  stop_server "$base"
}

# New sessions (no cookie) on MemoryStore with a 2 s lifetime, in 10 s chunks until at least
# RSS_REQUESTS requests and RSS_SECONDS have passed; VmRSS after each chunk.
rss_run() {
  local demo total=0 started line n
  wait_free "$DEMO_PORT" || return 0
  demo=$(start_server "$OUT/logs/demo-rss.log" "$DEMO" --addr "127.0.0.1:$DEMO_PORT" \
    --threads "$THREADS" --store memory: --secret bench-secret-key --lifetime 2)
  STARTED_PIDS+=("$demo")
  wait_port "$DEMO_PORT" || { say "RSS run: the demo did not come up"; return; }
  started=$SECONDS
  rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$demo/status"; }
  printf '0\t0\t%s\n' "$(rss)" >>"$OUT/rss.tsv"
  for _ in $(seq 1 60); do
    line=$(wrk_run "$DEMO_PORT" 10 "" "$demo")
    n=$(echo "$line" | cut -d' ' -f3)
    total=$((total + ${n:-0}))
    printf '%s\t%s\t%s\n' "$((SECONDS - started))" "$total" "$(rss)" >>"$OUT/rss.tsv"
    [ "$total" -ge "$RSS_REQUESTS" ] && [ $((SECONDS - started)) -ge "$RSS_SECONDS" ] && break
  done
  sleep 3 # every session has expired; the next writes evict them
  wrk_run "$DEMO_PORT" 1 "" "$demo" >/dev/null
  printf 'idle\t%s\t%s\n' "$total" "$(rss)" >>"$OUT/rss.tsv"
  sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/peak\t\t\1/p' "/proc/$demo/status" >>"$OUT/rss.tsv"
  stop_server "$demo"
}

if [ "${BENCH_SKIP_LOAD:-0}" != 1 ]; then
  command -v wrk >/dev/null 2>&1 || {
    say "installing wrk"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  }
  for port in $DEMO_PORT $BASE_PORT; do
    [ -z "$(listener_pid "$port")" ] || { say "port $port is taken"; exit 1; }
  done
  rm -rf "$OUT/load-files" "$OUT"/load.db*
  for store in memory file redis sqlite; do
    is_up "$store" || continue
    say "wrk: $store"
    case $store in
      memory) load_store memory memory: ;;
      file) load_store file "file://$ROOT/$OUT/load-files" ;;
      redis) load_store redis "$SERVER_SESSION_REDIS_URL" \
        "$(host_port "$SERVER_SESSION_REDIS_URL" | cut -d: -f2)" ;;
      sqlite) load_store sqlite "sqlite://$ROOT/$OUT/load.db" ;;
    esac
  done
  if is_up memory; then
    say "wrk: $RSS_REQUESTS new sessions on MemoryStore, sampling VmRSS"
    rss_run
  fi
fi

restore
SAVED_AFFINITY=()
STARTED_PIDS=()
{
  echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "runtime=$(($(date +%s) - STARTED))"
} >>"$OUT/machine.txt"
say "$(sed -n 's/^load_end=/load average at end: /p' "$OUT/machine.txt")"

write_report
say "wrote BENCHMARKS.md in $(($(date +%s) - STARTED)) s"
