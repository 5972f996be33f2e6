//! Sessions tied to users ("log out everywhere") on a MemoryStore: the index record of an
//! active session is renewed, a session past its record is ended, and the bookkeeping stays
//! out of the app's way. The same checks against every store are in the conformance suite.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use server_session::codec::{Codec, MsgPack, SessionMap, Value};
use server_session::store::{MemoryStore, Store};
use server_session::{Config, Error, SessionManager};

fn manager(lifetime: Duration) -> SessionManager<MemoryStore> {
    let config = Config::builder().lifetime(lifetime).build().unwrap();
    SessionManager::new(MemoryStore::new(), config).unwrap()
}

/// Logs `user` in on a new session holding `n = 1`; its `Cookie` header pair.
fn log_in(m: &SessionManager<MemoryStore>, user: &str) -> String {
    let mut session = m.open(None);
    session.set_user(user).unwrap();
    session.insert("n", &1u32).unwrap();
    let commit = session.commit().unwrap();
    commit
        .set_cookie()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn key_of(cookie: &str) -> String {
    format!("session:{}", cookie.split_once('=').unwrap().1)
}

/// The stored session map of `cookie`.
fn stored(m: &SessionManager<MemoryStore>, cookie: &str) -> SessionMap {
    let bytes = m.store().load(&key_of(cookie)).unwrap().expect("stored");
    MsgPack.decode(&bytes).unwrap()
}

/// Requests every 200 ms for 3 s, with a 1 s lifetime, reading the session or not: without
/// renewal, its index record (one lifetime past the first expiry) would lapse after 2 s and
/// the log-out would miss the session.
fn active_session_stays_findable(read: bool) {
    let m = manager(Duration::from_secs(1));
    let cookie = log_in(&m, "ada");
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        let mut session = m.open(Some(&cookie));
        if read {
            assert_eq!(session.get::<u32>("n").unwrap(), Some(1));
        }
        session.commit().unwrap();
    }
    assert_eq!(m.destroy_user_sessions("ada").unwrap(), 1);
    assert_eq!(m.open(Some(&cookie)).get::<u32>("n").unwrap(), None);
}

#[test]
fn a_session_read_by_every_request_keeps_its_index_record() {
    active_session_stays_findable(true);
}

#[test]
fn a_session_no_request_reads_keeps_its_index_record() {
    active_session_stays_findable(false);
}

/// The record is renewed about once a lifetime, not on every request: quick requests leave
/// `_user_until` (and so the stored bytes) alone.
#[test]
fn the_record_is_not_rewritten_by_every_request() {
    let m = manager(Duration::from_secs(3600));
    let cookie = log_in(&m, "ada");
    let until = stored(&m, &cookie).get("_user_until").cloned();
    let expected = SystemTime::now() + Duration::from_secs(7200);
    let secs = until.as_ref().and_then(Value::as_u64).expect("a number");
    let expected = expected.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(secs.abs_diff(expected) <= 2, "{secs} vs {expected}");
    for _ in 0..3 {
        let mut session = m.open(Some(&cookie));
        session.get::<u32>("n").unwrap();
        session.commit().unwrap();
    }
    assert_eq!(stored(&m, &cookie).get("_user_until").cloned(), until);
}

/// A session whose record may have lapsed (kept alive by an app that does not renew it) is
/// treated as absent and deleted: it cannot escape a log-out.
#[test]
fn a_session_past_its_record_is_ended() {
    let m = manager(Duration::from_secs(3600));
    let past = SystemTime::now() - Duration::from_secs(5);
    let mut data = SessionMap::default();
    data.insert("_user_id".into(), Value::from("ada"));
    let secs = past.duration_since(UNIX_EPOCH).unwrap().as_secs();
    data.insert("_user_until".into(), Value::from(secs));
    data.insert("n".into(), Value::from(1));
    let key = "session:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let expires = SystemTime::now() + Duration::from_secs(60);
    assert!(
        m.store()
            .create(key, &MsgPack.encode(&data).unwrap(), expires)
            .unwrap()
    );
    let cookie = format!("session={}", &key["session:".len()..]);
    let mut session = m.open(Some(&cookie));
    assert_eq!(session.get::<u32>("n").unwrap(), None, "read as absent");
    assert_eq!(m.store().load(key).unwrap(), None, "and deleted");
}

/// `_user_until` is bookkeeping: hidden from `keys()` and `len()`; `_user_id` is the app's.
#[test]
fn the_record_time_is_hidden_and_the_user_is_not() {
    let m = manager(Duration::from_secs(3600));
    let cookie = log_in(&m, "ada");
    let mut session = m.open(Some(&cookie));
    let keys: Vec<String> = session.keys().unwrap().map(str::to_owned).collect();
    assert_eq!(keys, ["_user_id", "n"]);
    assert_eq!(session.len().unwrap(), 2);
    assert_eq!(session.user().unwrap().as_deref(), Some("ada"));
}

#[test]
fn user_ids_are_one_to_128_bytes() {
    let m = manager(Duration::from_secs(3600));
    let mut session = m.open(None);
    for bad in [String::new(), "x".repeat(129)] {
        let err = session.set_user(&bad).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{err}");
    }
    session.set_user(&"x".repeat(128)).unwrap();
}

/// Logging out with `clear()` or `destroy()` unties the session: the user's log-out
/// everywhere then finds nothing.
#[test]
fn a_cleared_session_is_no_longer_the_users() {
    let m = manager(Duration::from_secs(3600));
    let cookie = log_in(&m, "ada");
    let mut session = m.open(Some(&cookie));
    session.clear().unwrap();
    session.insert("theme", "dark").unwrap();
    session.commit().unwrap();
    assert_eq!(m.destroy_user_sessions("ada").unwrap(), 0);
    let mut session = m.open(Some(&cookie));
    assert_eq!(
        session.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
}
