//! The request flow of design.md, step by step, against a real MemoryStore.

mod common;

use std::time::{Duration, SystemTime};

use common::{CountingStore, cookie_pair, cookie_value, httpdate_parse};
use server_session::codec::{Codec, MsgPack, Value};
use server_session::store::{MemoryStore, NullStore, Store};
use server_session::{Config, Error, SessionManager};

fn manager(config: Config) -> SessionManager<CountingStore> {
    SessionManager::new(CountingStore::default(), config).unwrap()
}

fn default_manager() -> SessionManager<CountingStore> {
    manager(Config::default())
}

/// Runs one request that stores `visits = 1` and returns the cookie the browser keeps.
fn first_visit<S: Store>(m: &SessionManager<S>) -> String {
    let mut s = m.open(None);
    s.insert("visits", &1u32).unwrap();
    cookie_pair(
        s.commit()
            .unwrap()
            .set_cookie()
            .expect("a new session sets a cookie"),
    )
}

fn stored(m: &SessionManager<CountingStore>, cookie: &str) -> Option<Vec<u8>> {
    let id = cookie_value(cookie);
    let id = id.split('.').next().unwrap().to_owned();
    m.store().inner.load(&format!("session:{id}")).unwrap()
}

#[test]
fn new_session_is_created_with_a_permanent_cookie() {
    let m = default_manager();
    let mut s = m.open(None);
    s.insert("visits", &1u32).unwrap();
    let commit = s.commit().unwrap();
    let set_cookie = commit.set_cookie().unwrap();
    let id = cookie_value(set_cookie);
    assert_eq!(id.len(), 43);
    assert!(set_cookie.contains("; Expires="), "{set_cookie}");
    assert!(
        set_cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(commit.vary_cookie());
    let bytes = m
        .store()
        .inner
        .load(&format!("session:{id}"))
        .unwrap()
        .unwrap();
    assert_eq!(bytes, hex("82aa5f7065726d616e656e74c3a676697369747301"));
    assert_eq!(m.store().counts(), [0, 1, 0, 0, 0, 0]);
}

#[test]
fn cookie_expires_about_one_lifetime_ahead() {
    let m = default_manager();
    let mut s = m.open(None);
    s.insert("a", &1).unwrap();
    let set_cookie = s.commit().unwrap().set_cookie().unwrap().to_owned();
    let expires = set_cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Expires="))
        .unwrap();
    let expires = httpdate_parse(expires);
    let expected = SystemTime::now() + Duration::from_secs(31 * 86_400);
    let diff = expected
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(5), "{set_cookie}");
}

#[test]
fn returning_visitor_reads_the_data_and_unmodified_session_is_only_touched() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let before = stored(&m, &cookie);
    m.store().reset();

    let mut s = m.open(Some(&cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(1));
    let commit = s.commit().unwrap();
    assert_eq!(
        cookie_pair(commit.set_cookie().unwrap()),
        cookie,
        "same id, fresh expiry"
    );
    assert!(commit.vary_cookie());
    assert_eq!(
        m.store().counts(),
        [1, 0, 0, 1, 0, 0],
        "one load, one touch, no rewrite"
    );
    assert_eq!(stored(&m, &cookie), before);
}

