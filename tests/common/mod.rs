//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use server_session::store::{MemoryStore, Replaced, Store};
use server_session::{Error, Result};

/// A real MemoryStore that also counts every call, to assert which store operations a request
/// caused (and that invalid cookies cause none).
#[derive(Default)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub loads: AtomicUsize,
    pub creates: AtomicUsize,
    pub saves: AtomicUsize,
    pub touches: AtomicUsize,
    pub deletes: AtomicUsize,
    pub load_and_touches: AtomicUsize,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

impl CountingStore {
    /// (loads, creates, saves, touches, deletes, load_and_touches)
    pub fn counts(&self) -> [usize; 6] {
        [
            &self.loads,
            &self.creates,
            &self.saves,
            &self.touches,
            &self.deletes,
            &self.load_and_touches,
        ]
        .map(|c| c.load(Ordering::SeqCst))
    }

    pub fn total(&self) -> usize {
        self.counts().iter().sum()
    }

    pub fn reset(&self) {
        for c in [
            &self.loads,
            &self.creates,
            &self.saves,
            &self.touches,
            &self.deletes,
            &self.load_and_touches,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

impl Store for CountingStore {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        bump(&self.loads);
        self.inner.load(key)
    }
    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        bump(&self.creates);
        self.inner.create(key, value, expires)
    }
    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        bump(&self.saves);
        self.inner.save(key, value, expires)
    }
    /// Counted as a save: it is the write of a session the request loaded and changed.
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        bump(&self.saves);
        self.inner.replace(key, expected, value, expires)
    }
    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        bump(&self.touches);
        self.inner.touch(key, expires)
    }
    fn delete(&self, key: &str) -> Result<()> {
        bump(&self.deletes);
        self.inner.delete(key)
    }
    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        bump(&self.load_and_touches);
        self.inner.load_and_touch(key, expires)
    }
}

/// The `name=value` part of a `Set-Cookie` value, as a browser would send it back.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The value of the `name=value` part of a `Set-Cookie` value.
pub fn cookie_value(set_cookie: &str) -> String {
    cookie_pair(set_cookie)
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// A store operation to check, with its name.
pub type NamedOp<'a> = (&'a str, &'a dyn Fn() -> Result<()>);

/// Runs each operation once and asserts that it fails within `limit`, with an error that
/// `expected` accepts.
pub fn assert_each_fails_within(
    ops: &[NamedOp<'_>],
    limit: Duration,
    expected: impl Fn(&Error) -> bool,
) {
    for (name, op) in ops {
        let start = Instant::now();
        let err = op().unwrap_err();
        assert!(expected(&err), "{name}: {err:?}");
        assert!(start.elapsed() < limit, "{name} took {:?}", start.elapsed());
    }
}

/// Reads one RESP command (an array of bulk strings), as a fake Redis server receives it, and
/// returns its words, upper-cased.
pub fn read_resp_command(reader: &mut impl BufRead) -> Option<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut words = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        reader.read_exact(&mut arg).ok()?;
        words.push(String::from_utf8_lossy(&arg[..len]).to_uppercase());
    }
    Some(words)
}

/// A redis-server child process of the test's own on a loopback port, killed when dropped.
pub struct RedisServer(std::process::Child);

impl RedisServer {
    /// Starts one on `port` with `extra` arguments and waits until it accepts connections;
    /// `None` when redis-server is not installed.
    pub fn start(port: u16, extra: &[&str]) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An HTTP date (`Thu, 01 Jan 2027 00:00:00 GMT`) as a `SystemTime`, enough for the tests.
pub fn httpdate_parse(text: &str) -> SystemTime {
    let parts: Vec<&str> = text.split([' ', ':']).collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day: i64 = parts[1].parse().unwrap();
    let month = months.iter().position(|m| *m == parts[2]).unwrap() as i64 + 1;
    let year: i64 = parts[3].parse().unwrap();
    let (h, mi, se): (i64, i64, i64) = (
        parts[4].parse().unwrap(),
        parts[5].parse().unwrap(),
        parts[6].parse().unwrap(),
    );
    // days from civil (Howard Hinnant's algorithm)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    SystemTime::UNIX_EPOCH + Duration::from_secs((days * 86_400 + h * 3600 + mi * 60 + se) as u64)
}

/// The `Expires` attribute of a `Set-Cookie` value, if it has one.
pub fn expires_of(set_cookie: &str) -> Option<SystemTime> {
    let expires = set_cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Expires="))?;
    Some(httpdate_parse(expires))
}
