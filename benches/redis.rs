//! The full request cycle on the RedisStore next to the raw floor, in the same run.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! `GET` (load) and one `SET key value XX PXAT ms` (save). Floor: the same two commands issued
//! directly with the `redis` crate on one connection, with a value of the same length. Needs
//! `SERVER_SESSION_REDIS_URL`; pin the server and the benchmark to one CPU:
//! `taskset -apc 0 $(pidof redis-server)`, then
//! `taskset -c 0 cargo bench -p server-session-benches --features redis --bench redis`.

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::store::RedisStore;
use support::redis_floor::{bench_against_floor, BenchNames};
use support::server_url;

const URL_ENV: &str = "SERVER_SESSION_REDIS_URL";

/// One plain `TCP_NODELAY` connection to the server at `url`.
fn connection(url: &str) -> redis::Connection {
    let info = redis::Client::open(url)
        .expect("url")
        .get_connection_info()
        .clone();
    let nodelay = info.tcp_settings().clone().set_nodelay(true);
    let client = redis::Client::open(info.set_tcp_settings(nodelay)).expect("client");
    client.get_connection().expect("connect")
}

fn request_cycle(c: &mut Criterion) {
    let Some(url) = server_url(URL_ENV, "redis") else {
        return;
    };
    let store = RedisStore::open(&url).expect("store");
    let names = BenchNames {
        group: "redis",
        floor: "raw floor: GET + SET XX PXAT (redis crate, one connection)",
        cycle: "request cycle: open, get, insert, commit (RedisStore)",
        label: "RedisStore",
        store_alone: Some("RedisStore load + save, no manager"),
    };
    bench_against_floor(c, store, connection(&url), names);
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
