#!/usr/bin/env bash
# Starts, idempotently, the local clusters the scale-out tests run against, and fails loudly
# unless they are healthy:
#
#   - Redis Cluster: 6 nodes (default 127.0.0.1:7000-7005), 3 masters and 3 replicas, each node with
#     `--cluster-node-timeout 2000` (a failed master is replaced within a few seconds) and
#     `--cluster-require-full-coverage no` (the other shards keep serving meanwhile), no persistence;
#   - memcached: 3 instances (default 127.0.0.1:11212-11214), with 2 MiB items (`-I 2m`).
#
# The ports are those of SERVER_SESSION_REDIS_CLUSTER_URL and SERVER_SESSION_MEMCACHED_CLUSTER_URL
# when they are set (the tests inherit them, so a test that restarts a node restarts it on the
# right port); the pid file of every server is in the state directory (redis-PORT/redis.pid,
# memcached-PORT.pid), for scripts/test.sh to stop the servers it started.
#
#   bash scripts/cluster.sh [redis|memcached]     # both when no argument is given
#
# It starts only what is not running and stops nothing. When none of the six Redis nodes is
# running it wipes their state directories and creates a fresh cluster
# (`redis-cli --cluster create ... --cluster-replicas 1`); when some are running, it restarts the
# missing ones from their saved cluster config, so that they rejoin (a master that failed over
# comes back as a replica). It then waits until every node reports `cluster_state:ok`, knows all
# six nodes, and every replica's link to its master is up.
#
# State lives in SERVER_SESSION_CLUSTER_DIR (default: $TMPDIR or /tmp, then
# /server-session-cluster), shared by every checkout on the machine, as the ports are. The
# script holds an exclusive flock on cluster.lock in that directory while it works; the tests
# hold it shared while they need the clusters steady, and exclusive while they kill and restart
# a server (they then run this script with SERVER_SESSION_CLUSTER_LOCKED=1).
set -euo pipefail

DIR="${SERVER_SESSION_CLUSTER_DIR:-${TMPDIR:-/tmp}/server-session-cluster}"
# The ports of a URL such as redis+cluster://127.0.0.1:7000,127.0.0.1:7001 (one a line).
url_ports() { local rest=${1#*://}; rest=${rest##*@}; tr ',' '\n' <<<"${rest%%/*}" | sed 's/.*://'; }
mapfile -t REDIS_PORTS < <(url_ports "${SERVER_SESSION_REDIS_CLUSTER_URL:-redis+cluster://127.0.0.1:7000,\
127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005}")
mapfile -t MEMCACHED_PORTS < <(url_ports "${SERVER_SESSION_MEMCACHED_CLUSTER_URL:-memcache://127.0.0.1:11212,\
127.0.0.1:11213,127.0.0.1:11214}")
WAIT_SECONDS=45

fail() { echo "cluster.sh: $*" >&2; exit 1; }

require() {
  command -v "$1" >/dev/null 2>&1 || fail "'$1' is required (bash scripts/services.sh installs it)"
}

# Polls `$@` every 0.2 s for up to WAIT_SECONDS.
wait_for() {
  local tries=$((WAIT_SECONDS * 5))
  for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
  return 1
}

lock() {
  mkdir -p "$DIR"
  [ "${SERVER_SESSION_CLUSTER_LOCKED:-0}" = 1 ] && return
  require flock
  exec 9>"$DIR/cluster.lock"
  flock -w 300 9 || fail "another process held $DIR/cluster.lock for 5 minutes"
}

# ------------------------------------------------------------------------------------------------
# Redis Cluster
# ------------------------------------------------------------------------------------------------

cli() {
  local port=$1
  shift
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null | tr -d '\r'
}

node_up() { [ "$(cli "$1" ping)" = PONG ]; }

# The value of `field` in the output of `redis-cli -p port <command...>`.
field() {
  local port=$1 name=$2
  shift 2
  cli "$port" "$@" | sed -n "s/^$name://p"
}

# Every server started here gets `9>&-`: a daemon that inherited the lock's descriptor would
# hold the lock for as long as it runs.
start_node() {
  local port=$1 dir="$DIR/redis-$1"
  mkdir -p "$dir"
  echo "cluster.sh: starting Redis Cluster node 127.0.0.1:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --cluster-require-full-coverage no --save "" --appendonly no \
    --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >/dev/null 9>&-
}

# Every node sees a complete, ok cluster of 6 nodes, each master has a replica, and every replica
# is in sync with its master.
redis_cluster_healthy() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    local info
    info=$(cli "$port" cluster info)
    grep -qx 'cluster_state:ok' <<<"$info" || return 1
    grep -qx 'cluster_known_nodes:6' <<<"$info" || return 1
    grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
    if [ "$(field "$port" role info replication)" = slave ]; then
      [ "$(field "$port" master_link_status info replication)" = up ] || return 1
    fi
  done
  local nodes
  nodes=$(cli "${REDIS_PORTS[0]}" cluster nodes)
  ! grep -q fail <<<"$nodes" || return 1
  # 3 masters, each with a replica.
  awk '$3 ~ /master/ { masters[$1] = 1 } $3 ~ /slave/ { replicas[$4]++ }
       END { n = 0; for (id in masters) { n++; if (!replicas[id]) exit 1 } exit n != 3 }' <<<"$nodes"
}

# Every node is up but alone: started and never joined (also when an earlier run stopped
# between starting the nodes and creating the cluster).
all_nodes_alone() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    [ "$(field "$port" cluster_known_nodes cluster info)" = 1 ] || return 1
    [ "$(field "$port" cluster_slots_assigned cluster info)" = 0 ] || return 1
  done
}

