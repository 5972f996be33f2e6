//! The conformance suite and PostgresStore-specific behaviour, against the real server named by
//! `SERVER_SESSION_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//!
//! Each test works in its own table (named after the test, plus a random suffix) and drops it
//! at the end. Without the variable every test is skipped, or fails under
//! `SERVER_SESSION_REQUIRE_SERVICES=1`.
#![cfg(feature = "postgres")]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use server_session::store::conformance::{self, Guarded, service_unavailable};
use server_session::store::{CleanupEvery, ConnectionSettings, PostgresStore, Store, Sweep};
use server_session::{
    Error, ErrorKind, conformance_tests, sweep_conformance_tests, user_index_conformance_tests,
};

const URL_ENV: &str = "SERVER_SESSION_POSTGRES_URL";

fn url() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.is_empty())
}

/// A PostgresStore on its own table, dropped (with its schema, if any) when this is dropped.
type FreshStore = Guarded<PostgresStore, DropOnExit>;

/// Drops the objects a test created, e.g. `TABLE "t"` or `SCHEMA "s" CASCADE`.
struct DropOnExit {
    url: String,
    drops: Vec<String>,
}

fn guarded(store: PostgresStore, url: String, drops: Vec<String>) -> FreshStore {
    Guarded {
        store,
        guard: DropOnExit { url, drops },
    }
}

impl Drop for DropOnExit {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            for object in &self.drops {
                let _ = client.batch_execute(&format!("DROP {object}"));
            }
        }
    }
}

/// What to drop after a test on `table`: it and the user index table beside it.
fn table_drops(table: &str) -> Vec<String> {
    vec![
        format!("TABLE IF EXISTS \"{table}\""),
        format!("TABLE IF EXISTS \"{table}_users\""),
    ]
}

/// A unique, valid identifier derived from the test's name: `t_<test>_<8 hex digits>`.
fn unique_name(prefix: &str) -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("test");
    let tail = name.rsplit("::").next().unwrap_or(name);
    let cleaned: String = tail
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    format!("{prefix}_{cleaned}_{:08x}", getrandom::u32().unwrap())
}

fn fresh() -> Option<FreshStore> {
    let url = url()?;
    let table = unique_name("t");
    let store = PostgresStore::builder()
        .url(&url)
        .table(&table)
        .build()
        .unwrap();
    let drops = table_drops(&table);
    Some(guarded(store, url, drops))
}

conformance_tests!(fresh());
sweep_conformance_tests!(fresh());
user_index_conformance_tests!(fresh());

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `test` with the server's URL, or reports the service as unavailable.
fn with_server(test: &str, run: impl FnOnce(String)) {
    match url() {
        Some(url) => run(url),
        None => service_unavailable(test),
    }
}

/// Runs `test` on a fresh store, or reports the service as unavailable.
fn with_store(test: &str, run: impl FnOnce(&FreshStore, &mut postgres::Client)) {
    match fresh() {
        Some(store) => {
            let mut client = postgres::Client::connect(&store.guard.url, postgres::NoTls).unwrap();
            run(&store, &mut client);
        }
        None => service_unavailable(test),
    }
}

fn in_secs(secs: i64) -> SystemTime {
    let now = SystemTime::now();
    if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    }
}

/// `(column, data type, max length, nullable)` of `table`, in order.
fn columns(
    client: &mut postgres::Client,
    table: &str,
) -> Vec<(String, String, Option<i32>, String)> {
    let sql = "SELECT column_name::text, data_type::text, character_maximum_length, is_nullable::text \
               FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position";
    let rows = client.query(sql, &[&table]).unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn index_definitions(client: &mut postgres::Client, table: &str) -> Vec<String> {
    let rows = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
            &[&table],
        )
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn expected_columns() -> Vec<(String, String, Option<i32>, String)> {
    [
        ("id", "integer", None, "NO"),
        ("session_id", "character varying", Some(255), "YES"),
        ("data", "bytea", None, "YES"),
        ("expiry", "timestamp without time zone", None, "YES"),
    ]
    .into_iter()
    .map(|(n, t, l, null)| (n.to_owned(), t.to_owned(), l, null.to_owned()))
    .collect()
}

/// SQLAlchemy's own DDL for Flask-Session 0.8's model on PostgreSQL.
fn flask_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (id SERIAL NOT NULL, session_id VARCHAR(255), data BYTEA, \
         expiry TIMESTAMP WITHOUT TIME ZONE, PRIMARY KEY (id), UNIQUE (session_id))"
    )
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

