#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the files `scripts/bench.sh` leaves in its output directory.

    python3 scripts/bench_report.py target/bench-run > BENCHMARKS.md

The directory holds machine.txt (key=value lines), stores.tsv (store, up|skipped|failed, why),
criterion/**/new/{benchmark,estimates}.json, logs/<bench>.log (the paired-ratio lines),
flask.jsonl (benches/flask/bench.py), load.tsv (wrk rounds) and rss.tsv (VmRSS samples).
Only machine.txt and stores.tsv are required; every section whose data is missing is left out.
`scripts/test_bench_report.py` tests it on a small fixture.
"""
import glob
import json
import os
import re
import statistics
import sys

ORDER = ["memory", "file", "redis", "memcached", "sqlite", "postgres", "mongodb"]
LOCAL = ("memory", "file")
FLASK_BACKENDS = ("redis", "memcached", "sqlite", "postgres", "mongodb")
LOAD_STORES = ("memory", "file", "redis", "sqlite")
FLOOR = {
    "memory": "locked `HashMap` read + overwrite",
    "file": "read + write temp + rename over (std::fs)",
    "redis": "`GET` + `SET XX PXAT`, redis crate, one connection",
    "memcached": "`get` + `replace` on one TCP_NODELAY socket",
    "sqlite": "`SELECT` + `UPDATE` (new expiry), rusqlite, WAL + synchronous=NORMAL",
    "postgres": "`SELECT` + `UPDATE`, postgres client, prepared",
    "mongodb": "`find_one` + `update_one`, driver",
}


def read(path, default=None):
    """The text of a file, or `default` when it does not exist."""
    if default is not None and not os.path.exists(path):
        return default
    with open(path, errors="replace") as f:
        return f.read()


def rows(path):
    """The tab-separated rows of a file (none when it is missing), blank lines skipped."""
    return [line.split("\t") for line in read(path, "").splitlines() if line.strip()]


def fmt(ns):
    """A duration in nanoseconds, with a unit that keeps 2-3 significant digits."""
    if ns is None:
        return "—"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs" if ns >= 1e4 else f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def ms(us):
    return f"{us / 1000:.2f} ms"


def times(ratio, digits=2):
    return f"{ratio:.{digits}f}×" if ratio else "—"


class Run:
    """Everything one bench.sh run left in its output directory."""

    def __init__(self, out):
        self.out = out
        self.machine = dict(line.split("=", 1) for line in read(f"{out}/machine.txt").splitlines())
        self.stores = rows(f"{out}/stores.tsv")
        self.status = {s[0]: (s[1], s[2] if len(s) > 2 else "") for s in self.stores}
        self.medians = self._medians()
        self.flask = self._flask()
        self.load = rows(f"{out}/load.tsv")
        self.rss = rows(f"{out}/rss.tsv")
        alloc_lines = self.log("alloc").splitlines()
        self.alloc = [line[len("alloc: "):] for line in alloc_lines if line.startswith("alloc: ")]
        # "instructions: KIND: N per cycle" -> (KIND, N)
        found = re.findall(r"^instructions: (\S+): (\d+) per cycle$", self.log("instructions"), re.M)
        self.instructions = [(kind, int(n)) for kind, n in found]
        self.cycles = {store: self._cycle(store) for store in ORDER if store in self.status}

    def _medians(self):
        medians = {}
        for path in glob.glob(f"{self.out}/criterion/**/new/benchmark.json", recursive=True):
            info = json.loads(read(path))
            estimates = json.loads(read(os.path.join(os.path.dirname(path), "estimates.json")))
            medians[info["full_id"]] = estimates["median"]["point_estimate"]
        return medians

    def _flask(self):
        lines = read(f"{self.out}/flask.jsonl", "").splitlines()
        found = [json.loads(line) for line in lines if line.strip().startswith("{")]
        return {row["backend"]: row for row in found}

    def _cycle(self, store):
        """(our request cycle, its raw floor) medians in ns, None where missing."""
        ours = self.pick(store, "request cycle", ("index true",))
        floor = self.pick(store, "raw floor", ("new expiry", "index true"))
        return self.medians.get(ours), self.medians.get(floor)

    def up(self, store):
        return store in self.status and self.status[store][0] == "up"

    def log(self, name):
        return read(f"{self.out}/logs/{name}.log", "")

    def store_log(self, store):
        return self.log("local" if store in LOCAL else store)

    def pick(self, group, prefix, prefer=()):
        """The first benchmark id of `group` starting with `prefix`, narrowed by each word."""
        ids = sorted(k for k in self.medians if k.startswith(f"{group}/{prefix}"))
        for word in prefer:
            ids = [k for k in ids if word in k] or ids
        return ids[0] if ids else None

    def median_of(self, store, prefix):
        return self.medians.get(self.pick(store, prefix, ("index true",)))

    def paired(self, store):
        pattern = rf"^{store} paired .*?(?:median paired ratio|ratio) ([0-9.]+)\s*$"
        m = re.search(pattern, self.store_log(store), re.M)
        return float(m.group(1)) if m else None

    def merging_paired(self, store):
        pattern = (rf"^{store} merging on/off paired rounds(?: \((.*?)\))?:"
                   r".*?median paired ratio ([0-9.]+)\s*$")
        found = re.findall(pattern, self.store_log(store), re.M)
        preferred = [ratio for label, ratio in found if "index true" in label]
        preferred = preferred or [ratio for _, ratio in found]
        return float(preferred[0]) if preferred else None

    def load_summary(self, store, mode):
        """Medians of the wrk rounds of the demo and the baseline for one store and mode."""
        runs = [r for r in self.load if r[0] == store and r[1] == mode and len(r) >= 9]
        base = {r[2]: r for r in runs if r[3] == "baseline"}
        demo = {r[2]: r for r in runs if r[3] == "demo"}
        rounds = sorted(set(base) & set(demo))
        if not rounds:
            return None

        def med(rs, i):
            return statistics.median(float(r[i]) for r in rs)

        def per_round(i):
            return [float(demo[k][i]) / float(base[k][i]) for k in rounds if float(base[k][i]) > 0]

        ratios, cpu = per_round(4), per_round(7)
        return {
            "base_rps": med(base.values(), 4), "base_p99": med(base.values(), 5),
            "demo_rps": med(demo.values(), 4), "demo_p99": med(demo.values(), 5),
            "base_cpu": med(base.values(), 7), "demo_cpu": med(demo.values(), 7),
            "store_cpu": med(demo.values(), 8),
            "ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
            "cpu_ratio": statistics.median(cpu) if cpu else float("nan"), "rounds": len(rounds),
        }

    def flask_ns(self, store):
        row = self.flask.get(store, {})
        return row["median_us"] * 1e3 if "median_us" in row else None


def cpu_cell(s):
    extra = f" + {s['store_cpu']:.1f} in the store's server" if s["store_cpu"] > 0 else ""
    return f"{s['base_cpu']:.1f} → {s['demo_cpu']:.1f}{extra} (+{100 * (s['cpu_ratio'] - 1):.0f}%)"


def machine_section(run):
    m = run.machine
    runtime = int(m.get("runtime", 0))
    busy = float(m["load_start"].split()[0]) > 1.0
    yield "# Benchmarks"
    yield ""
    yield "Generated by `bash scripts/bench.sh`; do not edit by hand. Every timing here is from one run"
    yield "on the machine below, which is shared with other work: compare the ratios (measured in the"
    yield "same run), not the absolute times, across runs."
    yield ""
    yield (f"- **Machine:** {m['cpu']}, {m['cores']} vCPUs, {m['kernel']}; {m['date']}; "
           f"commit {m['commit']}")
    yield (f"- **Load average** (1/5/15 min): {m['load_start']} at the start, "
           f"{m.get('load_end', '?')} at the end"
           + (" — **the machine was busy; treat absolute numbers with care**" if busy else ""))
    yield "  (the end figure includes bench.sh's own load: wrk and the server keep both vCPUs busy)"
    yield f"- **Runtime of bench.sh:** {runtime // 60} min {runtime % 60} s"
    yield ("- **Pinning:** criterion benches, the Flask harness and every server thread (Redis, memcached, "
           "PostgreSQL, the MongoDB-wire server, the demo and the baseline) on CPU 0; wrk on CPU 1.")
    yield ""


def summary_row(run, store):
    state, why = run.status[store]
    if state != "up":
        return f"| {store} | skipped: {why} | | | | | |"
    ours, floor = run.cycles[store]
    ratio = times(ours / floor) if ours and floor else "—"
    fl_ns = run.flask_ns(store)
    skipped = "skipped" in run.flask.get(store, {})
    speed = f"{fl_ns / ours:.1f}×" if fl_ns and ours else ("skipped" if skipped else "—")
    return (f"| {store} | {fmt(ours)} | {fmt(floor)} | {ratio} | {times(run.paired(store))} "
            f"| {fmt(fl_ns)} | {speed} |")


def summary_section(run):
    yield "## Summary"
    yield ""
    yield "Request cycle = `open` (cookie parse + signature check) → `get` → `insert` → `commit`, signed cookie,"
    yield "a ~200-byte MessagePack session; one store read and one store write. Goals (issue 7): every store"
    yield "within 1.1–1.2× of its floor; ≥ 5× faster than Flask-Session 0.8 per request on every shared backend."
    yield ""
    yield "| store | our cycle (median) | raw floor (median) | ratio | paired ratio | Flask-Session 0.8 (median) | our speed-up |"
    yield "|---|---|---|---|---|---|---|"
    for store in ORDER:
        if store in run.status:
            yield summary_row(run, store)
    yield ""
    yield "*paired ratio*: the bench alternates short rounds of the cycle and the floor and prints the median of"
    yield "the per-round ratios (`mongodb`: the ratio of the medians over interleaved pairs); it holds up better"
    yield "than the ratio of two criterion medians measured seconds apart when the machine is busy. For the"
    yield "in-process stores the floor is a hash-map access or three file-system calls, so the memory ratio is"
    yield "really the fixed per-request cost (HMAC verify + sign, codec, cookie formatting) over ~0.1 µs."
    yield ""


def merging_section(run):
    merge_rows = []
    for store in ORDER:
        if not run.up(store):
            continue
        on = run.cycles[store][0]
        off, conflict = run.median_of(store, "merging off"), run.median_of(store, "conflicting commit")
        if off or conflict:
            merge_rows.append((store, on, off, conflict))
    if not merge_rows:
        return
    yield "No lost updates (issue 13): the same request cycle with `merge_concurrent_changes` on (the default:"
    yield "the commit writes with `Store::replace`, over the bytes the request loaded) and off (a plain save),"
    yield "no conflict; target: on costs ≤ 3% over off on Redis, memcached, SQLite, PostgreSQL and files."
    yield "*conflicting request*: a request whose stored session another request changed after it loaded it"
    yield "(the other request is not timed), so its commit is refused once, decodes the fresh copy, merges and"
    yield "writes again."
    yield ""
    yield "| store | merging on (median) | merging off (median) | on / off | paired on / off | conflicting request (median) | conflict / normal cycle |"
    yield "|---|---|---|---|---|---|---|"
    for store, on, off, conflict in merge_rows:
        ratio = times(on / off, 3) if on and off else "—"
        cost = times(conflict / on) if on and conflict else "—"
        yield (f"| {store} | {fmt(on)} | {fmt(off)} | {ratio} | {times(run.merging_paired(store), 3)} "
               f"| {fmt(conflict)} | {cost} |")
    yield ""
    yield "*paired on / off*: the median of the per-round ratios over alternating short rounds of the cycle"
    yield "with merging on and off, as for the floor."
    yield ""


def load_summary_section(run):
    lines = [(store, run.load_summary(store, "cookie")) for store in LOAD_STORES]
    lines = [(store, s) for store, s in lines if s]
    if not lines:
        return
    yield "Load test (wrk, 8 connections, demo vs session-less baseline, both 8 worker threads; cookie sent back,"
    yield "32 sessions reused): goal on MemoryStore: the session layer costs < 10% of baseline throughput."
    yield "*server CPU/request*: user + system time of the server process over the run, per request, the"
    yield "cost that decides throughput once the server is CPU-bound; unlike req/s it does not depend on"
    yield "what else runs on the machine."
    yield ""
    yield "| store | baseline req/s | demo req/s | demo / baseline | server CPU µs/request, baseline → demo | baseline p99 | demo p99 |"
    yield "|---|---|---|---|---|---|---|"
    for store, s in lines:
        yield (f"| {store} | {s['base_rps']:,.0f} | {s['demo_rps']:,.0f} | {s['ratio']:.2f} "
               f"(cost {100 * (1 - s['ratio']):.0f}%) | {cpu_cell(s)} | {ms(s['base_p99'])} | {ms(s['demo_p99'])} |")
    yield ""


def headline_section(run):
    if run.alloc:
        first = re.match(r".*?: (\d+) allocations", run.alloc[0])
        count = first.group(1) if first else "?"
        yield f"Heap allocations per MemoryStore request cycle (signed cookie): **{count}** (goal ≤ 8)."
        yield ""
    counts = dict(run.instructions)
    if "signed-modify" in counts:
        yield (f"Instructions per signed MemoryStore request cycle (callgrind): "
               f"**{counts['signed-modify']:,}** (issue 12 baseline 20,390).")
        yield ""
    numeric = [r for r in run.rss if r[0].isdigit()]
    if numeric:
        kb = [int(r[2]) for r in numeric if r[2]]
        yield (f"Resident memory of the demo on MemoryStore over {int(numeric[-1][1]):,} requests each "
               f"creating a session (2 s lifetime): VmRSS {min(kb) / 1024:.1f}–{max(kb) / 1024:.1f} MiB, "
               f"{kb[-1] / 1024:.1f} MiB at the end (samples below).")
        yield ""


def per_store_section(run):
    yield "## Per store: request cycle vs raw floor"
    yield ""
    for store in ORDER:
        if not run.up(store):
            continue
        yield f"### {store}"
        yield ""
        yield f"Floor: {FLOOR[store]}."
        yield ""
        yield "| benchmark | median |"
        yield "|---|---|"
        for name in sorted(k for k in run.medians if k.startswith(store + "/")):
            yield f"| {name.split('/', 1)[1]} | {fmt(run.medians[name])} |"
        # Every paired-rounds line of the store: the cycle vs its floor, merging on vs off, and
        # the store's other configurations ("file cachelib layout + Pickle paired rounds").
        for line in run.store_log(store).splitlines():
            if line.startswith(f"{store} ") and "paired" in line:
                yield ""
                yield f"`{line.strip()}`"
        yield ""


def micro_section(run):
    yield "## Micro-benchmarks (in process)"
    yield ""
    yield "| benchmark | median |"
    yield "|---|---|"
    micro = [k for k in run.medians if k.split("/")[0] not in ORDER]
    first = ("open", "sign", "generate", "request")
    for name in sorted(micro, key=lambda k: (not k.startswith(first), k)):
        yield f"| {name} | {fmt(run.medians[name])} |"
    yield ""


def flask_row(run, store):
    fl = run.flask[store]
    if "skipped" in fl:
        return f"| {store} | skipped: {fl['skipped']} | | | | |"
    ours, floor = run.cycles.get(store, (None, None))
    theirs = fl["median_us"] * 1e3
    speed = f"{theirs / ours:.1f}×" if ours else "—"
    above = "—"
    if ours and floor and theirs > floor:
        ours_above = fmt(ours - floor) if ours > floor else "below the floor (noise)"
        above = f"{fmt(theirs - floor)} / {ours_above}"
    return (f"| {store} | {fl['median_us']:.1f} µs | {fl['p10_us']:.1f} µs | {fl['p90_us']:.1f} µs "
            f"| {fmt(ours)} | {speed} | {above} |")


def flask_section(run):
    yield "## Flask-Session 0.8 on the same servers"
    yield ""
    yield "`benches/flask/bench.py` (Flask 3.1.3, Flask-Session 0.8.0, clients pinned in"
    yield "`benches/flask/requirements.txt`): one app per backend configured like the Rust benches (signed"
    yield "cookie, MessagePack, `visits` + a 180-character `note`); it times `open_session` → read `visits` →"
    yield "write `visits` → `save_session` on a request made (untimed) by `app.test_request_context`. Clients:"
    yield "redis-py, pymemcache (`no_delay=True`; its `set` is fire-and-forget by default, so Flask-Session"
    yield "waits for one round trip where we wait for two), Flask-SQLAlchemy on SQLite (WAL +"
    yield "synchronous=NORMAL, as the SqliteStore) and on PostgreSQL via psycopg2, pymongo. The MongoDB-wire"
    yield "server on these machines is SecantusDB, written in Python: its ~1.5 ms per operation pair hides"
    yield "both clients, so the mongodb row says little about either."
    yield ""
    yield "*above the floor*: each side's median minus our raw floor for that store (the same two store"
    yield "operations, measured by the Rust bench), i.e. what the session layer itself adds per request."
    yield ""
    yield "| backend | Flask-Session median | p10 | p90 | our cycle (median) | speed-up | above the floor: Flask-Session / ours |"
    yield "|---|---|---|---|---|---|---|"
    for store in FLASK_BACKENDS:
        if store in run.flask:
            yield flask_row(run, store)
    yield ""


def load_section(run):
    if not run.load:
        return
    yield "## Load test: demo vs baseline (wrk)"
    yield ""
    yield "`examples/demo.rs` (signed cookies, `--lifetime 60`) and `examples/baseline.rs` (same tiny_http"
    yield "server and response text, no sessions), both with 8 worker threads on CPU 0; `wrk -t1 -c8 --latency`"
    yield "on CPU 1. Three interleaved rounds of 4 s per server and mode after a 2 s warm-up; medians of the"
    yield "rounds, and the median of the per-round ratios; all cookie rounds run first, then the new ones."
    yield "*cookie*: the 32 cookies of sessions created beforehand are sent round robin, so each request"
    yield "loads, updates and saves a stored session."
    yield "*new*: no cookie, so each request creates a session (id generation, a store insert, Set-Cookie)."
    yield ""
    yield "| store | mode | baseline req/s | demo req/s | demo / baseline (min–max) | server CPU µs/request, baseline → demo | baseline p99 | demo p99 |"
    yield "|---|---|---|---|---|---|---|---|"
    for store in LOAD_STORES:
        for mode in ("cookie", "new"):
            s = run.load_summary(store, mode)
            if s:
                yield (f"| {store} | {mode} | {s['base_rps']:,.0f} | {s['demo_rps']:,.0f} | {s['ratio']:.2f} "
                       f"({s['min_ratio']:.2f}–{s['max_ratio']:.2f}) | {cpu_cell(s)} "
                       f"| {ms(s['base_p99'])} | {ms(s['demo_p99'])} |")
    yield ""


def rss_row(r):
    mib = f"{int(r[2]) / 1024:.1f} MiB"
    if r[0] == "peak":
        return f"| peak (VmHWM) | | {mib} |"
    if r[0] == "idle":
        return f"| 3 s idle + 1 s of requests | {int(r[1]):,} | {mib} |"
    return f"| {r[0]} s | {int(r[1]):,} | {mib} |"


def rss_section(run):
    if not run.rss:
        return
    yield "## Resident memory over a million new sessions (MemoryStore)"
    yield ""
    yield "The demo on `memory:` with `--lifetime 2`, wrk without cookies (every request creates a session"
    yield "that expires 2 s later) in 10-second chunks, until at least a million requests and 150 s (75"
    yield "lifetimes) have passed; VmRSS from `/proc/PID/status` after each chunk. The MemoryStore evicts"
    yield "expired entries after as many writes as it held at the last eviction, so it holds at most about"
    yield "twice the sessions created per lifetime, and RSS levels off once that size is reached (freed"
    yield "entries are reused by the allocator, not returned to the OS)."
    yield ""
    yield "| elapsed | requests | VmRSS |"
    yield "|---|---|---|"
    for r in run.rss:
        yield rss_row(r)
    yield ""


def instructions_section(run):
    if not run.instructions:
        return
    yield "## Instructions per request cycle (MemoryStore, callgrind)"
    yield ""
    yield ("`bash scripts/instructions.sh`: valgrind's callgrind counts the instructions of N and 2N cycles "
           "of each kind (`benches/instructions.rs`); the difference over N is one cycle without the "
           "start-up. Unlike a time, the count is the same on a busy machine. *signed*/*unsigned*: "
           "signer on or off; *modify*: `get` + `insert`; *read*: `get` only (the commit refreshes "
           "the expiry); *new*: no cookie, the commit creates the session.")
    yield ""
    yield "| cycle | instructions |"
    yield "|---|---|"
    for kind, count in run.instructions:
        yield f"| {kind} | {count:,} |"
    yield ""


def alloc_section(run):
    if not run.alloc:
        return
    yield "## Heap allocations per request cycle (MemoryStore)"
    yield ""
    yield "`benches/alloc.rs`: a counting `#[global_allocator]`; steady state (after 100 warm-up cycles)."
    yield ("An allocation is an `alloc` or a `realloc` (a grown buffer). "
           "`ALLOC_TRACE=1 cargo bench -p server-session-benches --bench alloc`")
    yield "prints where each one comes from."
    yield ""
    for line in run.alloc:
        yield f"- {line}"
    trace_log = run.log("alloc-trace")
    trace = trace_log[trace_log.find("\n#") + 1:].splitlines() if "\n#" in trace_log else []
    if trace:
        yield ""
        yield "<details><summary>Where the allocations of one cycle come from</summary>"
        yield ""
        yield "```"
        yield from trace
        yield "```"
        yield ""
        yield "</details>"
    yield ""


def skipped_section(run):
    skipped = [f"{s[0]} ({s[2] if len(s) > 2 else ''})" for s in run.stores if s[1] != "up"]
    if not skipped:
        return
    yield "## Skipped or failed"
    yield ""
    for s in skipped:
        yield f"- {s}"
    yield ""


SECTIONS = (machine_section, summary_section, merging_section, load_summary_section,
            headline_section, per_store_section, micro_section, flask_section, load_section,
            rss_section, instructions_section, alloc_section, skipped_section)


def report(out):
    """The whole of BENCHMARKS.md for the run in directory `out`."""
    run = Run(out)
    return "".join(line + "\n" for section in SECTIONS for line in section(run))


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: bench_report.py OUTPUT_DIR > BENCHMARKS.md\n")
        return 2
    sys.stdout.write(report(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
