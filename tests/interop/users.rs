//! Log out everywhere with Flask-Session 0.8 on the same store: Flask sees the user Rust ties a
//! session to under `_user_id` (Flask-Login's key) and keeps the index bookkeeping
//! (`_user_until`) when it writes; a Rust `destroy_user_sessions` then still ends every one of
//! the user's sessions, and Flask starts fresh ones for their cookies.

use server_session::store::UserIndex;

use super::*;

/// The repr Python sees under `key`.
fn item<'a>(answer: &'a PyAnswer, key: &str) -> Option<&'a str> {
    let found = answer.items.iter().find(|(k, _)| k == key);
    found.map(|(_, repr)| repr.as_str())
}

/// Logs `user` in on the Rust side (a fresh id, the user, `n = 1`); the cookie value.
fn log_in<S: UserIndex, C: Format>(ctx: &Ctx<S, C>, user: &str) -> String {
    let (_, cookie) = ctx.rs(None, |s| {
        s.regenerate()?;
        s.set_user(user)?;
        s.insert("n", &1)
    });
    cookie.value()
}

pub(crate) fn log_out_everywhere_with_python<S: UserIndex, C: Format>(ctx: &Ctx<S, C>) {
    let ada = [log_in(ctx, "ada"), log_in(ctx, "ada")];
    let bob = log_in(ctx, "bob");
    let py = ctx.py(Some(&ada[0]), json!([["set", "visits", 2]]));
    assert_eq!(item(&py, "_user_id"), Some("'ada'"), "{:?}", py.items);
    assert!(item(&py, "_user_until").is_some(), "{:?}", py.items);
    assert_eq!(py.cookie.value(), ada[0], "Flask wrote the same session");

    let destroyed = ctx
        .manager
        .destroy_user_sessions("ada")
        .expect("log out everywhere");
    assert_eq!(
        destroyed, 2,
        "both of ada's sessions, the one Flask wrote included"
    );
    for cookie in &ada {
        assert_eq!(ctx.stored(cookie), None, "deleted");
        let after = ctx.py(Some(cookie), json!([]));
        assert_ne!(after.sid, id_of(cookie), "Flask starts a fresh session");
        assert_eq!(item(&after, "_user_id"), None);
    }
    let py = ctx.py(Some(&bob), json!([]));
    assert_eq!(
        item(&py, "_user_id"),
        Some("'bob'"),
        "bob's session is intact"
    );
}
