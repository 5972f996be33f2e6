//! The conformance suite and RedisClusterStore-specific behaviour, against the real cluster named
//! by `SERVER_SESSION_REDIS_CLUSTER_URL` (`redis+cluster://127.0.0.1:7000,...,127.0.0.1:7005`,
//! the 3 masters + 3 replicas `scripts/cluster.sh` starts).
//!
//! Every test uses its own random key prefix and holds the clusters' lock shared, so the
//! failover test (tests/redis_cluster_failover.rs) never kills a master under it. Without the
//! variable the cluster tests are skipped, or fail under `SERVER_SESSION_REQUIRE_SERVICES=1`;
//! the unreachable-cluster tests need no server and always run.
#![cfg(feature = "redis-cluster")]

mod cluster_support;
mod common;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster_support::{Steady, nodes, steady};
use common::{NamedOp, assert_each_fails_within, read_resp_command};
use server_session::store::conformance::{self, service_unavailable, unique_prefix};
use server_session::store::{ConnectionSettings, RedisClusterStore, Store, UserIndex};
use server_session::{
    Config, Error, SessionManager, conformance_tests, user_index_conformance_tests,
};

const URL_ENV: &str = "SERVER_SESSION_REDIS_CLUSTER_URL";

fn url() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.is_empty())
}

fn cluster_store() -> Option<Steady<RedisClusterStore>> {
    let store = RedisClusterStore::builder()
        .url(url()?)
        .connection(ConnectionSettings {
            max_connections: 8,
            ..ConnectionSettings::default()
        })
        .build()
        .expect("a valid SERVER_SESSION_REDIS_CLUSTER_URL");
    Some(steady(store))
}

conformance_tests!(cluster_store());
user_index_conformance_tests!(cluster_store());

/// A plain connection to each node, by `host:port`.
fn node_connections(url: &str) -> Vec<(String, redis::Connection)> {
    nodes(url)
        .into_iter()
        .map(|node| {
            let client = redis::Client::open(format!("redis://{node}/")).unwrap();
            (node, client.get_connection().unwrap())
        })
        .collect()
}

/// The node that owns `key`'s slot: the only one that answers `EXISTS` instead of `MOVED`.
fn owner(conns: &mut [(String, redis::Connection)], key: &str) -> String {
    let owners: Vec<&String> = conns
        .iter_mut()
        .filter_map(|(node, conn)| {
            let exists: redis::RedisResult<i64> = redis::cmd("EXISTS").arg(key).query(conn);
            exists.ok().map(|_| &*node)
        })
        .collect();
    assert_eq!(owners.len(), 1, "{key}: owners {owners:?}");
    owners[0].clone()
}

fn with_cluster(test: &str, body: impl FnOnce(Steady<RedisClusterStore>, String, String)) {
    match (cluster_store(), url()) {
        (Some(store), Some(url)) => body(store, url, unique_prefix(test)),
        _ => service_unavailable(test),
    }
}

/// Sessions spread over all three masters, and each key holds exactly the codec's bytes with
/// its expiry, on the master that owns its slot (what a Flask-Session app reads).
#[test]
fn sessions_spread_over_every_master() {
    with_cluster("spread", |store, url, prefix| {
        let config = Config::builder()
            .key_prefix(format!("{prefix}session:"))
            .build()
            .unwrap();
        let manager = SessionManager::new(store, config).unwrap();
        let mut conns = node_connections(&url);
        let mut per_master: HashMap<String, usize> = HashMap::new();
        for visits in 0..30u64 {
            let mut session = manager.open(None);
            session.insert("visits", &visits).unwrap();
            let commit = session.commit().unwrap();
            let pair = commit.set_cookie().unwrap().split(';').next().unwrap();
            let key = format!("{prefix}session:{}", pair.trim_start_matches("session="));
            let master = owner(&mut conns, &key);
            let conn = &mut conns.iter_mut().find(|(n, _)| *n == master).unwrap().1;
            let stored: Vec<u8> = redis::cmd("GET").arg(&key).query(conn).unwrap();
            let mut expected = b"\x82\xaa_permanent\xc3\xa6visits".to_vec();
            expected.push(visits as u8);
            assert_eq!(stored, expected);
            let ttl: i64 = redis::cmd("TTL").arg(&key).query(conn).unwrap();
            assert!((31 * 86400 - 5..=31 * 86400).contains(&ttl), "ttl {ttl}");
            *per_master.entry(master).or_default() += 1;
        }
        assert_eq!(per_master.len(), 3, "{per_master:?}");
    });
}

