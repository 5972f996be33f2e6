//! One full request cycle through the manager on a MongoStore, next to the raw floor: the same
//! `find_one` + `update_one` issued directly with the driver, in the same run, plus the ratios
//! of their medians and means over interleaved pairs.
//!
//! Needs a server: `bash scripts/mongodb.sh`, then (pinned, see the design notes)
//! `taskset -c 0 cargo bench -p server-session-benches --features mongodb --bench mongodb`. The server is found through
//! `SERVER_SESSION_MONGODB_URL`, by default
//! `mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false`: SecantusDB's
//! bookkeeping of retryable writes makes its writes slower as they accumulate (from ~1 ms to
//! ~10 ms over some 15,000 writes, until restarted), which would move the floor during the run.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, DateTime, Document};
use mongodb::sync::Collection;
use server_session::store::MongoStore;
use server_session::SessionManager;
use support::merging::{bench_merging, MergeBench};
use support::{cycle, signed_config, stored_session};

const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false";

fn store() -> MongoStore {
    let url = std::env::var("SERVER_SESSION_MONGODB_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    MongoStore::builder()
        .url(url)
        .database("server_session_bench")
        .collection(format!("bench_{}", std::process::id()))
        .build()
        .expect("a MongoDB-wire server (run scripts/mongodb.sh)")
}

fn raw_collection(store: &MongoStore) -> Collection<Document> {
    let database = store.client().database(store.database());
    database.collection(store.collection())
}

fn live(key: &str) -> Document {
    doc! { "id": key, "expiration": { "$gt": DateTime::now() } }
}

/// The floor: what the store does for this cycle, issued directly with the driver.
fn raw_cycle(collection: &Collection<Document>, key: &str) {
    let found = collection
        .find_one(live(key))
        .projection(doc! { "val": 1, "_id": 0 })
        .run()
        .expect("find_one")
        .expect("document");
    let mut bytes = found.get_binary_generic("val").expect("val").clone();
    bytes[0] ^= 0; // the codec's work is not part of the floor
    let expiration = DateTime::from_system_time(support::expiry());
    let val = Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    };
    let update = doc! { "$set": { "val": val, "expiration": expiration } };
    let result = collection
        .update_one(live(key), update)
        .run()
        .expect("update_one");
    assert_eq!(result.matched_count, 1);
}

/// Alternates the two cycles `PAIRS` times and prints the ratios of their medians and means: both
/// see the same load from other processes, so the ratio holds on a busy machine where
/// criterion's two back-to-back measurements may not.
fn print_paired_ratio(mut raw: impl FnMut(), mut full: impl FnMut()) {
    const PAIRS: usize = 300;
    let (mut raw_times, mut full_times) = (Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        raw_times.push(timed(&mut raw));
        full_times.push(timed(&mut full));
    }
    let means = (mean(&raw_times), mean(&full_times));
    let medians = (median(raw_times), median(full_times));
    for (what, (raw, full)) in [("medians", medians), ("means", means)] {
        println!(
            "mongodb paired {what} over {PAIRS} interleaved pairs: raw floor {raw:?}, \
             request cycle {full:?}, ratio {:.3}",
            full.as_secs_f64() / raw.as_secs_f64()
        );
    }
}

fn mean(times: &[Duration]) -> Duration {
    times.iter().sum::<Duration>() / times.len() as u32
}

fn timed(f: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn request_cycle(c: &mut Criterion) {
    let manager = SessionManager::new(store(), signed_config("session:")).unwrap();
    let (header, key) = stored_session(&manager, 180);
    let collection = raw_collection(manager.store());
    let raw = || raw_cycle(&collection, black_box(&key));
    let full = || cycle(&manager, &header);
    let mut group = c.benchmark_group("mongodb");
    group.bench_function("raw floor: find_one + update_one", |b| b.iter(raw));
    group.bench_function("request cycle: open, get, insert, commit (signed)", |b| {
        b.iter(full)
    });
    let merging = MergeBench::new("mongodb", "MongoStore, signed", 40, 5);
    bench_merging(&mut group, &manager, &header, &merging);
    group.finish();
    print_paired_ratio(raw, full);
    collection.drop().run().expect("drop the bench collection");
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
