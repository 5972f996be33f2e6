//! The [`MemcachedStore`](super::MemcachedStore) and its builder.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::builder::setters;
use super::redact::SecretUrl;
use super::{ConnectionSettings, Replaced, Store};
use crate::{Error, ErrorKind, Result, StoreError};
use cas_memo::CasMemo;
use server::{Cas, Conn, Exchange, Server};

mod cas_memo;
mod health;
mod pool;
mod server;

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
    /// All `max_connections` to the server stayed busy for the whole checkout timeout.
    PoolTimeout {
        /// The server, as `host:port`.
        server: String,
        /// The most connections the store opens to it.
        max: usize,
        /// How long the operation waited.
        timeout: Duration,
    },
}

impl MemcachedError {
    /// The server the error came from, if it is known.
    fn server(&self) -> Option<&str> {
        match self {
            Self::Io { server, .. } | Self::Server { server, .. } => Some(server),
            Self::PoolTimeout { server, .. } => Some(server),
            Self::ValueTooLarge { .. } => None,
        }
    }

    /// What went wrong, in the words an operator searches for.
    fn cause(&self) -> String {
        match self {
            Self::Io { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                "connection refused".to_owned()
            }
            Self::Io { source, .. } => source.to_string(),
            Self::Server { reply, .. } => format!("answered {reply:?}"),
            Self::ValueTooLarge { len } => {
                format!("a value of {len} bytes is over the memcached item size limit")
            }
            Self::PoolTimeout { max, timeout, .. } => {
                format!("all {max} connections stayed busy for the checkout timeout ({timeout:?})")
            }
        }
    }
}

impl fmt::Display for MemcachedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.server() {
            Some(server) => write!(f, "memcached server {server}: {}", self.cause()),
            None => f.write_str(&self.cause()),
        }
    }
}

impl From<MemcachedError> for Error {
    fn from(e: MemcachedError) -> Self {
        let kind = match &e {
            MemcachedError::Io { source, .. } => ErrorKind::of_io(source),
            MemcachedError::Server { .. } => ErrorKind::Other,
            MemcachedError::ValueTooLarge { .. } => ErrorKind::Rejected,
            MemcachedError::PoolTimeout { .. } => ErrorKind::Unavailable,
        };
        let (cause, server) = (e.cause(), e.server().map(str::to_owned));
        let error = StoreError::new("memcached", kind, e).with_cause(cause);
        Error::Store(match server {
            Some(server) => error.with_target(server),
            None => error,
        })
    }
}

impl std::error::Error for MemcachedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Server { .. } | Self::ValueTooLarge { .. } | Self::PoolTimeout { .. } => None,
        }
    }
}

/// Configures and builds a [`MemcachedStore`]; every setting has a documented default and no
/// wait is ever unlimited (see [`connection`](Self::connection)).
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::{ConnectionSettings, MemcachedStore};
///
/// let store = MemcachedStore::builder()
///     .url("memcache://10.0.0.5:11211,10.0.0.6:11211")
///     .connection(ConnectionSettings {
///         io_timeout: Duration::from_millis(500),
///         ..ConnectionSettings::default()
///     })
///     .build()?; // sends `version` to each server: a wrong URL fails here, not on a request
/// assert_eq!(store.servers().collect::<Vec<_>>(), ["10.0.0.5:11211", "10.0.0.6:11211"]);
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedStoreBuilder {
    url: Option<SecretUrl>,
    settings: ConnectionSettings,
    max_value_size: usize,
    dead_server_backoff: Duration,
    startup_check: bool,
}

impl Default for MemcachedStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            settings: ConnectionSettings::default(),
            max_value_size: 1 << 20,
            dead_server_backoff: Duration::from_secs(5),
            startup_check: true,
        }
    }
}

