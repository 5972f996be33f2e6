//! Session lifecycle controls against a real MemoryStore: a session's own lifetime and the
//! absolute lifetime in the cookie's `Expires`, the bookkeeping keys, and flashed messages in
//! Flask-Session 0.8's exact layout. (Every store: the conformance suite; Flask: tests/interop.)

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{CountingStore, cookie_pair, expires_of};
use server_session::codec::{Codec, MsgPack, SessionMap, Value};
use server_session::store::Store;
use server_session::{Config, ConfigBuilder, Error, MAX_SESSION_LIFETIME, SessionManager};

const VECTORS: &str = include_str!("vectors/flask_session_0_8.json");
const HOUR: Duration = Duration::from_secs(3600);

fn manager(
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> SessionManager<CountingStore> {
    let config = configure(Config::builder()).build().unwrap();
    SessionManager::new(CountingStore::default(), config).unwrap()
}

fn key(cookie: &str) -> String {
    format!("session:{}", cookie.split_once('=').unwrap().1)
}

fn stored(m: &SessionManager<CountingStore>, cookie: &str) -> Option<SessionMap> {
    let bytes = m.store().inner.load(&key(cookie)).unwrap()?;
    Some(MsgPack.decode(&bytes).unwrap())
}

/// Asserts that a `Set-Cookie` value expires `ahead` from now, give or take five seconds.
fn assert_expires_in(set_cookie: Option<&str>, ahead: Duration) {
    let set_cookie = set_cookie.expect("a Set-Cookie");
    let expires = expires_of(set_cookie).expect("an Expires attribute");
    let expected = SystemTime::now() + ahead;
    let diff = expected
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(
        diff < Duration::from_secs(5),
        "{set_cookie}, not {ahead:?} ahead"
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_session_lifetime_sets_the_cookie_expires_on_every_kind_of_commit() {
    let m = manager(|c| c);
    let mut s = m.open(None);
    s.insert("user", "ada").unwrap();
    s.set_lifetime(HOUR).unwrap();
    let commit = s.commit().unwrap();
    assert_expires_in(commit.set_cookie(), HOUR);
    let cookie = cookie_pair(commit.set_cookie().unwrap());
    let mut read = m.open(Some(&cookie));
    assert_eq!(read.get::<String>("user").unwrap().as_deref(), Some("ada"));
    assert_expires_in(read.commit().unwrap().set_cookie(), HOUR);
    let untouched = m.open(Some(&cookie)).commit().unwrap();
    assert_expires_in(untouched.set_cookie(), HOUR);
    let mut write = m.open(Some(&cookie));
    write.insert("visits", &1).unwrap();
    assert_expires_in(write.commit().unwrap().set_cookie(), HOUR);
}

#[test]
fn the_absolute_lifetime_caps_the_expires_and_a_session_lifetime() {
    let m = manager(|c| c.absolute_lifetime(HOUR));
    let mut s = m.open(None);
    s.insert("user", "ada").unwrap();
    let commit = s.commit().unwrap();
    assert_expires_in(commit.set_cookie(), HOUR);
    let cookie = cookie_pair(commit.set_cookie().unwrap());
    let mut remember = m.open(Some(&cookie));
    remember.set_lifetime(30 * 24 * HOUR).unwrap();
    assert_expires_in(remember.commit().unwrap().set_cookie(), HOUR);
}

#[test]
fn a_session_past_its_absolute_lifetime_is_deleted_by_a_request_that_never_reads_it() {
    let m = manager(|c| c.absolute_lifetime(HOUR));
    let mut s = m.open(None);
    s.insert("user", "ada").unwrap();
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let mut data = stored(&m, &cookie).unwrap();
    data.insert("_ss_created".into(), Value::from(unix_now() - 2 * 3600));
    let bytes = MsgPack.encode(&data).unwrap();
    let far = SystemTime::now() + 24 * HOUR;
    assert!(m.store().inner.save(&key(&cookie), &bytes, far).unwrap());
    let untouched = m.open(Some(&cookie)).commit().unwrap();
    assert_eq!(untouched.set_cookie(), None);
    assert_eq!(stored(&m, &cookie), None, "deleted");
}

#[test]
fn bookkeeping_keys_are_hidden_and_a_session_of_only_them_is_never_stored() {
    let m = manager(|c| c.absolute_lifetime(HOUR));
    let mut s = m.open(None);
    s.set_permanent(true).unwrap();
    s.set_lifetime(HOUR).unwrap();
    assert!(s.get::<u64>("_ss_created").unwrap().is_some());
    assert_eq!(s.get::<u64>("_ss_lifetime").unwrap(), Some(3600));
    assert_eq!(s.keys().unwrap().count(), 0);
    assert!(s.is_empty().unwrap());
    assert_eq!(s.commit().unwrap().set_cookie(), None);
    assert!(m.store().inner.is_empty());
}

#[test]
fn set_lifetime_outside_one_second_to_400_days_is_a_typed_error() {
    let m = manager(|c| c);
    let mut s = m.open(None);
    let too_long = MAX_SESSION_LIFETIME + Duration::from_secs(1);
    for bad in [Duration::ZERO, Duration::from_millis(999), too_long] {
        let err = s.set_lifetime(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidLifetime(d) if d == bad),
            "{err:?}"
        );
        assert!(err.to_string().contains("400 days"), "{err}");
        assert_eq!(s.lifetime().unwrap(), m.config().lifetime(), "unchanged");
    }
    s.set_lifetime(MAX_SESSION_LIFETIME).unwrap();
    assert_eq!(s.lifetime().unwrap(), MAX_SESSION_LIFETIME);
}

#[test]
fn clear_keeps_the_creation_time_so_new_data_does_not_restart_the_clock() {
    let m = manager(|c| c.absolute_lifetime(HOUR));
    let mut s = m.open(None);
    s.insert("user", "ada").unwrap();
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let created = stored(&m, &cookie).unwrap()["_ss_created"].clone();
    let mut logout = m.open(Some(&cookie));
    logout.clear().unwrap();
    logout.insert("theme", "dark").unwrap();
    assert_eq!(
        cookie_pair(logout.commit().unwrap().set_cookie().unwrap()),
        cookie
    );
    let after = stored(&m, &cookie).unwrap();
    assert_eq!(after["_ss_created"], created);
    assert!(!after.contains_key("user"));
}

/// The Flask-Session 0.8 vector `{'_permanent': True, '_flashes': [['message', 'Saved'],
/// ['error', 'Oops']]}`.
fn flashes_vector() -> Vec<u8> {
    let vectors: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let payloads = vectors["payloads"].as_array().unwrap();
    let found = payloads.iter().find(|v| v["name"] == "flashes");
    let hex = found.expect("the flashes vector")["msgpack_hex"]
        .as_str()
        .unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn flashes_are_written_and_read_in_flask_sessions_exact_layout() {
    let m = manager(|c| c);
    let mut s = m.open(None);
    s.flash("message", "Saved").unwrap();
    s.flash("error", "Oops").unwrap();
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let bytes = m.store().inner.load(&key(&cookie)).unwrap().unwrap();
    assert_eq!(bytes, flashes_vector(), "the bytes Flask-Session stores");
    let mut next = m.open(Some(&cookie));
    let flashes = next.take_flashes().unwrap();
    let expected = [("message", "Saved"), ("error", "Oops")];
    assert_eq!(flashes, expected.map(|(c, t)| (c.to_owned(), t.to_owned())));
    let deletion = next.commit().unwrap();
    assert!(deletion.set_cookie().unwrap().contains("Max-Age=0"));
    assert!(m.store().inner.is_empty(), "nothing else: deleted");
}

#[test]
fn malformed_flashes_are_a_typed_error_and_stay_until_a_flash_replaces_them() {
    let m = manager(|c| c);
    let mut s = m.open(None);
    s.insert("_flashes", &[["message", "ok"], ["error", "x"]])
        .unwrap();
    s.insert_value("_flashes", Value::from("not a list"))
        .unwrap();
    let err = s.take_flashes().unwrap_err();
    assert!(
        matches!(err, Error::ValueType { ref key, .. } if key == "_flashes"),
        "{err:?}"
    );
    assert!(s.contains_key("_flashes").unwrap(), "kept");
    s.flash("message", "fresh").unwrap();
    let flashes = s.take_flashes().unwrap();
    assert_eq!(flashes, [("message".to_owned(), "fresh".to_owned())]);
}

#[test]
fn overlapping_requests_keep_every_flash() {
    let m = manager(|c| c);
    let mut s = m.open(None);
    s.insert("user", "ada").unwrap();
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let (mut a, mut b) = (m.open(Some(&cookie)), m.open(Some(&cookie)));
    a.flash("message", "from a").unwrap();
    b.flash("message", "from b").unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    let flashes = m.open(Some(&cookie)).take_flashes().unwrap();
    let texts: Vec<&str> = flashes.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["from a", "from b"]);
}

#[test]
fn a_merging_commit_uses_the_lifetime_another_request_set_meanwhile() {
    let m = manager(|c| c);
    let mut s = m.open(None);
    s.insert("user", "ada").unwrap();
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let (mut a, mut b) = (m.open(Some(&cookie)), m.open(Some(&cookie)));
    a.set_lifetime(HOUR).unwrap();
    b.insert("theme", "dark").unwrap();
    assert_expires_in(a.commit().unwrap().set_cookie(), HOUR);
    assert_expires_in(b.commit().unwrap().set_cookie(), HOUR);
    let mut after = m.open(Some(&cookie));
    assert_eq!(after.lifetime().unwrap(), HOUR);
    assert_eq!(
        after.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
}
