#!/usr/bin/env bash
# Instructions per MemoryStore request cycle, counted by valgrind's callgrind: the same figure
# on any machine load, unlike a time. Each kind of cycle (benches/instructions.rs) runs N and
# 2N times; the difference over N is the cost of one cycle without the start-up.
#
#   bash scripts/instructions.sh              # every kind, one line each
#   INSTRUCTIONS_PROFILE=1 bash scripts/instructions.sh signed-modify
#                                             # also the functions the instructions went to
#
# Output lines: `instructions: KIND: N per cycle`. bench.sh copies them into BENCHMARKS.md.
# Environment: INSTRUCTIONS_CYCLES (N, default 2000), INSTRUCTIONS_OUT (where the callgrind
# files go, default target/instructions).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
  echo "instructions.sh: valgrind is missing (apt-get install -y valgrind)" >&2
  exit 1
}
N=${INSTRUCTIONS_CYCLES:-2000}
OUT=${INSTRUCTIONS_OUT:-target/instructions}
mkdir -p "$OUT"
# The bench profile's build (it keeps symbol names, so the profile names functions).
BIN=$(cargo bench -p server-session-benches --bench instructions --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
[ -x "$BIN" ] || {
  echo "instructions.sh: no instructions bench binary was built" >&2
  exit 1
}

# Total instructions of one run of KIND with CYCLES cycles (callgrind's summary line).
count() {
  local kind=$1 cycles=$2 file="$OUT/callgrind.$1.$2"
  valgrind --tool=callgrind --callgrind-out-file="$file" "$BIN" "$kind" "$cycles" \
    2>"$file.log" >/dev/null
  sed -n 's/^summary: //p' "$file"
}

KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || read -ra KINDS < <("$BIN" | sed -n 's/^instructions: kinds //p')
for kind in "${KINDS[@]}"; do
  once=$(count "$kind" "$N")
  twice=$(count "$kind" $((2 * N)))
  echo "instructions: $kind: $(((twice - once) / N)) per cycle"
  if [ "${INSTRUCTIONS_PROFILE:-0}" = 1 ]; then
    callgrind_annotate --inclusive=no "$OUT/callgrind.$kind.$((2 * N))" 2>/dev/null | sed -n '1,60p'
  fi
done
