//! The [`MemcachedStore`](super::MemcachedStore) and its builder.

use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Store;
use crate::{Error, Result};

const DEFAULT_SERVER: &str = "127.0.0.1:11211";
const DEFAULT_PORT: u16 = 11211;
const MAX_KEY_LEN: usize = 250;
/// Relative expiries above this many seconds are read by memcached as Unix times.
const MAX_RELATIVE_SECS: u64 = 30 * 24 * 3600;
/// The longest reply line read; `VALUE <250-byte key> <flags> <bytes>` fits easily.
const MAX_LINE: u64 = 1024;
/// memcached's largest possible item (`-I 1024m`): a bigger claimed length is a broken stream.
const MAX_ITEM: usize = 1 << 30;
/// Pooled connections keep at most this much write buffer between commands.
const KEEP_BUFFER: usize = 64 * 1024;

/// A memcached operation that failed, with the server it was sent to.
///
/// ```
/// use server_session::store::MemcachedError;
/// let err = MemcachedError::ValueTooLarge { len: 2_000_000 };
/// assert!(err.to_string().contains("2000000 bytes"));
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum MemcachedError {
    /// Connecting, sending or receiving failed: refused, reset, or timed out.
    Io {
        /// The server, as `host:port`.
        server: String,
        /// The socket error.
        source: io::Error,
    },
    /// The server answered with an error (`SERVER_ERROR ...`, `CLIENT_ERROR ...`, `ERROR`) or
    /// with something that is not memcached's protocol.
    Server {
        /// The server, as `host:port`.
        server: String,
        /// The reply line, or what was wrong with it.
        reply: String,
    },
    /// The value is over the store's `max_value_size` or the server's item size limit.
    ValueTooLarge {
        /// The value's length in bytes.
        len: usize,
    },
}

impl fmt::Display for MemcachedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { server, .. } => write!(f, "memcached server {server} unreachable"),
            Self::Server { server, reply } => {
                write!(f, "memcached server {server} answered {reply:?}")
            }
            Self::ValueTooLarge { len } => {
                write!(
                    f,
                    "a value of {len} bytes is over the memcached item size limit"
                )
            }
        }
    }
}

impl std::error::Error for MemcachedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Server { .. } | Self::ValueTooLarge { .. } => None,
        }
    }
}

/// Configures and builds a [`MemcachedStore`]; every setting has a documented default and no
/// timeout is ever unlimited.
///
/// ```
/// use std::time::Duration;
/// use server_session::store::MemcachedStore;
///
/// let store = MemcachedStore::builder()
///     .url("memcache://10.0.0.5:11211,10.0.0.6:11211")
///     .read_timeout(Duration::from_millis(500))
///     .build()?; // no I/O yet: connections are opened on first use
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedStoreBuilder {
    url: Option<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    pool_size: usize,
    max_value_size: usize,
}

impl Default for MemcachedStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            pool_size: 16,
            max_value_size: 1 << 20,
        }
    }
}

