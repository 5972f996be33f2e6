#!/usr/bin/env bash
# The full test suite, as CI runs it: services, formatting, lints, docs, every test, a short fuzz
# pass. PostgreSQL and Redis are checked, and started if down (scripts/services.sh); memcached,
# the two clusters and SecantusDB are started on ports of their own and stopped again when this
# script ends, also on failure or Ctrl-C (scripts/test_services.sh). Every SERVER_SESSION_*_URL
# given is used as it is, and nothing is started for it.
#
#   bash scripts/test.sh                                            # the suite
#   bash scripts/test.sh cargo test --all-features --test memcached  # one command, same servers
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/test_services.sh
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/services.sh
start_services
export SERVER_SESSION_REQUIRE_SERVICES=1
export SERVER_SESSION_POSTGRES_URL="${SERVER_SESSION_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SERVER_SESSION_REDIS_URL="${SERVER_SESSION_REDIS_URL:-redis://127.0.0.1:6379/}"
export SERVER_SESSION_INTEROP_PYTHON="${SERVER_SESSION_INTEROP_PYTHON:-$PWD/target/interop-venv/bin/python}" && bash scripts/interop.sh

if [ $# -gt 0 ]; then
  "$@"
  exit
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings # the crate and benches/
bash scripts/python_checks.sh
bash scripts/features.sh
# (the docs build with warnings denied is scripts/docs.sh, below: the docs.rs configuration)
cargo test --all-features
bash scripts/docs.sh
# Every fuzz target from its committed corpus, briefly: catches a regression on untrusted input
# (scripts/fuzz.sh alone runs longer).
bash scripts/fuzz.sh "${SERVER_SESSION_FUZZ_SECONDS:-10}"
