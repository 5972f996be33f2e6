#!/usr/bin/env bash
# The full test suite, as CI runs it: services, formatting, lints, docs, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
export SERVER_SESSION_REQUIRE_SERVICES=1

cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --all-features --no-deps
cargo test --all-features
