//! Checks for stores that implement Sweep.

use super::*;

// ---------------------------------------------------------------------------------------------
// Sweep
// ---------------------------------------------------------------------------------------------

/// Creates `expired` entries with a past expiry and `live` ones; returns the live keys.
fn seed_for_sweep<S: Sweep>(store: &S, prefix: &str, expired: usize, live: usize) -> Vec<String> {
    for i in 0..expired {
        assert!(ok(
            store.create(&format!("{prefix}expired{i}"), b"x", ago(PAST)),
            "create"
        ));
    }
    let live: Vec<String> = (0..live).map(|i| format!("{prefix}live{i}")).collect();
    for key in &live {
        assert!(ok(store.create(key, key.as_bytes(), after(LONG)), "create"));
    }
    live
}

fn assert_live<S: Store>(store: &S, live: &[String]) {
    for key in live {
        assert_bytes(
            ok(store.load(key), "load"),
            key.as_bytes(),
            "a live entry after sweep",
        );
    }
}

/// `sweep` removes exactly the expired entries, returns their count, and live entries survive.
///
/// The count is global to the store, so this check needs a store no other test writes to.
pub fn sweep_removes_expired_only<S: Sweep>(store: &S, prefix: &str) {
    let live = seed_for_sweep(store, prefix, 7, 5);
    assert_eq!(
        ok(store.sweep(1000), "sweep"),
        7,
        "sweep must remove the 7 expired entries"
    );
    assert_eq!(
        ok(store.sweep(1000), "sweep"),
        0,
        "a second sweep has nothing left"
    );
    assert_live(store, &live);
}

/// `sweep(limit)` removes at most `limit` entries per call (none for 0), full batches while
/// expired entries remain.
///
/// The count is global to the store, so this check needs a store no other test writes to.
pub fn sweep_respects_limit<S: Sweep>(store: &S, prefix: &str) {
    let live = seed_for_sweep(store, prefix, 25, 3);
    assert_eq!(
        ok(store.sweep(0), "sweep"),
        0,
        "sweep(0) must remove nothing"
    );
    for expected in [10, 10, 5, 0] {
        assert_eq!(
            ok(store.sweep(10), "sweep"),
            expected,
            "sweep(10) over 25 expired entries"
        );
    }
    assert_live(store, &live);
}
