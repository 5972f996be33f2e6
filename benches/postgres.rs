//! The full request cycle on the PostgresStore next to the raw floor, in the same run.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! SELECT (load) and one UPDATE (save). Floor: the same SELECT and UPDATE issued directly with
//! the `postgres` client on one connection with prepared statements (synchronous_commit as the
//! server has it). Needs `SERVER_SESSION_POSTGRES_URL`; run pinned to one CPU:
//! `taskset -c 0 cargo bench --features postgres --bench postgres`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use postgres::{Client, NoTls, Statement};
use server_session::store::PostgresStore;
use server_session::{Config, SessionManager};

const URL_ENV: &str = "SERVER_SESSION_POSTGRES_URL";
const TABLE: &str = "bench_sessions";

fn signed_config() -> Config {
    Config::builder()
        .use_signer(true)
        .secret_key("bench-secret-key")
        .build()
        .expect("valid config")
}

/// A stored session with `visits` and a 200-byte `note`; the `Cookie` header that names it.
fn stored_session(manager: &SessionManager<PostgresStore>) -> String {
    let mut session = manager.open(None);
    session.insert("visits", &0u64).expect("insert");
    session.insert("note", &"x".repeat(200)).expect("insert");
    let commit = session.commit().expect("commit");
    let set_cookie = commit.set_cookie().expect("cookie");
    set_cookie.split(';').next().expect("pair").to_owned()
}

fn request_cycle(c: &mut Criterion) {
    let Ok(url) = std::env::var(URL_ENV) else {
        println!("SKIP postgres benches: {URL_ENV} is not set");
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
    let manager = SessionManager::new(store, signed_config());
    let header = stored_session(&manager);
    let mut group = c.benchmark_group("postgres");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));
    group.bench_function(
        "request cycle: open, get, insert, commit (PostgresStore)",
        |b| {
            b.iter(|| {
                let mut session = manager.open(Some(black_box(&header)));
                let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
                session.insert("visits", &(visits + 1)).expect("insert");
                black_box(session.commit().expect("commit"));
            })
        },
    );
    let mut raw = Raw::new(&url);
    group.bench_function(
        "raw floor: SELECT + UPDATE (postgres client, prepared)",
        |b| b.iter(|| raw.cycle()),
    );
    group.finish();
    paired_rounds(&manager, &header, &mut raw);
    drop(manager);
    admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))
        .expect("drop");
}

fn cycle(manager: &SessionManager<PostgresStore>, header: &str) {
    let mut session = manager.open(Some(black_box(header)));
    let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
    session.insert("visits", &(visits + 1)).expect("insert");
    black_box(session.commit().expect("commit"));
}

/// Commit latency (an fsync) swings tenfold on a shared disk, so two benchmarks measured
/// seconds apart can disagree. This alternates short rounds of the cycle and of the floor and
/// prints the median of the paired ratios and the ratio of the best rounds.
fn paired_rounds(manager: &SessionManager<PostgresStore>, header: &str, raw: &mut Raw) {
    const ROUNDS: usize = 40;
    const PER_ROUND: u32 = 50;
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        (0..PER_ROUND).for_each(|_| f());
        start.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND)
    };
    let (mut cycles, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        cycles.push(time(&mut || cycle(manager, header)));
        floors.push(time(&mut || raw.cycle()));
    }
    let mut ratios: Vec<f64> = cycles.iter().zip(&floors).map(|(c, f)| c / f).collect();
    ratios.sort_by(f64::total_cmp);
    let best = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "postgres paired rounds: best cycle {:.1} us, best floor {:.1} us, ratio of bests {:.3}, \
         median paired ratio {:.3}",
        best(&cycles),
        best(&floors),
        best(&cycles) / best(&floors),
        ratios[ROUNDS / 2]
    );
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