/// The expiry is the given instant to the millisecond, on create and on touch.
#[test]
fn stores_exact_expiry() {
    with_cluster("expiry", |store, url, prefix| {
        let key = format!("{prefix}session:abc");
        let expires = SystemTime::now() + Duration::from_secs(3600);
        assert!(store.create(&key, b"v", expires).unwrap());
        let mut conns = node_connections(&url);
        let master = owner(&mut conns, &key);
        let conn = &mut conns.iter_mut().find(|(n, _)| *n == master).unwrap().1;
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(conn).unwrap();
        assert_eq!(at, ms(expires));
        let later = expires + Duration::from_secs(60);
        assert!(store.touch(&key, later).unwrap());
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(conn).unwrap();
        assert_eq!(at, ms(later));
    });
}

/// A user's set lives on the master that owns the user's slot and expires there with its last
/// record; a user whose records all lapsed has no key on any node.
#[test]
fn user_set_expires_with_its_last_record() {
    with_cluster("user_set", |store, url, prefix| {
        let (ada, bob) = (format!("{prefix}user:ada"), format!("{prefix}user:bob"));
        let last = SystemTime::now() + Duration::from_secs(3600);
        store.link_user(&ada, &format!("{prefix}a"), last).unwrap();
        let soon = SystemTime::now() + Duration::from_secs(60);
        store.link_user(&ada, &format!("{prefix}b"), soon).unwrap();
        let past = SystemTime::now() - Duration::from_secs(60);
        store.link_user(&bob, &format!("{prefix}c"), past).unwrap();
        let mut conns = node_connections(&url);
        let master = owner(&mut conns, &ada);
        let conn = &mut conns.iter_mut().find(|(n, _)| *n == master).unwrap().1;
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&ada).query(conn).unwrap();
        assert_eq!(at, ms(last), "the set expires with its last record");
        let master = owner(&mut conns, &bob);
        let conn = &mut conns.iter_mut().find(|(n, _)| *n == master).unwrap().1;
        let exists: i64 = redis::cmd("EXISTS").arg(&bob).query(conn).unwrap();
        assert_eq!(exists, 0, "only lapsed records: no set");
    });
}

/// The demo's URL form, with a single seed: the store finds the other nodes itself.
#[test]
fn one_seed_is_enough() {
    with_cluster("one_seed", |_, url, prefix| {
        let first = nodes(&url).remove(0);
        let store = RedisClusterStore::open(&format!("redis+cluster://{first}")).unwrap();
        let keys: Vec<String> = (0..20).map(|i| format!("{prefix}{i}")).collect();
        let expires = SystemTime::now() + Duration::from_secs(60);
        for key in &keys {
            assert!(store.create(key, key.as_bytes(), expires).unwrap());
        }
        for key in &keys {
            assert_eq!(store.load(key).unwrap().as_deref(), Some(key.as_bytes()));
        }
    });
}

/// Every kind of operation fails with a typed error, each within `limit`.
fn assert_fails_fast(store: &RedisClusterStore, limit: Duration, timeout: bool) {
    let expires = SystemTime::now() + Duration::from_secs(60);
    let ops: [NamedOp<'_>; 5] = [
        ("load", &|| store.load("k").map(drop)),
        ("create", &|| store.create("k", b"v", expires).map(drop)),
        ("save", &|| store.save("k", b"v", expires).map(drop)),
        ("touch", &|| store.touch("k", expires).map(drop)),
        ("delete", &|| store.delete("k")),
    ];
    assert_each_fails_within(&ops, limit, |err| match err {
        Error::Store(e) => match e.downcast_ref::<redis::RedisError>() {
            Some(e) => !timeout || e.is_timeout(),
            None => !timeout,
        },
        _ => false,
    });
}

