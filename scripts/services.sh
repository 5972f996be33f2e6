#!/usr/bin/env bash
# Checks (and starts, where it can) every server the test suite talks to, and fails loudly
# when one is missing. Each later store adds its `ensure_*` function and a call below.
#
# The current suite (null, memory and filesystem stores, adapters, demo) needs no external
# server: the filesystem tests use temporary directories on the local disk.
set -euo pipefail

require() {
  command -v "$1" >/dev/null 2>&1 || { echo "services.sh: '$1' is required but not installed" >&2; exit 1; }
}

require cargo
echo "services.sh: no external service is needed by the current suite"
