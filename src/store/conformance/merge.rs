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

/// Threads of [`concurrent_requests_merge`].
pub const MERGE_WORKERS: usize = 8;
/// Requests each of them makes.
pub const MERGE_REQUESTS: usize = 250;

/// A manager over `store` whose keys start with `prefix`, merging concurrent changes.
pub fn merge_manager<'s, S: Store>(store: &'s S, prefix: &str) -> SessionManager<&'s S> {
    let config = ok(Config::builder().key_prefix(prefix).build(), "config");
    ok(SessionManager::new(store, config), "manager")
}

/// A stored session holding `count = 0`, as its `Cookie` header pair (`session=<id>`).
pub fn stored_session<S: Store>(manager: &SessionManager<&S>) -> String {
    let mut session = manager.open(None);
    ok(session.insert("count", &0u64), "insert");
    let commit = ok(session.commit(), "commit");
    let set_cookie = commit.set_cookie().expect("a new session sends a cookie");
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The store key of the session a `session=<id>` cookie pair (unsigned) names.
pub(super) fn stored_key(prefix: &str, cookie: &str) -> String {
    let id = cookie.split_once('=').map_or("", |(_, id)| id);
    format!("{prefix}{id}")
}

/// What one request of [`merging_requests`] did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Stored,
    /// The merge gave up ([`Error::Conflict`]): nothing was written.
    Conflict,
    /// The session was gone (destroyed) when the request loaded it.
    Gone,
}

/// One request: increments `count` with `Session::update` and sets `worker<worker>` to `n`.
fn increment<S: Store>(
    manager: &SessionManager<&S>,
    cookie: &str,
    worker: usize,
    n: usize,
) -> Outcome {
    let mut session = manager.open(Some(cookie));
    if !ok(session.contains_key("count"), "contains_key") {
        // No session behind the cookie: a fresh one, which this check leaves unsaved.
        session.destroy();
        ok(session.commit(), "commit of a discarded session");
        return Outcome::Gone;
    }
    ok(
        session.update("count", |n: Option<u64>| n.unwrap_or(0) + 1),
        "update",
    );
    ok(session.insert(&format!("worker{worker}"), &n), "insert");
    match session.commit() {
        Ok(_) => Outcome::Stored,
        Err(Error::Conflict { .. }) => Outcome::Conflict,
        Err(e) => panic!("commit returned an error: {e} ({e:?})"),
    }
}

/// `requests` requests of worker `worker` on the session of `cookie`, one after another. A
/// request whose merge gave up is sent again, as a client would. Returns how many gave up.
///
/// # Panics
/// When the session is gone, or a request fails with anything but a conflict.
pub fn merging_requests<S: Store>(
    manager: &SessionManager<&S>,
    cookie: &str,
    worker: usize,
    requests: usize,
) -> usize {
    let mut conflicts = 0;
    for n in 0..requests {
        loop {
            match increment(manager, cookie, worker, n) {
                Outcome::Stored => break,
                Outcome::Conflict => conflicts += 1,
                Outcome::Gone => panic!("worker {worker}: the session is gone"),
            }
        }
    }
    conflicts
}

/// The session of `cookie` holds every increment of `workers` × `requests` and each worker's
/// last own value.
pub fn assert_merged<S: Store>(
    manager: &SessionManager<&S>,
    cookie: &str,
    workers: std::ops::Range<usize>,
    requests: usize,
) {
    let mut session = manager.open(Some(cookie));
    let count = ok(session.get::<u64>("count"), "get");
    assert_eq!(
        count,
        Some((workers.len() * requests) as u64),
        "the shared counter"
    );
    for worker in workers {
        let last = ok(session.get::<usize>(&format!("worker{worker}")), "get");
        assert_eq!(last, Some(requests - 1), "worker {worker}'s own key");
    }
}

/// Runs the `workers` (each [`MERGE_REQUESTS`] [`merging_requests`]) on threads started
/// together, each through its own manager over `store`: like separate processes, they do not
/// take turns (a manager's commits of one session do) and race each other's conditional
/// writes. Returns how many requests gave up and were sent again.
fn run_workers<S: Store>(
    store: &S,
    prefix: &str,
    cookie: &str,
    workers: std::ops::Range<usize>,
) -> usize {
    let barrier = Barrier::new(workers.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .map(|worker| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let manager = merge_manager(store, prefix);
                    barrier.wait();
                    merging_requests(&manager, cookie, worker, MERGE_REQUESTS)
                })
            })
            .collect();
        handles.into_iter().map(join).sum()
    })
}