impl MemcachedStoreBuilder {
    /// The servers, as `memcache://host[:port][,host[:port]...]` (port 11211 when omitted;
    /// IPv6 hosts in brackets). Default: `memcache://127.0.0.1:11211`, with a `log` info line
    /// saying so. Credentials are refused (memcached's text protocol has none), and never
    /// printed: `Debug` and the error show `***` instead of a password.
    ///
    /// With several servers each key lives on one of them, chosen by rendezvous hashing of the
    /// `host:port` names: stable across restarts, but not the distribution Python's clients
    /// use, so share sessions with a Python app through a single server.
    ///
    /// ```
    /// let builder = server_session::store::MemcachedStore::builder().url("memcache://cache:11211");
    /// let store = builder.startup_check(false).build()?;
    /// assert_eq!(store.servers().collect::<Vec<_>>(), ["cache:11211"]);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(SecretUrl::new(url));
        self
    }

    setters! {
        /// How the store connects, waits and pools, per server: see [`ConnectionSettings`] for the
        /// meaning and the defaults (connect 1 s, I/O 2 s, checkout 1 s, 16 connections).
        ///
        /// - `connect_timeout` bounds the TCP connect;
        /// - `io_timeout` bounds each send and each read of a reply; a connection that timed out
        ///   is closed, never reused;
        /// - `max_connections` is the most connections open to each server, idle or busy;
        /// - `checkout_timeout` is how long an operation waits for one of them when all are busy,
        ///   before it fails with [`MemcachedError::PoolTimeout`], of kind
        ///   [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable).
        ///
        /// An operation thus takes at most the checkout timeout, plus the connect timeout when it
        /// opens a connection, plus the I/O timeout of each send and reply (and once more after a
        /// pooled connection the server had closed, or on the next server after one that cannot
        /// be reached).
        ///
        /// ```
        /// use std::time::Duration;
        /// use server_session::store::{ConnectionSettings, MemcachedStore};
        /// let builder = MemcachedStore::builder().connection(ConnectionSettings {
        ///     max_connections: 32,
        ///     ..ConnectionSettings::default()
        /// });
        /// assert!(format!("{builder:?}").contains("max_connections: 32"));
        /// ```
        connection(settings: ConnectionSettings) => settings;
    }

    setters! {
        /// Whether [`build`](Self::build) sends `version` to every server (to all at once, so
        /// the check takes one timeout however many are silent) before it returns, so that a
        /// wrong host or port in the list fails the build with its cause
        /// (`memcached 127.0.0.1:1: connection refused`) instead of every request later. Default:
        /// `true`. Turn it off to start while a server is still coming up (requests for its keys
        /// then fail, or go to the next server, until it answers).
        ///
        /// ```
        /// // Builds at once, even though nothing listens on port 1.
        /// let store = server_session::store::MemcachedStore::builder()
        ///     .url("memcache://127.0.0.1:1")
        ///     .startup_check(false)
        ///     .build();
        /// assert!(store.is_ok());
        /// ```
        startup_check(check: bool) => startup_check;
    }

    setters! {
        /// The largest value sent to the server; larger ones fail with
        /// [`MemcachedError::ValueTooLarge`] without any I/O. Default: 1 MiB, memcached's default
        /// item size limit. Raise it together with the server's `-I`.
        ///
        /// ```
        /// use server_session::store::{MemcachedStore, Store};
        /// let builder = MemcachedStore::builder().max_value_size(4 << 20);
        /// let store = builder.startup_check(false).build()?;
        /// assert_eq!(store.max_value_bytes(), Some(4 << 20));
        /// # Ok::<(), server_session::Error>(())
        /// ```
        max_value_size(bytes: usize) => max_value_size;

        /// With several servers: how long a server that cannot be reached is left out. Its keys
        /// then go to the server that ranks next for them, where they are absent (a session it held
        /// starts afresh), and the request that found it dead is served there too. After the
        /// back-off one request tries it again, and a server that answers is used again at once,
        /// so its keys move back. Default: 5 seconds; `Duration::ZERO` turns this off (operations
        /// on its keys fail while it is down). A single server is never left out.
        ///
        /// "Cannot be reached" means that no connection could be opened to it within the connect
        /// timeout, or that a freshly opened one failed (reset, or no reply within the I/O
        /// timeout). A timeout on a connection that had worked before fails only that operation.
        ///
        /// ```
        /// use std::time::Duration;
        /// let builder = server_session::store::MemcachedStore::builder()
        ///     .url("memcache://10.0.0.5,10.0.0.6,10.0.0.7")
        ///     .dead_server_backoff(Duration::from_secs(10));
        /// assert!(format!("{builder:?}").contains("dead_server_backoff: 10s"));
        /// ```
        dead_server_backoff(backoff: Duration) => dead_server_backoff;
    }

    /// Validates the settings and the URL, then runs the start-up check (unless turned off).
    ///
    /// Errors: [`Error::Config`] for a URL that is not `memcache://` servers (shown without
    /// its password), a zero or absurd timeout or connection count, or a zero value size;
    /// [`Error::Store`] naming the server and the cause when the check fails
    /// (`memcached 127.0.0.1:1: connection refused`, `... no answer within the I/O timeout
    /// (2s)`), within the connect plus the I/O timeout per server.
    ///
    /// ```
    /// use server_session::{store::MemcachedStore, Error};
    /// let err = MemcachedStore::builder().url("redis://127.0.0.1").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    ///
    /// let err = MemcachedStore::open("memcache://127.0.0.1:1").unwrap_err();
    /// assert_eq!(err.to_string(), "memcached 127.0.0.1:1: connection refused");
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
        let servers: Vec<Server> = servers
            .into_iter()
            .map(|addr| Server::new(addr, &self.settings))
            .collect();
        if self.startup_check {
            check_all(&servers)?;
        }
        Ok(MemcachedStore {
            inner: Arc::new(Inner {
                servers,
                max_value_size: self.max_value_size,
                backoff: self.dead_server_backoff,
                memo: CasMemo::default(),
            }),
        })
    }

    fn validate(&self) -> Result<()> {
        self.settings.validate("MemcachedStore")?;
        if self.max_value_size == 0 {
            return Err(Error::Config(
                "MemcachedStore max_value_size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Sends `version` to every server at once; the first failure in list order.
fn check_all(servers: &[Server]) -> Result<()> {
    if let [server] = servers {
        return server.check();
    }
    std::thread::scope(|scope| {
        let checks: Vec<_> = servers
            .iter()
            .map(|server| scope.spawn(|| server.check()))
            .collect();
        checks.into_iter().try_for_each(|check| {
            check
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    })
}

/// `memcache://a:1,b` -> `["a:1", "b:11211"]`.
fn parse_url(url: &SecretUrl) -> Result<Vec<String>> {
    let invalid = |why: &str| Error::Config(format!("memcached URL {url:?}: {why}"));
    let rest = url
        .expose()
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
/// With several servers (`memcache://a,b,c`) each key lives on one of them, by rendezvous
/// hashing. A server that cannot be reached is left out for
/// [`dead_server_backoff`](MemcachedStoreBuilder::dead_server_backoff) (5 s): its keys go to the
/// next server, so the sessions it held start afresh and everything else keeps working; the
/// request that found it dead pays one connect (or, for a server that accepts but never
/// answers, one I/O) timeout at most and is served by the next server.
///
/// Cloning is cheap and shares the connection pools.
///
/// ```no_run
/// use server_session::{store::MemcachedStore, Config, SessionManager};
///
/// let store = MemcachedStore::open("memcache://127.0.0.1:11211")?;
/// let manager = SessionManager::new(store, Config::default())?;
/// let mut session = manager.open(None);
/// session.insert("user", &"ada")?;
/// assert!(session.commit()?.set_cookie().is_some(), "stored in memcached, the id in a cookie");
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
    /// How long an unreachable server is left out; zero when servers are never left out.
    backoff: Duration,
    /// The cas unique of each key's last load, for one-round-trip replaces.
    memo: CasMemo,
}

impl MemcachedStore {
    /// A builder with every setting at its default.
    ///
    /// ```
    /// use server_session::store::{MemcachedStore, Store};
    /// let store = MemcachedStore::builder().startup_check(false).build()?;
    /// assert_eq!(store.servers().collect::<Vec<_>>(), ["127.0.0.1:11211"]);
    /// assert_eq!(store.max_value_bytes(), Some(1 << 20));
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn builder() -> MemcachedStoreBuilder {
        MemcachedStoreBuilder::default()
    }

    /// A store on the servers of `url` (`memcache://host:port[,host:port...]`), with the
    /// default pool and timeouts.
    ///
    /// ```no_run
    /// let store = server_session::store::MemcachedStore::open("memcache://127.0.0.1:11211")?;
    /// assert_eq!(store.servers().collect::<Vec<_>>(), ["127.0.0.1:11211"]);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// A store on `127.0.0.1:11211`, with a `log` info line saying so.
    ///
    /// ```no_run
    /// let store = server_session::store::MemcachedStore::default_local()?;
    /// assert_eq!(store.servers().collect::<Vec<_>>(), ["127.0.0.1:11211"]);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn default_local() -> Result<Self> {
        Self::builder().build()
    }

    /// The servers, as `host:port`, in URL order.
    ///
    /// ```
    /// let store = server_session::store::MemcachedStore::builder()
    ///     .url("memcache://a,b:1")
    ///     .startup_check(false)
    ///     .build()?;
    /// assert_eq!(store.servers().collect::<Vec<_>>(), ["a:11211", "b:1"]);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.inner.servers.iter().map(|s| s.addr.as_str())
    }

    /// The server for `key`: the highest rendezvous (highest random weight) score among the
    /// servers in use other than `skip`; when none is left, the highest score of all.
    fn pick(&self, key: &str, skip: Option<&Server>) -> &Server {
        let servers = &self.inner.servers;
        let score = |s: &Server| mixed_hash(&[s.addr.as_bytes(), b"\0", key.as_bytes()]);
        if let [only] = servers.as_slice() {
            return only;
        }
        let mut ranked: Vec<(u64, &Server)> = servers.iter().map(|s| (score(s), s)).collect();
        ranked.sort_unstable_by_key(|&(score, _)| std::cmp::Reverse(score));
        let backoff = self.inner.backoff;
        ranked
            .iter()
            .map(|&(_, server)| server)
            .filter(|&server| skip.is_none_or(|skip| !std::ptr::eq(server, skip)))
            .find(|server| backoff.is_zero() || server.health.usable(backoff))
            .unwrap_or(ranked[0].1)
    }

    /// Validates the key, then runs `command` for it on its server. A server found unreachable
    /// is left out for the back-off and the command runs once more, on the next server.
    fn run<T>(&self, key: &str, command: impl Fn(&mut Conn) -> Exchange<T>) -> Result<T> {
        validate_key(key)?;
        let first = self.pick(key, None);
        let failed = match first.exchange(&command) {
            Ok(value) => return Ok(value),
            Err(failed) => failed,
        };
        let backoff = self.inner.backoff;
        if !failed.unreachable || backoff.is_zero() || self.inner.servers.len() < 2 {
            return Err(failed.error);
        }
        first.leave_out(backoff, &failed.error);
        let next = self.pick(key, Some(first));
        if std::ptr::eq(next, first) {
            return Err(failed.error);
        }
        next.exchange(&command).map_err(|again| {
            if again.unreachable {
                next.leave_out(backoff, &again.error);
            }
            again.error
        })
    }

    /// What `key` holds now, for a `replace` that found it changed; its cas unique is
    /// remembered for the next one.
    fn now_holds(&self, conn: &mut Conn, key: &str) -> Exchange<Replaced> {
        conn.send(format_args!("gets {key}\r\n"), None)?;
        let Some((current, unique)) = conn.retrieval_with_cas()? else {
            return Ok(Replaced::Gone);
        };
        self.inner.memo.remember(key, &current, unique);
        Ok(Replaced::Changed(current))
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
    /// Memcached's key rules, so that a key prefix with a space fails when the manager is
    /// built, not on every request.
    fn check_key(&self, key: &str) -> Result<()> {
        validate_key(key)
    }

    /// [`max_value_size`](MemcachedStoreBuilder::max_value_size): the server's item size.
    fn max_value_bytes(&self) -> Option<usize> {
        Some(self.inner.max_value_size)
    }

    /// A `gets`: its cas unique is remembered, so that a `replace` over these bytes is one
    /// `cas`.
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run(key, |conn| {
            conn.send(format_args!("gets {key}\r\n"), None)?;
            let Some((value, unique)) = conn.retrieval_with_cas()? else {
                return Ok(None);
            };
            self.inner.memo.remember(key, &value, unique);
            Ok(Some(value))
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

    /// One `cas` with the unique the load of `expected` returned (remembered by the store):
    /// one round trip. Without it (another process loaded, or the memo started over), `gets`,
    /// a comparison, then `cas`: two. An entry written since it was read (`EXISTS`) is read
    /// again and reported as changed.
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        self.check_size(value)?;
        self.run(key, |conn| {
            let unique = match self.inner.memo.take(key, expected) {
                Some(unique) => unique,
                None => {
                    conn.send(format_args!("gets {key}\r\n"), None)?;
                    match conn.retrieval_with_cas()? {
                        None => return Ok(Replaced::Gone),
                        Some((current, unique)) if current == expected => unique,
                        Some((current, unique)) => {
                            self.inner.memo.remember(key, &current, unique);
                            return Ok(Replaced::Changed(current));
                        }
                    }
                }
            };
            match conn.cas(key, value, expires, unique)? {
                Cas::Stored => Ok(Replaced::Done),
                Cas::NotFound => Ok(Replaced::Gone),
                Cas::Exists => self.now_holds(conn, key), // written since it was read
            }
        })
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
        let parse = |url| parse_url(&SecretUrl::new(url)).ok();
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
