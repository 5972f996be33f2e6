#!/usr/bin/env bash
# Checks (and starts, where it can) the shared servers the test suite talks to, PostgreSQL and
# Redis, and fails loudly when one is missing; installs memcached. The servers the suite needs
# with its own settings (memcached with 2 MiB items, the clusters, SecantusDB) are started on
# ports of their own, and stopped again, by scripts/test.sh (scripts/test_services.sh).
set -euo pipefail

require() {
  command -v "$1" >/dev/null 2>&1 || { echo "services.sh: '$1' is required but not installed" >&2; exit 1; }
}

# PostgreSQL on 127.0.0.1:5432 with trust auth and a database `test`, for the PostgresStore tests
# (SERVER_SESSION_POSTGRES_URL, exported by scripts/test.sh). The SqliteStore needs no server.
ensure_postgres() {
  require pg_isready
  require psql
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    require pg_ctlcluster
    echo "services.sh: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 \
    || { echo "services.sh: PostgreSQL is not accepting connections on 127.0.0.1:5432" >&2; exit 1; }
  if ! psql -h 127.0.0.1 -U postgres -d test -Atqc 'SELECT 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test' \
      || { echo "services.sh: cannot connect to PostgreSQL as postgres or create database test" >&2; exit 1; }
  fi
  echo "services.sh: PostgreSQL is up (postgres://postgres@127.0.0.1:5432/test)"
}

# Installs a Debian package when its command is missing (as root, with apt-get).
install_if_missing() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "services.sh: installing $2"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
  require "$1"
}

# Polls `$@` for up to 10 seconds.
wait_for() {
  for _ in $(seq 1 50); do "$@" && return 0; sleep 0.2; done
  return 1
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

# Redis 6.2+ (GETEX, PXAT) on 127.0.0.1:6379, for the RedisStore tests
# (SERVER_SESSION_REDIS_URL, exported by scripts/test.sh).
ensure_redis() {
  install_if_missing redis-server redis-server
  require redis-cli
  if ! redis_up; then
    echo "services.sh: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    wait_for redis_up || true
  fi
  redis_up || { echo "services.sh: Redis is not answering PING on 127.0.0.1:6379" >&2; exit 1; }
  local version
  version=$(redis-cli -h 127.0.0.1 -p 6379 INFO server | tr -d '\r' | sed -n 's/^redis_version://p')
  case "$version" in
    [0-5].*|6.[01].*) echo "services.sh: Redis $version is too old (the RedisStore needs 6.2+)" >&2; exit 1 ;;
  esac
  echo "services.sh: Redis $version is up (redis://127.0.0.1:6379/)"
}

require cargo
ensure_postgres
ensure_redis
install_if_missing memcached memcached # scripts/test.sh starts its own instances