#[test]
fn created_table_matches_flask_session() {
    with_store("created_table_matches_flask_session", |store, client| {
        let table = store.store.table();
        assert_eq!(columns(client, table), expected_columns());
        let indexes = index_definitions(client, table);
        assert_eq!(indexes.len(), 3, "{indexes:?}");
        assert!(
            indexes
                .iter()
                .any(|d| d.contains("UNIQUE INDEX") && d.contains("(session_id)"))
        );
        assert!(
            indexes
                .iter()
                .any(|d| d.contains(&format!("{table}_expiry_idx")) && d.contains("(expiry)"))
        );
        let default: String = client
            .query_one(
                "SELECT column_default FROM information_schema.columns WHERE table_name = $1 AND column_name = 'id'",
                &[&table],
            )
            .unwrap()
            .get(0);
        assert!(default.starts_with("nextval("), "id is a SERIAL: {default}");
    });
}

#[test]
fn expiry_is_naive_utc() {
    with_store("expiry_is_naive_utc", |store, client| {
        let micros = 4_102_444_800_123_456u64; // 2100-01-01 00:00:00.123456 UTC
        let expires = UNIX_EPOCH + Duration::from_micros(micros);
        assert!(store.create("session:a", b"v", expires).unwrap());
        let sql = format!("SELECT expiry::text FROM \"{}\"", store.store.table());
        let text: String = client.query_one(&sql, &[]).unwrap().get(0);
        assert_eq!(text, "2100-01-01 00:00:00.123456");
    });
}

#[test]
fn reads_rows_written_in_flask_sessions_layout() {
    with_server("reads_rows_written_in_flask_sessions_layout", |url| {
        let table = unique_name("flask");
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.batch_execute(&flask_ddl(&table)).unwrap();
        let insert = format!(
            "INSERT INTO {table} (session_id, data, expiry) VALUES \
             ('session:live', '\\x81aa5f7065726d616e656e74c3', (now() AT TIME ZONE 'utc') + interval '1 day'), \
             ('session:old', '\\x00', (now() AT TIME ZONE 'utc') - interval '1 second')"
        );
        client.batch_execute(&insert).unwrap();
        let store = PostgresStore::builder()
            .url(&url)
            .table(&table)
            .build()
            .unwrap();
        let fresh = guarded(store, url, table_drops(&table));
        let payload = b"\x81\xaa_permanent\xc3".to_vec();
        assert_eq!(fresh.load("session:live").unwrap(), Some(payload));
        assert_eq!(fresh.load("session:old").unwrap(), None);
        assert!(fresh.touch("session:live", in_secs(60)).unwrap());
        assert!(fresh.create("session:old", b"new", in_secs(60)).unwrap());
        assert_eq!(fresh.load("session:old").unwrap(), Some(b"new".to_vec()));
        assert_eq!(
            index_definitions(&mut client, &table).len(),
            2,
            "an index was added"
        );
        assert_eq!(columns(&mut client, &table), expected_columns());
    });
}

