//! The full request cycle on the MemcachedStore next to the raw floor, in the same run, and
//! the `memcache` crate's clients doing the same two commands, for comparison.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! `get` (load) and one `replace` (save). Floor: the same `get` and `replace` written directly
//! to one `TCP_NODELAY` socket, one write per command, with a value of the same length. Needs
//! `SERVER_SESSION_MEMCACHED_URL`; pin every thread of the server and the benchmark to one CPU:
//! `taskset -apc 0 $(pidof memcached)`, then
//! `taskset -c 0 cargo bench --features memcached --bench memcached`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use server_session::store::{MemcachedStore, Store};
use server_session::{Config, SessionManager};

const URL_ENV: &str = "SERVER_SESSION_MEMCACHED_URL";

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
fn stored_session(manager: &SessionManager<MemcachedStore>) -> (String, String) {
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
    let id = pair
        .trim_start_matches("session=")
        .rsplit_once('.')
        .expect("signed")
        .0;
    (pair.to_owned(), format!("bench:session:{id}"))
}

fn cycle(manager: &SessionManager<MemcachedStore>, header: &str) {
    let mut session = manager.open(Some(black_box(header)));
    let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
    session.insert("visits", &(visits + 1)).expect("insert");
    black_box(session.commit().expect("commit"));
}

fn exptime() -> u64 {
    let expires = SystemTime::now() + Duration::from_secs(31 * 86_400);
    expires
        .duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs()
}

/// The same `get` + `replace` on one plain socket: one write per command, buffered reads.
struct Raw {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    line: String,
    key: String,
    value: Vec<u8>,
}

impl Raw {
    fn new(server: &str, key: &str, value: Vec<u8>) -> Self {
        let stream = TcpStream::connect(server).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let key = format!("{key}:raw");
        let mut raw = Self {
            reader: BufReader::new(stream),
            out: Vec::new(),
            line: String::new(),
            key,
            value,
        };
        raw.store("set");
        raw
    }

    fn store(&mut self, verb: &str) {
        self.out.clear();
        let (key, len, exptime) = (&self.key, self.value.len(), exptime());
        write!(self.out, "{verb} {key} 0 {exptime} {len}\r\n").expect("format");
        self.out.extend_from_slice(&self.value);
        self.out.extend_from_slice(b"\r\n");
        self.reader.get_mut().write_all(&self.out).expect("write");
        assert_eq!(self.read_line(), "STORED\r\n");
    }

    fn read_line(&mut self) -> &str {
        self.line.clear();
        self.reader.read_line(&mut self.line).expect("read");
        &self.line
    }

    fn get(&mut self) -> Vec<u8> {
        self.out.clear();
        write!(self.out, "get {}\r\n", self.key).expect("format");
        self.reader.get_mut().write_all(&self.out).expect("write");
        let header = self.read_line();
        let len: usize = header
            .trim_end()
            .rsplit(' ')
            .next()
            .expect("len")
            .parse()
            .expect("len");
        let mut value = vec![0; len + 2];
        self.reader.read_exact(&mut value).expect("value");
        assert_eq!(self.read_line(), "END\r\n");
        value.truncate(len);
        value
    }

    fn cycle(&mut self) {
        black_box(self.get());
        self.store("replace");
    }
}

fn request_cycle(c: &mut Criterion) {
    let Ok(url) = std::env::var(URL_ENV) else {
        println!("SKIP memcached benches: {URL_ENV} is not set");
        return;
    };
    let store = MemcachedStore::open(&url).expect("store");
    let server = store.servers().next().expect("a server").to_owned();
    let manager = SessionManager::new(store, config());
    let (header, key) = stored_session(&manager);
    let value = manager.store().load(&key).expect("load").expect("stored");
    let mut raw = Raw::new(&server, &key, value.clone());
    let mut group = c.benchmark_group("memcached");
    group.bench_function("raw floor: get + replace (one TCP_NODELAY socket)", |b| {
        b.iter(|| raw.cycle())
    });
    group.bench_function(
        "request cycle: open, get, insert, commit (MemcachedStore)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    group.bench_function("MemcachedStore load + save, no manager", |b| {
        let expires = SystemTime::now() + Duration::from_secs(31 * 86_400);
        b.iter(|| {
            black_box(manager.store().load(&key).expect("load"));
            assert!(manager.store().save(&key, &value, expires).expect("save"));
        })
    });
    memcache_crate(&mut group, &server, &key, &value);
    group.finish();
    paired_rounds(&manager, &header, &mut raw);
    manager.store().delete(&key).expect("delete");
}

/// The `memcache` 0.21 crate doing the same get + write: its `Client` with defaults, tuned,
/// and its experimental meta-protocol `MetaClient`.
fn memcache_crate<M: criterion::measurement::Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    server: &str,
    key: &str,
    value: &[u8],
) {
    let key = format!("{key}:crate");
    let url = format!("memcache://{server}");
    let classic = [
        (
            "memcache::Client, defaults (binary, r2d2 check on checkout)",
            url.clone(),
            true,
        ),
        (
            "memcache::Client, binary, no check on checkout",
            url.clone(),
            false,
        ),
        (
            "memcache::Client, ascii, no check on checkout",
            format!("{url}?protocol=ascii"),
            false,
        ),
    ];
    for (name, url, check) in classic {
        let manager = memcache::ConnectionManager::new(memcache::Url::parse(&url).expect("url"));
        let pool = memcache::Pool::builder()
            .max_size(4)
            .test_on_check_out(check)
            .build(manager);
        let client = memcache::Client::with_pool(pool.expect("pool")).expect("client");
        client.set(&key, value, 3600).expect("set");
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(client.get::<Vec<u8>>(&key).expect("get"));
                client.set(&key, value, exptime() as u32).expect("set");
            })
        });
    }
    let meta = memcache::exp::MetaClient::connect(server).expect("meta client");
    group.bench_function("memcache::exp::MetaClient (meta protocol)", |b| {
        b.iter(|| {
            black_box(meta.get(&key).send().expect("get"));
            meta.set(&key, value)
                .ttl_raw(exptime() as u32)
                .replace()
                .send()
                .expect("set");
        })
    });
}

/// Alternates short rounds of the cycle and of the floor, so both see the same machine state,
/// and prints the best of each and the median of the paired ratios.
fn paired_rounds(manager: &SessionManager<MemcachedStore>, header: &str, raw: &mut Raw) {
    const ROUNDS: usize = 60;
    const PER_ROUND: u32 = 300;
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
        "memcached paired rounds: best cycle {:.1} us, best floor {:.1} us, ratio of bests \
         {:.3}, median paired ratio {:.3}",
        best(&cycles),
        best(&floors),
        best(&cycles) / best(&floors),
        ratios[ROUNDS / 2]
    );
}

criterion_group!(benches, request_cycle);
criterion_main!(benches);
