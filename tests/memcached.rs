//! The conformance suite and MemcachedStore-specific behaviour, against the real server named by
//! `SERVER_SESSION_MEMCACHED_URL` (e.g. `memcache://127.0.0.1:11211`, started with `-I 2m` so
//! the suite's 1 MiB payload fits in an item).
//!
//! Every test uses its own random key prefix. Without the variable the server tests are
//! skipped, or fail under `SERVER_SESSION_REQUIRE_SERVICES=1`; the tests that need no server
//! (key and size checks, unreachable servers) always run.
#![cfg(feature = "memcached")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{NamedOp, assert_each_fails_within};
use server_session::store::conformance::{self, SilentServer, service_unavailable, unique_prefix};
use server_session::store::{ConnectionSettings, MemcachedError, MemcachedStore, Replaced, Store};
use server_session::{Config, Error, ErrorKind, SessionManager, conformance_tests};

const URL_ENV: &str = "SERVER_SESSION_MEMCACHED_URL";

fn url() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.is_empty())
}

fn memcached_store() -> Option<MemcachedStore> {
    Some(MemcachedStore::open(&url()?).expect("a valid SERVER_SESSION_MEMCACHED_URL"))
}

conformance_tests!(memcached_store());

/// A raw text-protocol connection to the test server, to look at what the store wrote.
struct Raw(BufReader<TcpStream>);

impl Raw {
    fn connect() -> Option<Raw> {
        let store = memcached_store()?;
        let addr = store.servers().next()?.to_owned();
        Some(Raw(BufReader::new(TcpStream::connect(addr).ok()?)))
    }

    /// Sends `command` and returns its reply lines (without `\r\n`): a data block's line
    /// follows a `VALUE` or `VA` line, and a `VALUE` reply ends with `END`.
    fn lines(&mut self, command: &str) -> Vec<Vec<u8>> {
        self.0.get_mut().write_all(command.as_bytes()).unwrap();
        let mut lines = vec![self.line()];
        let follow = match &lines[0] {
            l if l.starts_with(b"VALUE ") => 2,
            l if l.starts_with(b"VA ") => 1,
            _ => 0,
        };
        lines.extend((0..follow).map(|_| self.line()));
        lines
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.0.read_until(b'\n', &mut line).unwrap();
        line.truncate(line.len().saturating_sub(2));
        line
    }

    /// The first reply line, as text.
    fn first(&mut self, command: &str) -> String {
        String::from_utf8_lossy(&self.lines(command)[0]).into_owned()
    }
}

fn with_server(test: &str, body: impl FnOnce(MemcachedStore, Raw, String)) {
    match (memcached_store(), Raw::connect()) {
        (Some(store), Some(raw)) => body(store, raw, unique_prefix(test)),
        _ => service_unavailable(test),
    }
}

