//! Sharing sessions with Flask-Session 0.8: the real Flask-Session from PyPI and a
//! `SessionManager`, configured alike, on the same server, for every shared backend (Redis,
//! Redis Cluster through redis-py's `RedisCluster`, Memcached, SQLite and PostgreSQL through
//! SQLAlchemy, MongoDB) with the signer on and off and both serialization formats, and on the
//! same directory for the `filesystem` backend (a `FileStore` in cachelib's layout and the
//! `Pickle` codec: Flask-Session pickles the session dict there, whatever its format). Each
//! test asserts both directions: sessions and cookies made by
//! one app are used by the other, values keep their types, logout and `regenerate` in one app
//! end the old id for the other, legacy pickled sessions follow the documented policy, and a
//! Python write to a session a Rust request has open survives that request's merging commit.
//!
//! The Python side is `tests/interop/flask_app.py`, run by the interpreter named in
//! `SERVER_SESSION_INTEROP_PYTHON` (the venv `scripts/interop.sh` creates): one process for the
//! whole test binary, spoken to in JSON lines. Without that variable, or without a backend's
//! URL variable, a test prints SKIP, or fails under `SERVER_SESSION_REQUIRE_SERVICES=1`.
//! Each test has its own key prefix, table, collection, SQLite file or directory.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use serde_json::{Value as Json, json};
use server_session::codec::{Codec, Json as JsonCodec, MsgPack, Pickle, Value};
use server_session::store::Store;
use server_session::store::conformance::service_unavailable;
use server_session::{Config, Session, SessionManager};

#[path = "interop/backends.rs"]
mod backends;
#[cfg(feature = "redis-cluster")]
#[path = "cluster_support/mod.rs"]
mod cluster_support;
#[path = "interop/driver.rs"]
mod driver;
#[path = "interop/lifecycle.rs"]
mod lifecycle;
#[path = "interop/pickle_values.rs"]
mod pickle_values;
// Log out everywhere needs a user index: every backend but memcached.
#[path = "interop/users.rs"]
mod users;

use backends::*;
use driver::{call, pickle_lines_here, python, python_available};

/// The settings both apps share: `SESSION_COOKIE_NAME`, `SECRET_KEY`,
/// `PERMANENT_SESSION_LIFETIME` (short, so that what the tests leave in Redis and memcached goes
/// away soon). The key prefix is per test.
const COOKIE: &str = "interop_session";
const SECRET: &str = "interop secret ✓";
const LIFETIME_SECS: u64 = 600;

// ---------------------------------------------------------------------------------------------
// One test: a backend, a signer setting and a format
// ---------------------------------------------------------------------------------------------

/// The serialization format: our codec and what Flask-Session stores (its
/// `SESSION_SERIALIZATION_FORMAT`, or a pickle on the filesystem backend).
trait Format: Codec + Copy + Sized {
    const NAME: &'static str;
    /// Whether Flask-Session stores exactly the bytes this codec writes for the same session.
    /// Not for pickles: CPython writes protocol 5 with frames and a memo, the codec protocol 4
    /// without either, so [`Ctx::assert_stored_alike`] compares what they decode to.
    const SAME_BYTES: bool = true;
}

impl Format for MsgPack {
    const NAME: &'static str = "msgpack";
}

impl Format for JsonCodec {
    const NAME: &'static str = "json";
}

impl Format for Pickle {
    const NAME: &'static str = "pickle";
    const SAME_BYTES: bool = false;
}

