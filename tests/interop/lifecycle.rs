//! Session lifecycle controls shared with Flask-Session 0.8: the absolute lifetime's creation
//! time (`_ss_created`) and a session's own lifetime (`_ss_lifetime`) survive Flask's
//! read-modify-write, and flashed messages cross between Flask and Rust both ways.

use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

/// The absolute lifetime the Rust app of these scenarios configures.
const ABSOLUTE: Duration = Duration::from_secs(3600);
/// A session's own lifetime, short enough to wait for.
const BRIEF: Duration = Duration::from_secs(2);

fn unix_now() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.expect("a clock after 1970").as_secs()
}

/// The value Python sees under `key`, by its repr.
fn item<'a>(answer: &'a PyAnswer, key: &str) -> Option<&'a str> {
    let found = answer.items.iter().find(|(k, _)| k == key);
    found.map(|(_, repr)| repr.as_str())
}

/// The same apps, with an absolute lifetime on the Rust side.
fn with_absolute_lifetime<S: Store, C: Format>(ctx: &Ctx<S, C>) -> Ctx<&S, C> {
    let config = rust_config(&ctx.prefix, ctx.signer).absolute_lifetime(ABSOLUTE);
    let config = config.build().expect("valid config");
    let manager = SessionManager::with_codec(ctx.manager.store(), *ctx.manager.codec(), config);
    Ctx {
        manager: manager.expect("manager"),
        app: ctx.app.clone(),
        prefix: ctx.prefix.clone(),
        signer: ctx.signer,
    }
}

/// Python sees the creation time Rust stores as an int under `_ss_created` and keeps it when
/// it writes; a session Flask made gets one from the first Rust request that reads it; and once
/// the creation time is older than the absolute lifetime, Rust deletes the session, so Python
/// starts a fresh one too.
pub(crate) fn absolute_lifetime_is_shared_with_python<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let rust = with_absolute_lifetime(ctx);
    let (_, cookie) = rust.rs(None, |s| s.insert("user", "ada"));
    let cookie = cookie.value();
    let py = ctx.py(Some(&cookie), json!([["set", "visits", 2]]));
    let created: u64 = item(&py, "_ss_created")
        .expect("_ss_created")
        .parse()
        .unwrap();
    assert!(
        created <= unix_now() && created + 60 > unix_now(),
        "{created}"
    );
    let (seen, _) = rust.rs(Some(&cookie), |s| {
        Ok((s.get::<i64>("visits")?, s.get::<u64>("_ss_created")?))
    });
    assert_eq!(seen, (Some(2), Some(created)), "kept by Flask's write");

    let made_by_flask = ctx.py(None, json!([["set", "user", "bob"]])).cookie.value();
    let ((), stamped) = rust.rs(Some(&made_by_flask), |s| s.get::<String>("user").map(drop));
    assert_eq!(
        stamped.value(),
        made_by_flask,
        "written back with a creation time"
    );
    let py = ctx.py(Some(&made_by_flask), json!([]));
    assert!(item(&py, "_ss_created").is_some(), "{:?}", py.items);

    let old = unix_now() - ABSOLUTE.as_secs() - 60;
    let py = ctx.py(Some(&cookie), json!([["set", "_ss_created", old]]));
    assert_eq!(py.cookie.value(), cookie);
    let (user, _) = rust.rs(Some(&cookie), |s| s.get::<String>("user"));
    assert_eq!(user, None, "past the absolute lifetime");
    assert_eq!(ctx.stored(&cookie), None, "deleted");
    let after = ctx.py(Some(&cookie), json!([]));
    assert_ne!(after.sid, id_of(&cookie), "Python starts a new session");
    assert_eq!(after.items, pairs(&[PERMANENT]));
}

/// A browser-session cookie with a short server-side lifetime ("remember me" off): Python
/// sees `_ss_lifetime` and keeps it when it writes (refreshing the store expiry with its own
/// `PERMANENT_SESSION_LIFETIME`); the next Rust request sets the short expiry again, so the
/// session is gone soon after it.
pub(crate) fn a_session_lifetime_survives_python_writes<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let (_, cookie) = ctx.rs(None, |s| {
        s.insert("user", "ada")?;
        s.set_permanent(false)?;
        s.set_lifetime(BRIEF)
    });
    assert!(!cookie.attribute_names().contains(&"Expires".to_owned()));
    let cookie = cookie.value();
    let py = ctx.py(Some(&cookie), json!([["set", "visits", 1]]));
    let expected = [("user", "'ada'"), ("_ss_lifetime", "2"), ("visits", "1")];
    assert_eq!(
        py.items,
        pairs(&expected),
        "no _permanent: a browser session"
    );
    assert!(!py.cookie.attribute_names().contains(&"Expires".to_owned()));
    let (lifetime, _) = ctx.rs(Some(&cookie), |s| s.lifetime());
    assert_eq!(lifetime, BRIEF, "kept by Flask's write");
    thread::sleep(BRIEF + Duration::from_millis(1500));
    assert_eq!(ctx.stored(&cookie), None, "the Rust request's short expiry");
}

/// A message flashed by a Rust route is shown by Flask's `get_flashed_messages` and the other
/// way round, once, in the order they were flashed whichever app flashed them.
pub(crate) fn flashes_cross_between_flask_and_rust<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let (_, cookie) = ctx.rs(None, |s| s.flash("info", "from rust ✓"));
    let cookie = cookie.value();
    let shown = ctx.py(Some(&cookie), json!([["take_flashes"]]));
    assert_eq!(shown.flashes, json!([["info", "from rust ✓"]]));
    assert_eq!(shown.items, pairs(&[PERMANENT]), "taken");

    let login = ctx.py(
        None,
        json!([["set", "user", "ada"], ["flash", "warning", "from flask"]]),
    );
    let cookie = login.cookie.value();
    let (flashes, _) = ctx.rs(Some(&cookie), |s| s.take_flashes());
    assert_eq!(flashes, [("warning".to_owned(), "from flask".to_owned())]);
    let none = ctx.py(Some(&cookie), json!([["take_flashes"]]));
    assert_eq!(none.flashes, json!([]), "taken by Rust");

    ctx.py(Some(&cookie), json!([["flash", "message", "one"]]));
    ctx.rs(Some(&cookie), |s| s.flash("error", "two"));
    let both = ctx.py(Some(&cookie), json!([["take_flashes"]]));
    assert_eq!(both.flashes, json!([["message", "one"], ["error", "two"]]));
}
