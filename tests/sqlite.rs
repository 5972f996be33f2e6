//! The conformance suite and SqliteStore-specific behaviour, on file-backed databases.
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, params};
use server_session::store::conformance::{self, Guarded};
use server_session::store::{CleanupEvery, ConnectionSettings, SqliteStore, Store, Sweep};
use server_session::{
    Error, ErrorKind, conformance_tests, sweep_conformance_tests, user_index_conformance_tests,
};
use tempfile::TempDir;

/// A SqliteStore on a fresh database file, in a table named after the running test.
type FreshStore = Guarded<SqliteStore, TempDir>;

/// A valid table name derived from the test's thread name, e.g. `t_roundtrip`.
fn table_for_test() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("test");
    let tail = name.rsplit("::").next().unwrap_or(name);
    let cleaned: String = tail
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(50)
        .collect();
    format!("t_{cleaned}")
}

fn fresh() -> FreshStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::builder()
        .path(db_path(&dir))
        .table(table_for_test())
        .build()
        .unwrap();
    Guarded { store, guard: dir }
}

fn db_path(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("sessions.db")
}

conformance_tests!(Some(fresh()));
sweep_conformance_tests!(Some(fresh()));
user_index_conformance_tests!(Some(fresh()));

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn in_secs(secs: i64) -> SystemTime {
    let now = SystemTime::now();
    if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    }
}

fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// `(name, declared type, not null, primary key)` of each column, in order.
fn columns(conn: &Connection, table: &str) -> Vec<(String, String, bool, bool)> {
    let mut statement = conn
        .prepare(&format!("PRAGMA table_info(\"{table}\")"))
        .unwrap();
    let rows = statement.query_map([], |r| {
        Ok((
            r.get(1)?,
            r.get(2)?,
            r.get::<_, i64>(3)? != 0,
            r.get::<_, i64>(5)? != 0,
        ))
    });
    rows.unwrap().map(Result::unwrap).collect()
}

fn table_sql(conn: &Connection, name: &str) -> Option<String> {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .ok()
}

/// SQLAlchemy's own DDL for Flask-Session 0.8's model on SQLite.
const FLASK_DDL: &str = "CREATE TABLE sessions (\n\tid INTEGER NOT NULL, \n\tsession_id VARCHAR(255), \
    \n\tdata BLOB, \n\texpiry DATETIME, \n\tPRIMARY KEY (id), \n\tUNIQUE (session_id)\n)";

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

#[test]
fn created_table_matches_flask_session() {
    let store = fresh();
    let conn = raw(&db_path(&store.guard));
    let table = store.store.table().to_owned();
    let expected = [
        ("id", "INTEGER", true, true),
        ("session_id", "VARCHAR(255)", false, false),
        ("data", "BLOB", false, false),
        ("expiry", "DATETIME", false, false),
    ];
    let found = columns(&conn, &table);
    let found: Vec<_> = found
        .iter()
        .map(|(n, t, nn, pk)| (n.as_str(), t.as_str(), *nn, *pk))
        .collect();
    assert_eq!(found, expected);
    let unique: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM pragma_index_list('{table}') WHERE \"unique\" = 1 AND origin = 'u'"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unique, 1, "UNIQUE (session_id)");
    let index = table_sql(&conn, &format!("{table}_expiry_idx")).expect("expiry index");
    assert!(index.contains("(expiry)"), "{index}");
}

#[test]
fn expiry_is_stored_as_sqlalchemy_text() {
    let store = fresh();
    let expires = SystemTime::UNIX_EPOCH + Duration::from_micros(4_102_444_800_123_456);
    assert!(store.create("session:a", b"v", expires).unwrap());
    let conn = raw(&db_path(&store.guard));
    let sql = format!(
        "SELECT expiry, typeof(expiry), id FROM \"{}\"",
        store.store.table()
    );
    let (expiry, kind, id): (String, String, i64) = conn
        .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!(
        (expiry.as_str(), kind.as_str()),
        ("2100-01-01 00:00:00.123456", "text")
    );
    assert_eq!(
        id, 1,
        "id is assigned like SQLAlchemy's autoincrementing integer key"
    );
}