#[test]
fn modified_session_is_saved_under_the_same_id() {
    let m = default_manager();
    let cookie = first_visit(&m);
    m.store().reset();
    let mut s = m.open(Some(&cookie));
    let visits: u32 = s.get("visits").unwrap().unwrap();
    s.insert("visits", &(visits + 1)).unwrap();
    let commit = s.commit().unwrap();
    assert_eq!(cookie_pair(commit.set_cookie().unwrap()), cookie);
    assert_eq!(m.store().counts(), [1, 0, 1, 0, 0, 0]);
    let mut s = m.open(Some(&cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(2));
}

#[test]
fn untouched_session_is_refreshed_with_one_get_and_touch() {
    let m = default_manager();
    let cookie = first_visit(&m);
    m.store().reset();
    let commit = m.open(Some(&cookie)).commit().unwrap();
    assert_eq!(cookie_pair(commit.set_cookie().unwrap()), cookie);
    assert!(
        !commit.vary_cookie(),
        "the handler never looked at the session"
    );
    assert_eq!(m.store().counts(), [0, 0, 0, 0, 0, 1]);
}

#[test]
fn without_refresh_an_untouched_session_costs_no_store_call() {
    let m = manager(
        Config::builder()
            .refresh_each_request(false)
            .build()
            .unwrap(),
    );
    let cookie = first_visit(&m);
    m.store().reset();
    let commit = m.open(Some(&cookie)).commit().unwrap();
    assert_eq!(commit.set_cookie(), None);
    assert_eq!(m.store().total(), 0);

    let mut s = m.open(Some(&cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(1));
    assert_eq!(
        s.commit().unwrap().set_cookie(),
        None,
        "unmodified, no refresh"
    );
    assert_eq!(m.store().counts(), [1, 0, 0, 0, 0, 0]);
}

#[test]
fn non_permanent_sessions_get_browser_session_cookies() {
    let m = manager(Config::builder().permanent(false).build().unwrap());
    let cookie = {
        let mut s = m.open(None);
        s.insert("visits", &1u32).unwrap();
        let set_cookie = s.commit().unwrap().set_cookie().unwrap().to_owned();
        assert!(!set_cookie.contains("Expires"), "{set_cookie}");
        cookie_pair(&set_cookie)
    };
    assert_eq!(stored(&m, &cookie).unwrap(), hex("81a676697369747301"));
    m.store().reset();
    let commit = m.open(Some(&cookie)).commit().unwrap();
    assert_eq!(
        commit.set_cookie(),
        None,
        "nothing to refresh in a browser-session cookie"
    );
    assert_eq!(
        m.store().counts(),
        [0, 0, 0, 0, 0, 1],
        "the store expiry is still extended"
    );
}

#[test]
fn set_permanent_switches_the_cookie_kind() {
    let m = manager(Config::builder().permanent(false).build().unwrap());
    let mut s = m.open(None);
    s.insert("a", &1).unwrap();
    s.set_permanent(true).unwrap();
    assert!(s.is_permanent().unwrap());
    let set_cookie = s.commit().unwrap().set_cookie().unwrap().to_owned();
    assert!(set_cookie.contains("Expires="));
    let mut s = m.open(Some(&cookie_pair(&set_cookie)));
    s.set_permanent(false).unwrap();
    let set_cookie = s.commit().unwrap().set_cookie().unwrap().to_owned();
    assert!(!set_cookie.contains("Expires="));
}

#[test]
fn empty_and_permanent_only_sessions_are_never_stored() {
    let m = default_manager();
    let mut s = m.open(None);
    assert_eq!(s.get::<u32>("missing").unwrap(), None);
    assert!(s.is_empty().unwrap());
    s.set_permanent(true).unwrap();
    let commit = s.commit().unwrap();
    assert_eq!(commit.set_cookie(), None);
    assert!(commit.vary_cookie());
    let mut s = m.open(None);
    s.insert("a", &1).unwrap();
    s.remove("a").unwrap();
    assert_eq!(s.commit().unwrap().set_cookie(), None);
    assert_eq!(m.store().counts(), [0, 0, 0, 0, 0, 0]);
    assert!(m.store().inner.is_empty());
}

#[test]
fn clearing_a_stored_session_deletes_it_and_the_cookie() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let mut s = m.open(Some(&cookie));
    s.clear().unwrap();
    let set_cookie = s.commit().unwrap().set_cookie().unwrap().to_owned();
    assert_eq!(
        set_cookie,
        "session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    );
    assert_eq!(stored(&m, &cookie), None);
}

#[test]
fn destroy_deletes_without_reading() {
    let m = default_manager();
    let cookie = first_visit(&m);
    m.store().reset();
    let mut s = m.open(Some(&cookie));
    s.destroy();
    let commit = s.commit().unwrap();
    assert!(commit.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(m.store().counts(), [0, 0, 0, 0, 1, 0]);
    assert_eq!(stored(&m, &cookie), None);
    let mut s = m.open(None);
    s.destroy();
    assert_eq!(
        s.commit().unwrap().set_cookie(),
        None,
        "nothing to delete without a cookie"
    );
}

#[test]
fn an_unknown_id_is_never_adopted() {
    let m = default_manager();
    let chosen = "A".repeat(43);
    let mut s = m.open(Some(&format!("session={chosen}")));
    assert_eq!(s.id(), Some(chosen.as_str()), "unverified until loaded");
    s.insert("a", &1).unwrap();
    assert_eq!(s.id(), None);
    let issued = cookie_value(s.commit().unwrap().set_cookie().unwrap());
    assert_ne!(issued, chosen);
    assert_eq!(
        m.store().inner.load(&format!("session:{chosen}")).unwrap(),
        None
    );
    assert!(
        m.store()
            .inner
            .load(&format!("session:{issued}"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn hostile_cookies_get_a_fresh_session_without_any_store_call() {
    let signed = manager(
        Config::builder()
            .use_signer(true)
            .secret_key("k")
            .build()
            .unwrap(),
    );
    let unsigned = default_manager();
    let long = "A".repeat(12 * 1024);
    let forged = format!("{}.UOOlglGtLOKQM3OFkrI8bWIohNg", "A".repeat(43));
    let hostile = [
        format!("session={long}"),
        "session=../../etc/passwd".into(),
        "session=%00%ff".into(),
        "session=\"quoted\"".into(),
        "session=a.b.c.d".into(),
        "session=".into(),
        "session=; session=;".into(),
        "session=\u{0}\u{7f}é".into(),
        format!("session={forged}"),
        "garbage without equals".into(),
    ];
    for header in &hostile {
        for m in [&signed, &unsigned] {
            let mut s = m.open(Some(header));
            assert_eq!(s.id(), None, "{header:?}");
            assert_eq!(s.get::<u32>("visits").unwrap(), None);
            assert_eq!(m.store().total(), 0, "no store call for {header:?}");
        }
    }
}

#[test]
fn signed_cookies_verify_and_rotate() {
    let old = manager(
        Config::builder()
            .use_signer(true)
            .secret_key("old")
            .build()
            .unwrap(),
    );
    let cookie = first_visit(&old);
    assert_eq!(cookie_value(&cookie).matches('.').count(), 1);
    let id = cookie_value(&cookie).split('.').next().unwrap().to_owned();
    assert!(
        old.store()
            .inner
            .load(&format!("session:{id}"))
            .unwrap()
            .is_some()
    );
    let mut s = old.open(Some(&cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(1));

    // The same data under a rotated key: the old signature still verifies, new cookies use the new key.
    let rotated = SessionManager::new(
        MemoryStore::new(),
        Config::builder()
            .use_signer(true)
            .secret_key("new")
            .fallback_secret_keys(["old"])
            .build()
            .unwrap(),
    )
    .unwrap();
    let bytes = old
        .store()
        .inner
        .load(&format!("session:{id}"))
        .unwrap()
        .unwrap();
    let far = SystemTime::now() + Duration::from_secs(60);
    rotated
        .store()
        .create(&format!("session:{id}"), &bytes, far)
        .unwrap();
    let mut s = rotated.open(Some(&cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(1));
    let reissued = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    assert_ne!(reissued, cookie, "re-signed with the new key");
    assert_eq!(reissued.split('.').next(), cookie.split('.').next());

    let unsigned_value = format!("session={id}");
    assert_eq!(
        old.open(Some(&unsigned_value)).id(),
        None,
        "a bare id is refused when signing"
    );
}

#[test]
fn a_current_signature_is_sent_back_and_a_new_id_is_signed_afresh() {
    let m = manager(
        Config::builder()
            .use_signer(true)
            .secret_key("key")
            .build()
            .unwrap(),
    );
    let cookie = first_visit(&m);
    let mut s = m.open(Some(&cookie));
    s.insert("visits", &2).unwrap();
    let resent = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    assert_eq!(resent, cookie);

    let mut s = m.open(Some(&cookie));
    s.regenerate().unwrap();
    let regenerated = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let value = cookie_value(&regenerated);
    let (new_id, _) = value.split_once('.').unwrap();
    assert_ne!(regenerated, cookie);
    assert_eq!(
        value,
        server_session::Signer::new("key").sign(new_id),
        "the new id carries its own signature"
    );
    let mut s = m.open(Some(&regenerated));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(2));
}

#[test]
fn the_first_valid_cookie_of_several_wins() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let header = format!(
        "session=junk; other=1; {cookie}; session={}",
        "B".repeat(43)
    );
    let mut s = m.open(Some(&header));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(1));
}

#[test]
fn regenerate_moves_data_to_a_new_id_and_deletes_the_old() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let mut s = m.open(Some(&cookie));
    s.regenerate().unwrap();
    s.insert("user", "ada").unwrap();
    let new_cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    assert_ne!(new_cookie, cookie);
    assert_eq!(stored(&m, &cookie), None, "old id no longer works");
    let mut s = m.open(Some(&new_cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(1));
    assert_eq!(s.get::<String>("user").unwrap().as_deref(), Some("ada"));
    let mut s = m.open(Some(&cookie));
    assert_eq!(s.get::<u32>("visits").unwrap(), None);
}

#[test]
fn corrupt_payload_starts_fresh_and_is_deleted() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let id = cookie_value(&cookie);
    let key = format!("session:{id}");
    let far = SystemTime::now() + Duration::from_secs(60);
    assert!(
        m.store()
            .inner
            .save(&key, b"\x80\x03pickle-ish garbage", far)
            .unwrap()
    );
    for _ in 0..2 {
        let mut s = m.open(Some(&cookie));
        assert_eq!(s.get::<u32>("visits").unwrap(), None);
        s.insert("visits", &5u32).unwrap();
        let new_id = cookie_value(s.commit().unwrap().set_cookie().unwrap());
        assert_ne!(new_id, id);
    }
    assert_eq!(
        m.store().inner.load(&key).unwrap(),
        None,
        "the corrupt entry is gone"
    );
}

#[test]
fn corrupt_payload_of_an_untouched_session_is_discarded_too() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let key = format!("session:{}", cookie_value(&cookie));
    let far = SystemTime::now() + Duration::from_secs(60);
    m.store().inner.save(&key, b"\xc1", far).unwrap();
    assert_eq!(m.open(Some(&cookie)).commit().unwrap().set_cookie(), None);
    assert_eq!(m.store().inner.load(&key).unwrap(), None);
}

#[test]
fn a_session_ended_elsewhere_is_not_resurrected_by_a_late_save() {
    let m = default_manager();
    let cookie = first_visit(&m);
    let mut late = m.open(Some(&cookie));
    assert_eq!(late.get::<u32>("visits").unwrap(), Some(1));
    let mut logout = m.open(Some(&cookie));
    logout.destroy();
    logout.commit().unwrap();
    late.insert("visits", &2u32).unwrap();
    let set_cookie = late.commit().unwrap().set_cookie().unwrap().to_owned();
    assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    assert_eq!(stored(&m, &cookie), None);
    assert!(m.store().inner.is_empty());
}

#[test]
fn null_store_reads_empty_and_refuses_to_store() {
    let m = SessionManager::new(NullStore, Config::default()).unwrap();
    let mut s = m.open(Some(&format!("session={}", "A".repeat(43))));
    assert_eq!(s.get::<u32>("a").unwrap(), None);
    assert!(s.commit().unwrap().set_cookie().is_none());
    let mut s = m.open(None);
    s.insert("a", &1).unwrap();
    assert!(matches!(s.commit(), Err(Error::SessionsDisabled)));
}

#[test]
fn typed_reads_of_the_wrong_type_are_errors() {
    let m = default_manager();
    let mut s = m.open(None);
    s.insert("name", "ada").unwrap();
    match s.get::<u32>("name") {
        Err(Error::ValueType { key, .. }) => assert_eq!(key, "name"),
        other => panic!("expected ValueType, got {other:?}"),
    }
}

#[test]
fn structs_and_collections_round_trip_as_maps() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct User {
        name: String,
        roles: Vec<String>,
        age: Option<u8>,
    }
    let user = User {
        name: "ada".into(),
        roles: vec!["admin".into()],
        age: None,
    };
    let m = default_manager();
    let mut s = m.open(None);
    s.insert("user", &user).unwrap();
    assert!(
        matches!(s.get_value("user").unwrap(), Some(Value::Map(_))),
        "a dict for Python"
    );
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    let mut s = m.open(Some(&cookie));
    assert_eq!(s.get::<User>("user").unwrap(), Some(user));
}

#[test]
fn flask_docs_example_encodes_exactly() {
    let m = default_manager();
    let mut s = m.open(None);
    s.insert("value", "42").unwrap();
    let cookie = cookie_pair(s.commit().unwrap().set_cookie().unwrap());
    assert_eq!(
        stored(&m, &cookie).unwrap(),
        hex("82aa5f7065726d616e656e74c3a576616c7565a23432")
    );
}

#[test]
fn python_values_survive_a_read_modify_write_of_another_key() {
    let payload = hex(concat!(
        "88aa5f7065726d616e656e74c3a5736d616c6c07a36e6567f9a462797465ccc8a4776f7264cd012ca362",
        "6967cf0000010000000000a66e6567626967d3ffffff0000000000a36d6178cf7fffffffffffffff"
    ));
    let m = default_manager();
    let cookie = first_visit(&m);
    let key = format!("session:{}", cookie_value(&cookie));
    let far = SystemTime::now() + Duration::from_secs(60);
    m.store().inner.save(&key, &payload, far).unwrap();
    let mut s = m.open(Some(&cookie));
    assert_eq!(s.get::<i64>("negbig").unwrap(), Some(-1_099_511_627_776));
    s.insert("rust", &true).unwrap();
    s.commit().unwrap();
    let after = m.store().inner.load(&key).unwrap().unwrap();
    let mut expected = MsgPack.decode(&payload).unwrap();
    expected.insert("rust".into(), Value::Boolean(true));
    assert_eq!(after, MsgPack.encode(&expected).unwrap());
    assert_eq!(
        after[1..payload.len()],
        payload[1..],
        "old entries byte for byte, in order"
    );
}

#[test]
fn configured_prefix_and_id_length_shape_the_store_key() {
    let m = manager(
        Config::builder()
            .key_prefix("app:")
            .id_length(16)
            .build()
            .unwrap(),
    );
    let cookie = first_visit(&m);
    let id = cookie_value(&cookie);
    assert_eq!(id.len(), 22);
    assert!(
        m.store()
            .inner
            .load(&format!("app:{id}"))
            .unwrap()
            .is_some()
    );
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `https_defaults()` sends a `__Host-` cookie, Secure, HttpOnly, SameSite=Lax, Path=/ and no
/// Domain, and the browser's copy of it opens the session again.
#[test]
fn https_defaults_send_a_host_only_secure_cookie() {
    let m = manager(Config::builder().https_defaults().build().unwrap());
    let mut first = m.open(None);
    first.insert("visits", &1u32).unwrap();
    let commit = first.commit().unwrap();
    let set_cookie = commit.set_cookie().expect("a new session sets a cookie");
    assert!(set_cookie.starts_with("__Host-session="), "{set_cookie}");
    for attribute in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    let mut session = m.open(Some(&cookie_pair(set_cookie)));
    assert_eq!(session.get::<u32>("visits").unwrap(), Some(1));
}
