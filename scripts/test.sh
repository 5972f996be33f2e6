#!/usr/bin/env bash
# The full test suite, as CI runs it: services, formatting, lints, docs, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
export SERVER_SESSION_REQUIRE_SERVICES=1
export SERVER_SESSION_POSTGRES_URL="${SERVER_SESSION_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SERVER_SESSION_REDIS_URL="${SERVER_SESSION_REDIS_URL:-redis://127.0.0.1:6379/}"
export SERVER_SESSION_MEMCACHED_URL="${SERVER_SESSION_MEMCACHED_URL:-memcache://127.0.0.1:11211}"
export SERVER_SESSION_REDIS_CLUSTER_URL="${SERVER_SESSION_REDIS_CLUSTER_URL:-redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005}"
export SERVER_SESSION_MEMCACHED_CLUSTER_URL="${SERVER_SESSION_MEMCACHED_CLUSTER_URL:-memcache://127.0.0.1:11212,127.0.0.1:11213,127.0.0.1:11214}"
export SERVER_SESSION_MONGODB_URL="${SERVER_SESSION_MONGODB_URL:-mongodb://127.0.0.1:27017/?directConnection=true}"
export SERVER_SESSION_INTEROP_PYTHON="${SERVER_SESSION_INTEROP_PYTHON:-$PWD/target/interop-venv/bin/python}" && bash scripts/interop.sh

cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
cargo clippy -p server-session-benches --all-targets --all-features -- -D warnings
bash scripts/python_checks.sh
bash scripts/features.sh
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps
cargo test --all-features
bash scripts/docs.sh
# Every fuzz target from its committed corpus, briefly: catches a regression on untrusted input.
bash scripts/fuzz.sh "${SERVER_SESSION_FUZZ_SECONDS:-30}"
