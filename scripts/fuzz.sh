#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30). Seeds come from fuzz/corpus/<target>
# (committed, never written to); what the fuzzer finds goes to fuzz/scratch/<target>.
# A crash stops the script with libFuzzer's report; the input is kept under fuzz/artifacts/.
# cargo-fuzz is installed on first use into target/tools.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-30}
export RUSTC_BOOTSTRAP=1

# cargo-fuzz lives in the build folder (../target/tools/bin), never in the global cargo bin.
TOOLS="$PWD/../target/tools"
[ -x "$TOOLS/bin/cargo-fuzz" ] || cargo install --root "$TOOLS" cargo-fuzz --locked
export PATH="$TOOLS/bin:$PATH"
cargo fuzz build -O
for target in $(cargo fuzz list); do
  mkdir -p "scratch/$target"
  log="scratch/$target.log"
  echo "fuzz.sh: $target for ${seconds}s"
  if ! cargo fuzz run -O "$target" "scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    grep -v '^ ' "$log" | tail -30 >&2
    echo "fuzz.sh: $target FAILED (input under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/  /"
done