/// Closes the Flask app (its connections) and then runs the backend's cleanup, also when the
/// test fails.
struct Teardown {
    app: Json,
    cleanup: Option<Box<dyn FnOnce()>>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        // After a failure, a second panic here would abort the whole test binary: leave the
        // app open then (its connections are idle between requests).
        if !thread::panicking()
            && let Some(mut python) = python()
        {
            python.call(json!({"op": "close", "app": self.app}));
        }
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

/// Runs every scenario for one backend, signer setting and format.
fn run<S: Store, C: Format>(
    test: &str,
    make: impl FnOnce(&Namespace) -> Option<Backend<S>>,
    codec: C,
    signer: bool,
) {
    with_apps(test, make, codec, signer, |ctx| {
        python_writes_rust_reads_and_writes_back(ctx);
        rust_writes_python_reads_and_writes_back(ctx);
        python_values_survive_a_rust_write_of_another_key(ctx);
        rust_values_come_back_as_python_types(ctx);
        logout_in_one_app_ends_the_session_in_the_other(ctx);
        regenerate_in_one_app_invalidates_the_old_id_in_the_other(ctx);
        if C::NAME == "pickle" {
            // The filesystem backend pickled the session dict in 0.6 as it does in 0.8: no
            // pickle there is legacy, nor rejected by the codec.
            pickle_values::pickle_only_values_cross_both_ways(ctx);
        } else {
            legacy_pickles_are_read_and_upgraded(ctx);
        }
        a_python_write_during_a_rust_request_survives_its_commit(ctx);
        lifecycle::absolute_lifetime_is_shared_with_python(ctx);
        lifecycle::a_session_lifetime_survives_python_writes(ctx);
        lifecycle::flashes_cross_between_flask_and_rust(ctx);
    });
}

/// Starts the Flask app and the Rust manager of one backend, signer setting and format, runs
/// `scenarios` on them, and tears both down (also when a scenario fails).
fn with_apps<S: Store, C: Format>(
    test: &str,
    make: impl FnOnce(&Namespace) -> Option<Backend<S>>,
    codec: C,
    signer: bool,
    scenarios: impl FnOnce(&Ctx<S, C>),
) {
    if !python_available() {
        return service_unavailable(test);
    }
    let ns = Namespace::new(test);
    let Some(backend) = make(&ns) else {
        return service_unavailable(test);
    };
    let mut app = backend.python;
    app["secret_key"] = json!(SECRET);
    app["signer"] = json!(signer);
    app["format"] = json!(C::NAME);
    app["prefix"] = json!(ns.prefix);
    app["cookie_name"] = json!(COOKIE);
    app["lifetime_secs"] = json!(LIFETIME_SECS);
    let _teardown = Teardown {
        app: app.clone(),
        cleanup: backend.cleanup,
    };
    let config = rust_config(&ns.prefix, signer)
        .build()
        .expect("valid config");
    let ctx = Ctx {
        manager: SessionManager::with_codec(backend.store, codec, config).unwrap(),
        app,
        prefix: ns.prefix,
        signer,
    };
    scenarios(&ctx);
}

/// The Rust app's settings matching the Flask app's (see [`run`]).
fn rust_config(prefix: &str, signer: bool) -> server_session::ConfigBuilder {
    Config::builder()
        .cookie_name(COOKIE)
        .key_prefix(prefix)
        .lifetime(Duration::from_secs(LIFETIME_SECS))
        .use_signer(signer)
        .secret_key(SECRET)
}

struct Ctx<S: Store, C: Format> {
    manager: SessionManager<S, C>,
    /// The Flask app's configuration, as the driver takes it.
    app: Json,
    prefix: String,
    signer: bool,
}

/// What a response did to the session cookie.
#[derive(Debug, Clone, PartialEq)]
enum Cookie {
    /// No `Set-Cookie` for the session cookie.
    Unchanged,
    /// Set to `value`; `header` is the whole `Set-Cookie` value.
    Set { value: String, header: String },
    /// Told the browser to drop it.
    Deleted,
}

impl Cookie {
    fn parse(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Cookie::Unchanged;
        };
        let pair = header.split(';').next().unwrap_or_default();
        match pair.strip_prefix(COOKIE).and_then(|v| v.strip_prefix('=')) {
            Some("") => Cookie::Deleted,
            Some(value) => Cookie::Set {
                value: value.to_owned(),
                header: header.to_owned(),
            },
            None => panic!("a Set-Cookie for another cookie: {header}"),
        }
    }

    /// The value of a cookie that was set.
    fn value(&self) -> String {
        match self {
            Cookie::Set { value, .. } => value.clone(),
            other => panic!("expected the session cookie to be set, got {other:?}"),
        }
    }

