//! What "no lost updates" costs, the same way on every store: the request cycle with merging
//! of concurrent changes off next to the cycle with it on (the default, measured by each
//! bench as its "request cycle"), paired rounds of the two, and a request whose commit merges
//! once because another request changed the stored session after this one loaded it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use server_session::store::Store;
use server_session::SessionManager;

use super::{best, cycle, signed_config_merging, Group, Paired};

/// Which store a [`bench_merging`] run measures, and how long its paired rounds are.
pub struct MergeBench<'a> {
    /// The store as scripts/bench.sh names it ("redis"), which starts the printed line.
    pub store: &'a str,
    /// The store in the benchmark names ("RedisStore").
    pub label: &'a str,
    /// Paired rounds of `per_round` cycles with merging on, then as many with it off.
    pub rounds: usize,
    pub per_round: u32,
}

impl<'a> MergeBench<'a> {
    pub fn new(store: &'a str, label: &'a str, rounds: usize, per_round: u32) -> Self {
        Self {
            store,
            label,
            rounds,
            per_round,
        }
    }
}

/// The request cycle with merging off, the conflicting request, and paired rounds of the
/// cycle with merging on and off, printed as `{store} merging on/off paired rounds ({label}):
/// ...` (the line scripts/bench.sh reads). `manager` is built with
/// [`signed_config`](super::signed_config) (merging on) and holds the session `header` names.
pub fn bench_merging<S: Store>(
    group: &mut Group<'_>,
    manager: &SessionManager<S>,
    header: &str,
    bench: &MergeBench<'_>,
) {
    assert!(manager.config().merge_concurrent_changes());
    let prefix = manager.config().key_prefix();
    let off = SessionManager::new(manager.store(), signed_config_merging(prefix, false)).unwrap();
    let label = bench.label;
    let name = format!("merging off: open, get, insert, commit ({label})");
    group.bench_function(name, |b| b.iter(|| cycle(&off, header)));
    check_conflict_merges(manager, header);
    let name = format!("conflicting commit: open, get, insert, commit merging once ({label})");
    group.bench_function(name, |b| b.iter_custom(|n| conflicting(manager, header, n)));
    let on = || cycle(manager, header);
    let paired = Paired::run(bench.rounds, bench.per_round, on, || cycle(&off, header));
    println!(
        "{} merging on/off paired rounds ({label}): best on {:.2} us, best off {:.2} us, \
         median paired ratio {:.3}",
        bench.store,
        best(&paired.first),
        best(&paired.second),
        paired.median_ratio()
    );
}

/// `n` requests, each timed without the other request that changes the session between its
/// load and its commit.
fn conflicting<S: Store>(manager: &SessionManager<S>, header: &str, n: u64) -> Duration {
    let mut timed = Duration::ZERO;
    for i in 0..n {
        let start = Instant::now();
        let mut session = manager.open(Some(black_box(header)));
        let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
        timed += start.elapsed();
        other_request(manager, header, i);
        let start = Instant::now();
        session.insert("visits", &(visits + 1)).expect("insert");
        black_box(session.commit().expect("commit"));
        timed += start.elapsed();
    }
    timed
}

/// Another request of the same session: sets `theme` to `n`.
fn other_request<S: Store>(manager: &SessionManager<S>, header: &str, n: u64) {
    let mut session = manager.open(Some(header));
    session.insert("theme", &n).expect("insert");
    session.commit().expect("commit");
}

/// Once, before timing: the conflicting request keeps both its own change and the other
/// request's, so its commit did merge.
fn check_conflict_merges<S: Store>(manager: &SessionManager<S>, header: &str) {
    let visits = |m: &SessionManager<S>| -> u64 {
        let mut session = m.open(Some(header));
        session.get("visits").expect("get").unwrap_or(0)
    };
    let before = visits(manager);
    black_box(conflicting(manager, header, 1));
    let mut session = manager.open(Some(header));
    let theme: Option<u64> = session.get("theme").expect("get");
    assert_eq!(theme, Some(0), "the other request's change was kept");
    assert_eq!(
        visits(manager),
        before + 1,
        "this request's change was kept"
    );
}
