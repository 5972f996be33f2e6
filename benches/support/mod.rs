//! What the store benches share: the signed config, a stored session, one request cycle, the
//! store alone, paired rounds of the cycle and its raw floor, and the cycle with merging on vs
//! off and with a conflicting commit (`merging`).
#![allow(dead_code)] // each bench uses only part of it

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use server_session::codec::Codec;
use server_session::store::Store;
use server_session::{Config, SessionManager};

pub mod merging;
#[cfg(feature = "redis")]
pub mod redis_floor;

pub type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// The server URL in the environment variable `env`, or `None` after printing that the
/// `bench` benches are skipped.
pub fn server_url(env: &str, bench: &str) -> Option<String> {
    let url = std::env::var(env).ok();
    if url.is_none() {
        println!("SKIP {bench} benches: {env} is not set");
    }
    url
}

/// Signed cookies, store keys starting with `key_prefix`, merging concurrent changes (the
/// default).
pub fn signed_config(key_prefix: &str) -> Config {
    signed_config_merging(key_prefix, true)
}

/// [`signed_config`] with merging of concurrent changes on or off.
pub fn signed_config_merging(key_prefix: &str, merge: bool) -> Config {
    Config::builder()
        .use_signer(true)
        .secret_key("bench-secret-key")
        .key_prefix(key_prefix)
        .merge_concurrent_changes(merge)
        .build()
        .expect("valid config")
}

/// A `Cookie` header as a browser sends it: other sites' cookies around the session's `pair`.
pub fn browser_header(pair: &str) -> String {
    format!(
        "_ga=GA1.1.123456789.1700000000; theme=dark; \
         csrftoken=Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb24; {pair}; lang=en-GB"
    )
}

/// The expiry of a session saved now with the default 31-day lifetime.
pub fn expiry() -> SystemTime {
    SystemTime::now() + Duration::from_secs(31 * 86_400)
}

/// Stores a session with `visits` and a `note` of `note_len` characters (180 make about 200
/// bytes of MessagePack); returns the `Cookie` header that names it and its store key.
pub fn stored_session<S: Store, C: Codec>(
    manager: &SessionManager<S, C>,
    note_len: usize,
) -> (String, String) {
    let mut session = manager.open(None);
    session.insert("visits", &0u64).expect("insert");
    session
        .insert("note", &"x".repeat(note_len))
        .expect("insert");
    let commit = session.commit().expect("commit");
    let pair = commit.set_cookie().expect("cookie").split(';').next();
    let pair = pair.expect("pair").to_owned();
    let signed = pair.split_once('=').expect("name=value").1;
    let id = signed.rsplit_once('.').expect("signed").0;
    let key = format!("{}{id}", manager.config().key_prefix());
    (pair, key)
}

/// One request: open with the cookie, read, write, commit (one load and one save).
pub fn cycle<S: Store, C: Codec>(manager: &SessionManager<S, C>, header: &str) {
    let mut session = manager.open(Some(black_box(header)));
    let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
    session.insert("visits", &(visits + 1)).expect("insert");
    black_box(session.commit().expect("commit"));
}

/// Benchmarks the load and save of a request cycle on `store` alone, without the manager.
pub fn store_alone<S: Store>(
    group: &mut Group<'_>,
    name: &str,
    store: &S,
    key: &str,
    value: &[u8],
) {
    group.bench_function(name, |b| {
        let expires = expiry();
        b.iter(|| {
            black_box(store.load(key).expect("load"));
            assert!(store.save(key, value, expires).expect("save"));
        })
    });
}

/// Alternates `rounds` short rounds of `per_round` request cycles and as many floor cycles, so
/// both see the same machine state, and prints the best of each and the median of the paired
/// ratios (the line scripts/bench.sh reads).
pub fn paired_rounds(
    name: &str,
    rounds: usize,
    per_round: u32,
    cycle: impl FnMut(),
    floor: impl FnMut(),
) {
    let paired = Paired::run(rounds, per_round, cycle, floor);
    println!(
        "{name} paired rounds: best cycle {:.2} us, best floor {:.2} us, ratio of bests {:.3}, \
         median paired ratio {:.3}",
        best(&paired.first),
        best(&paired.second),
        best(&paired.first) / best(&paired.second),
        paired.median_ratio()
    );
}

/// Microseconds per call of two functions timed in alternating rounds.
pub struct Paired {
    pub first: Vec<f64>,
    pub second: Vec<f64>,
}

impl Paired {
    /// `rounds` rounds of `per_round` calls of `first`, each followed by as many of `second`.
    pub fn run(
        rounds: usize,
        per_round: u32,
        mut first: impl FnMut(),
        mut second: impl FnMut(),
    ) -> Self {
        let time = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            (0..per_round).for_each(|_| f());
            start.elapsed().as_secs_f64() * 1e6 / f64::from(per_round)
        };
        let mut paired = Self {
            first: Vec::new(),
            second: Vec::new(),
        };
        for _ in 0..rounds {
            paired.first.push(time(&mut first));
            paired.second.push(time(&mut second));
        }
        paired
    }

    /// The median over the rounds of first / second.
    pub fn median_ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = self
            .first
            .iter()
            .zip(&self.second)
            .map(|(a, b)| a / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    }
}

/// The smallest of `times`.
pub fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::MAX, f64::min)
}