fn in_secs(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Key, flags 0 and value exactly as given, and the expiry where memcached's rule puts it:
/// relative up to 30 days, absolute above (a relative 31 days would be read as 1970 and the
/// item would be gone at once).
#[test]
fn stores_exact_item_and_follows_the_30_day_rule() {
    with_server("30_day_rule", |store, mut raw, prefix| {
        for days in [1, 29, 30, 31, 365] {
            let key = format!("{prefix}days{days}");
            let expires = in_secs(days * 86400);
            assert!(store.create(&key, b"\x81\xa1k\x01", expires).unwrap());
            let line = raw.first(&format!("mg {key} v f t\r\n"));
            assert!(line.starts_with("VA 4 f0 t"), "{days} days: {line:?}");
            let ttl: u64 = line.rsplit(" t").next().unwrap().parse().unwrap();
            let expected = unix(expires) - unix(SystemTime::now());
            assert!(
                ttl.abs_diff(expected) <= 2,
                "{days} days: ttl {ttl}, expected {expected}"
            );
            assert_eq!(
                store.load(&key).unwrap().as_deref(),
                Some(&b"\x81\xa1k\x01"[..])
            );
        }
    });
}

/// An item written the way Flask-Session writes it (`set key 0 exptime bytes`) is read, saved,
/// touched and fetched-and-touched like our own.
#[test]
fn reads_items_written_by_flask_session() {
    with_server("flask_items", |store, mut raw, prefix| {
        let key = format!("{prefix}session:py");
        let exptime = unix(in_secs(31 * 86400));
        let line = raw.first(&format!("set {key} 0 {exptime} 3\r\nabc\r\n"));
        assert_eq!(line, "STORED");
        assert_eq!(store.load(&key).unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(
            store.load_and_touch(&key, in_secs(60)).unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert!(store.save(&key, b"new", in_secs(60)).unwrap());
        assert_eq!(
            raw.lines(&format!("get {key}\r\n")),
            [
                format!("VALUE {key} 0 3").into_bytes(),
                b"new".to_vec(),
                b"END".to_vec()
            ]
        );
    });
}

/// A whole request cycle through the manager: MessagePack `{_permanent: true, visits: 1}` under
/// `session:<id>`, with an absolute expiry about 31 days out.
#[test]
fn manager_stores_flask_session_entry() {
    with_server("manager", |store, mut raw, prefix| {
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
        let lines = raw.lines(&format!("mg {prefix}session:{id} v t\r\n"));
        let head = String::from_utf8_lossy(&lines[0]);
        assert!(head.starts_with("VA 21 t"), "{head}");
        assert_eq!(lines[1], b"\x82\xaa_permanent\xc3\xa6visits\x01");
        let ttl: i64 = head.rsplit(" t").next().unwrap().parse().unwrap();
        assert!(
            (31 * 86400 - 5..=31 * 86400 + 2).contains(&ttl),
            "ttl {ttl}"
        );
    });
}

/// The store keeps working after the server refused a value as too large for its items.
#[test]
fn server_side_too_large_is_typed_and_recoverable() {
    with_server("too_large", |_, _, prefix| {
        let store = MemcachedStore::builder()
            .url(url().unwrap())
            .max_value_size(64 << 20)
            .connection(ConnectionSettings {
                max_connections: 1,
                ..ConnectionSettings::default()
            })
            .build()
            .unwrap();
        let key = format!("{prefix}big");
        let err = store
            .create(&key, &vec![7; 3 << 20], in_secs(60))
            .unwrap_err();
        assert!(
            matches!(memcached_error(&err), Some(MemcachedError::ValueTooLarge { len }) if *len == 3 << 20),
            "{err:?}"
        );
        assert!(store.create(&key, b"small", in_secs(60)).unwrap());
        assert_eq!(store.load(&key).unwrap().as_deref(), Some(&b"small"[..]));
    });
}

/// A store whose server does not exist: every check below must fail before any I/O.
fn nowhere() -> MemcachedStore {
    lazy("memcache://127.0.0.1:1")
}

/// A store on `url` built without the start-up check.
fn lazy(url: &str) -> MemcachedStore {
    MemcachedStore::builder()
        .url(url)
        .startup_check(false)
        .build()
        .unwrap()
}

#[test]
fn invalid_keys_are_refused_before_io() {
    let store = nowhere();
    let long = format!("session:{}", "x".repeat(243));
    for key in [
        long.as_str(),
        "session:a b",
        "session:a\r\nflush_all",
        "",
        "session:\u{0}",
    ] {
        let err = store.load(key).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{key:?}: {err:?}");
        let err = store.create(key, b"v", in_secs(60)).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{key:?}: {err:?}");
        assert!(matches!(store.delete(key), Err(Error::InvalidKey(_))));
    }
    assert!(
        matches!(store.load(&"k".repeat(250)), Err(Error::Store(_))),
        "250 bytes is valid"
    );
}

#[test]
fn values_over_max_value_size_are_refused_before_io() {
    let value = vec![0; (1 << 20) + 1];
    for result in [
        nowhere().create("k", &value, in_secs(60)),
        nowhere().save("k", &value, in_secs(60)),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(
                memcached_error(&err),
                Some(MemcachedError::ValueTooLarge { len: 1_048_577 })
            ),
            "{err:?}"
        );
    }
}

/// Nothing listens on port 1: with the default settings every operation fails with a typed
/// error at once, without a panic or a hang.
#[test]
fn unreachable_server_is_a_typed_error_within_the_timeout() {
    assert_fails_fast(&nowhere(), Duration::from_secs(2));
}

/// Against a server that accepts connections and never answers, and a closed port: the
/// start-up check fails the build within the connect plus the I/O timeout, and every operation
/// of a store built without it within the same bound.
#[test]
fn silent_or_absent_servers_fail_within_the_timeouts() {
    let timeout = Duration::from_millis(200);
    let build = |addr, check| {
        MemcachedStore::builder()
            .url(format!("memcache://{addr}"))
            .connection(conformance::fault_settings(timeout))
            .startup_check(check)
            .build()
    };
    let limit = timeout * 2 + Duration::from_millis(150);
    conformance::every_wait_bounded(build, limit, limit);
}

/// The errors of a silent server and a closed port name the server and the cause.
#[test]
fn unreachable_servers_are_named_with_the_cause() {
    let build = |addr| {
        MemcachedStore::builder()
            .url(format!("memcache://{addr}"))
            .connection(conformance::fault_settings(Duration::from_millis(100)))
            .build()
    };
    let silent = "no answer within the I/O timeout (100ms)";
    conformance::unreachable_servers_are_named(build, "memcached", silent);
}

/// memcached URLs carry no credentials; one that does is refused without printing the
/// password, and the builder's `Debug` hides it too.
#[test]
fn the_password_is_never_printed() {
    let builder = MemcachedStore::builder().url("memcache://app:hunter2@127.0.0.1:11211");
    let shown = format!("{builder:?}");
    assert!(shown.contains("app:***@127.0.0.1"), "{shown}");
    let err = builder.build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// Settings with a zero or absurd timeout or connection count are a configuration error.
#[test]
fn connection_settings_are_validated() {
    let build = |settings| {
        MemcachedStore::builder()
            .url("memcache://127.0.0.1:1")
            .connection(settings)
            .startup_check(false)
            .build()
    };
    for settings in [
        ConnectionSettings {
            io_timeout: Duration::ZERO,
            ..ConnectionSettings::default()
        },
        ConnectionSettings {
            connect_timeout: Duration::from_secs(3600),
            ..ConnectionSettings::default()
        },
        ConnectionSettings {
            max_connections: 0,
            ..ConnectionSettings::default()
        },
    ] {
        assert!(
            matches!(build(settings), Err(Error::Config(_))),
            "{settings:?}"
        );
    }
}

/// The start-up check asks every server at once: three silent servers fail the build within
/// about one I/O timeout (one silent server takes 206 ms at 200 ms), not three, naming the
/// first server of the list.
#[test]
fn startup_check_asks_every_server_at_once() {
    let silent: Vec<SilentServer> = (0..3).map(|_| SilentServer::start()).collect();
    let addrs: Vec<String> = silent.iter().map(|s| s.addr().to_string()).collect();
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    let err = MemcachedStore::builder()
        .url(format!("memcache://{}", addrs.join(",")))
        .connection(conformance::fault_settings(timeout))
        .build()
        .unwrap_err();
    let took = start.elapsed();
    assert!(took < timeout * 2, "the check took {took:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("memcached {}: ", addrs[0])),
        "{message}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{message}");
}

/// `max_connections` caps the connections open to a server, idle or busy: with all of them
/// stalled on a silent server, the next operation opens none and fails after the checkout
/// timeout with `ErrorKind::Unavailable`.
#[test]
fn max_connections_is_a_total_cap_with_a_bounded_wait() {
    let silent = SilentServer::start();
    let store = MemcachedStore::builder()
        .url(format!("memcache://{}", silent.addr()))
        .connection(ConnectionSettings {
            io_timeout: Duration::from_millis(800),
            checkout_timeout: Duration::from_millis(200),
            max_connections: 2,
            ..ConnectionSettings::default()
        })
        .startup_check(false)
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        let stalled: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| store.load("k").map(drop)))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        let err = store.load("k").unwrap_err();
        let waited = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            matches!(
                memcached_error(&err),
                Some(MemcachedError::PoolTimeout { max: 2, .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "memcached {}: all 2 connections stayed busy for the checkout timeout (200ms)",
                silent.addr()
            )
        );
        assert!(
            (Duration::from_millis(200)..Duration::from_millis(500)).contains(&waited),
            "{waited:?}"
        );
        for op in stalled {
            assert!(op.join().unwrap().is_err());
        }
    });
    assert_eq!(silent.connections(), 2, "never more than max_connections");
}

