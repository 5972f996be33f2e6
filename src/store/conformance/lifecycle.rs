//! A session's lifetimes and flashed messages, through a [`SessionManager`]: the absolute
//! lifetime ends a session whatever its activity, a session's own lifetime sets the store
//! expiry on every kind of commit, and flashed messages reach the next request once.

use super::*;
use crate::codec::{Codec, MsgPack, SessionMap, Value};
use crate::{Config, ConfigBuilder, Session, SessionManager};

/// The idle lifetime these checks configure: longer than any check.
const IDLE: Duration = Duration::from_secs(3600);
/// A short lifetime (absolute or a session's own): the store forgets the session this long
/// after the last commit that set its expiry.
const BRIEF: Duration = Duration::from_secs(3);
/// How long after `BRIEF` ran out an entry is certainly gone, even on stores that count in
/// whole seconds (the creation time is whole seconds too).
const GRACE: Duration = Duration::from_millis(1500);

fn lifecycle_manager<'s, S: Store>(
    store: &'s S,
    prefix: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> SessionManager<&'s S> {
    let builder = Config::builder().key_prefix(prefix).lifetime(IDLE);
    let config = ok(configure(builder).build(), "config");
    ok(SessionManager::new(store, config), "manager")
}

/// Commits `session` and returns the `Cookie` header pair its `Set-Cookie` sets.
fn committed<S: Store>(session: Session<'_, &S>) -> String {
    let commit = ok(session.commit(), "commit");
    let set_cookie = commit.set_cookie().expect("the commit sets the cookie");
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The decoded session stored under `key`, if any.
fn stored_map<S: Store>(store: &S, key: &str) -> Option<SessionMap> {
    let bytes = ok(store.load(key), "load")?;
    Some(ok(MsgPack.decode(&bytes), "decode"))
}

fn unix_now() -> u64 {
    match SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => since.as_secs(),
        Err(e) => panic!("the clock is before 1970: {e}"),
    }
}

/// Rewrites the session under `key` with its creation time `age` ago.
fn backdate<S: Store>(store: &S, key: &str, age: Duration) {
    let mut data = stored_map(store, key).expect("the stored session");
    let created = unix_now() - age.as_secs();
    data.insert("_ss_created".into(), Value::from(created));
    let bytes = ok(MsgPack.encode(&data), "encode");
    assert!(
        ok(store.save(key, &bytes, after(LONG)), "save"),
        "backdated"
    );
}

/// A session older than the absolute lifetime is read as absent and deleted from the store,
/// however recently it was used; writing to it starts a new session under a new id.
pub fn absolute_lifetime_ends_an_old_session<S: Store>(store: &S, prefix: &str) {
    let manager = lifecycle_manager(store, prefix, |c| c.absolute_lifetime(IDLE));
    let mut session = manager.open(None);
    ok(session.insert("user", "ada"), "insert");
    let cookie = committed(session);
    let key = stored_key(prefix, &cookie);
    let created = stored_map(store, &key).expect("created")["_ss_created"].as_u64();
    let now = unix_now();
    assert!(
        created.is_some_and(|c| c + 2 >= now && c <= now),
        "the creation time is stored in Unix seconds: {created:?}, now {now}"
    );
    backdate(store, &key, IDLE + Duration::from_secs(60));
    let mut old = manager.open(Some(&cookie));
    assert_eq!(ok(old.get::<String>("user"), "get"), None, "read as absent");
    assert!(stored_map(store, &key).is_none(), "deleted from the store");
    ok(old.insert("user", "grace"), "insert");
    let fresh = committed(old);
    assert_ne!(fresh, cookie, "a new id");
}

/// The absolute lifetime caps the store expiry of every kind of commit: a session read,
/// written and refreshed without being read, each soon after its creation, is still gone
/// from the store once the absolute lifetime (not the hour-long idle one) is over.
pub fn absolute_lifetime_is_not_extended_by_activity<S: Store>(store: &S, prefix: &str) {
    let manager = lifecycle_manager(store, prefix, |c| c.absolute_lifetime(BRIEF));
    let start = Instant::now();
    let cookies = three_sessions(&manager);
    sleep_until(start, Duration::from_secs(1));
    use_each_way(&manager, &cookies);
    sleep_until(start, BRIEF + GRACE);
    for (cookie, how) in cookies.iter().zip(USES) {
        let key = stored_key(prefix, cookie);
        assert!(stored_map(store, &key).is_none(), "{how}: still stored");
    }
}

