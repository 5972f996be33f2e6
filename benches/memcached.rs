//! The full request cycle on the MemcachedStore next to the raw floor, in the same run, and
//! the `memcache` crate's clients doing the same two commands, for comparison.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one
//! `get` (load) and one `replace` (save). Floor: the same `get` and `replace` written directly
//! to one `TCP_NODELAY` socket, one write per command, with a value of the same length. Needs
//! `SERVER_SESSION_MEMCACHED_URL`; pin every thread of the server and the benchmark to one CPU:
//! `taskset -apc 0 $(pidof memcached)`, then
//! `taskset -c 0 cargo bench -p server-session-benches --features memcached --bench memcached`.

mod support;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::UNIX_EPOCH;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::store::{MemcachedStore, Store};
use server_session::SessionManager;
use support::merging::{bench_merging, MergeBench};
use support::{
    cycle, paired_rounds, server_url, signed_config, store_alone, stored_session, Group,
};

const URL_ENV: &str = "SERVER_SESSION_MEMCACHED_URL";

/// The expiry of a session saved now, as a Unix time in seconds.
fn exptime() -> u64 {
    support::expiry()
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
    let Some(url) = server_url(URL_ENV, "memcached") else {
        return;
    };
    let store = MemcachedStore::open(&url).expect("store");
    let server = store.servers().next().expect("a server").to_owned();
    let manager = SessionManager::new(store, signed_config("bench:session:")).unwrap();
    let (header, key) = stored_session(&manager, 180);
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
    let name = "MemcachedStore load + save, no manager";
    store_alone(&mut group, name, manager.store(), &key, &value);
    memcache_crate(&mut group, &server, &key, &value);
    let merging = MergeBench::new("memcached", "MemcachedStore", 60, 300);
    bench_merging(&mut group, &manager, &header, &merging);
    group.finish();
    paired_rounds(
        "memcached",
        60,
        300,
        || cycle(&manager, &header),
        || raw.cycle(),
    );
    manager.store().delete(&key).expect("delete");
}

/// The `memcache` 0.21 crate doing the same get + write: its `Client` with defaults, tuned,
/// and its experimental meta-protocol `MetaClient`.
fn memcache_crate(group: &mut Group<'_>, server: &str, key: &str, value: &[u8]) {
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

criterion_group!(benches, request_cycle);
criterion_main!(benches);
