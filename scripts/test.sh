#!/usr/bin/env bash
# The full test suite, as CI runs it: services, formatting, lints, docs, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
export SERVER_SESSION_REQUIRE_SERVICES=1
export SERVER_SESSION_POSTGRES_URL="${SERVER_SESSION_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SERVER_SESSION_REDIS_URL="${SERVER_SESSION_REDIS_URL:-redis://127.0.0.1:6379/}"
export SERVER_SESSION_MEMCACHED_URL="${SERVER_SESSION_MEMCACHED_URL:-memcache://127.0.0.1:11211}"

cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps
cargo test --all-features