#[test]
fn reads_rows_written_in_flask_sessions_layout() {
    let dir = tempfile::tempdir().unwrap();
    let conn = raw(&db_path(&dir));
    conn.execute_batch(FLASK_DDL).unwrap();
    let insert = "INSERT INTO sessions (session_id, data, expiry) VALUES (?1, ?2, ?3)";
    let payload = b"\x81\xaa_permanent\xc3".to_vec();
    conn.execute(
        insert,
        params!["session:live", payload, "2999-12-31 23:59:59.000000"],
    )
    .unwrap();
    conn.execute(
        insert,
        params!["session:old", b"x".to_vec(), "2000-01-01 00:00:00.000000"],
    )
    .unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    assert_eq!(store.load("session:live").unwrap(), Some(payload.clone()));
    assert_eq!(store.load("session:old").unwrap(), None);
    assert!(store.touch("session:live", in_secs(60)).unwrap());
    assert!(store.create("session:old", b"new", in_secs(60)).unwrap());
    assert_eq!(store.load("session:old").unwrap(), Some(b"new".to_vec()));
    assert_eq!(
        table_sql(&conn, "sessions").unwrap(),
        FLASK_DDL,
        "table altered"
    );
    assert_eq!(
        table_sql(&conn, "sessions_expiry_idx"),
        None,
        "index added to an existing table"
    );
}

#[test]
fn null_expiry_rows_are_expired_and_swept() {
    let store = fresh();
    let conn = raw(&db_path(&store.guard));
    let table = store.store.table().to_owned();
    let insert =
        format!("INSERT INTO \"{table}\" (session_id, data, expiry) VALUES (?1, ?2, NULL)");
    for key in ["session:null1", "session:null2"] {
        conn.execute(&insert, params![key, b"data".to_vec()])
            .unwrap();
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
        store.load("session:null1").unwrap(),
        Some(b"fresh".to_vec())
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
}

#[test]
fn null_data_reads_as_missing() {
    let store = fresh();
    let conn = raw(&db_path(&store.guard));
    let sql = format!(
        "INSERT INTO \"{}\" (session_id, data, expiry) VALUES ('k', NULL, '2999-01-01 00:00:00.000000')",
        store.store.table()
    );
    conn.execute(&sql, []).unwrap();
    assert_eq!(store.load("k").unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn identifiers_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(64);
    for table in [
        "sessions; DROP TABLE x",
        "a\"b",
        "a'b",
        "",
        "9lives",
        "s.t",
        "a b",
        &long,
    ] {
        let built = SqliteStore::builder()
            .path(db_path(&dir))
            .table(table)
            .build();
        assert!(matches!(built, Err(Error::Config(_))), "{table:?} accepted");
    }
    let conn = raw(&db_path(&dir));
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(tables, 0, "a rejected name created something");
}

#[test]
fn missing_table_without_create_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let built = SqliteStore::builder()
        .path(db_path(&dir))
        .create_table(false)
        .build();
    assert!(matches!(built, Err(Error::Config(_))), "{built:?}");
}

#[test]
fn a_table_without_the_needed_columns_is_a_sqlite_error() {
    let dir = tempfile::tempdir().unwrap();
    raw(&db_path(&dir))
        .execute_batch("CREATE TABLE sessions (id INTEGER PRIMARY KEY, session_id TEXT UNIQUE)")
        .unwrap();
    let built = SqliteStore::open(db_path(&dir));
    assert!(matches!(built, Err(Error::Store(_))), "{built:?}");
}

#[test]
fn a_missing_directory_is_a_sqlite_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/s.db");
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Rejected, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("sqlite {}: ", path.display())),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("no such file or directory"),
        "{message}"
    );
    let built = SqliteStore::builder().build();
    assert!(matches!(built, Err(Error::Config(_))), "no path: {built:?}");
}

#[test]
fn uses_wal_and_an_existing_pool() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let conn = store.pool().get().unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        (mode.as_str(), sync),
        ("wal", 1),
        "WAL + synchronous=NORMAL"
    );
    drop(conn);
    let shared = SqliteStore::builder()
        .pool(store.pool().clone())
        .build()
        .unwrap();
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    assert_eq!(shared.load("k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn overlong_keys_are_rejected() {
    let store = fresh();
    let key = "k".repeat(256);
    let created = store.create(&key, b"v", in_secs(60));
    assert!(matches!(created, Err(Error::InvalidKey(_))), "{created:?}");
    assert!(store.create(&"k".repeat(255), b"v", in_secs(60)).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Busy databases, sweeping
// ---------------------------------------------------------------------------------------------

/// Holds the write lock on the database for `hold` from another connection.
fn lock_for(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let conn = raw(path);
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    })
}

/// While another process holds the write lock, reads are served at once and writes fail
/// within the busy timeout (no retry beyond it) as `Unavailable`, naming the file.
#[test]
fn a_foreign_write_lock_bounds_writes_and_never_blocks_reads() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Duration::from_millis(300);
    let store = SqliteStore::builder()
        .path(db_path(&dir))
        .connection(ConnectionSettings {
            io_timeout: busy,
            ..ConnectionSettings::default()
        })
        .build()
        .unwrap();
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    let holder = lock_for(&db_path(&dir), Duration::from_millis(1500));
    let start = Instant::now();
    assert_eq!(store.load("k").unwrap(), Some(b"v".to_vec()));
    assert!(
        start.elapsed() < busy,
        "a read waited {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let err = store.save("k", b"v2", in_secs(60)).unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= busy && took < busy + busy / 2,
        "the write took {took:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("sqlite {}: ", db_path(&dir).display())),
        "{message}"
    );
    assert!(message.contains("locked"), "{message}");
    holder.join().unwrap();
    assert!(store.save("k", b"v2", in_secs(60)).unwrap());
}

