//! The full request cycle on the RedisClusterStore next to the raw cluster floor, in the same run.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! `GET` (load) and one `SET key value XX PXAT ms` (save), both sent to the master that owns the
//! session's slot. Floor: the same two commands on the same key length through one
//! `redis::cluster::ClusterConnection` (the `redis` crate's own cluster client, `TCP_NODELAY`),
//! with a value of the same length. Needs `SERVER_SESSION_REDIS_CLUSTER_URL` (the cluster of
//! `scripts/cluster.sh`); pin the nodes and the benchmark to one CPU:
//! `for p in $(pgrep -f 'redis-server .*:700[0-5]'); do taskset -apc 0 $p; done`, then
//! `taskset -c 0 cargo bench --features redis-cluster --bench redis_cluster`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::io::tcp::TcpSettings;
use server_session::store::{RedisClusterStore, Store};
use server_session::{Config, SessionManager};

const URL_ENV: &str = "SERVER_SESSION_REDIS_CLUSTER_URL";

type Manager = SessionManager<RedisClusterStore>;

fn config() -> Config {
    Config::builder()
        .use_signer(true)
        .secret_key("bench-secret-key")
        .key_prefix("bench:session:")
        .build()
        .expect("valid config")
}

/// A stored session with `visits` and a 180-character `note` (about 200 bytes of MessagePack);
/// returns the `Cookie` header that names it and the stored key.
fn stored_session(manager: &Manager) -> (String, String) {
    let mut session = manager.open(None);
    session.insert("visits", &0u64).expect("insert");
    session.insert("note", &"x".repeat(180)).expect("insert");
    let commit = session.commit().expect("commit");
    let pair = commit
        .set_cookie()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair");
    let signed = pair.trim_start_matches("session=");
    let id = signed.rsplit_once('.').expect("signed").0;
    (pair.to_owned(), format!("bench:session:{id}"))
}

fn cycle(manager: &Manager, header: &str) {
    let mut session = manager.open(Some(black_box(header)));
    let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
    session.insert("visits", &(visits + 1)).expect("insert");
    black_box(session.commit().expect("commit"));
}

/// The same `GET` + `SET XX PXAT` on one `ClusterConnection`, on a key of the same length.
struct Raw {
    conn: ClusterConnection,
    key: String,
    value: Vec<u8>,
}

impl Raw {
    fn new(url: &str, key: &str, value: Vec<u8>) -> Self {
        let seeds: Vec<String> = url
            .trim_start_matches("redis+cluster://")
            .split(',')
            .map(|node| format!("redis://{node}"))
            .collect();
        let client = ClusterClient::builder(seeds)
            .tcp_settings(TcpSettings::default().set_nodelay(true))
            .build()
            .expect("cluster client");
        let mut conn = client.get_connection().expect("connect");
        let key = format!("{key}:raw");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query(&mut conn)
            .expect("set");
        Self { conn, key, value }
    }

    fn cycle(&mut self) {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.key)
            .query(&mut self.conn)
            .expect("get");
        black_box(value);
        let expires = SystemTime::now() + Duration::from_secs(31 * 86_400);
        let ms = expires
            .duration_since(UNIX_EPOCH)
            .expect("after epoch")
            .as_millis() as u64;
        let reply: redis::Value = redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.value)
            .arg("XX")
            .arg("PXAT")
            .arg(ms)
            .query(&mut self.conn)
            .expect("set");
        assert_eq!(reply, redis::Value::Okay);
    }
}

fn request_cycle(c: &mut Criterion) {
    let Ok(url) = std::env::var(URL_ENV) else {
        println!("SKIP redis_cluster benches: {URL_ENV} is not set");
        return;
    };
    let store = RedisClusterStore::builder()
        .url(url.as_str())
        .pool_size(2)
        .build()
        .expect("store");
    let manager = SessionManager::new(store, config());
    let (header, key) = stored_session(&manager);
    let value = manager.store().load(&key).expect("load").expect("stored");
    let mut raw = Raw::new(&url, &key, value);
    let mut group = c.benchmark_group("redis_cluster");
    group.bench_function(
        "raw floor: GET + SET XX PXAT (redis crate ClusterConnection)",
        |b| b.iter(|| raw.cycle()),
    );
    group.bench_function(
        "request cycle: open, get, insert, commit (RedisClusterStore)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    group.finish();
    paired_rounds(&manager, &header, &mut raw);
    manager.store().delete(&key).expect("delete");
    let _: () = redis::cmd("DEL")
        .arg(&raw.key)
        .query(&mut raw.conn)
        .expect("del");
}

/// Alternates short rounds of the cycle and of the floor, so both see the same machine state,
/// and prints the best of each and the median of the paired ratios.
fn paired_rounds(manager: &Manager, header: &str, raw: &mut Raw) {
    const ROUNDS: usize = 60;
    const PER_ROUND: u32 = 200;
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
        "redis_cluster paired rounds: best cycle {:.1} us, best floor {:.1} us, ratio of bests \
         {:.3}, median paired ratio {:.3}",
        best(&cycles),
        best(&floors),
        best(&cycles) / best(&floors),
        ratios[ROUNDS / 2]
    );
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