    /// The attribute names of a cookie that was set, sorted (`Expires`, `HttpOnly`, ...).
    fn attribute_names(&self) -> Vec<String> {
        let Cookie::Set { header, .. } = self else {
            panic!("expected the session cookie to be set, got {self:?}");
        };
        let mut names: Vec<String> = header
            .split(';')
            .skip(1)
            .map(|a| a.split('=').next().unwrap_or_default().trim().to_owned())
            .collect();
        names.sort();
        names
    }
}

/// The end of a Rust request: commits and tells what it did to the cookie.
fn commit<S: Store, C: Codec>(session: Session<'_, S, C>) -> Cookie {
    let commit = session.commit().expect("the Rust commit");
    Cookie::parse(commit.set_cookie())
}

/// The session id in a cookie value (signed `id.signature` or bare `id`).
fn id_of(cookie: &str) -> &str {
    cookie.split('.').next().unwrap_or_default()
}

/// One Python response.
#[derive(Debug)]
struct PyAnswer {
    /// `session.sid` at the end of the request.
    sid: String,
    /// The session as Python sees it at the end of the request: `(key, repr(value))`, in order.
    items: Vec<(String, String)>,
    /// What Flask-Session would store for the session as it was loaded (its own re-encoding).
    loaded_encoded: Vec<u8>,
    cookie: Cookie,
    /// After a `take_flashes` action: Flask's `get_flashed_messages(with_categories=True)`.
    flashes: Json,
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

impl<S: Store, C: Format> Ctx<S, C> {
    /// One request to the Flask app, with the cookie value (if any) and `actions` applied to
    /// `flask.session` (see `flask_app.py`).
    fn py(&self, cookie: Option<&str>, actions: Json) -> PyAnswer {
        let answer = call(json!({
            "op": "request",
            "app": self.app,
            "cookie": cookie.map(|v| format!("{COOKIE}={v}")),
            "actions": actions,
        }));
        let items = answer["items"].as_array().expect("items");
        let items = items
            .iter()
            .map(|pair| {
                let key = pair[0].as_str().expect("key");
                (key.to_owned(), pair[1].as_str().expect("repr").to_owned())
            })
            .collect();
        let headers = answer["set_cookie"].as_array().expect("set_cookie");
        assert!(
            headers.len() <= 1,
            "several Set-Cookie headers: {headers:?}"
        );
        PyAnswer {
            sid: answer["sid"].as_str().expect("sid").to_owned(),
            items,
            loaded_encoded: hex(answer["loaded_encoded"].as_str().expect("hex")),
            cookie: Cookie::parse(headers.first().and_then(Json::as_str)),
            flashes: answer["flashes"].clone(),
        }
    }

    /// One Rust request: opens the session named by the cookie value (if any), runs `handler`
    /// and commits.
    fn rs<T>(
        &self,
        cookie: Option<&str>,
        handler: impl FnOnce(&mut Session<'_, S, C>) -> server_session::Result<T>,
    ) -> (T, Cookie) {
        let mut session = self.open(cookie);
        let out = handler(&mut session).expect("the Rust handler");
        (out, commit(session))
    }

    /// The start of a Rust request: the session the cookie value (if any) names.
    fn open(&self, cookie: Option<&str>) -> Session<'_, S, C> {
        let header = cookie.map(|v| format!("{COOKIE}={v}"));
        self.manager.open(header.as_deref())
    }

    /// The bytes stored for the session a cookie value names.
    fn stored(&self, cookie: &str) -> Option<Vec<u8>> {
        let key = format!("{}{}", self.prefix, id_of(cookie));
        self.manager.store().load(&key).expect("store load")
    }

    /// Asserts that Flask-Session would store `python` for the session Rust stored as `rust`:
    /// the same bytes, or for a pickle the same session (see [`Format::SAME_BYTES`]).
    fn assert_stored_alike(&self, python: &[u8], rust: &[u8]) {
        if C::SAME_BYTES {
            let what = "Flask-Session would store exactly the bytes Rust stored";
            return assert_eq!(python, rust, "{what}");
        }
        let codec = self.manager.codec();
        let (python, rust) = (codec.decode(python), codec.decode(rust));
        let what = "Flask-Session would store the session Rust stored";
        assert_eq!(python.expect("Python's"), rust.expect("Rust's"), "{what}");
    }

