//! The one conformance suite every [`Store`] must pass against its real server (feature
//! `test-util`), public so that authors of third-party stores can run it too.
//!
//! Each check is a generic function `check(store, prefix)` that panics with a clear message when
//! the store breaks a point of the contract documented on [`Store`] and [`Sweep`]. Every key a
//! check uses starts with `prefix`, so checks running in parallel against one shared server never
//! see each other's entries.
//!
//! Integration tests run the whole suite with [`conformance_tests!`](crate::conformance_tests)
//! (and [`sweep_conformance_tests!`](crate::sweep_conformance_tests) for [`Sweep`] stores), which
//! generate one `#[test]` per check. Checks about expiry sleep about two seconds, because some
//! servers count expiry in whole seconds.
//!
//! ```
//! use server_session::store::{conformance, MemoryStore, NullStore};
//!
//! conformance::roundtrip(&MemoryStore::new(), "doc:");
//! conformance::delete_removes_and_is_idempotent(&MemoryStore::new(), "doc:");
//!
//! // A store that keeps nothing fails the first check.
//! let failed = std::panic::catch_unwind(|| conformance::roundtrip(&NullStore, "doc:"));
//! assert!(failed.is_err());
//! ```

use std::time::{Duration, Instant, SystemTime};

use super::{Store, Sweep};

mod concurrency;
mod contract;
mod faults;
mod lifecycle;
mod merge;
mod size;
mod sweep;
mod users;

use crate::Result;
pub use concurrency::*;
pub use contract::*;
pub use faults::*;
pub use lifecycle::*;
pub use merge::*;
pub use size::*;
pub use sweep::*;
pub use users::*;

/// An expiry short enough to wait for, long enough to survive a slow round trip.
const SHORT: Duration = Duration::from_millis(1200);
/// How long after creation a `SHORT` entry is certainly gone, even with 1-second granularity.
const AFTER_SHORT: Duration = Duration::from_millis(2100);
/// An expiry no check outlives.
const LONG: Duration = Duration::from_secs(3600);
/// How far in the past an "already expired" entry's expiry lies.
const PAST: Duration = Duration::from_secs(60);

/// Set to `1` to turn a missing service into a test failure instead of a skip.
pub const REQUIRE_SERVICES_ENV: &str = "SERVER_SESSION_REQUIRE_SERVICES";

/// A store under test together with what must outlive it (a temporary directory, a table to
/// drop on exit). It forwards every [`Store`] and [`Sweep`] call to `store`.
///
/// ```
/// use server_session::store::{conformance, conformance::Guarded, MemoryStore};
/// let guarded = Guarded { store: MemoryStore::new(), guard: () };
/// conformance::roundtrip(&guarded, "doc:");
/// assert!(!guarded.store.is_empty(), "the calls reached the inner store");
/// ```
#[derive(Debug)]
pub struct Guarded<S, G> {
    /// The store the checks talk to.
    pub store: S,
    /// Dropped after the store: cleans up what the test created.
    pub guard: G,
}

impl<S: Store, G: Send + Sync> Store for Guarded<S, G> {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store.load(key)
    }
    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.store.create(key, value, expires)
    }
    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.store.save(key, value, expires)
    }
    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        self.store.touch(key, expires)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key)
    }
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<super::Replaced> {
        self.store.replace(key, expected, value, expires)
    }
    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        self.store.load_and_touch(key, expires)
    }
    fn check_key(&self, key: &str) -> Result<()> {
        self.store.check_key(key)
    }
    fn max_value_bytes(&self) -> Option<usize> {
        self.store.max_value_bytes()
    }
    fn user_index(&self) -> Option<&dyn super::UserIndex> {
        self.store.user_index()
    }
}

impl<S: super::UserIndex, G: Send + Sync> super::UserIndex for Guarded<S, G> {
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
        self.store.link_user(user, key, until)
    }
    fn user_keys(&self, user: &str) -> Result<Vec<String>> {
        self.store.user_keys(user)
    }
    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
        self.store.unlink_user(user, keys)
    }
}

impl<S: Sweep, G: Send + Sync> Sweep for Guarded<S, G> {
    fn sweep(&self, limit: usize) -> Result<usize> {
        self.store.sweep(limit)
    }
}

/// Runs one check: builds the store with `make`, then calls `check` with a fresh key prefix.
///
/// When `make` returns `None` (the server is not available), prints `SKIP <test>: service not
/// available` and returns, or panics when [`REQUIRE_SERVICES_ENV`] is `1`.
///
/// ```
/// use server_session::store::{conformance, MemoryStore};
/// conformance::run("doc", || Some(MemoryStore::new()), conformance::roundtrip);
///
/// let mut prefix = String::new();
/// conformance::run("doc", || Some(MemoryStore::new()), |_, p| prefix = p.to_owned());
/// assert!(prefix.starts_with("conformance:doc:"), "{prefix}");
/// ```
pub fn run<S, M, C>(test: &str, make: M, check: C)
where
    S: Store,
    M: FnOnce() -> Option<S>,
    C: FnOnce(&S, &str),
{
    match make() {
        Some(store) => check(&store, &unique_prefix(test)),
        None => service_unavailable(test),
    }
}