fn assert_fails_fast(store: &MemcachedStore, limit: Duration) {
    let expires = in_secs(60);
    let ops: [NamedOp<'_>; 5] = [
        ("load", &|| store.load("k").map(drop)),
        ("create", &|| store.create("k", b"v", expires).map(drop)),
        ("touch", &|| store.touch("k", expires).map(drop)),
        ("load_and_touch", &|| {
            store.load_and_touch("k", expires).map(drop)
        }),
        ("delete", &|| store.delete("k")),
    ];
    assert_each_fails_within(&ops, limit, |err| {
        matches!(memcached_error(err), Some(MemcachedError::Io { .. }))
    });
}

/// A pooled connection the server closed meanwhile (a restart) is replaced transparently.
#[test]
fn closed_pooled_connection_is_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Each connection answers one command with a miss, then is closed by the "server".
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let _ = reader.get_mut().write_all(b"END\r\n");
            }
        }
    });
    let store = lazy(&format!("memcache://127.0.0.1:{port}"));
    for _ in 0..3 {
        assert_eq!(store.load("k").unwrap(), None);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `default_local` means 127.0.0.1:11211, whether or not a memcached runs there (the test
/// servers use ports of their own): it is either a store on that server or an error naming it.
#[test]
fn default_local_is_the_standard_port() {
    match MemcachedStore::default_local() {
        Ok(store) => assert_eq!(store.servers().collect::<Vec<_>>(), ["127.0.0.1:11211"]),
        Err(e) => assert!(e.to_string().contains("127.0.0.1:11211"), "{e}"),
    }
}

/// A fake server that records the key of every command and answers `add` with `STORED` and
/// `get` with a miss.
fn recording_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || serve_recording(BufReader::new(stream), &log));
        }
    });
    (port, seen)
}