    /// Asserts that `cookie` names the session `sid`, signed exactly when the signer is on.
    fn assert_cookie_names(&self, cookie: &str, sid: &str) {
        assert_eq!(id_of(cookie), sid, "{cookie}");
        assert_eq!(cookie.contains('.'), self.signer, "{cookie}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

const PERMANENT: (&str, &str) = ("_permanent", "True");

/// Python logs in; Rust reads that session, writes to it and sends the very cookie value Python
/// sent; Python sees Rust's write under the same id.
fn python_writes_rust_reads_and_writes_back<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let login = ctx.py(None, json!([["set", "user", "ada"], ["set", "visits", 3]]));
    let cookie = login.cookie.value();
    ctx.assert_cookie_names(&cookie, &login.sid);

    let (seen, rust_cookie) = ctx.rs(Some(&cookie), |s| {
        let seen = (s.get::<String>("user")?, s.get::<i64>("visits")?);
        s.insert("visits", &4)?;
        Ok(seen)
    });
    assert_eq!(seen, (Some("ada".to_owned()), Some(3)));
    assert_eq!(
        rust_cookie.value(),
        cookie,
        "the same (signed) cookie value"
    );
    assert_eq!(
        rust_cookie.attribute_names(),
        login.cookie.attribute_names(),
        "the same cookie attributes"
    );

    let next = ctx.py(Some(&cookie), json!([]));
    assert_eq!(next.sid, login.sid, "Python keeps the session");
    let expected = [PERMANENT, ("user", "'ada'"), ("visits", "4")];
    assert_eq!(next.items, pairs(&expected));
    assert_eq!(next.cookie.value(), cookie);
}

/// Rust logs in; Python reads that session from Rust's cookie, writes to it and sends the same
/// cookie value; Rust sees Python's write.
fn rust_writes_python_reads_and_writes_back<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let (_, rust_cookie) = ctx.rs(None, |s| {
        s.insert("user", "bob")?;
        s.insert("visits", &1)
    });
    let cookie = rust_cookie.value();

    let py = ctx.py(Some(&cookie), json!([["set", "visits", 2]]));
    ctx.assert_cookie_names(&cookie, &py.sid);
    let expected = [PERMANENT, ("user", "'bob'"), ("visits", "2")];
    assert_eq!(py.items, pairs(&expected));
    assert_eq!(py.cookie.value(), cookie, "the same (signed) cookie value");

    let (seen, _) = ctx.rs(Some(&cookie), |s| {
        Ok((s.get::<String>("user")?, s.get::<i64>("visits")?))
    });
    assert_eq!(seen, (Some("bob".to_owned()), Some(2)));
}

/// What Python reads back of VALUE_MATRIX from the store in this format, key by key: the
/// values' own reprs, except what Flask-Session's JSON format itself turns into strings.
fn python_view_of_matrix<C: Format>() -> Vec<(String, String)> {
    let answer = call(json!({"op": "matrix"}));
    let json_changes = [
        ("bytes", "'AAH+/w=='"),
        ("when", "'2030-01-02T03:04:05.123456Z'"),
    ];
    let reprs = answer["reprs"].as_array().expect("reprs");
    reprs
        .iter()
        .map(|pair| {
            let (key, repr) = (pair[0].as_str().expect("key"), &pair[1]);
            let changed = json_changes.iter().find(|(k, _)| *k == key);
            let repr = match changed {
                Some((_, json_repr)) if C::NAME == "json" => json_repr,
                _ => repr.as_str().expect("repr"),
            };
            (key.to_owned(), repr.to_owned())
        })
        .collect()
}

/// Every Python type in the session survives a Rust read-modify-write of another key: Python
/// reads the same values with the same types, and the stored bytes are exactly what
/// Flask-Session itself writes for them.
fn python_values_survive_a_rust_write_of_another_key<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let cookie = ctx.py(None, json!([["set_matrix"]])).cookie.value();
    let mut expected = vec![("_permanent".to_owned(), "True".to_owned())];
    expected.extend(python_view_of_matrix::<C>());
    let own = ctx.py(Some(&cookie), json!([]));
    assert_eq!(own.items, expected, "Flask-Session's own round trip");