#[test]
fn null_expiry_rows_are_expired_and_swept() {
    with_store("null_expiry_rows_are_expired_and_swept", |store, client| {
        let insert = format!(
            "INSERT INTO \"{}\" (session_id, data, expiry) VALUES ($1, '\\x01', NULL)",
            store.store.table()
        );
        for key in ["session:null1", "session:null2"] {
            client.execute(&insert, &[&key]).unwrap();
        }
        assert_eq!(store.load("session:null1").unwrap(), None);
        assert_eq!(
            store.load_and_touch("session:null1", in_secs(60)).unwrap(),
            None
        );
        assert!(!store.touch("session:null1", in_secs(60)).unwrap());
        assert!(!store.save("session:null1", b"late", in_secs(60)).unwrap());
        assert!(
            store
                .create("session:null1", b"fresh", in_secs(60))
                .unwrap()
        );
        assert_eq!(
            store.sweep(100).unwrap(),
            1,
            "the remaining NULL-expiry row is swept"
        );
        assert_eq!(
            store.load("session:null1").unwrap(),
            Some(b"fresh".to_vec())
        );
    });
}

#[test]
fn schema_and_sequence() {
    with_server("schema_and_sequence", |url| {
        let (schema, table, sequence) = (unique_name("s"), unique_name("t"), unique_name("q"));
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .unwrap();
        let drops = vec![
            format!("SCHEMA \"{schema}\" CASCADE"),
            format!("SEQUENCE \"{sequence}\""),
        ];
        let store = PostgresStore::builder()
            .url(&url)
            .schema(&schema)
            .table(&table)
            .sequence(&sequence)
            .build()
            .unwrap();
        let fresh = guarded(store, url, drops);
        assert_eq!(fresh.store.schema(), Some(schema.as_str()));
        assert!(fresh.create("a", b"1", in_secs(60)).unwrap());
        assert!(fresh.create("b", b"2", in_secs(60)).unwrap());
        let ids = format!("SELECT id FROM \"{schema}\".\"{table}\" ORDER BY id");
        let ids: Vec<i32> = client
            .query(&ids, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let last: i64 = client
            .query_one(&format!("SELECT last_value FROM \"{sequence}\""), &[])
            .unwrap()
            .get(0);
        assert_eq!(ids, [1, 2]);
        assert_eq!(last, 2, "ids come from the configured sequence");
        assert_eq!(fresh.load("b").unwrap(), Some(b"2".to_vec()));
    });
}

// ---------------------------------------------------------------------------------------------
// Configuration and failures
// ---------------------------------------------------------------------------------------------

#[test]
fn identifiers_are_validated_before_connecting() {
    let bad = ["sessions; DROP TABLE x", "a\"b", "a'b", "", "9lives", "s.t"];
    for name in bad {
        let url = "postgres://nobody@127.0.0.1:1/none";
        let built = [
            PostgresStore::builder().url(url).table(name).build(),
            PostgresStore::builder().url(url).schema(name).build(),
            PostgresStore::builder().url(url).sequence(name).build(),
        ];
        for result in built {
            assert!(
                matches!(result, Err(Error::Config(_))),
                "{name:?}: {result:?}"
            );
        }
    }
}

#[test]
fn missing_table_without_create_is_a_config_error() {
    with_server("missing_table_without_create_is_a_config_error", |url| {
        let built = PostgresStore::builder()
            .url(url)
            .table(unique_name("missing"))
            .create_table(false)
            .build();
        assert!(matches!(built, Err(Error::Config(_))), "{built:?}");
    });
}

/// Builds against a silent server and a closed port fail within the connect timeout, and
/// every operation of a store built without the start-up check within the I/O or checkout
/// timeout: each with `ErrorKind::Unavailable`.
#[test]
fn silent_or_absent_servers_fail_within_the_timeouts() {
    let timeout = Duration::from_millis(200);
    let build = |addr, check| {
        PostgresStore::builder()
            .url(format!("postgres://app:hunter2@{addr}/app"))
            .connection(conformance::fault_settings(timeout))
            .startup_check(check)
            .build()
    };
    let limit = timeout + Duration::from_millis(150);
    conformance::every_wait_bounded(build, limit, limit);
}

/// The errors of a silent server and a closed port name the server and the cause.
#[test]
fn unreachable_servers_are_named_with_the_cause() {
    let build = |addr| {
        PostgresStore::builder()
            .url(format!("postgres://app:hunter2@{addr}/app"))
            .connection(ConnectionSettings {
                connect_timeout: Duration::from_millis(100),
                ..ConnectionSettings::default()
            })
            .build()
    };
    let silent = "no answer within the connect timeout (100ms)";
    conformance::unreachable_servers_are_named(build, "postgres", silent);
}

/// A connection that stops answering mid-way fails the operation within the I/O timeout and
/// is discarded: a later operation does not wait on it again.
#[test]
fn a_server_that_stops_answering_fails_within_the_io_timeout() {
    with_server(
        "a_server_that_stops_answering_fails_within_the_io_timeout",
        |url| {
            let table = unique_name("t");
            let store = PostgresStore::builder()
                .url(&url)
                .table(&table)
                .connection(ConnectionSettings {
                    io_timeout: Duration::from_millis(300),
                    max_connections: 1,
                    ..ConnectionSettings::default()
                })
                .statement_timeout(None)
                .build()
                .unwrap();
            let fresh = guarded(store, url, table_drops(&table));
            let start = Instant::now();
            let mut conn = fresh.store.pool().get().unwrap();
            let err = conn.batch_execute("SELECT pg_sleep(5)").unwrap_err();
            let elapsed = start.elapsed();
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.to_string().contains("I/O timeout"), "{err}");
            assert!(elapsed < Duration::from_millis(600), "took {elapsed:?}");
            drop(conn);
            assert!(
                fresh.create("k", b"v", in_secs(60)).unwrap(),
                "a fresh connection"
            );
        },
    );
}

