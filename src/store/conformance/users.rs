//! Checks for stores that implement [`UserIndex`] ("log out everywhere").

use std::sync::Barrier;

use super::*;
use crate::SessionManager;
use crate::store::UserIndex;

/// The sorted keys `store` records for `user`.
fn keys_of<S: UserIndex>(store: &S, user: &str) -> Vec<String> {
    let mut keys = ok(store.user_keys(user), "user_keys");
    keys.sort();
    keys
}

/// `link_user` records a key once however often it is linked, `user_keys` returns a user's
/// keys and no one else's, and `unlink_user` forgets exactly the keys it is given.
pub fn user_index_records_and_forgets<S: UserIndex>(store: &S, prefix: &str) {
    let (ada, bob) = (
        format!("user-index:{prefix}ada"),
        format!("user-index:{prefix}bob"),
    );
    let [a, b, c] = ["a", "b", "c"].map(|k| format!("{prefix}{k}"));
    assert_eq!(keys_of(store, &ada), Vec::<String>::new(), "no records yet");
    for key in [&a, &b, &a] {
        ok(store.link_user(&ada, key, after(LONG)), "link_user");
    }
    ok(store.link_user(&bob, &c, after(LONG)), "link_user");
    assert_eq!(keys_of(store, &ada), [a.clone(), b.clone()], "ada's keys");
    assert_eq!(keys_of(store, &bob), std::slice::from_ref(&c), "bob's keys");
    let unknown = format!("{prefix}unknown");
    ok(
        store.unlink_user(&ada, &[a.clone(), unknown]),
        "unlink_user",
    );
    assert_eq!(
        keys_of(store, &ada),
        std::slice::from_ref(&b),
        "after unlinking a"
    );
    assert_eq!(keys_of(store, &bob), [c], "bob's keys are untouched");
    ok(store.unlink_user(&ada, &[b]), "unlink_user");
    assert_eq!(keys_of(store, &ada), Vec::<String>::new(), "all unlinked");
}

/// A record is never returned once its `until` has passed, and linking again moves `until`.
pub fn user_index_records_lapse<S: UserIndex>(store: &S, prefix: &str) {
    let user = format!("user-index:{prefix}ada");
    let [past, short, moved] = ["past", "short", "moved"].map(|k| format!("{prefix}{k}"));
    let start = Instant::now();
    ok(store.link_user(&user, &past, ago(PAST)), "link_user");
    ok(store.link_user(&user, &short, after(SHORT)), "link_user");
    ok(store.link_user(&user, &moved, after(SHORT)), "link_user");
    ok(store.link_user(&user, &moved, after(LONG)), "link_user");
    assert_eq!(
        keys_of(store, &user),
        [moved.clone(), short],
        "a record whose until has passed is never returned"
    );
    sleep_until(start, AFTER_SHORT);
    assert_eq!(
        keys_of(store, &user),
        [moved],
        "a record lapses at its until; the moved one lives on"
    );
}

/// Many threads linking and unlinking keys of one user at once never lose a record: the user
/// ends with exactly the keys that were linked and not unlinked.
pub fn user_index_keeps_concurrent_links<S: UserIndex>(store: &S, prefix: &str) {
    const THREADS: usize = 8;
    const KEYS: usize = 10;
    let user = format!("user-index:{prefix}ada");
    let key = |thread: usize, k: usize| format!("{prefix}{thread}-{k}");
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (user, barrier, key) = (&user, &barrier, &key);
            scope.spawn(move || {
                barrier.wait();
                for k in 0..KEYS {
                    ok(
                        store.link_user(user, &key(thread, k), after(LONG)),
                        "link_user",
                    );
                    if k % 2 == 1 {
                        ok(store.unlink_user(user, &[key(thread, k)]), "unlink_user");
                    }
                }
            });
        }
    });
    let mut kept: Vec<String> = (0..THREADS)
        .flat_map(|thread| (0..KEYS).step_by(2).map(move |k| key(thread, k)))
        .collect();
    kept.sort();
    assert_eq!(
        keys_of(store, &user),
        kept,
        "a concurrent link or unlink lost a record"
    );
}

/// Logs `user` in on a new session holding `n = 1`; its `Cookie` header pair.
fn log_in<S: UserIndex>(manager: &SessionManager<&S>, user: &str) -> String {
    let mut session = manager.open(None);
    ok(session.set_user(user), "set_user");
    ok(session.insert("n", &1u32), "insert");
    let commit = ok(session.commit(), "commit");
    let set_cookie = commit.set_cookie().expect("a new session sends a cookie");
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The user and `n` of the session `cookie` names, and whether it is still that session.
fn whose<S: UserIndex>(manager: &SessionManager<&S>, cookie: &str) -> (Option<String>, bool) {
    let mut session = manager.open(Some(cookie));
    let user = ok(session.user(), "user");
    let n = ok(session.get::<u32>("n"), "get");
    (user, n == Some(1) && session.id().is_some())
}

/// Three sessions of one user and one of another: `destroy_user_sessions` ends exactly the
/// user's three (their cookies give fresh sessions) and returns 3; a session tied to the user
/// once but to someone else since is not the user's.
pub fn destroy_user_sessions_ends_only_that_users<S: UserIndex>(store: &S, prefix: &str) {
    let manager = merge_manager(store, prefix);
    let ada: Vec<String> = (0..3).map(|_| log_in(&manager, "ada")).collect();
    let bob = log_in(&manager, "bob");
    let switched = log_in(&manager, "ada");
    let mut session = manager.open(Some(&switched));
    ok(session.set_user("carol"), "set_user");
    ok(session.commit(), "commit");

    let destroyed = ok(
        manager.destroy_user_sessions("ada"),
        "destroy_user_sessions",
    );
    assert_eq!(
        destroyed, 3,
        "ada's three sessions, not the one now carol's"
    );
    for cookie in &ada {
        assert_eq!(
            whose(&manager, cookie),
            (None, false),
            "ada's session is gone"
        );
    }
    assert_eq!(
        whose(&manager, &bob),
        (Some("bob".into()), true),
        "bob's is intact"
    );
    let carol = whose(&manager, &switched);
    assert_eq!(carol, (Some("carol".into()), true), "carol's is intact");
    let again = ok(
        manager.destroy_user_sessions("ada"),
        "destroy_user_sessions",
    );
    assert_eq!(again, 0, "nothing is left to destroy");
    assert_eq!(ok(manager.destroy_user_sessions("carol"), "destroy"), 1);
}