    ctx.rs(Some(&cookie), |s| {
        check_python_values_in_rust(s, C::NAME);
        s.insert("rust", "was here")
    });
    let written = ctx.stored(&cookie).expect("Rust saved the session");

    let after = ctx.py(Some(&cookie), json!([]));
    expected.push(("rust".to_owned(), "'was here'".to_owned()));
    assert_eq!(after.items, expected, "same values, types and order");
    ctx.assert_stored_alike(&after.loaded_encoded, &written);
}

/// Rust's typed and raw view of VALUE_MATRIX (see `flask_app.py`).
fn check_python_values_in_rust<S: Store, C: Codec>(s: &mut Session<'_, S, C>, format: &str) {
    let text = s.get::<String>("text").unwrap();
    assert_eq!(text.as_deref(), Some("héllo wörld ✓ 日本"));
    assert_eq!(s.get::<i64>("big").unwrap(), Some(1 << 40));
    assert_eq!(s.get::<i64>("negbig").unwrap(), Some(-(1 << 40)));
    assert_eq!(s.get::<u64>("u64max").unwrap(), Some(u64::MAX));
    assert_eq!(s.get::<i64>("i64min").unwrap(), Some(i64::MIN));
    assert_eq!(s.get::<f64>("float").unwrap(), Some(std::f64::consts::PI));
    assert_eq!(s.get::<f64>("negfloat").unwrap(), Some(-0.25));
    assert_eq!(s.get::<bool>("yes").unwrap(), Some(true));
    assert_eq!(s.get::<bool>("no").unwrap(), Some(false));
    assert_eq!(s.get::<Option<i64>>("none").unwrap(), Some(None));
    let list = json!([1, "two", [3.5, null], {"k": false}]);
    assert_eq!(s.get::<Json>("list").unwrap(), Some(list));
    let dict = json!({"a": 1, "nested": {"b": [true, "x"]}, "é": "ü"});
    assert_eq!(s.get::<Json>("dict").unwrap(), Some(dict));
    let (bytes, when) = if format == "json" {
        (
            Value::from("AAH+/w=="),
            Value::from("2030-01-02T03:04:05.123456Z"),
        )
    } else {
        (
            Value::Binary(vec![0, 1, 0xfe, 0xff]),
            timestamp64(1_893_553_445, 123_456_000),
        )
    };
    assert_eq!(s.get_value("bytes").unwrap(), Some(&bytes));
    assert_eq!(s.get_value("when").unwrap(), Some(&when));
}

/// A MessagePack timestamp (extension type -1) in the 64-bit layout msgspec writes for times
/// from 1970 to 2514: 30 bits of nanoseconds, then 34 bits of seconds.
fn timestamp64(secs: u64, nanos: u32) -> Value {
    let packed = (u64::from(nanos) << 34) | secs;
    Value::Ext(-1, packed.to_be_bytes().to_vec())
}

#[derive(serde::Serialize)]
struct User {
    name: String,
    roles: Vec<String>,
    age: Option<u8>,
}

/// Values Rust writes come back in Python as the natural types, and msgspec re-encodes them to
/// exactly the bytes Rust stored.
fn rust_values_come_back_as_python_types<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let (_, cookie) = ctx.rs(None, |s| {
        s.insert("text", "grüße ✓ 🦀")?;
        s.insert("int", &-5_000_000_000_i64)?;
        s.insert("u64max", &u64::MAX)?;
        s.insert("float", &0.1_f64)?;
        s.insert("flag", &true)?;
        s.insert("unit", &())?;
        s.insert("nothing", &None::<u8>)?;
        s.insert("list", &vec![1, 2, 3])?;
        let user = User {
            name: "ada".into(),
            roles: vec!["admin".into(), "dev".into()],
            age: None,
        };
        s.insert("user", &user)?;
        s.insert("scores", &BTreeMap::from([("a", 1), ("b", 2)]))?;
        s.insert_value("bytes", Value::Binary(vec![0, 1, 0xfe, 0xff]))?;
        s.insert_value("when", timestamp64(1_900_000_000, 250_000_000))
    });
    let cookie = cookie.value();
    let written = ctx.stored(&cookie).expect("Rust created the session");

