#!/usr/bin/env bash
# Clippy on each cargo feature alone (and on none), every target: a `cfg` mistake in one backend
# or adapter cannot hide behind --all-features. Shares the build cache with the other clippy runs.
#
#   bash scripts/features.sh            # every feature
#   bash scripts/features.sh redis      # only these
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURES=("$@")
if [ ${#FEATURES[@]} -eq 0 ]; then
  # Every feature of the [features] table in Cargo.toml, except `default`.
  mapfile -t FEATURES < <(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "server-session":
        print("\n".join(sorted(f for f in p["features"] if f != "default")))')
  FEATURES=("" "${FEATURES[@]}")
fi
FAILED=()
for feature in "${FEATURES[@]}"; do
  echo "features.sh: clippy --no-default-features --features '${feature}'"
  cargo clippy --quiet --no-default-features --features "$feature" --all-targets -- -D warnings \
    || FAILED+=("'$feature'")
done
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "features.sh: clippy failed with features ${FAILED[*]}" >&2
  exit 1
fi
