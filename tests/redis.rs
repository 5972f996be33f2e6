//! The conformance suite and RedisStore-specific behaviour, against the real server named by
//! `SERVER_SESSION_REDIS_URL` (e.g. `redis://127.0.0.1:6379/`).
//!
//! Every test uses its own random key prefix. Without the variable the server tests are
//! skipped, or fail under `SERVER_SESSION_REQUIRE_SERVICES=1`; the unreachable-server tests
//! need no server and always run.
#![cfg(feature = "redis")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{RedisServer, free_port, read_resp_command};
use server_session::store::conformance::{self, service_unavailable, unique_prefix};
use server_session::store::{ConnectionSettings, RedisStore, Store, UserIndex};
use server_session::{
    Config, Error, SessionManager, conformance_tests, user_index_conformance_tests,
};

const URL_ENV: &str = "SERVER_SESSION_REDIS_URL";

fn url() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.is_empty())
}

fn redis_store() -> Option<RedisStore> {
    Some(RedisStore::open(&url()?).expect("a valid SERVER_SESSION_REDIS_URL"))
}

/// A store sharing an application's r2d2 pool of `redis::Client`.
fn shared_pool_store() -> Option<RedisStore> {
    let client = redis::Client::open(url()?.as_str()).expect("valid URL");
    let pool = r2d2::Pool::builder()
        .max_size(8)
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(1))
        .build(client)
        .expect("pool");
    Some(RedisStore::from_pool(pool))
}

conformance_tests!(redis_store());
user_index_conformance_tests!(redis_store());

mod shared_pool {
    use super::shared_pool_store;
    server_session::conformance_tests!(shared_pool_store());
    server_session::user_index_conformance_tests!(shared_pool_store());
}

/// A plain connection to the test server, to look at what the store wrote.
fn raw() -> Option<redis::Connection> {
    let client = redis::Client::open(url()?.as_str()).expect("valid URL");
    Some(client.get_connection().expect("connect to the test server"))
}