/// Zero and absurd settings are configuration errors, never a panic (r2d2 asserts on a zero
/// connection timeout or pool size).
#[test]
fn zero_or_absurd_settings_are_config_errors() {
    let url = "postgres://app@127.0.0.1:1/app";
    let zero = ConnectionSettings::default();
    let bad = [
        PostgresStore::builder()
            .url(url)
            .connection(ConnectionSettings {
                connect_timeout: Duration::ZERO,
                ..zero
            })
            .build(),
        PostgresStore::builder()
            .url(url)
            .connection(ConnectionSettings {
                max_connections: 0,
                ..zero
            })
            .build(),
        PostgresStore::builder()
            .url(url)
            .connection(ConnectionSettings {
                checkout_timeout: Duration::ZERO,
                ..zero
            })
            .build(),
        PostgresStore::builder()
            .url(url)
            .connection(ConnectionSettings {
                io_timeout: Duration::from_secs(3600),
                ..zero
            })
            .build(),
        PostgresStore::builder()
            .url(url)
            .statement_timeout(Some(Duration::ZERO))
            .build(),
        PostgresStore::builder()
            .url("postgres://app:hunter2@h:port/x")
            .build(),
    ];
    for built in bad {
        match built {
            Err(Error::Config(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
            other => panic!("expected a configuration error: {other:?}"),
        }
    }
}

/// The password of the URL is in neither the builder's `Debug` nor the error of a build
/// the server refuses.
#[test]
fn the_password_is_never_printed() {
    with_server("the_password_is_never_printed", |url| {
        let config: postgres::Config = url.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("a TCP host expected: {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let secret = format!("postgres://no_such_role:hunter2@{host}:{port}/no_such_db");
        let builder = PostgresStore::builder().url(&secret);
        let shown = format!("{builder:?}");
        assert!(shown.contains("no_such_role:***@"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let err = builder.build().unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("postgres {host}:{port}: ")),
            "{message}"
        );
        assert!(message.contains("no_such_role"), "{message}");
        assert_eq!(err.kind(), ErrorKind::Rejected, "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    });
}

#[test]
fn overlong_keys_are_rejected() {
    with_store("overlong_keys_are_rejected", |store, _| {
        let created = store.create(&"k".repeat(256), b"v", in_secs(60));
        assert!(matches!(created, Err(Error::InvalidKey(_))), "{created:?}");
        assert!(store.create(&"k".repeat(255), b"v", in_secs(60)).unwrap());
    });
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[test]
fn dropped_connections_are_retried() {
    with_server("dropped_connections_are_retried", |url| {
        let app = unique_name("app");
        let app_url = format!("{url}?application_name={app}");
        let table = unique_name("t");
        let store = PostgresStore::builder()
            .url(&app_url)
            .table(&table)
            .connection(ConnectionSettings {
                max_connections: 2,
                ..ConnectionSettings::default()
            })
            .build()
            .unwrap();
        let fresh = guarded(store, url.clone(), table_drops(&table));
        assert!(fresh.create("k", b"v", in_secs(60)).unwrap());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let killed = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .unwrap();
        assert!(!killed.is_empty(), "no pooled connection to terminate");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            fresh.load("k").unwrap(),
            Some(b"v".to_vec()),
            "retried on a fresh connection"
        );
        assert!(fresh.save("k", b"v2", in_secs(60)).unwrap());
    });
}

#[test]
fn statements_are_prepared_once_per_connection() {
    with_server("statements_are_prepared_once_per_connection", |url| {
        let table = unique_name("t");
        let store = PostgresStore::builder()
            .url(&url)
            .table(&table)
            .connection(ConnectionSettings {
                max_connections: 1,
                ..ConnectionSettings::default()
            })
            .build()
            .unwrap();
        let fresh = guarded(store, url, table_drops(&table));
        let prepared = || -> i64 {
            let mut conn = fresh.store.pool().get().unwrap();
            let sql = "SELECT count(*) FROM pg_prepared_statements";
            conn.query(sql, &[]).unwrap()[0].get(0)
        };
        for _ in 0..3 {
            fresh.create("k", b"v", in_secs(60)).unwrap();
            fresh.load("k").unwrap();
            fresh.save("k", b"v", in_secs(60)).unwrap();
            fresh.load_and_touch("k", in_secs(60)).unwrap();
        }
        let after_first_rounds = prepared();
        for _ in 0..5 {
            fresh.load("k").unwrap();
            fresh.touch("k", in_secs(60)).unwrap();
        }
        assert!(after_first_rounds >= 4, "{after_first_rounds}");
        assert_eq!(
            prepared(),
            after_first_rounds + 1,
            "only touch was newly prepared"
        );
    });
}

#[test]
fn cleanup_every_n_writes_sweeps_the_table() {
    let Some(fresh) = fresh() else {
        return service_unavailable("cleanup_every_n_writes_sweeps_the_table");
    };
    let mut client = postgres::Client::connect(&fresh.guard.url, postgres::NoTls).unwrap();
    let sql = format!("SELECT count(*) FROM \"{}\"", fresh.store.table());
    let store = CleanupEvery::new(fresh, 3, 100).unwrap();
    store.create("old1", b"x", in_secs(-60)).unwrap();
    store.create("old2", b"x", in_secs(-60)).unwrap();
    assert_eq!(client.query_one(&sql, &[]).unwrap().get::<_, i64>(0), 2);
    store.create("live", b"y", in_secs(60)).unwrap();
    assert_eq!(
        client.query_one(&sql, &[]).unwrap().get::<_, i64>(0),
        1,
        "swept on the 3rd write"
    );
}

#[test]
fn expiry_index_can_be_left_out() {
    with_server("expiry_index_can_be_left_out", |url| {
        let table = unique_name("t");
        let store = PostgresStore::builder()
            .url(&url)
            .table(&table)
            .expiry_index(false)
            .build()
            .unwrap();
        let fresh = guarded(store, url, table_drops(&table));
        let mut client = postgres::Client::connect(&fresh.guard.url, postgres::NoTls).unwrap();
        assert_eq!(
            index_definitions(&mut client, &table).len(),
            2,
            "primary key + unique only"
        );
        assert!(fresh.create("old", b"x", in_secs(-60)).unwrap());
        assert_eq!(
            fresh.sweep(10).unwrap(),
            1,
            "sweeping works without the index"
        );
    });
}