    let py = ctx.py(Some(&cookie), json!([]));
    let (bytes, when) = if C::NAME == "json" {
        ("'AAH+/w=='", "'2030-03-17T17:46:40.250000Z'")
    } else {
        (
            r"b'\x00\x01\xfe\xff'",
            "datetime.datetime(2030, 3, 17, 17, 46, 40, 250000, tzinfo=datetime.timezone.utc)",
        )
    };
    let expected = [
        PERMANENT,
        ("text", "'grüße ✓ 🦀'"),
        ("int", "-5000000000"),
        ("u64max", "18446744073709551615"),
        ("float", "0.1"),
        ("flag", "True"),
        ("unit", "None"),
        ("nothing", "None"),
        ("list", "[1, 2, 3]"),
        (
            "user",
            "{'name': 'ada', 'roles': ['admin', 'dev'], 'age': None}",
        ),
        ("scores", "{'a': 1, 'b': 2}"),
        ("bytes", bytes),
        ("when", when),
    ];
    assert_eq!(py.items, pairs(&expected));
    ctx.assert_stored_alike(&py.loaded_encoded, &written);
}

/// `session.clear()` in Python ends a Rust session for Rust, and `destroy()` in Rust ends a
/// Python session for Python.
fn logout_in_one_app_ends_the_session_in_the_other<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let (_, cookie) = ctx.rs(None, |s| s.insert("user", "ada"));
    let cookie = cookie.value();
    let logout = ctx.py(Some(&cookie), json!([["clear"]]));
    assert_eq!(logout.cookie, Cookie::Deleted);
    assert_eq!(ctx.stored(&cookie), None, "Python deleted the entry");
    let (user, rust_cookie) = ctx.rs(Some(&cookie), |s| s.get::<String>("user"));
    assert_eq!(user, None);
    assert_eq!(rust_cookie, Cookie::Unchanged);

    let login = ctx.py(None, json!([["set", "user", "bob"]]));
    let cookie = login.cookie.value();
    let ((), logout) = ctx.rs(Some(&cookie), |s| {
        s.destroy();
        Ok(())
    });
    assert_eq!(logout, Cookie::Deleted);
    let after = ctx.py(Some(&cookie), json!([]));
    assert_ne!(after.sid, login.sid, "Python starts a new session");
    assert_eq!(after.items, pairs(&[PERMANENT]));
    assert_eq!(after.cookie, Cookie::Unchanged);
}

/// `regenerate()` in Rust retires the old id for Python, and Flask-Session's
/// `session_interface.regenerate(session)` retires the old id for Rust.
fn regenerate_in_one_app_invalidates_the_old_id_in_the_other<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let login = ctx.py(None, json!([["set", "user", "ada"]]));
    let old = login.cookie.value();
    let (_, new) = ctx.rs(Some(&old), |s| {
        s.regenerate()?;
        s.insert("role", "admin")
    });
    let new = new.value();
    assert_ne!(id_of(&new), id_of(&old));
    let stale = ctx.py(Some(&old), json!([]));
    assert_ne!(stale.sid, login.sid, "the old id is gone for Python");
    assert_eq!(stale.items, pairs(&[PERMANENT]));
    let fresh = ctx.py(Some(&new), json!([]));
    ctx.assert_cookie_names(&new, &fresh.sid);
    let expected = [PERMANENT, ("user", "'ada'"), ("role", "'admin'")];
    assert_eq!(fresh.items, pairs(&expected));

    let (_, old) = ctx.rs(None, |s| s.insert("user", "bob"));
    let old = old.value();
    let regenerated = ctx.py(Some(&old), json!([["regenerate"]]));
    let new = regenerated.cookie.value();
    ctx.assert_cookie_names(&new, &regenerated.sid);
    assert_ne!(id_of(&new), id_of(&old));
    let (user, cookie) = ctx.rs(Some(&old), |s| s.get::<String>("user"));
    assert_eq!(
        (user, cookie),
        (None, Cookie::Unchanged),
        "old id gone for Rust"
    );
    let (user, _) = ctx.rs(Some(&new), |s| s.get::<String>("user"));
    assert_eq!(user.as_deref(), Some("bob"));
}

