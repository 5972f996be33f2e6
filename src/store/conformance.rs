//! The one conformance suite every [`Store`] must pass against its real server.
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
//! use server_session::store::{conformance, MemoryStore};
//!
//! conformance::roundtrip(&MemoryStore::new(), "doc:");
//! conformance::delete_removes_and_is_idempotent(&MemoryStore::new(), "doc:");
//! ```

use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use super::{Store, Sweep};
use crate::Result;

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
    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        self.store.load_and_touch(key, expires)
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
/// ```
/// # std::env::remove_var(server_session::store::conformance::REQUIRE_SERVICES_ENV);
/// server_session::store::conformance::service_unavailable("doc"); // prints "SKIP doc: ..."
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
// Basic contract
// ---------------------------------------------------------------------------------------------

/// `create` then `load` returns the same bytes, and distinct keys hold distinct values.
pub fn roundtrip<S: Store>(store: &S, prefix: &str) {
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    assert!(
        ok(store.create(&a, b"value a", after(LONG)), "create"),
        "create of a new key"
    );
    assert!(
        ok(store.create(&b, b"value b", after(LONG)), "create"),
        "create of a new key"
    );
    assert_bytes(
        ok(store.load(&a), "load"),
        b"value a",
        "load after create (a)",
    );
    assert_bytes(
        ok(store.load(&b), "load"),
        b"value b",
        "load after create (b)",
    );
}

/// `load` of a key never written returns `None`, even when a longer key shares its prefix.
pub fn missing_key_is_none<S: Store>(store: &S, prefix: &str) {
    assert_none(
        ok(store.load(&format!("{prefix}never")), "load"),
        "load of a missing key",
    );
    assert!(ok(
        store.create(&format!("{prefix}abc"), b"x", after(LONG)),
        "create"
    ));
    assert_none(
        ok(store.load(&format!("{prefix}ab")), "load"),
        "load of a key's prefix",
    );
}

/// `create` on a live key returns `false` and leaves the stored value unchanged.
pub fn create_does_not_overwrite_live<S: Store>(store: &S, prefix: &str) {
    let key = format!("{prefix}k");
    assert!(
        ok(store.create(&key, b"first", after(LONG)), "create"),
        "first create"
    );
    let second = ok(store.create(&key, b"second", after(LONG)), "create");
    assert!(!second, "create on a live key must return false");
    assert_bytes(
        ok(store.load(&key), "load"),
        b"first",
        "value after a refused create",
    );
}

/// `create` succeeds over an entry whose expiry has passed.
///
/// The expired entry is created with an expiry already in the past, so a store that keeps
/// expired entries until a sweep (memory, files, SQL) really has one to replace.
pub fn create_over_expired<S: Store>(store: &S, prefix: &str) {
    let key = format!("{prefix}k");
    let created = ok(
        store.create(&key, b"old", ago(PAST)),
        "create (past expiry)",
    );
    assert!(
        created,
        "create of a new key with a past expiry must return true"
    );
    let again = ok(
        store.create(&key, b"new", after(LONG)),
        "create over expired",
    );
    assert!(again, "create over an expired entry must return true");
    assert_bytes(
        ok(store.load(&key), "load"),
        b"new",
        "value created over an expired entry",
    );
}

/// `save` replaces the value and the expiry, both longer and shorter.
pub fn save_replaces_value_and_expiry<S: Store>(store: &S, prefix: &str) {
    let (longer, shorter) = (format!("{prefix}longer"), format!("{prefix}shorter"));
    let start = Instant::now();
    assert!(ok(store.create(&longer, b"v1", after(SHORT)), "create"));
    assert!(ok(store.create(&shorter, b"v1", after(LONG)), "create"));
    assert!(
        ok(store.save(&longer, b"v2 longer", after(LONG)), "save"),
        "save of a live key"
    );
    assert!(
        ok(store.save(&shorter, b"v2", after(SHORT)), "save"),
        "save of a live key"
    );
    assert_bytes(
        ok(store.load(&longer), "load"),
        b"v2 longer",
        "value after save",
    );
    assert_bytes(ok(store.load(&shorter), "load"), b"v2", "value after save");
    sleep_until(start, AFTER_SHORT);
    assert_bytes(
        ok(store.load(&longer), "load"),
        b"v2 longer",
        "save must extend the expiry",
    );
    assert_none(
        ok(store.load(&shorter), "load"),
        "save must shorten the expiry",
    );
}

