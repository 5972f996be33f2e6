//! The session size limit, through a [`SessionManager`]: a commit over it writes nothing,
//! and a bigger session already stored (by another app) is still read.

use super::*;
use crate::codec::{Codec, MsgPack, SessionMap, Value};
use crate::{Config, Error, SessionManager};

/// The limit these checks configure.
const LIMIT: usize = 4096;

fn limited_manager<'s, S: Store>(store: &'s S, prefix: &str) -> SessionManager<&'s S> {
    let config = Config::builder()
        .key_prefix(prefix)
        .max_session_bytes(LIMIT)
        .build();
    ok(SessionManager::new(store, ok(config, "config")), "manager")
}

/// Asserts that `commit` failed with [`Error::TooLarge`] over [`LIMIT`].
fn assert_too_large<T: std::fmt::Debug>(commit: Result<T>, what: &str) {
    match commit {
        Err(Error::TooLarge { size, limit }) => {
            assert!(size > LIMIT, "{what}: size {size}");
            assert_eq!(limit, LIMIT, "{what}: the limit");
        }
        other => panic!("{what}: expected Error::TooLarge, got {other:?}"),
    }
}

/// A commit whose encoded session is over `max_session_bytes` fails with
/// [`Error::TooLarge`] and writes nothing: a stored session keeps its bytes, a new one is not
/// created.
pub fn oversized_commit_writes_nothing<S: Store>(store: &S, prefix: &str) {
    let manager = limited_manager(store, prefix);
    let cookie = stored_session(&manager);
    let key = stored_key(prefix, &cookie);
    let before = ok(store.load(&key), "load").expect("the stored session");
    let big = "x".repeat(LIMIT);
    let mut session = manager.open(Some(&cookie));
    ok(session.insert("blob", &big), "insert");
    assert_too_large(session.commit(), "a stored session");
    assert_bytes(
        ok(store.load(&key), "load"),
        &before,
        "after the refused commit",
    );
    let mut fresh = manager.open(None);
    ok(fresh.insert("blob", &big), "insert");
    assert_too_large(fresh.commit(), "a new session");
}

/// A stored session over the limit, written by another app, is still read.
pub fn oversized_stored_session_is_read<S: Store>(store: &S, prefix: &str) {
    let manager = limited_manager(store, prefix);
    let cookie = stored_session(&manager);
    let key = stored_key(prefix, &cookie);
    let big = "y".repeat(2 * LIMIT);
    let mut map = SessionMap::default();
    map.insert("blob".into(), Value::from(big.as_str()));
    let bytes = ok(MsgPack.encode(&map), "encode");
    assert!(ok(store.save(&key, &bytes, after(LONG)), "save"));
    let mut session = manager.open(Some(&cookie));
    let blob = ok(session.get::<String>("blob"), "get");
    assert_eq!(
        blob.as_deref(),
        Some(big.as_str()),
        "the big stored session"
    );
}