fn serve_recording(mut reader: BufReader<TcpStream>, log: &Mutex<Vec<String>>) {
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        log.lock().unwrap().push(fields[1].to_owned());
        let reply: &[u8] = if fields[0] == "add" {
            let len: usize = fields[4].parse().unwrap();
            std::io::Read::read_exact(&mut reader, &mut vec![0; len + 2]).unwrap();
            b"STORED\r\n"
        } else {
            b"END\r\n"
        };
        reader.get_mut().write_all(reply).unwrap();
        line.clear();
    }
}

/// With several servers each key always goes to the same one, and keys spread over all.
#[test]
fn keys_spread_over_servers() {
    let (a, seen_a) = recording_server();
    let (b, seen_b) = recording_server();
    let store = lazy(&format!("memcache://127.0.0.1:{a},127.0.0.1:{b}"));
    let keys: Vec<String> = (0..100).map(|i| format!("session:{i}")).collect();
    for key in &keys {
        assert!(store.create(key, b"v", in_secs(60)).unwrap());
        assert_eq!(store.load(key).unwrap(), None);
    }
    let (seen_a, seen_b) = (seen_a.lock().unwrap(), seen_b.lock().unwrap());
    assert!(
        seen_a.len() > 60 && seen_b.len() > 60,
        "{} / {}",
        seen_a.len(),
        seen_b.len()
    );
    assert_eq!(seen_a.len() + seen_b.len(), 200);
    for key in &keys {
        let on_a = seen_a.iter().filter(|k| *k == key).count();
        assert!(on_a == 0 || on_a == 2, "{key} was sent to both servers");
    }
}

/// The memcached error inside a store error.
fn memcached_error(err: &Error) -> Option<&MemcachedError> {
    match err {
        Error::Store(e) => e.downcast_ref::<MemcachedError>(),
        _ => None,
    }
}

/// A key prefix memcached cannot store (a space) is refused when the manager is built, not
/// on every request.
#[test]
fn a_key_prefix_with_a_space_is_refused_at_start_up() {
    let store = nowhere();
    let config = Config::builder().key_prefix("my app:").build().unwrap();
    let built = SessionManager::new(store, config);
    assert!(
        matches!(built, Err(Error::InvalidKey(ref why)) if why.contains("spaces")),
        "{built:?}"
    );
}

/// A `replace` after a load uses the unique that load returned; when another process (here a
/// second store, with its own memo) wrote in between, that unique is stale: the `cas` is
/// refused, the write reports the other process's bytes, and the next `replace` over those
/// succeeds.
#[test]
fn a_stale_load_never_overwrites_another_write() {
    let (Some(a), Some(b)) = (memcached_store(), memcached_store()) else {
        return service_unavailable("a_stale_load_never_overwrites_another_write");
    };
    let key = format!("{}k", unique_prefix("stale_load"));
    assert!(a.create(&key, b"v1", in_secs(60)).unwrap());
    assert_eq!(a.load(&key).unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(b.save(&key, b"v2", in_secs(60)).unwrap());
    let replaced = a.replace(&key, b"v1", b"v3", in_secs(60)).unwrap();
    assert_eq!(replaced, Replaced::Changed(b"v2".to_vec()));
    assert_eq!(b.load(&key).unwrap().as_deref(), Some(&b"v2"[..]));
    let replaced = a.replace(&key, b"v2", b"v4", in_secs(60)).unwrap();
    assert_eq!(replaced, Replaced::Done);
    assert_eq!(b.load(&key).unwrap().as_deref(), Some(&b"v4"[..]));
}

/// The store's `max_value_size` lowers the manager's session limit: a commit over it is
/// `Error::TooLarge` naming that limit, before any I/O (the store points nowhere).
#[test]
fn the_item_size_limits_the_session() {
    let store = MemcachedStore::builder()
        .url("memcache://127.0.0.1:1")
        .max_value_size(2000)
        .startup_check(false)
        .build()
        .unwrap();
    let manager = SessionManager::new(store, Config::default()).unwrap();
    let mut session = manager.open(None);
    session.insert("blob", &"x".repeat(3000)).unwrap();
    let err = session.commit().unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size, limit: 2000 } if size > 3000),
        "{err:?}"
    );
}
