#!/usr/bin/env bash
# Sourced by scripts/test.sh: the servers the suite needs with settings of its own, started on
# ports of its own (never 11211, 7000-7005, 11212-11214 or 27017, which the user may run), with
# their state under target/test-services/, unless the matching variable names a server already:
#
#   memcached with 2 MiB items   127.0.0.1:21211        SERVER_SESSION_MEMCACHED_URL
#   memcached, three instances   127.0.0.1:21212-21214  SERVER_SESSION_MEMCACHED_CLUSTER_URL
#   Redis Cluster, 3+3 nodes     127.0.0.1:21700-21705  SERVER_SESSION_REDIS_CLUSTER_URL
#   SecantusDB (MongoDB wire)    127.0.0.1:21217        SERVER_SESSION_MONGODB_URL
#
# start_services exports the variables it fills in; stop_services stops exactly the servers
# whose pid files are under target/test-services/ (scripts/cluster.sh rewrites a node's file when
# a test restarts it), so it is safe to call at any time, also twice.

SERVICES_DIR="$PWD/target/test-services"
OWN_REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:21700,127.0.0.1:21701,127.0.0.1:21702,\
127.0.0.1:21703,127.0.0.1:21704,127.0.0.1:21705"
OWN_MEMCACHED_CLUSTER_URL="memcache://127.0.0.1:21212,127.0.0.1:21213,127.0.0.1:21214"

services_say() { echo "test_services.sh: $*"; }

# The servers started here that still run: pids from the pid files, each checked to be one of
# our servers (a stale file's pid may belong to another process by now).
own_pids() {
  local file pid
  while IFS= read -r file; do
    pid=$(cat "$file" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    grep -qaE 'memcached|redis-server|secantusd' "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
  done < <(find "$SERVICES_DIR" -name '*.pid' 2>/dev/null)
}

stop_services() {
  local pids pid
  pids=$(own_pids)
  [ -n "$pids" ] || return 0
  services_say "stopping the servers started for the tests (pids" $pids")"
  kill $pids 2>/dev/null || true
  for pid in $pids; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  find "$SERVICES_DIR" -name '*.pid' -delete
}

# Fails unless nothing listens on the ports of URL (and, for a Redis Cluster, on their bus ports).
require_free_ports() { # URL [BUS_OFFSET]
  local rest=${1#*://} hostport port
  rest=${rest##*@}
  for hostport in ${rest//,/ }; do
    port=${hostport##*:}
    port=${port%%[/?]*}
    for port in "$port" ${2:+$((port + $2))}; do
      if [ -n "$(ss -Hltn "sport = :$port")" ]; then
        services_say "port $port is taken by a server not started here: free it, or name a server" \
          "of your own with the SERVER_SESSION_*_URL variable (scripts/test_services.sh)" >&2
        return 1
      fi
    done
  done
}

start_services() {
  mkdir -p "$SERVICES_DIR"
  stop_services # what a killed earlier run left behind
  if [ -z "${SERVER_SESSION_MEMCACHED_URL:-}" ]; then
    export SERVER_SESSION_MEMCACHED_URL="memcache://127.0.0.1:21211"
    require_free_ports "$SERVER_SESSION_MEMCACHED_URL"
    # One memcached instance is a cluster of one to scripts/cluster.sh.
    SERVER_SESSION_MEMCACHED_CLUSTER_URL=$SERVER_SESSION_MEMCACHED_URL \
      SERVER_SESSION_CLUSTER_DIR="$SERVICES_DIR/memcached" bash scripts/cluster.sh memcached
  fi
  if [ -z "${SERVER_SESSION_REDIS_CLUSTER_URL:-}" ] || [ -z "${SERVER_SESSION_MEMCACHED_CLUSTER_URL:-}" ]; then
    # The tests lock and restart the clusters through scripts/cluster.sh, in this directory.
    export SERVER_SESSION_CLUSTER_DIR="$SERVICES_DIR/cluster"
  fi
  if [ -z "${SERVER_SESSION_REDIS_CLUSTER_URL:-}" ]; then
    export SERVER_SESSION_REDIS_CLUSTER_URL=$OWN_REDIS_CLUSTER_URL
    require_free_ports "$SERVER_SESSION_REDIS_CLUSTER_URL" 10000
    bash scripts/cluster.sh redis
  fi
  if [ -z "${SERVER_SESSION_MEMCACHED_CLUSTER_URL:-}" ]; then
    export SERVER_SESSION_MEMCACHED_CLUSTER_URL=$OWN_MEMCACHED_CLUSTER_URL
    require_free_ports "$SERVER_SESSION_MEMCACHED_CLUSTER_URL"
    bash scripts/cluster.sh memcached
  fi
  if [ -z "${SERVER_SESSION_MONGODB_URL:-}" ]; then
    export SERVER_SESSION_MONGODB_URL="mongodb://127.0.0.1:21217/?directConnection=true"
    require_free_ports "$SERVER_SESSION_MONGODB_URL"
    MONGODB_PORT=21217 MONGODB_DIR="$SERVICES_DIR/secantusdb" bash scripts/mongodb.sh
  fi
}