impl MemcachedStoreBuilder {
    /// The servers, as `memcache://host[:port][,host[:port]...]` (port 11211 when omitted;
    /// IPv6 hosts in brackets). Default: `memcache://127.0.0.1:11211`, with a `log` info line
    /// saying so.
    ///
    /// With several servers each key lives on one of them, chosen by rendezvous hashing of the
    /// `host:port` names: stable across restarts, but not the distribution Python's clients
    /// use, so share sessions with a Python app through a single server.
    ///
    /// ```
    /// let builder = server_session::store::MemcachedStore::builder().url("memcache://cache:11211");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// How long opening a TCP connection may take. Default: 1 second.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = server_session::store::MemcachedStore::builder().connect_timeout(Duration::from_millis(250));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a command may wait for (each part of) its reply. Default: 2 seconds. A
    /// connection that timed out is closed, never reused.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = server_session::store::MemcachedStore::builder().read_timeout(Duration::from_secs(1));
    /// ```
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long sending a command may block. Default: 2 seconds.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = server_session::store::MemcachedStore::builder().write_timeout(Duration::from_secs(1));
    /// ```
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The most idle connections kept open per server. Default: 16; size it to the number of
    /// worker threads. More requests than this at once open extra connections, closed after use.
    ///
    /// ```
    /// let builder = server_session::store::MemcachedStore::builder().pool_size(32);
    /// ```
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The largest value sent to the server; larger ones fail with
    /// [`MemcachedError::ValueTooLarge`] without any I/O. Default: 1 MiB, memcached's default
    /// item size limit. Raise it together with the server's `-I`.
    ///
    /// ```
    /// let builder = server_session::store::MemcachedStore::builder().max_value_size(4 << 20);
    /// ```
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Validates the settings and the URL. No connection is opened here: a server that is down
    /// is reported by the first store operation.
    ///
    /// Errors: [`Error::Config`] for a URL that is not `memcache://` servers, or a zero
    /// timeout, pool size or value size.
    ///
    /// ```
    /// use server_session::{store::MemcachedStore, Error};
    /// let err = MemcachedStore::builder().url("redis://127.0.0.1").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn build(self) -> Result<MemcachedStore> {
        self.validate()?;
        let servers = match &self.url {
            Some(url) => parse_url(url)?,
            None => {
                log::info!("no memcached URL given: connecting to memcache://{DEFAULT_SERVER}");
                vec![DEFAULT_SERVER.to_owned()]
            }
        };
        let servers = servers
            .into_iter()
            .map(|addr| Server::new(addr, &self))
            .collect();
        Ok(MemcachedStore {
            inner: Arc::new(Inner {
                servers,
                max_value_size: self.max_value_size,
            }),
        })
    }

    fn validate(&self) -> Result<()> {
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, t)| t.is_zero()) {
            return Err(Error::Config(format!(
                "MemcachedStore {name} must be above zero"
            )));
        }
        if self.pool_size == 0 || self.max_value_size == 0 {
            return Err(Error::Config(
                "MemcachedStore pool_size and max_value_size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `memcache://a:1,b` -> `["a:1", "b:11211"]`.
fn parse_url(url: &str) -> Result<Vec<String>> {
    let invalid = |why: &str| Error::Config(format!("memcached URL {url:?}: {why}"));
    let rest = url
        .strip_prefix("memcache://")
        .ok_or_else(|| invalid("expected memcache://host:port[,host:port...]"))?;
    let hosts = rest.strip_suffix('/').unwrap_or(rest);
    if hosts.contains(['/', '?', '#', '@']) {
        return Err(invalid(
            "only servers are supported (no path, query or credentials)",
        ));
    }
    hosts
        .split(',')
        .map(|server| with_port(server.trim()).ok_or_else(|| invalid("bad host:port")))
        .collect()
}

fn with_port(server: &str) -> Option<String> {
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => (host, port),
        _ => (server, ""),
    };
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        port.parse().ok()?
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (!bare.is_empty() && !bare.contains(char::is_whitespace)).then(|| format!("{host}:{port}"))
}

/// Sessions in memcached, like Flask-Session's `memcached` backend.
///
/// Each session is one item, `prefix + id`, holding exactly the codec's bytes with flags 0, so a
/// Flask-Session 0.8 app on the same server reads and writes the same entries. Every store
/// operation is one text-protocol command and one round trip:
///
/// | operation        | command                            |
/// |------------------|------------------------------------|
/// | `load`           | `get key`                          |
/// | `create`         | `add key 0 exptime bytes`          |
/// | `save`           | `replace key 0 exptime bytes`      |
/// | `touch`          | `touch key exptime`                |
/// | `delete`         | `delete key`                       |
/// | `load_and_touch` | `gat exptime key` (memcached 1.5.3+) |
///
/// The expiry follows memcached's rule, as Flask-Session does: the remaining seconds (rounded
/// up) when they are at most 30 days, the absolute Unix time above that (Flask-Session's default
/// 31-day lifetime always takes this branch), and `-1`, "already expired", for an expiry that
/// has passed.
///
/// Keys must be 1 to 250 bytes without spaces or control characters; any other key is refused
/// with [`Error::InvalidKey`] before any I/O, so a long key prefix can never be truncated into
/// a collision. Values above [`max_value_size`](MemcachedStoreBuilder::max_value_size) are
/// refused with [`MemcachedError::ValueTooLarge`] before any I/O; values the server finds too
/// large for its item size limit (its `-I` setting, 1 MiB by default, which also holds the key
/// and a ~50-byte header) fail with the same error.
///
/// The store speaks the text protocol itself over pooled, buffered `TCP_NODELAY` sockets: one
/// write and usually one read per command, and no health check on checkout. (The `memcache`
/// crate's `Client` costs 3.5 to 10 times the round trip: an r2d2 `version` check on every
/// checkout, one `write` syscall per protocol token, unbuffered reads in the binary protocol;
/// and its ASCII `add`/`replace` cannot tell "stored" from "not stored". Its experimental
/// `exp::MetaClient` is close, but adds about 15% in per-command `setsockopt` and probe calls.)
///
/// Cloning is cheap and shares the connection pools.
///
/// ```no_run
/// use server_session::{store::MemcachedStore, Config, SessionManager};
///
/// let store = MemcachedStore::open("memcache://127.0.0.1:11211")?;
/// let manager = SessionManager::new(store, Config::default());
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    servers: Vec<Server>,
    max_value_size: usize,
}

impl MemcachedStore {
    /// A builder with every setting at its default.
    ///
    /// ```
    /// let builder = server_session::store::MemcachedStore::builder();
    /// ```
    pub fn builder() -> MemcachedStoreBuilder {
        MemcachedStoreBuilder::default()
    }

    /// A store on the servers of `url` (`memcache://host:port[,host:port...]`), with the
    /// default pool and timeouts.
    ///
    /// ```
    /// let store = server_session::store::MemcachedStore::open("memcache://127.0.0.1:11211")?;
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// A store on `127.0.0.1:11211`, with a `log` info line saying so.
    ///
    /// ```
    /// let store = server_session::store::MemcachedStore::default_local()?;
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn default_local() -> Result<Self> {
        Self::builder().build()
    }

    /// The servers, as `host:port`, in URL order.
    ///
    /// ```
    /// let store = server_session::store::MemcachedStore::open("memcache://a,b:1")?;
    /// assert_eq!(store.servers().collect::<Vec<_>>(), ["a:11211", "b:1"]);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.inner.servers.iter().map(|s| s.addr.as_str())
    }

    /// The server holding `key`: rendezvous (highest random weight) hashing.
    fn server(&self, key: &str) -> &Server {
        let servers = &self.inner.servers;
        let score = |s: &Server| mixed_hash(&[s.addr.as_bytes(), b"\0", key.as_bytes()]);
        match servers.as_slice() {
            [only] => only,
            _ => servers
                .iter()
                .max_by_key(|s| score(s))
                .unwrap_or(&servers[0]),
        }
    }

    /// Validates the key, then runs `command` for it on its server.
    fn run<T>(&self, key: &str, command: impl Fn(&mut Conn) -> Exchange<T>) -> Result<T> {
        validate_key(key)?;
        self.server(key).exchange(command)
    }

    fn check_size(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.inner.max_value_size {
            return Err(MemcachedError::ValueTooLarge { len: value.len() }.into());
        }
        Ok(())
    }
}