/// Reports that the service for `test` is missing: a skip, or a panic when it is required.
///
/// ```standalone_crate
/// use server_session::store::conformance::{service_unavailable, REQUIRE_SERVICES_ENV};
///
/// // SAFETY: a standalone doctest is a process of its own, with no other thread yet.
/// unsafe { std::env::remove_var(REQUIRE_SERVICES_ENV) };
/// service_unavailable("doc"); // prints "SKIP doc: service not available"
/// unsafe { std::env::set_var(REQUIRE_SERVICES_ENV, "1") }; // as scripts/test.sh and CI run
/// assert!(std::panic::catch_unwind(|| service_unavailable("doc")).is_err());
/// ```
pub fn service_unavailable(test: &str) {
    if std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: service required but not available ({REQUIRE_SERVICES_ENV}=1)");
    }
    println!("SKIP {test}: service not available");
}

/// A key prefix unique to this run of `test`: `conformance:<test>:<16 random hex digits>:`.
///
/// ```
/// let a = server_session::store::conformance::unique_prefix("t");
/// assert!(a.starts_with("conformance:t:"));
/// assert_ne!(a, server_session::store::conformance::unique_prefix("t"));
/// ```
pub fn unique_prefix(test: &str) -> String {
    format!("conformance:{test}:{:016x}:", random_u64())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn random_u64() -> u64 {
    match getrandom::u64() {
        Ok(n) => n,
        Err(e) => panic!("the system random number generator failed: {e}"),
    }
}

fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what} returned an error: {e} ({e:?})"),
    }
}

/// The thread's result, or its panic passed on.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn after(d: Duration) -> SystemTime {
    SystemTime::now() + d
}

fn ago(d: Duration) -> SystemTime {
    SystemTime::now() - d
}

fn sleep_until(start: Instant, offset: Duration) {
    std::thread::sleep((start + offset).saturating_duration_since(Instant::now()));
}

/// Asserts that `actual` is `Some(expected)`, without printing megabytes on failure.
fn assert_bytes(actual: Option<Vec<u8>>, expected: &[u8], what: &str) {
    let Some(actual) = actual else {
        panic!("{what}: expected {} bytes, got None", expected.len());
    };
    if actual != expected {
        let at = actual.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: expected {} bytes, got {} bytes (first difference at {at:?})",
            expected.len(),
            actual.len()
        );
    }
}

fn assert_none(actual: Option<Vec<u8>>, what: &str) {
    if let Some(bytes) = actual {
        panic!("{what}: expected None, got {} bytes", bytes.len());
    }
}

/// A small xorshift64* generator: fast, deterministic per seed, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 56) as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Macros
// ---------------------------------------------------------------------------------------------

/// Generates one `#[test]` per [`Store`] conformance check.
///
/// The argument is an expression of type `Option<S>` (with `S: Store`), evaluated afresh in
/// every test; `None` means the server is not available (the test is skipped, or fails when
/// `SERVER_SESSION_REQUIRE_SERVICES=1`). Every test uses its own random key prefix.
///
/// ```
/// use server_session::store::MemoryStore;
/// server_session::conformance_tests!(Some(MemoryStore::new()));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_each!($make;
            roundtrip,
            missing_key_is_none,
            create_does_not_overwrite_live,
            create_over_expired,
            save_replaces_value_and_expiry,
            save_returns_false_when_gone,
            touch_extends_expiry,
            touch_returns_false_when_gone,
            load_and_touch,
            expired_never_loaded,
            delete_removes_and_is_idempotent,
            payload_empty,
            payload_binary,
            payload_large,
            concurrent_mixed_operations,
            concurrent_create_single_winner,
            replace_only_if_unchanged,
            replace_never_resurrects,
            replace_sets_expiry,
            concurrent_requests_merge,
            destroy_is_never_undone_by_merges,
            destroy_racing_merges_never_resurrects,
            oversized_commit_writes_nothing,
            oversized_stored_session_is_read,
            absolute_lifetime_ends_an_old_session,
            absolute_lifetime_is_not_extended_by_activity,
            regenerate_keeps_the_creation_time,
            session_lifetime_sets_the_store_expiry,
            flashes_reach_the_next_request_once,
        );
    };
}

/// Generates one `#[test]` per [`Sweep`] conformance check.
///
/// Like [`conformance_tests!`](crate::conformance_tests), but the expression must build a store
/// that no other test uses (a fresh directory, table or database), because the counts `sweep`
/// returns are global to the store.
///
/// ```
/// use server_session::store::MemoryStore;
/// server_session::sweep_conformance_tests!(Some(MemoryStore::new()));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! sweep_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_each!($make; sweep_removes_expired_only, sweep_respects_limit);
    };
}

/// Generates one `#[test]` per [`UserIndex`](crate::store::UserIndex) check for the store
/// `$make` builds (an `Option`, `None` when the server is missing).
///
/// ```
/// use server_session::store::MemoryStore;
/// server_session::user_index_conformance_tests!(Some(MemoryStore::new()));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! user_index_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__conformance_each!($make;
            user_index_records_and_forgets,
            user_index_records_lapse,
            user_index_keeps_concurrent_links,
            destroy_user_sessions_ends_only_that_users,
        );
    };
}

/// Implementation detail of the conformance macros: one `#[test]` per named check.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_each {
    ($make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::store::conformance::run(
                    concat!(module_path!(), "::", stringify!($check)),
                    || $make,
                    $crate::store::conformance::$check,
                );
            }
        )+
    };
}
