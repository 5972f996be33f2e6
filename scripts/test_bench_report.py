"""Tests of scripts/bench_report.py on a small, hand-made bench.sh output directory.

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""
import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

import bench_report

MACHINE = """cpu=Test CPU
cores=2
kernel=Linux 6.1
date=2026-12-04 18:00 UTC
load_start=0.50 0.40 0.30
commit=abc1234
load_end=1.90 1.20 0.80
runtime=125
"""
STORES = "memory\tup\t\nredis\tup\t\nmemcached\tskipped\tserver not answering\n"
MEDIANS = {  # criterion full_id -> median in ns
    "memory/request cycle (signed)": 2300.0,
    "memory/raw floor: locked HashMap": 100.0,
    "redis/request cycle (signed)": 80000.0,
    "redis/raw floor: GET + SET XX PXAT": 65000.0,
    "redis/merging off (plain save)": 64000.0,
    "redis/conflicting commit (merges once)": 120000.0,
    "open signed cookie": 547.0,
}
LOGS = {
    "local": "memory paired rounds (60 x 2000): median paired ratio 21.50\n",
    "redis": "redis paired rounds (60 x 200): median paired ratio 1.24\n"
             "redis merging on/off paired rounds: 60 rounds, median paired ratio 1.220\n",
    "alloc": "noise\nalloc: signed cookie: 18 allocations per cycle\nalloc: new session: 11 allocations\n",
    "instructions": "Compiling\ninstructions: signed-modify: 14088 per cycle\ninstructions: unsigned-new: 6743 per cycle\n",
}
FLASK = '{"backend": "redis", "median_us": 720.0, "p10_us": 650.0, "p90_us": 800.0}\n'
# store, mode, round, server, req/s, p99 us, requests, server CPU us/request, store CPU us/request
LOAD = "".join(
    f"memory\tcookie\t{n}\t{server}\t{rps}\t900\t100000\t{cpu}\t0\n"
    for n in (1, 2, 3)
    for server, rps, cpu in (("baseline", 40000, 25.0), ("demo", 30000, 32.0))
)
RSS = "0\t0\t40960\n10\t500000\t51200\n20\t1000000\t55296\nidle\t1000000\t55296\npeak\t\t56320\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_medians(out, medians):
    """Criterion's files for each benchmark id -> median in ns."""
    for i, (full_id, ns) in enumerate(medians.items()):
        bench = f"{out}/criterion/b{i}/new"
        write(f"{bench}/benchmark.json", json.dumps({"full_id": full_id}))
        write(f"{bench}/estimates.json", json.dumps({"median": {"point_estimate": ns}}))


def full_run(out):
    """Every file a complete bench.sh run leaves."""
    minimal_run(out)
    write_medians(out, MEDIANS)
    for name, text in LOGS.items():
        write(f"{out}/logs/{name}.log", text)
    write(f"{out}/flask.jsonl", FLASK)
    write(f"{out}/load.tsv", LOAD)
    write(f"{out}/rss.tsv", RSS)


def minimal_run(out):
    """What a run that stopped right after checking the servers leaves."""
    write(f"{out}/machine.txt", MACHINE)
    write(f"{out}/stores.tsv", STORES)


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.out)

    def test_summary_rows_pair_each_store_with_its_floor_and_flask(self):
        full_run(self.out)
        lines = bench_report.report(self.out).splitlines()
        self.assertIn("| redis | 80.0 µs | 65.0 µs | 1.23× | 1.24× | 720.0 µs | 9.0× |", lines)
        self.assertIn("| memory | 2.30 µs | 100 ns | 23.00× | 21.50× | — | — |", lines)
        self.assertIn("| memcached | skipped: server not answering | | | | | |", lines)
        self.assertIn("- memcached (server not answering)", lines)

    def test_merging_load_rss_and_allocations_are_reported(self):
        full_run(self.out)
        text = bench_report.report(self.out)
        self.assertIn("| redis | 80.0 µs | 64.0 µs | 1.250× | 1.220× | 120.0 µs | 1.50× |", text)
        self.assertIn("| memory | cookie | 40,000 | 30,000 | 0.75 (0.75–0.75) | 25.0 → 32.0 (+28%) |", text)
        self.assertIn("**18** (goal ≤ 8)", text)
        self.assertIn("| signed-modify | 14,088 |", text)
        self.assertIn("| unsigned-new | 6,743 |", text)
        self.assertIn("request cycle (callgrind): **14,088**", text)
        self.assertIn("VmRSS 40.0–54.0 MiB, 54.0 MiB at the end", text)
        self.assertIn("| peak (VmHWM) | | 55.0 MiB |", text)
        self.assertIn("| open signed cookie | 547 ns |", text)
        self.assertIn("- **Runtime of bench.sh:** 2 min 5 s", text)

    def test_the_file_store_shows_both_layouts_and_sums_up_the_native_one(self):
        minimal_run(self.out)
        write(f"{self.out}/stores.tsv", "file\tup\t\n")
        write_medians(self.out, {
            "file/raw floor: read + write temp + rename over (std::fs)": 400000.0,
            "file/request cycle: open, get, insert, commit (FileStore, signed)": 440000.0,
            "file/cachelib layout + Pickle: open, get, insert, commit (FileStore, signed)": 480000.0,
        })
        cachelib = ("file cachelib layout + Pickle paired rounds: best cycle 470.00 us, best floor "
                    "396.00 us, ratio of bests 1.187, median paired ratio 1.200")
        write(f"{self.out}/logs/local.log",
              "file paired rounds: best cycle 430.00 us, best floor 395.00 us, ratio of bests 1.089, "
              f"median paired ratio 1.100\n{cachelib}\n")
        lines = bench_report.report(self.out).splitlines()
        self.assertIn("| file | 440.0 µs | 400.0 µs | 1.10× | 1.10× | — | — |", lines)
        self.assertIn("| cachelib layout + Pickle: open, get, insert, commit (FileStore, signed) "
                      "| 480.0 µs |", lines)
        self.assertIn(f"`{cachelib}`", lines)

    def test_a_run_without_results_has_only_the_header_and_the_skipped(self):
        minimal_run(self.out)
        text = bench_report.report(self.out)
        self.assertTrue(text.startswith("# Benchmarks\n"))
        self.assertIn("| redis | — | — | — | — | — | — |", text)
        for absent in ("No lost updates", "## Load test", "## Resident memory", "## Heap allocations",
                       "## Instructions"):
            self.assertNotIn(absent, text)

    def test_a_busy_machine_is_flagged(self):
        minimal_run(self.out)
        write(f"{self.out}/machine.txt", MACHINE.replace("load_start=0.50", "load_start=1.50"))
        self.assertIn("the machine was busy", bench_report.report(self.out))

    def test_durations_keep_two_or_three_digits(self):
        cases = {None: "—", 547.0: "547 ns", 2300.0: "2.30 µs", 65000.0: "65.0 µs", 1.5e6: "1.50 ms"}
        for ns, text in cases.items():
            self.assertEqual(bench_report.fmt(ns), text)

    def test_main_needs_the_directory(self):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            self.assertEqual(bench_report.main(["bench_report.py"]), 2)
        self.assertIn("usage:", stderr.getvalue())


if __name__ == "__main__":
    unittest.main()
