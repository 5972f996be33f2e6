//! The conformance suite and the bounded-memory guarantee for [`MemoryStore`].

use std::time::{Duration, SystemTime};

use server_session::store::{MemoryStore, Store};
use server_session::{conformance_tests, sweep_conformance_tests, user_index_conformance_tests};

conformance_tests!(Some(MemoryStore::new()));
sweep_conformance_tests!(Some(MemoryStore::new()));
user_index_conformance_tests!(Some(MemoryStore::new()));

/// 100,000 entries that expire almost at once never pile up: automatic eviction keeps the map
/// bounded by the live entries plus one eviction interval, with no explicit sweep.
#[test]
fn memory_stays_bounded_without_sweep() {
    const TOTAL: usize = 100_000;
    const BATCH: usize = 5_000;
    let store = MemoryStore::new();
    let mut peak = 0;
    for batch in 0..TOTAL / BATCH {
        for i in 0..BATCH {
            let key = format!("bounded:{batch}:{i}");
            // Half already expired, half expiring within a few milliseconds.
            let expires = if i % 2 == 0 {
                SystemTime::now() - Duration::from_secs(1)
            } else {
                SystemTime::now() + Duration::from_millis(3)
            };
            assert!(store.create(&key, b"short-lived", expires).unwrap());
        }
        std::thread::sleep(Duration::from_millis(5));
        peak = peak.max(store.len());
    }
    // Without eviction len() would be 100_000. With it, at most the entries written since the
    // last eviction (>= 1024 and >= the size after the last eviction) plus those still live.
    assert!(
        peak <= 3 * BATCH,
        "memory store grew to {peak} entries out of {TOTAL}"
    );
    assert!(
        store.len() <= 3 * BATCH,
        "memory store holds {} entries",
        store.len()
    );
}