/// Nothing listens on the seeds' ports: with the default settings every operation fails with
/// a typed error within the 1-second checkout timeout, without a panic or a hang.
#[test]
fn unreachable_cluster_is_a_typed_error_within_the_timeout() {
    let store = RedisClusterStore::builder()
        .url("redis+cluster://127.0.0.1:1,127.0.0.1:2")
        .startup_check(false)
        .build()
        .unwrap();
    assert_fails_fast(&store, Duration::from_millis(1500), false);
}

/// Against a seed that accepts connections and never answers, and a closed port: the start-up
/// check fails the build within twice the connect timeout plus the I/O timeout, and a store
/// built without it fails every operation within the checkout timeout.
#[test]
fn silent_or_absent_seeds_fail_within_the_timeouts() {
    let timeout = Duration::from_millis(200);
    let build = |addr, check| {
        RedisClusterStore::builder()
            .url(format!("redis+cluster://:hunter2@{addr}"))
            .connection(conformance::fault_settings(timeout))
            .startup_check(check)
            .build()
    };
    let margin = Duration::from_millis(150);
    conformance::every_wait_bounded(build, timeout * 3 + margin, timeout + margin);
}

/// The errors of a silent seed and a closed port name the seed and the cause, never the
/// password.
#[test]
fn unreachable_seeds_are_named_with_the_cause() {
    let build = |addr| {
        RedisClusterStore::builder()
            .url(format!("redis+cluster://:hunter2@{addr}"))
            .connection(conformance::fault_settings(Duration::from_millis(100)))
            .build()
    };
    conformance::unreachable_servers_are_named(
        build,
        "redis cluster",
        "no answer within the timeout",
    );
}

/// The password of the URL is in neither the builder's `Debug` nor the error of a build the
/// cluster refuses.
#[test]
fn the_password_is_never_printed() {
    let builder = RedisClusterStore::builder().url("redis+cluster://app:hunter2@127.0.0.1:1");
    let shown = format!("{builder:?}");
    assert!(shown.contains("app:***@127.0.0.1"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let err = builder.build().unwrap_err().to_string();
    assert_eq!(err, "redis cluster 127.0.0.1:1: connection refused");
    let Some(url) = url() else {
        return service_unavailable("the_password_is_never_printed");
    };
    let secret = url.replacen("redis+cluster://", "redis+cluster://nobody:hunter2@", 1);
    let err = RedisClusterStore::open(&secret)
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let invalid = RedisClusterStore::open("redis+cluster://:hunter2@a:1/0").map(drop);
    let err = invalid.unwrap_err().to_string();
    assert!(err.contains(":***@") && !err.contains("hunter2"), "{err}");
}

/// A one-node fake cluster that owns every slot and answers the handshake, `PING` and
/// `CLUSTER SLOTS`, but
/// never answers a data command: a master that stalls mid-request.
fn stalling_node() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let slots = format!("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{port}\r\n");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let slots = slots.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some(words) = read_resp_command(&mut reader) {
                    let reply = match words[0].as_str() {
                        "PING" => "+PONG\r\n".to_owned(),
                        "CLIENT" => "+OK\r\n".to_owned(), // CLIENT SETINFO at connect
                        "CLUSTER" => slots.clone(),
                        _ => continue, // stall: never answer
                    };
                    let _ = writer.write_all(reply.as_bytes());
                }
            });
        }
    });
    port
}

/// A node that stops answering: each operation fails with a typed timeout after
/// `(retries + 1) × io_timeout`, and the store keeps working for the next one.
#[test]
fn stalled_node_is_a_typed_timeout_within_retries_times_io_timeout() {
    let store = RedisClusterStore::builder()
        .url(format!("redis+cluster://127.0.0.1:{}", stalling_node()))
        .connection(ConnectionSettings {
            io_timeout: Duration::from_millis(200),
            max_connections: 1,
            ..ConnectionSettings::default()
        })
        .build()
        .unwrap();
    assert_fails_fast(&store, Duration::from_millis(700), true);
}