/// FNV-1a, then MurmurHash3's 64-bit finalizer so that every input bit reaches the high bits.
fn mixed_hash(parts: &[&[u8]]) -> u64 {
    let mut h = parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Memcached's keys: 1..=250 bytes, no spaces or control characters.
fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidKey(format!(
            "memcached keys are 1 to {MAX_KEY_LEN} bytes, this one has {}",
            key.len()
        )));
    }
    if let Some(c) = key
        .chars()
        .find(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return Err(Error::InvalidKey(format!(
            "memcached keys cannot contain spaces or control characters, found {c:?}"
        )));
    }
    Ok(())
}

/// The exptime memcached expects for an absolute `expires` (see [`MemcachedStore`]).
fn exptime(expires: SystemTime, now: SystemTime) -> i64 {
    let Ok(left) = expires.duration_since(now) else {
        return -1;
    };
    if left.is_zero() {
        return -1;
    }
    let relative = ceil_secs(left);
    if relative <= MAX_RELATIVE_SECS {
        return relative as i64;
    }
    let absolute = expires.duration_since(UNIX_EPOCH).map_or(0, ceil_secs);
    absolute.min(i32::MAX as u64) as i64
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Store for MemcachedStore {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run(key, |conn| {
            conn.send(format_args!("get {key}\r\n"), None)?;
            conn.retrieval()
        })
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.check_size(value)?;
        self.run(key, |conn| conn.store("add", key, value, expires))
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.check_size(value)?;
        self.run(key, |conn| conn.store("replace", key, value, expires))
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        self.run(key, |conn| {
            let exptime = exptime(expires, SystemTime::now());
            conn.send(format_args!("touch {key} {exptime}\r\n"), None)?;
            conn.status(&[("TOUCHED", true), ("NOT_FOUND", false)])
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.run(key, |conn| {
            conn.send(format_args!("delete {key}\r\n"), None)?;
            conn.status(&[("DELETED", ()), ("NOT_FOUND", ())])
        })
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        self.run(key, |conn| {
            let exptime = exptime(expires, SystemTime::now());
            conn.send(format_args!("gat {exptime} {key}\r\n"), None)?;
            conn.retrieval()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Why one command on one connection failed; the connection is closed either way.
enum Failure {
    /// A socket error.
    Io(io::Error),
    /// An error reply, or a reply that is not memcached's protocol.
    Reply(String),
    /// `SERVER_ERROR object too large for cache`.
    TooLarge(usize),
}

type Exchange<T> = std::result::Result<T, Failure>;

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl Failure {
    /// Whether a reused connection was found closed or reset by the peer (a server restart):
    /// the command is then retried once on a fresh connection.
    fn is_stale(&self) -> bool {
        matches!(self, Failure::Io(e) if matches!(e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof | ErrorKind::NotConnected))
    }

    fn into_error(self, server: &str) -> Error {
        let server = server.to_owned();
        Error::Memcached(match self {
            Failure::Io(source) => MemcachedError::Io { server, source },
            Failure::Reply(reply) => MemcachedError::Server { server, reply },
            Failure::TooLarge(len) => MemcachedError::ValueTooLarge { len },
        })
    }
}

/// One server: its address, timeouts and idle connections.
#[derive(Debug)]
struct Server {
    addr: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    pool_size: usize,
    idle: Mutex<Vec<Conn>>,
}

impl Server {
    fn new(addr: String, settings: &MemcachedStoreBuilder) -> Self {
        Self {
            addr,
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
            write_timeout: settings.write_timeout,
            pool_size: settings.pool_size,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        // The Vec is only pushed to and popped from: a panic cannot leave it inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `command` on an idle connection (or a new one) and returns the connection to the
    /// pool if it succeeded. A stale pooled connection is replaced and the command retried once.
    fn exchange<T>(&self, command: impl Fn(&mut Conn) -> Exchange<T>) -> Result<T> {
        let pooled = self.idle().pop();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.dial()?,
        };
        let mut result = command(&mut conn);
        if reused && result.as_ref().err().is_some_and(Failure::is_stale) {
            conn = self.dial()?;
            result = command(&mut conn);
        }
        match result {
            Ok(value) => {
                self.put_back(conn);
                Ok(value)
            }
            Err(failure) => Err(failure.into_error(&self.addr)),
        }
    }

    fn put_back(&self, mut conn: Conn) {
        conn.out.clear();
        conn.out.shrink_to(KEEP_BUFFER);
        let mut idle = self.idle();
        if idle.len() < self.pool_size {
            idle.push(conn);
        }
    }

    fn dial(&self) -> Result<Conn> {
        self.try_dial()
            .map_err(|source| Failure::Io(source).into_error(&self.addr))
    }

    fn try_dial(&self) -> io::Result<Conn> {
        let mut last = io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
        for addr in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => return self.configure(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn configure(&self, stream: TcpStream) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.read_timeout))?;
        stream.set_write_timeout(Some(self.write_timeout))?;
        Ok(Conn {
            reader: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(512),
            line: Vec::with_capacity(128),
        })
    }
}

/// A connection: the buffered socket, the request being built and the last reply line.
#[derive(Debug)]
struct Conn {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Conn {
    /// Sends one command line, followed by a data block and its `\r\n` when given, in one write.
    fn send(&mut self, line: fmt::Arguments<'_>, data: Option<&[u8]>) -> Exchange<()> {
        self.out.clear();
        self.out.write_fmt(line)?;
        if let Some(data) = data {
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&self.out)?;
        Ok(())
    }

    /// `add` / `replace`: true when `STORED`, false when `NOT_STORED`.
    fn store(
        &mut self,
        verb: &str,
        key: &str,
        value: &[u8],
        expires: SystemTime,
    ) -> Exchange<bool> {
        let exptime = exptime(expires, SystemTime::now());
        let len = value.len();
        self.send(
            format_args!("{verb} {key} 0 {exptime} {len}\r\n"),
            Some(value),
        )?;
        match self.read_line()? {
            b"SERVER_ERROR object too large for cache" => Err(Failure::TooLarge(len)),
            _ => self.parse_status(&[("STORED", true), ("NOT_STORED", false)]),
        }
    }

    /// Reads a one-line reply that must be one of `expected`.
    fn status<T: Copy>(&mut self, expected: &[(&str, T)]) -> Exchange<T> {
        self.read_line()?;
        self.parse_status(expected)
    }

    fn parse_status<T: Copy>(&self, expected: &[(&str, T)]) -> Exchange<T> {
        expected
            .iter()
            .find(|(line, _)| line.as_bytes() == self.line.as_slice())
            .map(|&(_, value)| value)
            .ok_or_else(|| self.unexpected())
    }

    /// The reply to `get`/`gat` for one key: `VALUE <key> <flags> <bytes>`, the data, `END`;
    /// or just `END` on a miss.
    fn retrieval(&mut self) -> Exchange<Option<Vec<u8>>> {
        if self.read_line()? == b"END" {
            return Ok(None);
        }
        let len = self.value_len().ok_or_else(|| self.unexpected())?;
        let mut value = vec![0; len + 2];
        self.reader.read_exact(&mut value)?;
        if !value.ends_with(b"\r\n") {
            return Err(Failure::Reply("data block not followed by CRLF".into()));
        }
        value.truncate(len);
        match self.read_line()? {
            b"END" => Ok(Some(value)),
            _ => Err(self.unexpected()),
        }
    }

    /// The `<bytes>` of a `VALUE <key> <flags> <bytes>` line.
    fn value_len(&self) -> Option<usize> {
        let line = std::str::from_utf8(&self.line).ok()?;
        let mut fields = line.strip_prefix("VALUE ")?.split(' ');
        let (_key, _flags, len) = (fields.next()?, fields.next()?, fields.next()?);
        len.parse().ok().filter(|&len| len <= MAX_ITEM)
    }

    /// Reads one reply line into `self.line`, without its `\r\n`.
    fn read_line(&mut self) -> Exchange<&[u8]> {
        self.line.clear();
        (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)?;
        if self.line.is_empty() {
            return Err(io::Error::from(ErrorKind::UnexpectedEof).into());
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(Failure::Reply("reply line too long or cut short".into()));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(&self.line)
    }

    fn unexpected(&self) -> Failure {
        Failure::Reply(String::from_utf8_lossy(&self.line).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_follows_memcached_rule() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |secs: u64| now + Duration::from_secs(secs);
        assert_eq!(exptime(at(1), now), 1);
        assert_eq!(exptime(now + Duration::from_millis(1200), now), 2);
        assert_eq!(
            exptime(at(MAX_RELATIVE_SECS), now),
            MAX_RELATIVE_SECS as i64
        );
        assert_eq!(exptime(at(MAX_RELATIVE_SECS + 1), now), 1_802_592_001);
        assert_eq!(exptime(at(31 * 86400), now), 1_802_678_400);
        assert_eq!(exptime(now, now), -1);
        assert_eq!(exptime(now - Duration::from_secs(60), now), -1);
        assert_eq!(exptime(at(100 * 365 * 86400), now), i64::from(i32::MAX));
    }

    #[test]
    fn urls() {
        let parse = |url| parse_url(url).ok();
        assert_eq!(
            parse("memcache://127.0.0.1:11211"),
            Some(vec!["127.0.0.1:11211".into()])
        );
        assert_eq!(
            parse("memcache://a,b:1/"),
            Some(vec!["a:11211".into(), "b:1".into()])
        );
        assert_eq!(parse("memcache://[::1]:7"), Some(vec!["[::1]:7".into()]));
        assert_eq!(parse("memcache://[::1]"), Some(vec!["[::1]:11211".into()]));
        for bad in [
            "redis://a",
            "memcache://",
            "memcache://a:x",
            "memcache://a?timeout=1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(validate_key("session:abc").is_ok());
        assert!(validate_key(&"k".repeat(250)).is_ok());
        for bad in ["", "a b", "a\nb", "a\tb", "a\u{7f}", &"k".repeat(251)] {
            assert!(
                matches!(validate_key(bad), Err(Error::InvalidKey(_))),
                "{bad:?}"
            );
        }
    }
}
