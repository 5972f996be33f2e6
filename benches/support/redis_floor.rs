//! The raw floor of the Redis benches, the store's `GET` + `SET XX PXAT` issued directly with
//! the `redis` crate on one connection, and the run of a Redis store against it.

use std::hint::black_box;
use std::time::UNIX_EPOCH;

use criterion::Criterion;
use redis::ConnectionLike;
use server_session::store::Store;
use server_session::SessionManager;

use super::merging::{bench_merging, MergeBench};
use super::{cycle, paired_rounds, signed_config, store_alone, stored_session};

/// The criterion names of a Redis store's benches.
pub struct BenchNames {
    /// The criterion group, also the name of the paired rounds.
    pub group: &'static str,
    pub floor: &'static str,
    pub cycle: &'static str,
    /// The store in the names of the merging benches.
    pub label: &'static str,
    /// The store's load + save without the manager, when measured.
    pub store_alone: Option<&'static str>,
}

/// Benchmarks the request cycle on `store` next to the floor on `conn`, then prints the paired
/// rounds, and removes both keys.
pub fn bench_against_floor<S: Store, C: ConnectionLike>(
    c: &mut Criterion,
    store: S,
    conn: C,
    names: BenchNames,
) {
    let manager = SessionManager::new(store, signed_config("bench:session:")).unwrap();
    let (header, key) = stored_session(&manager, 180);
    let value = manager.store().load(&key).expect("load").expect("stored");
    let mut floor = RedisFloor::new(conn, &key, value);
    let mut group = c.benchmark_group(names.group);
    group.bench_function(names.floor, |b| b.iter(|| floor.cycle()));
    group.bench_function(names.cycle, |b| b.iter(|| cycle(&manager, &header)));
    if let Some(name) = names.store_alone {
        store_alone(&mut group, name, manager.store(), &key, &floor.value);
    }
    let merging = MergeBench::new(names.group, names.label, 60, 200);
    bench_merging(&mut group, &manager, &header, &merging);
    group.finish();
    let session_cycle = || cycle(&manager, &header);
    paired_rounds(names.group, 60, 200, session_cycle, || floor.cycle());
    manager.store().delete(&key).expect("delete");
    floor.remove();
}

/// `GET` + `SET XX PXAT` of a value on one connection, under the session's key plus `:raw`.
pub struct RedisFloor<C> {
    conn: C,
    key: String,
    value: Vec<u8>,
}

impl<C: ConnectionLike> RedisFloor<C> {
    /// Stores `value` under `key` + `:raw` through `conn`.
    pub fn new(mut conn: C, key: &str, value: Vec<u8>) -> Self {
        let key = format!("{key}:raw");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query(&mut conn)
            .expect("set");
        Self { conn, key, value }
    }

    pub fn cycle(&mut self) {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.key)
            .query(&mut self.conn)
            .expect("get");
        black_box(value);
        let ms = super::expiry()
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

    /// Deletes the floor's key.
    pub fn remove(mut self) {
        let _: () = redis::cmd("DEL")
            .arg(&self.key)
            .query(&mut self.conn)
            .expect("del");
    }
}