/// `save` returns `false` for a missing, deleted or expired key and does not resurrect it.
pub fn save_returns_false_when_gone<S: Store>(store: &S, prefix: &str) {
    for key in gone_keys(store, prefix) {
        let saved = ok(store.save(&key, b"late write", after(LONG)), "save");
        assert!(!saved, "save of a gone key ({key}) must return false");
        assert_none(
            ok(store.load(&key), "load"),
            "save must not resurrect a gone key",
        );
    }
}

/// `touch` extends (or shortens) the expiry and leaves the value unchanged.
pub fn touch_extends_expiry<S: Store>(store: &S, prefix: &str) {
    let (longer, shorter) = (format!("{prefix}longer"), format!("{prefix}shorter"));
    let start = Instant::now();
    assert!(ok(store.create(&longer, b"value", after(SHORT)), "create"));
    assert!(ok(store.create(&shorter, b"value", after(LONG)), "create"));
    assert!(
        ok(store.touch(&longer, after(LONG)), "touch"),
        "touch of a live key"
    );
    assert!(
        ok(store.touch(&shorter, after(SHORT)), "touch"),
        "touch of a live key"
    );
    assert_bytes(
        ok(store.load(&longer), "load"),
        b"value",
        "value after touch",
    );
    sleep_until(start, AFTER_SHORT);
    assert_bytes(
        ok(store.load(&longer), "load"),
        b"value",
        "touch must extend the expiry",
    );
    assert_none(
        ok(store.load(&shorter), "load"),
        "touch must set a shorter expiry too",
    );
}

/// `touch` returns `false` for a missing, deleted or expired key and does not resurrect it.
pub fn touch_returns_false_when_gone<S: Store>(store: &S, prefix: &str) {
    for key in gone_keys(store, prefix) {
        assert!(
            !ok(store.touch(&key, after(LONG)), "touch"),
            "touch of gone key {key}"
        );
        assert_none(
            ok(store.load(&key), "load"),
            "touch must not resurrect a gone key",
        );
    }
}

/// `load_and_touch` returns the value and extends the expiry; `None` when the key is gone.
pub fn load_and_touch<S: Store>(store: &S, prefix: &str) {
    let key = format!("{prefix}live");
    let start = Instant::now();
    assert!(ok(store.create(&key, b"value", after(SHORT)), "create"));
    let loaded = ok(store.load_and_touch(&key, after(LONG)), "load_and_touch");
    assert_bytes(loaded, b"value", "load_and_touch of a live key");
    for gone in gone_keys(store, prefix) {
        let loaded = ok(store.load_and_touch(&gone, after(LONG)), "load_and_touch");
        assert_none(loaded, "load_and_touch of a gone key");
        assert_none(
            ok(store.load(&gone), "load"),
            "load_and_touch must not resurrect",
        );
    }
    sleep_until(start, AFTER_SHORT);
    assert_bytes(
        ok(store.load(&key), "load"),
        b"value",
        "load_and_touch must extend expiry",
    );
}

/// Three keys that are gone: never written, deleted, and created with a past expiry.
fn gone_keys<S: Store>(store: &S, prefix: &str) -> [String; 3] {
    let keys = [
        format!("{prefix}missing"),
        format!("{prefix}deleted"),
        format!("{prefix}expired"),
    ];
    assert!(ok(store.create(&keys[1], b"doomed", after(LONG)), "create"));
    ok(store.delete(&keys[1]), "delete");
    assert!(ok(
        store.create(&keys[2], b"stale", ago(PAST)),
        "create (past expiry)"
    ));
    keys
}

/// An expired entry is never returned: one expired at creation, one that expires after 1.2 s.
pub fn expired_never_loaded<S: Store>(store: &S, prefix: &str) {
    let (past, short) = (format!("{prefix}past"), format!("{prefix}short"));
    let start = Instant::now();
    assert!(ok(
        store.create(&past, b"stale", ago(PAST)),
        "create (past expiry)"
    ));
    assert!(ok(store.create(&short, b"fresh", after(SHORT)), "create"));
    assert_none(
        ok(store.load(&past), "load"),
        "an entry created already expired",
    );
    assert_bytes(
        ok(store.load(&short), "load"),
        b"fresh",
        "an entry before its expiry",
    );
    sleep_until(start, AFTER_SHORT);
    assert_none(ok(store.load(&short), "load"), "an entry after its expiry");
}