/// The database and the files SQLite adds beside it are readable by their owner only.
#[cfg(unix)]
#[test]
fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db_path(&dir).display());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path}");
    }
}

/// Paths that would give each pooled connection its own database are refused.
#[test]
fn empty_and_in_memory_paths_are_config_errors() {
    for path in ["", ":memory:", "file::memory:?cache=shared"] {
        let built = SqliteStore::open(path);
        assert!(
            matches!(built, Err(Error::Config(_))),
            "{path:?}: {built:?}"
        );
    }
}

/// Under sustained writes from several threads, the `-wal` file stays under its limit.
#[test]
fn the_wal_stays_bounded_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let value = vec![7u8; 4096];
    let wal = format!("{}-wal", db_path(&dir).display());
    let largest = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (store, value, wal, largest) = (&store, &value, &wal, &largest);
            scope.spawn(move || {
                for n in 0..4000 {
                    let key = format!("t{t}:{}", n % 500);
                    if !store.save(&key, value, in_secs(60)).unwrap() {
                        store.create(&key, value, in_secs(60)).unwrap();
                    }
                    store.load(&key).unwrap();
                    if n % 200 == 0 {
                        let size = std::fs::metadata(wal).map_or(0, |m| m.len());
                        largest.fetch_max(size, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let largest = largest.into_inner();
    assert!(largest > 0, "the load wrote through the WAL");
    println!("the -wal file peaked at {largest} bytes");
    assert!(
        largest <= SqliteStore::WAL_SIZE_LIMIT,
        "the -wal file reached {largest} bytes"
    );
}

#[test]
fn cleanup_every_n_writes_sweeps_the_table() {
    let inner = fresh();
    let store = CleanupEvery::new(inner, 3, 100).unwrap();
    store.create("old1", b"x", in_secs(-60)).unwrap();
    store.create("old2", b"x", in_secs(-60)).unwrap();
    let conn = raw(&db_path(&store.inner().guard));
    let sql = format!("SELECT count(*) FROM \"{}\"", store.inner().store.table());
    let rows = || conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(rows(), 2);
    store.create("live", b"y", in_secs(60)).unwrap();
    assert_eq!(rows(), 1, "the third write swept the expired rows");
    assert_eq!(store.load("live").unwrap(), Some(b"y".to_vec()));
}

#[test]
fn background_sweeper_removes_expired_rows() {
    let store = std::sync::Arc::new(fresh());
    store.create("old", b"x", in_secs(-60)).unwrap();
    store.create("live", b"y", in_secs(60)).unwrap();
    let sweeper =
        server_session::store::Sweeper::spawn(store.clone(), Duration::from_millis(20), 10)
            .unwrap();
    let conn = raw(&db_path(&store.guard));
    let sql = format!("SELECT count(*) FROM \"{}\"", store.store.table());
    let start = Instant::now();
    while conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).unwrap() != 1 {
        assert!(start.elapsed() < Duration::from_secs(5), "never swept");
        std::thread::sleep(Duration::from_millis(10));
    }
    sweeper.stop();
    assert_eq!(store.load("live").unwrap(), Some(b"y".to_vec()));
}

#[test]
fn expiry_index_can_be_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::builder()
        .path(db_path(&dir))
        .expiry_index(false)
        .build()
        .unwrap();
    let conn = raw(&db_path(&dir));
    assert!(table_sql(&conn, "sessions").is_some());
    assert_eq!(table_sql(&conn, "sessions_expiry_idx"), None);
    assert!(store.create("old", b"x", in_secs(-60)).unwrap());
    assert_eq!(
        store.sweep(10).unwrap(),
        1,
        "sweeping works without the index"
    );
}

/// Two processes with a SqliteStore each on one database file merge the overlapping requests
/// of one session: no increment and no key is lost across processes.
#[test]
fn two_processes_merge_on_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let open = |path: &str| SqliteStore::open(path).unwrap();
    let location = db_path(&dir);
    conformance::two_processes_merge(
        "two_processes_merge_on_one_database",
        location.to_str().unwrap(),
        open,
    );
}
