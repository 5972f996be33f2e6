//! Heap allocations per request cycle on the MemoryStore, counted by a counting global
//! allocator (no timing, no criterion): `cargo bench -p server-session-benches --bench alloc`. `scripts/bench.sh` runs it
//! and copies its `alloc:` lines into BENCHMARKS.md.
//!
//! The cycle is the one `benches/core.rs` times, on the same ~200-byte session: open with a
//! signed cookie, get, insert, commit.
//! Each phase is counted on its own too, so a regression points at its phase. With
//! `ALLOC_TRACE=1` every allocation of one cycle is printed with the frames of this crate and
//! its dependencies that made it (a bench build keeps symbol names, not line numbers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use server_session::store::MemoryStore;
use server_session::SessionManager;

mod support;
use support::{browser_header, signed_config, stored_session};

/// Counts allocations (`alloc`, `alloc_zeroed`, `realloc`) and bytes requested.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// Set while a trace is being taken, so the tracer's own allocations are not traced.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn record(kind: &str, size: usize) {
    if !TRACE.load(Ordering::Relaxed) || IN_TRACE.with(Cell::get) {
        return;
    }
    IN_TRACE.with(|t| t.set(true));
    let trace = format!("{kind} {size} B\n{}", Backtrace::force_capture());
    TRACES.lock().unwrap_or_else(|e| e.into_inner()).push(trace);
    IN_TRACE.with(|t| t.set(false));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters and the
// tracer only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        record("alloc", layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        record("alloc_zeroed", layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()), Ordering::Relaxed);
        record("realloc", new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, Default)]
struct Count {
    allocs: usize,
    reallocs: usize,
    bytes: usize,
}

impl Count {
    fn now() -> Self {
        Self {
            allocs: ALLOCS.load(Ordering::SeqCst),
            reallocs: REALLOCS.load(Ordering::SeqCst),
            bytes: BYTES.load(Ordering::SeqCst),
        }
    }

    fn since(self, start: Self) -> Self {
        Self {
            allocs: self.allocs - start.allocs,
            reallocs: self.reallocs - start.reallocs,
            bytes: self.bytes - start.bytes,
        }
    }

    /// Allocation events: fresh allocations plus reallocations (a grown buffer).
    fn total(self) -> usize {
        self.allocs + self.reallocs
    }
}

/// Counts the allocations `f` makes (this program is single-threaded).
fn counted<T>(f: impl FnOnce() -> T) -> (T, Count) {
    let start = Count::now();
    let out = f();
    (out, Count::now().since(start))
}

/// One cycle, phase by phase: (open, get, insert, commit, drop of the commit's headers).
fn phases(manager: &SessionManager<MemoryStore>, header: Option<&str>) -> [Count; 5] {
    let (mut session, open) = counted(|| manager.open(black_box(header)));
    let (visits, get) = counted(|| session.get::<u64>("visits").expect("get").unwrap_or(0));
    let ((), insert) = counted(|| session.insert("visits", &(visits + 1)).expect("insert"));
    let (commit, commit_count) = counted(|| session.commit().expect("commit"));
    let ((), drop_count) = counted(|| drop(black_box(commit)));
    [open, get, insert, commit_count, drop_count]
}

fn whole_cycle(manager: &SessionManager<MemoryStore>, header: Option<&str>) -> Count {
    counted(|| {
        let mut session = manager.open(black_box(header));
        let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
        session.insert("visits", &(visits + 1)).expect("insert");
        black_box(session.commit().expect("commit"));
    })
    .1
}

/// Average allocation events per cycle over `n` cycles.
fn average(manager: &SessionManager<MemoryStore>, header: Option<&str>, n: usize) -> f64 {
    let counts = (0..n).map(|_| whole_cycle(manager, header).total());
    counts.sum::<usize>() as f64 / n as f64
}

fn report(name: &str, manager: &SessionManager<MemoryStore>, header: Option<&str>) {
    for _ in 0..100 {
        whole_cycle(manager, header); // steady state: buffers and maps at their working size
    }
    let cycle = whole_cycle(manager, header);
    let names = ["open", "get", "insert", "commit", "drop"];
    let phases = phases(manager, header);
    let breakdown: Vec<String> = names
        .iter()
        .zip(phases)
        .map(|(name, c)| format!("{name} {}", c.total()))
        .collect();
    println!(
        "alloc: {name}: {} allocations ({} alloc + {} realloc, {} bytes); by phase: {}; \
         mean over 10000 cycles {:.2}",
        cycle.total(),
        cycle.allocs,
        cycle.reallocs,
        cycle.bytes,
        breakdown.join(", "),
        average(manager, header, 10_000)
    );
}

/// Prints every allocation of one cycle: the std function that allocated and the frames of
/// this crate and its dependencies above it.
fn trace(manager: &SessionManager<MemoryStore>, header: &str) {
    TRACES.lock().expect("traces").clear();
    TRACE.store(true, Ordering::SeqCst);
    whole_cycle(manager, Some(header));
    TRACE.store(false, Ordering::SeqCst);
    let traces = std::mem::take(&mut *TRACES.lock().expect("traces"));
    for (i, trace) in traces.iter().enumerate() {
        let mut lines = trace.lines();
        println!("#{} {}", i + 1, lines.next().unwrap_or_default());
        let frames: Vec<&str> = lines
            .filter_map(symbol)
            .filter(|f| !f.starts_with("alloc::record") && !f.contains("alloc::Counting"))
            .collect();
        let Some(first) = frames.iter().position(|f| ours(f)) else {
            continue;
        };
        let shown = frames[first.saturating_sub(1)..].iter();
        for frame in shown
            .filter(|f| ours(f) || !f.contains("whole_cycle"))
            .take(7)
        {
            println!("    {frame}");
        }
    }
}

/// The symbol of a backtrace line `  N: symbol`.
fn symbol(line: &str) -> Option<&str> {
    let (index, symbol) = line.trim_start().split_once(": ")?;
    index.parse::<usize>().ok().map(|_| symbol)
}

fn ours(frame: &str) -> bool {
    const CRATES: [&str; 11] = [
        "server_session",
        "rmp",
        "serde",
        "indexmap",
        "hashbrown",
        "base64",
        "ring",
        "httpdate",
        "getrandom",
        "alloc::whole_cycle",
        "alloc::main",
    ];
    CRATES.iter().any(|c| frame.contains(c))
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument (a criterion filter) is ignored.
    let manager = SessionManager::new(MemoryStore::new(), signed_config("session:")).unwrap();
    let header = browser_header(&stored_session(&manager, 180).0);
    report(
        "request cycle with a signed cookie (open, get, insert, commit; MemoryStore)",
        &manager,
        Some(&header),
    );
    report(
        "request cycle creating a session (no cookie; open, get, insert, commit; MemoryStore)",
        &manager,
        None,
    );
    if std::env::var_os("ALLOC_TRACE").is_some() {
        trace(&manager, &header);
    }
}