/// `delete` removes only its key, deleting a missing key is `Ok`, and the key can be reused.
pub fn delete_removes_and_is_idempotent<S: Store>(store: &S, prefix: &str) {
    let (key, other) = (format!("{prefix}k"), format!("{prefix}other"));
    assert!(ok(store.create(&key, b"value", after(LONG)), "create"));
    assert!(ok(store.create(&other, b"kept", after(LONG)), "create"));
    ok(store.delete(&key), "delete");
    assert_none(ok(store.load(&key), "load"), "load after delete");
    ok(store.delete(&key), "second delete of the same key");
    ok(
        store.delete(&format!("{prefix}never")),
        "delete of a key never written",
    );
    assert_bytes(
        ok(store.load(&other), "load"),
        b"kept",
        "delete must not touch other keys",
    );
    assert!(
        ok(store.create(&key, b"again", after(LONG)), "create"),
        "create after delete"
    );
    assert_bytes(
        ok(store.load(&key), "load"),
        b"again",
        "value created after delete",
    );
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

fn payload_roundtrip<S: Store>(store: &S, prefix: &str, first: &[u8], second: &[u8]) {
    let key = format!("{prefix}payload");
    assert!(ok(store.create(&key, first, after(LONG)), "create"));
    assert_bytes(ok(store.load(&key), "load"), first, "payload after create");
    assert!(ok(store.save(&key, second, after(LONG)), "save"));
    assert_bytes(ok(store.load(&key), "load"), second, "payload after save");
    assert!(ok(store.touch(&key, after(LONG)), "touch"));
    assert_bytes(ok(store.load(&key), "load"), second, "payload after touch");
}

/// An empty value is stored and returned as `Some(empty)`, not `None`.
pub fn payload_empty<S: Store>(store: &S, prefix: &str) {
    payload_roundtrip(store, prefix, b"", b"");
}

/// Every byte value 0..=255 survives, in both directions.
pub fn payload_binary<S: Store>(store: &S, prefix: &str) {
    let forward: Vec<u8> = (0..=255u8).collect();
    let backward: Vec<u8> = forward.iter().rev().copied().collect();
    payload_roundtrip(store, prefix, &forward, &backward);
}

/// A 1 MiB value of random bytes survives exactly.
pub fn payload_large<S: Store>(store: &S, prefix: &str) {
    let mut rng = Rng::new(random_u64());
    let (first, second) = (rng.bytes(1 << 20), rng.bytes((1 << 20) - 7));
    payload_roundtrip(store, prefix, &first, &second);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 500;
const SHARED_KEYS: usize = 6;
const TAG_LEN: usize = 12;

/// A value that says which key it belongs to: key index, body length, seed, then a body that
/// is a function of all three. A torn or cross-wired value fails [`check_tagged`].
fn tagged_value(key: usize, seed: u32, len: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(TAG_LEN + len);
    value.extend_from_slice(&(key as u32).to_be_bytes());
    value.extend_from_slice(&(len as u32).to_be_bytes());
    value.extend_from_slice(&seed.to_be_bytes());
    value.extend((0..len).map(|i| tag_byte(key, seed, i)));
    value
}

fn tag_byte(key: usize, seed: u32, i: usize) -> u8 {
    let mixed = seed.wrapping_add(i as u32).wrapping_mul(0x9E37_79B1) ^ (key as u32 * 0x85EB);
    (mixed >> 24) as u8
}

fn check_tagged(key: usize, value: &[u8]) -> std::result::Result<(), String> {
    let field = |i: usize| {
        value
            .get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
    };
    let (Some(k), Some(len), Some(seed)) = (field(0), field(1), field(2)) else {
        return Err(format!(
            "value of {} bytes is shorter than its tag",
            value.len()
        ));
    };
    let (k, len, seed) = (
        u32::from_be_bytes(k),
        u32::from_be_bytes(len),
        u32::from_be_bytes(seed),
    );
    if k as usize != key {
        return Err(format!("value of key {k} found under key {key}"));
    }
    if value.len() != TAG_LEN + len as usize {
        return Err(format!(
            "torn value: tag says {len} bytes, body has {}",
            value.len() - TAG_LEN
        ));
    }
    let body = &value[TAG_LEN..];
    match (0..body.len()).find(|&i| body[i] != tag_byte(key, seed, i)) {
        Some(i) => Err(format!("torn value: body differs at byte {i} of {len}")),
        None => Ok(()),
    }
}

#[derive(Default)]
struct Tally {
    values_seen: usize,
    creates_won: usize,
}

/// The key that is created before the workload and never deleted: it must never read as gone.
const STABLE: usize = SHARED_KEYS;

/// One operation of the mixed workload: the value it read back, if any.
fn step<S: Store>(
    store: &S,
    key: &str,
    op: usize,
    value: &[u8],
    tally: &mut Tally,
) -> Result<Option<Vec<u8>>> {
    match op {
        0..=2 => store.load(key),
        3 | 4 => {
            tally.creates_won += usize::from(store.create(key, value, after(LONG))?);
            Ok(None)
        }
        5 | 6 => store.save(key, value, after(LONG)).map(|_| None),
        7 => store.touch(key, after(LONG)).map(|_| None),
        8 => store.load_and_touch(key, after(LONG)),
        _ => store.delete(key).map(|()| None),
    }
}

fn hammer<S: Store>(store: &S, keys: &[String], thread: usize) -> Tally {
    let mut rng = Rng::new(random_u64());
    let mut tally = Tally::default();
    for op in 0..OPS_PER_THREAD {
        let k = rng.below(SHARED_KEYS + 1);
        let what = format!("thread {thread} op {op} on key {k}");
        let len = if rng.below(16) == 0 {
            16384 + rng.below(49152)
        } else {
            rng.below(2048)
        };
        let value = tagged_value(k, rng.next() as u32, len);
        let kind = match rng.below(10) {
            3 | 4 | 9 if k == STABLE => 5, // never create over or delete the stable key
            kind => kind,
        };
        let seen = ok(step(store, &keys[k], kind, &value, &mut tally), &what);
        match seen {
            Some(seen) => check_tagged(k, &seen).unwrap_or_else(|p| panic!("{what}: {p}")),
            None if k == STABLE && matches!(kind, 0..=2 | 8) => {
                panic!("{what}: a live key read as missing while it was being rewritten")
            }
            None => continue,
        }
        tally.values_seen += 1;
    }
    tally
}

/// 8 threads × 500 mixed operations over 6 shared keys plus one that is only ever rewritten:
/// no error, every value read back (by `load` or `load_and_touch`) is whole and belongs to its
/// key, and the never-deleted key never reads as missing (writes replace values atomically).
pub fn concurrent_mixed_operations<S: Store>(store: &S, prefix: &str) {
    let keys: Vec<String> = (0..=SHARED_KEYS).map(|k| format!("{prefix}{k}")).collect();
    let stable_value = tagged_value(STABLE, 0, 100);
    assert!(ok(
        store.create(&keys[STABLE], &stable_value, after(LONG)),
        "create"
    ));
    let barrier = Barrier::new(THREADS);
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, barrier) = (&keys, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    hammer(store, keys, t)
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    for (k, key) in keys.iter().enumerate() {
        match ok(store.load(key), "final load") {
            Some(value) => check_tagged(k, &value).unwrap_or_else(|p| panic!("final key {k}: {p}")),
            None => assert_ne!(
                k, STABLE,
                "the never-deleted key is gone after the workload"
            ),
        }
    }
    let seen: usize = tallies.iter().map(|t| t.values_seen).sum();
    let won: usize = tallies.iter().map(|t| t.creates_won).sum();
    assert!(
        won > 0 && seen > 0,
        "the workload never stored ({won}) or read ({seen}) a value"
    );
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// 8 threads race `create` on the same 40 fresh keys: exactly one wins each key, and the stored
/// value is the winner's.
pub fn concurrent_create_single_winner<S: Store>(store: &S, prefix: &str) {
    const RACED_KEYS: usize = 40;
    let keys: Vec<String> = (0..RACED_KEYS).map(|k| format!("{prefix}{k}")).collect();
    let barrier = Barrier::new(THREADS);
    let wins: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, barrier) = (&keys, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let value = format!("thread {t}");
                    let won = |key: &String| store.create(key, value.as_bytes(), after(LONG));
                    keys.iter()
                        .map(|key| ok(won(key), "create"))
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    for (k, key) in keys.iter().enumerate() {
        let winners: Vec<usize> = (0..THREADS).filter(|&t| wins[t][k]).collect();
        assert_eq!(
            winners.len(),
            1,
            "key {k}: create won by threads {winners:?}"
        );
        let expected = format!("thread {}", winners[0]);
        assert_bytes(
            ok(store.load(key), "load"),
            expected.as_bytes(),
            "the winner's value",
        );
    }
}

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