fn with_server(test: &str, body: impl FnOnce(RedisStore, redis::Connection, String)) {
    match (redis_store(), raw()) {
        (Some(store), Some(conn)) => body(store, conn, unique_prefix(test)),
        _ => service_unavailable(test),
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The key is exactly the given key, the value exactly the bytes, and the expiry the given
/// instant (to the millisecond): what a Flask-Session app on the same server reads.
#[test]
fn stores_exact_key_value_and_expiry() {
    with_server(
        "stores_exact_key_value_and_expiry",
        |store, mut conn, prefix| {
            let key = format!("{prefix}session:abc");
            let value = b"\x82\xaa_permanent\xc3\xa6visits\x01";
            let expires = SystemTime::now() + Duration::from_secs(31 * 24 * 3600);
            assert!(store.create(&key, value, expires).unwrap());
            let stored: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
            assert_eq!(stored, value);
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(&mut conn)
                .unwrap();
            assert_eq!(at, unix_ms(expires));
            let later = expires + Duration::from_secs(60);
            assert!(store.touch(&key, later).unwrap());
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(&mut conn)
                .unwrap();
            assert_eq!(at, unix_ms(later));
        },
    );
}

/// An entry written the way Flask-Session 0.8 writes it (`SET key value EX secs`) is read,
/// saved and touched like our own.
#[test]
fn reads_entries_written_by_flask_session() {
    with_server(
        "reads_entries_written_by_flask_session",
        |store, mut conn, prefix| {
            let key = format!("{prefix}session:py");
            let value = b"\x81\xaa_permanent\xc3";
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&value[..])
                .arg("EX")
                .arg(2_678_400)
                .query(&mut conn)
                .unwrap();
            assert_eq!(store.load(&key).unwrap().as_deref(), Some(&value[..]));
            let expires = SystemTime::now() + Duration::from_secs(600);
            assert!(store.save(&key, b"new", expires).unwrap());
            let stored: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
            assert_eq!(stored, b"new");
        },
    );
}

/// A write with an expiry in the past succeeds (as the contract says) and leaves no live key.
#[test]
fn past_expiry_leaves_no_key() {
    with_server("past_expiry_leaves_no_key", |store, mut conn, prefix| {
        let key = format!("{prefix}k");
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert!(store.create(&key, b"stale", past).unwrap());
        let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
        assert_eq!(exists, 0);
        assert!(
            store
                .create(&key, b"live", SystemTime::now() + Duration::from_secs(60))
                .unwrap()
        );
        assert!(
            store.touch(&key, UNIX_EPOCH).unwrap(),
            "touch of a live key"
        );
        let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
        assert_eq!(exists, 0, "touch to the epoch expires the key");
    });
}

/// A user's sorted set never outgrows the live records: linking drops the lapsed members (here
/// one written behind the store's back), the set expires exactly with its last record, and a
/// user whose records all lapsed has no key at all. The first link runs on a server that has
/// just forgotten its scripts (`SCRIPT FLUSH`), so the `EVAL` fallback is taken.
#[test]
fn user_set_is_bounded_by_its_live_records() {
    with_server(
        "user_set_is_bounded_by_its_live_records",
        |store, mut conn, prefix| {
            let user = format!("{prefix}user:ada");
            let [a, b, stale] = ["a", "b", "stale"].map(|k| format!("{prefix}{k}"));
            let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
            store
                .link_user(&user, &a, SystemTime::now() - Duration::from_secs(60))
                .unwrap();
            let exists: i64 = redis::cmd("EXISTS").arg(&user).query(&mut conn).unwrap();
            assert_eq!(exists, 0, "a user with only lapsed records has no set");
            let last = SystemTime::now() + Duration::from_secs(3600);
            store.link_user(&user, &b, last).unwrap();
            store
                .link_user(&user, &a, SystemTime::now() + Duration::from_secs(60))
                .unwrap();
            let expiry: i64 = redis::cmd("PEXPIRETIME")
                .arg(&user)
                .query(&mut conn)
                .unwrap();
            assert_eq!(
                expiry,
                unix_ms(last),
                "the set expires with its last record"
            );
            let lapsed = unix_ms(SystemTime::now()) - 1000;
            let _: i64 = redis::cmd("ZADD")
                .arg(&user)
                .arg(lapsed)
                .arg(&stale)
                .query(&mut conn)
                .unwrap();
            store.link_user(&user, &b, last).unwrap();
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&user)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap();
            assert_eq!(members, [a, b], "the lapsed member is gone");
        },
    );
}

/// A whole request cycle through the manager: MessagePack `{_permanent: true, visits: 1}` under
/// `session:<id>`, expiring about 31 days out.
#[test]
fn manager_stores_flask_session_entry() {
    with_server(
        "manager_stores_flask_session_entry",
        |store, mut conn, prefix| {
            let config = Config::builder()
                .key_prefix(format!("{prefix}session:"))
                .build()
                .unwrap();
            let manager = SessionManager::new(store, config).unwrap();
            let mut session = manager.open(None);
            session.insert("visits", &1u64).unwrap();
            let commit = session.commit().unwrap();
            let cookie = commit.set_cookie().unwrap();
            let id = cookie
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("session=");
            let key = format!("{prefix}session:{id}");
            let stored: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
            assert_eq!(stored, b"\x82\xaa_permanent\xc3\xa6visits\x01");
            let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
            assert!((31 * 86400 - 5..=31 * 86400).contains(&ttl), "ttl {ttl}");
        },
    );
}

/// Against a server that accepts connections and never answers, and a closed port: the
/// start-up check fails the build within twice the connect timeout plus the I/O timeout, and
/// a store built without it fails every operation within the checkout timeout.
#[test]
fn silent_or_absent_servers_fail_within_the_timeouts() {
    let timeout = Duration::from_millis(200);
    let build = |addr, check| {
        RedisStore::builder()
            .url(format!("redis://:hunter2@{addr}/"))
            .connection(conformance::fault_settings(timeout))
            .startup_check(check)
            .build()
    };
    let margin = Duration::from_millis(150);
    conformance::every_wait_bounded(build, timeout * 3 + margin, timeout + margin);
}