/// Sessions pickled by a real Python the way Flask-Session 0.6 and older stored them
/// (`pickle.dumps` of the session dict, protocols 2 and 5): Rust reads them, and the request's
/// commit rewrites them in the codec, whether the request read the session or never touched
/// it; a log line says so. Flask-Session 0.8 then reads the rewritten session.
fn legacy_pickles_are_read_and_upgraded<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    for (protocol, read) in [(2, true), (5, false)] {
        let legacy = call(json!({
            "op": "put_pickle",
            "app": ctx.app,
            "data": {"_permanent": true, "user": "legacy", "visits": 3},
            "protocol": protocol,
        }));
        let cookie = legacy["cookie"].as_str().expect("cookie").to_owned();
        let pickle = hex(legacy["pickle"].as_str().expect("pickle"));
        assert_eq!(pickle[..2], [0x80, protocol], "pickle protocol {protocol}");
        assert_eq!(ctx.stored(&cookie).as_ref(), Some(&pickle));

        let logged = pickle_lines_here();
        let (user, answer) = ctx.rs(Some(&cookie), |s| match read {
            true => s.get::<String>("user"),
            false => Ok(None),
        });
        assert_eq!(
            user.as_deref(),
            read.then_some("legacy"),
            "protocol {protocol}"
        );
        assert_ne!(answer, Cookie::Deleted, "the session lives on");
        assert!(pickle_lines_here() > logged, "the upgrade logs a line");
        let upgraded = ctx.stored(&cookie).expect("still stored");
        let upgraded = ctx
            .manager
            .codec()
            .decode(&upgraded)
            .expect("the codec's format now");
        assert_eq!(upgraded["user"], Value::from("legacy"));
        assert_eq!(upgraded["visits"], Value::from(3));

        let py = ctx.py(Some(&cookie), json!([]));
        assert_eq!(
            py.sid,
            id_of(&cookie),
            "Flask-Session 0.8 reads the upgraded session"
        );
        assert!(
            py.items
                .contains(&("user".to_owned(), "'legacy'".to_owned())),
            "{:?}",
            py.items
        );
    }
}

/// A Flask-Session request saves the session while a Rust request of the same session is in
/// flight; Rust's commit then merges its own changes onto what Python stored: Python's new key,
/// its change to a key Rust only read and its removal survive, Rust's `update` re-runs on
/// Python's value, Rust's new key is added, and for a key both set Rust's later commit wins.
fn a_python_write_during_a_rust_request_survives_its_commit<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let (_, cookie) = ctx.rs(None, |s| {
        s.insert("user", "ada")?;
        s.insert("theme", "dark")?;
        s.insert("count", &1)
    });
    let cookie = cookie.value();

    let mut rust = ctx.open(Some(&cookie));
    assert_eq!(rust.get::<String>("user").unwrap().as_deref(), Some("ada"));
    let counted = rust.update("count", |n: Option<i64>| n.unwrap_or(0) + 1);
    assert_eq!(counted.unwrap(), 2, "Rust's update on the value it loaded");
    rust.insert("rust_key", "from rust").unwrap();
    rust.insert("both", "rust").unwrap();

    let python = ctx.py(Some(&cookie), python_changes_meanwhile());
    assert_eq!(
        python.cookie.value(),
        cookie,
        "Python saved the same session"
    );
    assert_eq!(commit(rust).value(), cookie, "Rust saved the same session");

    let expected = [
        PERMANENT,
        ("user", "'grace'"),
        ("count", "11"),
        ("flask_key", "'from flask'"),
        ("both", "'rust'"),
        ("rust_key", "'from rust'"),
    ];
    assert_eq!(ctx.py(Some(&cookie), json!([])).items, pairs(&expected));
    assert_rust_sees_the_merge(ctx, &cookie);
}

