//! Single-threaded checks of every point of the Store contract, and payload sizes.

use std::time::Instant;

use super::*;

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