/// A wrong password, a missing database and a closed port each fail the build with a message
/// that names the server and the cause, and never contains the password.
#[test]
fn startup_errors_name_the_cause_and_never_the_password() {
    let port = free_port();
    let Some(_server) = RedisServer::start(port, &["--requirepass", "right-pass"]) else {
        return service_unavailable("startup errors: redis-server is not installed");
    };
    let build = |url: String| RedisStore::open(&url).map(drop).unwrap_err().to_string();
    let target = format!("redis 127.0.0.1:{port}: ");
    let wrong = build(format!("redis://:wrong-pass@127.0.0.1:{port}/0"));
    assert!(wrong.starts_with(&target), "{wrong}");
    assert!(wrong.contains("authentication failed"), "{wrong}");
    assert!(!wrong.contains("wrong-pass"), "{wrong}");
    let database = build(format!("redis://:right-pass@127.0.0.1:{port}/99"));
    assert_eq!(database, format!("{target}database index out of range"));
    let refused = build(format!("redis://:right-pass@127.0.0.1:{}/0", free_port()));
    assert!(refused.ends_with(": connection refused"), "{refused}");
    assert!(RedisStore::open(&format!("redis://:right-pass@127.0.0.1:{port}/0")).is_ok());
}

/// The builder's `Debug` never shows the URL's password.
#[test]
fn builder_debug_hides_the_password() {
    let builder = RedisStore::builder().url("redis://user:hunter2@127.0.0.1:6379/0");
    let printed = format!("{builder:?}");
    assert!(printed.contains("user:***@127.0.0.1"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

/// The name of the next RESP command `reader` receives, upper-cased.
fn read_command_name(reader: &mut impl BufRead) -> Option<String> {
    read_resp_command(reader)?.into_iter().next()
}

/// A fake server: `+OK` to everything, except that the first `GET` it ever sees is answered
/// (with `late`) only after 600 ms, and every later `GET` at once (with `fresh`).
fn stalling_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stalled = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let stalled = Arc::clone(&stalled);
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some(name) = read_command_name(&mut reader) {
                    let reply: &[u8] = match name.as_str() {
                        "GET" if !stalled.swap(true, Ordering::SeqCst) => {
                            std::thread::sleep(Duration::from_millis(600));
                            b"$4\r\nlate\r\n"
                        }
                        "GET" => b"$5\r\nfresh\r\n",
                        _ => b"+OK\r\n",
                    };
                    let _ = writer.write_all(reply);
                }
            });
        }
    });
    port
}

/// A server that stalls mid-request: the read timeout fails the operation with a typed
/// timeout, and the late reply is never taken for the answer to a later command.
#[test]
fn read_timeout_fails_the_operation_and_never_reads_the_late_reply() {
    let store = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{}/", stalling_server()))
        .connection(ConnectionSettings {
            io_timeout: Duration::from_millis(200),
            max_connections: 1,
            ..ConnectionSettings::default()
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let err = store.load("k").unwrap_err();
    assert!(
        matches!(err, Error::Store(ref e) if e.downcast_ref::<redis::RedisError>().is_some_and(|e| e.is_timeout())),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "took {:?}",
        start.elapsed()
    );
    std::thread::sleep(Duration::from_millis(700)); // the late reply has arrived by now
    assert_eq!(store.load("k").unwrap().as_deref(), Some(&b"fresh"[..]));
    assert!(
        store
            .save("k", b"v", SystemTime::now() + Duration::from_secs(60))
            .unwrap()
    );
}

/// The default store is the local server Flask-Session uses by default, checked at start-up.
#[test]
fn default_local_connects_to_the_local_server() {
    if url().is_none() {
        return service_unavailable("default_local");
    }
    assert!(RedisStore::default_local().is_ok());
}

/// The conformance helpers also run against a store built from a `redis::Client`.
#[test]
fn from_client_roundtrip() {
    let make = || {
        redis::Client::open(url()?.as_str())
            .ok()
            .and_then(|c| RedisStore::from_client(c).ok())
    };
    conformance::run("from_client_roundtrip", make, conformance::roundtrip);
}
