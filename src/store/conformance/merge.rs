//! The conditional write ([`Store::replace`]) and, through a [`SessionManager`], overlapping
//! requests of one session merging their changes.

use std::sync::Barrier;

use super::*;
use crate::store::Replaced;
use crate::{Config, Error, SessionManager};

/// `replace` writes only over the expected bytes; over other bytes it reports them and
/// writes nothing.
pub fn replace_only_if_unchanged<S: Store>(store: &S, prefix: &str) {
    let key = format!("{prefix}k");
    assert!(ok(store.create(&key, b"v1", after(LONG)), "create"));
    let replaced = ok(store.replace(&key, b"v1", b"v2", after(LONG)), "replace");
    assert_eq!(replaced, Replaced::Done, "replace over the expected bytes");
    assert_bytes(ok(store.load(&key), "load"), b"v2", "load after replace");
    let replaced = ok(store.replace(&key, b"v1", b"v3", after(LONG)), "replace");
    assert_eq!(
        replaced,
        Replaced::Changed(b"v2".to_vec()),
        "replace over other bytes reports them"
    );
    assert_bytes(
        ok(store.load(&key), "load"),
        b"v2",
        "a refused replace writes nothing",
    );
}

/// `replace` of a missing, deleted or expired entry is `Gone` and stores nothing.
pub fn replace_never_resurrects<S: Store>(store: &S, prefix: &str) {
    let (missing, deleted, expired) = (
        format!("{prefix}missing"),
        format!("{prefix}deleted"),
        format!("{prefix}expired"),
    );
    assert!(ok(store.create(&deleted, b"v1", after(LONG)), "create"));
    ok(store.delete(&deleted), "delete");
    assert!(ok(store.create(&expired, b"v1", ago(PAST)), "create"));
    for key in [&missing, &deleted, &expired] {
        let replaced = ok(store.replace(key, b"v1", b"v2", after(LONG)), "replace");
        assert_eq!(replaced, Replaced::Gone, "replace of {key}");
        assert_none(
            ok(store.load(key), "load"),
            "load after replace of a gone entry",
        );
    }
}

/// `replace` sets the new expiry: an entry replaced with a short one is gone after it.
pub fn replace_sets_expiry<S: Store>(store: &S, prefix: &str) {
    let key = format!("{prefix}k");
    let start = Instant::now();
    assert!(ok(store.create(&key, b"v1", after(LONG)), "create"));
    let replaced = ok(store.replace(&key, b"v1", b"v2", after(SHORT)), "replace");
    assert_eq!(replaced, Replaced::Done);
    sleep_until(start, AFTER_SHORT);
    assert_none(
        ok(store.load(&key), "load"),
        "load after the replaced expiry",
    );
}

const THREADS: usize = 8;
const REQUESTS: usize = 40;

/// A manager over `store` whose keys start with `prefix`.
fn manager<'s, S: Store>(store: &'s S, prefix: &str) -> SessionManager<&'s S> {
    let config = ok(Config::builder().key_prefix(prefix).build(), "config");
    ok(SessionManager::new(store, config), "manager")
}

/// A stored session holding `count = 0`, as its `Cookie` header pair.
fn stored_session<S: Store>(manager: &SessionManager<&S>) -> String {
    let mut session = manager.open(None);
    ok(session.insert("count", &0u64), "insert");
    let commit = ok(session.commit(), "commit");
    let set_cookie = commit.set_cookie().expect("a new session sends a cookie");
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// One request: increments `count` with `update` and sets this thread's own key. A
/// [`Error::Conflict`] (the merge gave up) writes nothing: the request is retried, as a
/// client would. Returns how many tries it took.
fn increment<S: Store>(
    manager: &SessionManager<&S>,
    cookie: &str,
    thread: usize,
    n: usize,
) -> usize {
    for tries in 1.. {
        let mut session = manager.open(Some(cookie));
        ok(
            session.update("count", |n: Option<u64>| n.unwrap_or(0) + 1),
            "update",
        );
        ok(session.insert(&format!("thread{thread}"), &n), "insert");
        match session.commit() {
            Ok(_) => return tries,
            Err(Error::Conflict { .. }) => continue,
            Err(e) => panic!("commit returned an error: {e} ({e:?})"),
        }
    }
    unreachable!()
}

/// 8 threads × 40 requests of one session, each incrementing a shared counter with
/// `Session::update` and setting its thread's own key: no increment and no key is lost.
pub fn concurrent_requests_merge<S: Store>(store: &S, prefix: &str) {
    let manager = manager(store, prefix);
    let cookie = stored_session(&manager);
    let barrier = Barrier::new(THREADS);
    let tries: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (manager, cookie, barrier) = (&manager, &cookie, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    (0..REQUESTS)
                        .map(|n| increment(manager, cookie, t, n))
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(join).sum()
    });
    let mut session = manager.open(Some(&cookie));
    let count = ok(session.get::<u64>("count"), "get");
    assert_eq!(
        count,
        Some((THREADS * REQUESTS) as u64),
        "increments after {tries} tries"
    );
    for t in 0..THREADS {
        let last = ok(session.get::<usize>(&format!("thread{t}")), "get");
        assert_eq!(last, Some(REQUESTS - 1), "thread {t}'s own key");
    }
}

/// A request that loaded a session before another destroyed it never brings it back when
/// it commits its changes: the session stays gone and its cookie is cleared.
pub fn destroy_is_never_undone_by_merges<S: Store>(store: &S, prefix: &str) {
    let manager = manager(store, prefix);
    let cookie = stored_session(&manager);
    let mut late = manager.open(Some(&cookie));
    ok(
        late.update("count", |n: Option<u64>| n.unwrap_or(0) + 1),
        "update",
    );
    let mut logout = manager.open(Some(&cookie));
    logout.destroy();
    ok(logout.commit(), "commit of the logout");
    let commit = ok(late.commit(), "commit of the late request");
    let set_cookie = commit.set_cookie().unwrap_or_default();
    assert!(
        set_cookie.contains("Expires=Thu, 01 Jan 1970"),
        "the late request clears the cookie: {set_cookie:?}"
    );
    let mut after = manager.open(Some(&cookie));
    assert_eq!(
        ok(after.get::<u64>("count"), "get"),
        None,
        "the session stays gone"
    );
}