all_nodes_up() {
  local port
  for port in "${REDIS_PORTS[@]}"; do node_up "$port" || return 1; done
}

ensure_redis_cluster() {
  require redis-server
  require redis-cli
  local port running=0
  for port in "${REDIS_PORTS[@]}"; do node_up "$port" && running=$((running + 1)); done
  if [ "$running" = 0 ]; then
    rm -rf "${REDIS_PORTS[@]/#/$DIR/redis-}"
  fi
  for port in "${REDIS_PORTS[@]}"; do node_up "$port" || start_node "$port"; done
  wait_for all_nodes_up || fail "Redis Cluster nodes did not answer PING (logs: $DIR/redis-*/redis.log)"
  for port in "${REDIS_PORTS[@]}"; do
    [ "$(field "$port" cluster_enabled info cluster)" = 1 ] \
      || fail "127.0.0.1:$port runs a Redis without cluster mode, not started by this script: free the port"
  done
  if all_nodes_alone; then
    echo "cluster.sh: creating the Redis Cluster (3 masters, 3 replicas)"
    redis-cli --cluster create "${REDIS_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 1 --cluster-yes \
      >"$DIR/create.log" 2>&1 || { cat "$DIR/create.log" >&2; fail "redis-cli --cluster create failed"; }
  fi
  if ! wait_for redis_cluster_healthy; then
    cli "${REDIS_PORTS[0]}" cluster nodes >&2 || true
    fail "the Redis Cluster on ports ${REDIS_PORTS[*]} is not healthy after ${WAIT_SECONDS} s; if a node" \
      "lost its state, stop all six (redis-cli -p PORT shutdown nosave) and run this script again"
  fi
  echo "cluster.sh: Redis Cluster is up on 127.0.0.1, ports ${REDIS_PORTS[*]}"
}

# ------------------------------------------------------------------------------------------------
# memcached
# ------------------------------------------------------------------------------------------------

# memcached's `stats [group]` on a port (empty when nothing answers).
memcached_stats() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'stats%s\r\nquit\r\n' "${2:+ $2}" >&3 && timeout 2 cat <&3) \
    2>/dev/null | tr -d '\r' || true
}

memcached_settings() { memcached_stats "$1" settings; }

memcached_up() { memcached_settings "$1" | grep -q '^STAT item_size_max '; }

ensure_memcached_instances() {
  require memcached
  local user=() port
  if [ "$(id -u)" = 0 ]; then
    if id memcache >/dev/null 2>&1; then user=(-u memcache); else user=(-u root); fi
  fi
  for port in "${MEMCACHED_PORTS[@]}"; do
    if ! memcached_up "$port"; then
      echo "cluster.sh: starting memcached on 127.0.0.1:$port"
      memcached -d "${user[@]}" -l 127.0.0.1 -p "$port" -I 2m 9>&-
    fi
  done
  for port in "${MEMCACHED_PORTS[@]}"; do
    wait_for memcached_up "$port" || fail "memcached is not answering on 127.0.0.1:$port"
    local item_max
    item_max=$(memcached_settings "$port" | sed -n 's/^STAT item_size_max //p')
    [ "$item_max" -ge 2097152 ] \
      || fail "the memcached on 127.0.0.1:$port has item_size_max $item_max; the tests need -I 2m"
    # The pid file comes from `stats`: memcached running as user memcache cannot write into $DIR.
    memcached_stats "$port" | sed -n 's/^STAT pid //p' >"$DIR/memcached-$port.pid"
  done
  echo "cluster.sh: memcached instances are up on 127.0.0.1, ports ${MEMCACHED_PORTS[*]}"
}

lock
case "${1:-all}" in
  redis) ensure_redis_cluster ;;
  memcached) ensure_memcached_instances ;;
  all) ensure_redis_cluster; ensure_memcached_instances ;;
  *) fail "usage: bash scripts/cluster.sh [redis|memcached]" ;;
esac