/// What the Flask request does to the session Rust has open: Rust only read `user`, did not
/// touch `theme`, updates `count` and sets `both`.
fn python_changes_meanwhile() -> Json {
    json!([
        ["set", "user", "grace"],
        ["remove", "theme"],
        ["set", "count", 10],
        ["set", "flask_key", "from flask"],
        ["set", "both", "flask"],
    ])
}

fn assert_rust_sees_the_merge<S: Store, C: Format>(ctx: &Ctx<S, C>, cookie: &str) {
    let (seen, _) = ctx.rs(Some(cookie), |s| {
        let keys: Vec<String> = s.keys()?.map(str::to_owned).collect();
        let strings = ["user", "flask_key", "both", "rust_key"].map(|k| s.get::<String>(k));
        Ok((keys, s.get::<i64>("count")?, strings.map(Result::unwrap)))
    });
    let keys = ["user", "count", "flask_key", "both", "rust_key"];
    let strings = ["grace", "from flask", "rust", "from rust"].map(|v| Some(v.to_owned()));
    assert_eq!(seen, (keys.map(str::to_owned).to_vec(), Some(11), strings));
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// One test per format and signer setting of a backend: {msgpack, json} x {signer on, off} by
/// default, or the formats listed.
macro_rules! interop_tests {
    ($feature:literal, $backend:ident, $make:path) => {
        #[cfg(feature = $feature)]
        interop_tests!($backend, $make;
            msgpack_signed: MsgPack, true;
            msgpack_unsigned: MsgPack, false;
            json_signed: JsonCodec, true;
            json_unsigned: JsonCodec, false);
    };
    ($backend:ident, $make:path; $($test:ident: $codec:expr, $signer:expr);+ $(;)?) => {
        mod $backend {
            use super::*;

            $(
                #[test]
                fn $test() {
                    let test = concat!(stringify!($backend), "::", stringify!($test));
                    run(test, $make, $codec, $signer);
                }
            )+
        }
    };
}

interop_tests!("redis", redis, redis_backend);
interop_tests!("redis-cluster", redis_cluster, redis_cluster_backend);
interop_tests!("memcached", memcached, memcached_backend);
interop_tests!("sqlite", sqlite, sqlite_backend);
interop_tests!("postgres", postgres, postgres_backend);
interop_tests!("mongodb", mongodb, mongodb_backend);
// Flask-Session pickles the session dict on the filesystem backend, whatever its format.
interop_tests!(filesystem, filesystem_backend;
    pickle_signed: Pickle, true;
    pickle_unsigned: Pickle, false);

mod users_everywhere {
    use super::*;

    /// Log out everywhere with a Flask app on the same store, on every backend with a user index
    /// (memcached has none), with the signer, in MessagePack (Pickle on the filesystem).
    macro_rules! user_tests {
        ($feature:literal, $backend:ident, $make:path) => {
            #[cfg(feature = $feature)]
            user_tests!($backend, $make, MsgPack);
        };
        ($backend:ident, $make:path, $codec:expr) => {
            #[test]
            fn $backend() {
                let test = concat!("users::", stringify!($backend));
                with_apps(
                    test,
                    $make,
                    $codec,
                    true,
                    users::log_out_everywhere_with_python,
                );
            }
        };
    }

    user_tests!("redis", redis, redis_backend);
    user_tests!("redis-cluster", redis_cluster, redis_cluster_backend);
    user_tests!("sqlite", sqlite, sqlite_backend);
    user_tests!("postgres", postgres, postgres_backend);
    user_tests!("mongodb", mongodb, mongodb_backend);
    user_tests!(filesystem, filesystem_backend, Pickle);
}
