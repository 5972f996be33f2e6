//! The full request cycle on the PostgresStore next to the raw floor, in the same run.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! SELECT (load) and one UPDATE (save). Floor: the same SELECT and UPDATE issued directly with
//! the `postgres` client on one connection with prepared statements (synchronous_commit as the
//! server has it). Needs `SERVER_SESSION_POSTGRES_URL`; run pinned to one CPU:
//! `taskset -c 0 cargo bench -p server-session-benches --features postgres --bench postgres`.

mod support;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use postgres::{Client, NoTls, Statement};
use server_session::store::PostgresStore;
use server_session::SessionManager;
use support::merging::{bench_merging, MergeBench};
use support::{cycle, paired_rounds, server_url, signed_config, stored_session};

const URL_ENV: &str = "SERVER_SESSION_POSTGRES_URL";
const TABLE: &str = "bench_sessions";

fn request_cycle(c: &mut Criterion) {
    let Some(url) = server_url(URL_ENV, "postgres") else {
        return;
    };
    let mut admin = Client::connect(&url, NoTls).expect("connect");
    admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .expect("drop");
    let store = PostgresStore::builder()
        .url(&url)
        .table(TABLE)
        .build()
        .expect("store");
    let manager = SessionManager::new(store, signed_config("session:")).unwrap();
    let (header, _) = stored_session(&manager, 200);
    let mut group = c.benchmark_group("postgres");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));
    group.bench_function(
        "request cycle: open, get, insert, commit (PostgresStore)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    let merging = MergeBench::new("postgres", "PostgresStore", 40, 50);
    bench_merging(&mut group, &manager, &header, &merging);
    let mut raw = Raw::new(&url);
    group.bench_function(
        "raw floor: SELECT + UPDATE (postgres client, prepared)",
        |b| b.iter(|| raw.cycle()),
    );
    group.finish();
    // Commit latency (an fsync) swings tenfold on a shared disk, so two benchmarks measured
    // seconds apart can disagree: the paired rounds see the same disk.
    paired_rounds(
        "postgres",
        40,
        50,
        || cycle(&manager, &header),
        || raw.cycle(),
    );
    drop(manager);
    admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .expect("drop");
}

struct Raw {
    client: Client,
    select: Statement,
    update: Statement,
    value: Vec<u8>,
}

impl Raw {
    fn new(url: &str) -> Self {
        let mut client = Client::connect(url, NoTls).expect("connect");
        let value = vec![7u8; 230];
        let far = SystemTime::now() + Duration::from_secs(86_400);
        let insert =
            format!("INSERT INTO {TABLE} (session_id, data, expiry) VALUES ('raw', $1, $2)");
        client.execute(&insert, &[&value, &far]).expect("insert");
        let select = format!("SELECT data FROM {TABLE} WHERE session_id = $1 AND expiry > $2");
        let update = format!(
            "UPDATE {TABLE} SET data = $2, expiry = $3 WHERE session_id = $1 AND expiry > $4"
        );
        let select = client.prepare(&select).expect("prepare");
        let update = client.prepare(&update).expect("prepare");
        Self {
            client,
            select,
            update,
            value,
        }
    }

    fn cycle(&mut self) {
        let now = SystemTime::now();
        let row = self
            .client
            .query_one(&self.select, &[&"raw", &now])
            .expect("select");
        black_box(row.get::<_, Vec<u8>>(0));
        let far = now + Duration::from_secs(86_400);
        let params: [&(dyn postgres::types::ToSql + Sync); 4] = [&"raw", &self.value, &far, &now];
        let updated = self.client.execute(&self.update, &params).expect("update");
        assert_eq!(updated, 1);
    }
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