/// 8 threads × 250 overlapping requests of one session, each incrementing a shared counter
/// with `Session::update` and setting its own key with `insert`, each thread through its own
/// manager: no increment and no key is lost.
pub fn concurrent_requests_merge<S: Store>(store: &S, prefix: &str) {
    let manager = merge_manager(store, prefix);
    let cookie = stored_session(&manager);
    let conflicts = run_workers(store, prefix, &cookie, 0..MERGE_WORKERS);
    println!(
        "{MERGE_WORKERS} × {MERGE_REQUESTS} merging requests: {conflicts} gave up and were sent again"
    );
    assert_merged(&manager, &cookie, 0..MERGE_WORKERS, MERGE_REQUESTS);
}

/// Set in the second process of [`two_processes_merge`]: `<location>\n<prefix>\n<cookie>`.
pub const MERGE_CHILD_ENV: &str = "SERVER_SESSION_MERGE_CHILD";

/// [`concurrent_requests_merge`] from two processes, 4 workers each, through two stores that
/// `open` opens on one `location` (a directory, a database file): no increment and no key
/// is lost across processes.
///
/// Call it from a `#[test]` named `test`: the test binary runs again, with only that test, as
/// the second process, which takes the first one's location, key prefix and session from
/// [`MERGE_CHILD_ENV`] (its own `location` is not used).
pub fn two_processes_merge<S: Store>(test: &str, location: &str, open: impl Fn(&str) -> S) {
    let half = MERGE_WORKERS / 2;
    if let Ok(job) = std::env::var(MERGE_CHILD_ENV) {
        let [location, prefix, cookie] = job.splitn(3, '\n').collect::<Vec<_>>()[..] else {
            panic!("{MERGE_CHILD_ENV} is not <location>\\n<prefix>\\n<cookie>: {job:?}");
        };
        run_workers(&open(location), prefix, cookie, half..MERGE_WORKERS);
        return;
    }
    let store = open(location);
    let prefix = unique_prefix(test);
    let manager = merge_manager(&store, &prefix);
    let cookie = stored_session(&manager);
    let exe = std::env::current_exe().expect("the path of the test binary");
    let mut second = std::process::Command::new(exe)
        .args([test, "--exact", "--quiet", "--test-threads=1"])
        .env(MERGE_CHILD_ENV, format!("{location}\n{prefix}\n{cookie}"))
        .spawn()
        .expect("start the second process");
    run_workers(&store, &prefix, &cookie, 0..half);
    let status = second.wait().expect("wait for the second process");
    assert!(status.success(), "the second process failed: {status}");
    assert_merged(&manager, &cookie, 0..MERGE_WORKERS, MERGE_REQUESTS);
}

/// A logout racing requests that merge: once the session is destroyed it stays gone, whatever
/// the requests that loaded it before commit.
pub fn destroy_racing_merges_never_resurrects<S: Store>(store: &S, prefix: &str) {
    const WORKERS: usize = 4;
    let manager = merge_manager(store, prefix);
    let cookie = stored_session(&manager);
    let key = stored_key(prefix, &cookie);
    let barrier = Barrier::new(WORKERS + 1);
    std::thread::scope(|scope| {
        for worker in 0..WORKERS {
            let (cookie, barrier) = (&cookie, &barrier);
            scope.spawn(move || {
                let manager = merge_manager(store, prefix);
                barrier.wait();
                for n in 0.. {
                    if increment(&manager, cookie, worker, n) == Outcome::Gone {
                        break;
                    }
                }
            });
        }
        barrier.wait();
        std::thread::sleep(Duration::from_millis(20));
        let mut logout = manager.open(Some(&cookie));
        logout.destroy();
        ok(logout.commit(), "commit of the logout");
    });
    assert_none(ok(store.load(&key), "load"), "the destroyed session");
}

/// A request that loaded a session before another destroyed it never brings it back when
/// it commits its changes: the session stays gone and its cookie is cleared.
pub fn destroy_is_never_undone_by_merges<S: Store>(store: &S, prefix: &str) {
    let manager = merge_manager(store, prefix);
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