/// [`regenerate`](Session::regenerate) moves the creation time to the new id: logging in does
/// not extend the absolute lifetime.
pub fn regenerate_keeps_the_creation_time<S: Store>(store: &S, prefix: &str) {
    let manager = lifecycle_manager(store, prefix, |c| c.absolute_lifetime(IDLE));
    let mut session = manager.open(None);
    ok(session.insert("cart", &3), "insert");
    let cookie = committed(session);
    let old_key = stored_key(prefix, &cookie);
    backdate(store, &old_key, IDLE / 2);
    let created = stored_map(store, &old_key).expect("stored")["_ss_created"].clone();
    let mut login = manager.open(Some(&cookie));
    ok(login.regenerate(), "regenerate");
    ok(login.insert("user", "ada"), "insert");
    let new_key = stored_key(prefix, &committed(login));
    assert_ne!(new_key, old_key);
    assert!(stored_map(store, &old_key).is_none(), "the old id is gone");
    let moved = stored_map(store, &new_key).expect("the new id is stored");
    assert_eq!(moved["_ss_created"], created, "the same creation time");
}

/// A session's own lifetime (`set_lifetime`) is kept across requests and sets the store
/// expiry of every kind of commit: read, written, refreshed without being read. A session
/// without one keeps the configured hour.
pub fn session_lifetime_sets_the_store_expiry<S: Store>(store: &S, prefix: &str) {
    let manager = lifecycle_manager(store, prefix, |c| c);
    let start = Instant::now();
    let mut usual = manager.open(None);
    ok(usual.insert("n", &0), "insert");
    let usual = committed(usual);
    let brief: Vec<String> = (0..USES.len()).map(|_| brief_session(&manager)).collect();
    sleep_until(start, Duration::from_secs(1));
    use_each_way(&manager, &brief);
    let mut reread = manager.open(Some(&brief[0]));
    assert_eq!(ok(reread.lifetime(), "lifetime"), BRIEF, "kept");
    drop(reread);
    sleep_until(start, Duration::from_secs(1) + BRIEF + GRACE);
    for (cookie, how) in brief.iter().zip(USES) {
        let key = stored_key(prefix, cookie);
        assert!(stored_map(store, &key).is_none(), "{how}: still stored");
    }
    let key = stored_key(prefix, &usual);
    assert!(stored_map(store, &key).is_some(), "the configured lifetime");
}

/// Messages flashed in one request come back, in order, from `take_flashes` in the next, and
/// only once; a session holding nothing else is deleted once they are taken.
pub fn flashes_reach_the_next_request_once<S: Store>(store: &S, prefix: &str) {
    let manager = lifecycle_manager(store, prefix, |c| c);
    let mut session = manager.open(None);
    ok(session.flash("message", "welcome"), "flash");
    ok(session.flash("error", "ünïcode ✓"), "flash");
    let cookie = committed(session);
    let key = stored_key(prefix, &cookie);
    let mut next = manager.open(Some(&cookie));
    let expected = [("message", "welcome"), ("error", "ünïcode ✓")];
    let expected = expected.map(|(c, m)| (c.to_owned(), m.to_owned()));
    assert_eq!(ok(next.take_flashes(), "take_flashes"), expected);
    assert_eq!(ok(next.take_flashes(), "take_flashes"), []);
    let commit = ok(next.commit(), "commit");
    let deletion = commit.set_cookie().unwrap_or_default();
    assert!(
        deletion.contains("Max-Age=0"),
        "deletion cookie: {deletion}"
    );
    assert!(
        stored_map(store, &key).is_none(),
        "the empty session is deleted"
    );
}

/// What [`use_each_way`] does to each session, in order.
const USES: [&str; 3] = ["a read", "a write", "a request that never reads it"];

fn three_sessions<S: Store>(manager: &SessionManager<&S>) -> Vec<String> {
    let make = |_| {
        let mut session = manager.open(None);
        ok(session.insert("n", &0), "insert");
        committed(session)
    };
    (0..USES.len()).map(make).collect()
}

fn brief_session<S: Store>(manager: &SessionManager<&S>) -> String {
    let mut session = manager.open(None);
    ok(session.insert("n", &0), "insert");
    ok(session.set_lifetime(BRIEF), "set_lifetime");
    committed(session)
}

/// One request per session, as [`USES`] says; each finds its session.
fn use_each_way<S: Store>(manager: &SessionManager<&S>, cookies: &[String]) {
    let [read, write, untouched] = cookies else {
        panic!("three sessions");
    };
    let mut session = manager.open(Some(read));
    assert_eq!(ok(session.get::<i64>("n"), "get"), Some(0), "{}", USES[0]);
    ok(session.commit(), "commit");
    let mut session = manager.open(Some(write));
    ok(session.insert("n", &1), "insert");
    assert_eq!(&committed(session), write, "{}", USES[1]);
    let refreshed = ok(manager.open(Some(untouched)).commit(), "commit");
    let cookie = refreshed.set_cookie().unwrap_or_default();
    assert!(
        cookie.starts_with(untouched.as_str()),
        "{}: {cookie}",
        USES[2]
    );
}
