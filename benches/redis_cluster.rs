//! The full request cycle on the RedisClusterStore next to the raw cluster floor, in the same run.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! `GET` (load) and one `SET key value XX PXAT ms` (save), both sent to the master that owns the
//! session's slot. Floor: the same two commands on the same key length through one
//! `redis::cluster::ClusterConnection` (the `redis` crate's own cluster client, `TCP_NODELAY`),
//! with a value of the same length. Needs `SERVER_SESSION_REDIS_CLUSTER_URL` (the cluster of
//! `scripts/cluster.sh`); pin the nodes and the benchmark to one CPU:
//! `for p in $(pgrep -f 'redis-server .*:700[0-5]'); do taskset -apc 0 $p; done`, then
//! `taskset -c 0 cargo bench -p server-session-benches --features redis-cluster --bench redis_cluster`.

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::io::tcp::TcpSettings;
use server_session::store::{ConnectionSettings, RedisClusterStore};
use support::redis_floor::{bench_against_floor, BenchNames};
use support::server_url;

const URL_ENV: &str = "SERVER_SESSION_REDIS_CLUSTER_URL";

/// One `ClusterConnection` (`TCP_NODELAY`) to the cluster whose seed nodes `url` lists.
fn connection(url: &str) -> ClusterConnection {
    let seeds: Vec<String> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|node| format!("redis://{node}"))
        .collect();
    let client = ClusterClient::builder(seeds)
        .tcp_settings(TcpSettings::default().set_nodelay(true))
        .build()
        .expect("cluster client");
    client.get_connection().expect("connect")
}

fn request_cycle(c: &mut Criterion) {
    let Some(url) = server_url(URL_ENV, "redis_cluster") else {
        return;
    };
    let store = RedisClusterStore::builder()
        .url(url.as_str())
        .connection(ConnectionSettings {
            max_connections: 2,
            ..ConnectionSettings::default()
        })
        .build()
        .expect("store");
    let names = BenchNames {
        group: "redis_cluster",
        floor: "raw floor: GET + SET XX PXAT (redis crate ClusterConnection)",
        cycle: "request cycle: open, get, insert, commit (RedisClusterStore)",
        label: "RedisClusterStore",
        store_alone: None,
    };
    bench_against_floor(c, store, connection(&url), names);
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
