//! The full request cycle on the SqliteStore next to the raw floor, in the same run.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! SELECT (load) and one UPDATE of data and expiry (save). Floor: the same SELECT and UPDATE
//! issued directly with rusqlite on one connection with cached statements, on the same table
//! layout, with the same durability (WAL, synchronous=NORMAL). The floor's UPDATE writes a new
//! expiry each time, as every request that saves a session must; the constant-expiry variant
//! is shown for reference (SQLite then skips the expiry index update). Both are measured with
//! and without the expiry index. Run pinned to one CPU:
//! `taskset -c 0 cargo bench -p server-session-benches --features sqlite --bench sqlite`.

mod support;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rusqlite::{params, Connection};
use server_session::store::SqliteStore;
use server_session::SessionManager;
use support::merging::{bench_merging, MergeBench};
use support::{cycle, signed_config, stored_session, Group};

const FAR: &str = "2999-01-01 00:00:00.000000";

fn bench_cycle(group: &mut Group<'_>, path: &Path, index: bool) {
    let store = SqliteStore::builder()
        .path(path)
        .expiry_index(index)
        .build()
        .expect("store");
    let manager = SessionManager::new(store, signed_config("session:")).unwrap();
    let (header, _) = stored_session(&manager, 200);
    let name =
        format!("request cycle: open, get, insert, commit (SqliteStore, expiry index {index})");
    group.bench_function(name, |b| b.iter(|| cycle(&manager, &header)));
    let label = format!("SqliteStore, expiry index {index}");
    let merging = MergeBench::new("sqlite", &label, 60, 300);
    bench_merging(group, &manager, &header, &merging);
}

fn bench_floor(group: &mut Group<'_>, path: &Path, index: bool, fresh_expiry: bool) {
    let conn = raw_connection(path);
    let value = vec![7u8; 230];
    conn.execute(
        "INSERT INTO sessions (session_id, data, expiry) VALUES ('raw', ?1, ?2)",
        params![value, FAR],
    )
    .expect("insert");
    let expiry = if fresh_expiry { "new" } else { "constant" };
    let name =
        format!("raw floor: SELECT + UPDATE, {expiry} expiry (rusqlite, expiry index {index})");
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            let expiry = if fresh_expiry {
                format!(
                    "2999-01-01 00:00:{:02}.{:06}",
                    n / 1_000_000 % 60,
                    n % 1_000_000
                )
            } else {
                FAR.to_owned()
            };
            raw_cycle(&conn, &value, &expiry)
        })
    });
    conn.execute("DELETE FROM sessions WHERE session_id = 'raw'", [])
        .expect("delete");
}

fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    conn
}

fn raw_cycle(conn: &Connection, value: &[u8], expiry: &str) {
    let now = "2026-01-01 00:00:00.000000";
    let data: Vec<u8> = conn
        .prepare_cached("SELECT data FROM sessions WHERE session_id = ?1 AND expiry > ?2")
        .expect("prepare")
        .query_row(params!["raw", now], |r| r.get(0))
        .expect("select");
    black_box(data);
    let updated = conn
        .prepare_cached(
            "UPDATE sessions SET data = ?2, expiry = ?3 WHERE session_id = ?1 AND expiry > ?4",
        )
        .expect("prepare")
        .execute(params!["raw", value, expiry, now])
        .expect("update");
    assert_eq!(updated, 1);
}

fn request_cycle(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("sqlite");
    for index in [true, false] {
        let path = dir.path().join(format!("bench-index-{index}.db"));
        bench_cycle(&mut group, &path, index);
        bench_floor(&mut group, &path, index, true);
        if index {
            bench_floor(&mut group, &path, index, false);
        }
    }
    group.finish();
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
