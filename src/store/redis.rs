//! The [`RedisStore`](super::RedisStore) and its builder.

use super::builder::setters;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::io::tcp::TcpSettings;
use ::redis::{Client, Cmd, Connection, FromRedisValue, RedisError, Value};
use r2d2::{ManageConnection, Pool};

use super::ConnectionSettings;
use super::redact::{SecretUrl, redact};
use crate::{Error, ErrorKind, Result, StoreError};

impl From<RedisError> for Error {
    fn from(e: RedisError) -> Self {
        store_error("redis", e)
    }
}

/// `e` as an error of `store` (`redis` or `redis cluster`), with its kind and cause.
pub(super) fn store_error(store: &'static str, e: RedisError) -> Error {
    let unavailable =
        e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error();
    let kind = if unavailable {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    let cause = cause(&e);
    Error::Store(StoreError::new(store, kind, e).with_cause(cause))
}

/// What went wrong, in the words an operator searches for.
fn cause(e: &RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || e.code()
            .is_some_and(|code| code == "WRONGPASS" || code == "NOAUTH")
    {
        format!("authentication failed ({e})")
    } else if e.to_string().contains("DB index is out of range") {
        "database index out of range".to_owned()
    } else {
        e.to_string()
    }
}
use lua::Lua;
use pool::Pooled;

pub(super) mod lua;
pub(super) mod pool;
pub(super) mod users;

/// Where a store with no URL and no client connects: Flask-Session's development default.
const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Configures and builds a [`RedisStore`] with its own connection pool.
///
/// Every setting has a default suited to a thread-per-request server next to a Redis on the
/// local network; no wait is ever unlimited (see [`connection`](Self::connection)).
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::{ConnectionSettings, RedisStore, Store};
///
/// let store = RedisStore::builder()
///     .url("redis://127.0.0.1:6379/0")
///     .connection(ConnectionSettings {
///         io_timeout: Duration::from_millis(500),
///         max_connections: 32,
///         ..ConnectionSettings::default()
///     })
///     .build()?; // connects once and sends PING: a wrong URL fails here, not on a request
/// assert_eq!(store.load("session:missing")?, None);
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    target: Target,
    settings: ConnectionSettings,
    startup_check: bool,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            target: Target::default(),
            settings: ConnectionSettings::default(),
            startup_check: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
enum Target {
    #[default]
    Default,
    Url(SecretUrl),
    Client(Client),
}

impl RedisStoreBuilder {
    /// The server to connect to, as a `redis://[user:password@]host[:port][/db]` URL
    /// (`rediss://` for TLS needs one of the `redis` crate's TLS features; `redis+unix:///path`
    /// for a Unix socket). Default: `redis://127.0.0.1:6379`, with a `log` info line saying so.
    /// The password is never printed: `Debug` and every error show `***` instead.
    ///
    /// ```
    /// let url = "redis://:hunter2@cache.internal:6379/2";
    /// let builder = server_session::store::RedisStore::builder().url(url);
    /// let shown = format!("{builder:?}");
    /// assert!(shown.contains("cache.internal:6379/2") && !shown.contains("hunter2"), "{shown}");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Url(SecretUrl::new(url));
        self
    }

    setters! {
        /// Whether [`build`](Self::build) opens one connection and sends `PING` before it returns,
        /// so that an unreachable server, a wrong password or a missing database index fails the
        /// build with its cause instead of every request later. Default: `true`. Turn it off to
        /// start while the server is still coming up; requests then fail until it answers.
        ///
        /// ```
        /// // Builds at once, even though nothing listens on port 1.
        /// let store = server_session::store::RedisStore::builder()
        ///     .url("redis://127.0.0.1:1/")
        ///     .startup_check(false)
        ///     .build();
        /// assert!(store.is_ok());
        /// ```
        startup_check(check: bool) => startup_check;
    }

    /// The server to connect to, as an already configured [`redis::Client`] (replaces
    /// [`url`](Self::url)). The pool still applies [`connection`](Self::connection) and sets
    /// `TCP_NODELAY` on each connection it opens.
    ///
    /// ```
    /// let client = redis::Client::open("redis://:hunter2@127.0.0.1:6379/1").unwrap();
    /// let builder = server_session::store::RedisStore::builder().client(client);
    /// assert!(!format!("{builder:?}").contains("hunter2"), "the password is never printed");
    /// ```
    pub fn client(mut self, client: Client) -> Self {
        self.target = Target::Client(client);
        self
    }

    setters! {
        /// How the store connects, waits and pools: see [`ConnectionSettings`] for the meaning
        /// and the defaults (connect 1 s, I/O 2 s, checkout 1 s, 16 connections).
        ///
        /// - `connect_timeout` bounds opening a connection: TCP connect plus the handshake
        ///   (`AUTH`, `SELECT`);
        /// - `io_timeout` bounds sending each command and waiting for its reply; a connection that
        ///   timed out is discarded, never reused;
        /// - `max_connections` is the most connections the pool holds (it keeps them open once
        ///   made); size it to your server's worker threads;
        /// - `checkout_timeout` is how long an operation waits for a pooled connection (all busy,
        ///   or the server unreachable) before failing with [`Error::Store`] of kind
        ///   [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable).
        ///
        /// An operation thus takes at most the checkout timeout plus the I/O timeout of its
        /// command (and once more on a fresh connection after a pooled one the server had closed).
        ///
        /// ```
        /// use std::time::Duration;
        /// use server_session::store::{ConnectionSettings, RedisStore};
        /// let builder = RedisStore::builder().connection(ConnectionSettings {
        ///     checkout_timeout: Duration::from_millis(500),
        ///     ..ConnectionSettings::default()
        /// });
        /// assert!(format!("{builder:?}").contains("checkout_timeout: 500ms"));
        /// ```
        connection(settings: ConnectionSettings) => settings;
    }

    /// Validates the settings, checks the server (see [`startup_check`](Self::startup_check))
    /// and starts the pool, which opens its other connections in the background.
    ///
    /// Errors: [`Error::Config`] for a zero or absurd timeout or connection count, or a URL
    /// the `redis` crate does not accept (printed without its password); [`Error::Store`]
    /// naming the server and the cause when the start-up check fails: "connection refused",
    /// "no answer within the timeout" (bounded by twice the connect timeout plus the I/O
    /// timeout), "authentication failed", "database index out of range".
    ///
    /// ```
    /// use std::time::Duration;
    /// use server_session::{store::{ConnectionSettings, RedisStore}, Error};
    ///
    /// let zero = ConnectionSettings { io_timeout: Duration::ZERO, ..Default::default() };
    /// let err = RedisStore::builder().connection(zero).build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// let err = RedisStore::builder().url("http://:secret@example.com").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// assert!(!err.to_string().contains("secret"), "{err}");
    ///
    /// let err = RedisStore::builder().url("redis://127.0.0.1:1/").build().unwrap_err();
    /// assert_eq!(err.to_string(), "redis 127.0.0.1:1: connection refused");
    /// ```
    pub fn build(self) -> Result<RedisStore> {
        self.settings.validate("RedisStore")?;
        let client = self.open_client()?;
        let target: Arc<str> = client.get_connection_info().addr().to_string().into();
        let connector = Connector {
            client: with_nodelay(&client)?,
            connect_timeout: self.settings.connect_timeout,
            io_timeout: self.settings.io_timeout,
        };
        if self.startup_check {
            connector
                .check()
                .map_err(|e| Error::from(e).at(|| target.to_string()))?;
        }
        Ok(RedisStore {
            pool: Pools::Own {
                pool: pool::pool(&self.settings, connector.clone()),
                connector: Arc::new(connector),
            },
            target: Some(target),
        })
    }

    fn open_client(&self) -> Result<Client> {
        match &self.target {
            Target::Default => {
                log::info!("no Redis URL or client given: connecting to {DEFAULT_URL}");
                Ok(Client::open(DEFAULT_URL)?)
            }
            Target::Url(url) => Client::open(url.expose()).map_err(|e| {
                Error::Config(format!(
                    "RedisStore URL {url} is not valid: {}",
                    redact(&e.to_string())
                ))
            }),
            Target::Client(client) => Ok(client.clone()),
        }
    }
}

/// The client with `TCP_NODELAY` added to its own TCP settings.
fn with_nodelay(client: &Client) -> Result<Client> {
    let info = client.get_connection_info().clone();
    let settings: TcpSettings = info.tcp_settings().clone().set_nodelay(true);
    Ok(Client::open(info.set_tcp_settings(settings))?)
}

/// Sessions in Redis through a pool of connections, like Flask-Session's `redis` backend.
///
/// Each session is one string key, `prefix + id`, holding exactly the codec's bytes, with a
/// native Redis expiry; a Flask-Session 0.8 app on the same server reads and writes the same
/// entries. Every store operation is one command and one round trip:
///
/// | operation        | command                     |
/// |------------------|-----------------------------|
/// | `load`           | `GET key`                   |
/// | `create`         | `SET key value NX PXAT ms`  |
/// | `save`           | `SET key value XX PXAT ms`  |
/// | `touch`          | `PEXPIREAT key ms`          |
/// | `delete`         | `DEL key`                   |
/// | `load_and_touch` | `GETEX key PXAT ms`         |
///
/// An expiry already in the past is sent as it is (at least 1 ms after the Unix epoch): Redis
/// then treats the key as expired, so the contract holds without an extra round trip.
/// `GETEX` and `PXAT` need Redis 6.2 or later.
///
/// Its [`UserIndex`](super::UserIndex) keeps one sorted set per user, under the user name the
/// manager passes (`prefix + "user:" + id`), of the user's session keys scored by their
/// `until` in Unix milliseconds; Flask-Session never reads it:
///
/// | operation     | command                                                |
/// |---------------|--------------------------------------------------------|
/// | `link_user`   | one script: `ZADD`, `ZREMRANGEBYSCORE`, `PEXPIREAT`    |
/// | `user_keys`   | `ZRANGEBYSCORE user (now +inf`                         |
/// | `unlink_user` | `ZREM user key...`                                     |
///
/// The script drops the lapsed records (`-inf` to now) and expires the set with its last one,
/// so the set never outgrows the user's live sessions.
///
/// Cloning is cheap and shares the pool.
///
/// ```no_run
/// use server_session::{store::RedisStore, Config, SessionManager};
///
/// let store = RedisStore::open("redis://127.0.0.1:6379/0")?;
/// let manager = SessionManager::new(store, Config::default())?;
/// let mut session = manager.open(None);
/// session.insert("user", &"ada")?;
/// assert!(session.commit()?.set_cookie().is_some(), "stored in Redis, the id in a cookie");
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisStore {
    pool: Pools,
    /// The server's `host:port` (or socket path) for error messages; unknown for a shared pool.
    target: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
enum Pools {
    Own {
        pool: Pool<Connector>,
        /// The pool's connector, for a fresh connection after a pooled one was found dead.
        connector: Arc<Connector>,
    },
    Shared(Pool<Client>),
}

impl RedisStore {
    /// A builder with every setting at its default.
    ///
    /// ```
    /// let builder = server_session::store::RedisStore::builder();
    /// assert!(format!("{builder:?}").contains("startup_check: true"));
    /// ```
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// A store on the server at `url`, with the default pool and timeouts.
    ///
    /// ```no_run
    /// use server_session::store::{RedisStore, Store};
    /// let store = RedisStore::open("redis://127.0.0.1:6379/0")?;
    /// assert_eq!(store.load("session:missing")?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// A store on `redis://127.0.0.1:6379` (Flask-Session's development default), with a
    /// `log` info line saying so.
    ///
    /// ```no_run
    /// use server_session::store::{RedisStore, Store};
    /// let store = RedisStore::default_local()?;
    /// assert_eq!(store.load("session:missing")?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn default_local() -> Result<Self> {
        Self::builder().build()
    }

    /// A store on the server `client` connects to, with the default pool and timeouts.
    ///
    /// ```no_run
    /// let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    /// let store = server_session::store::RedisStore::from_client(client)?;
    /// assert_eq!(server_session::store::Store::load(&store, "session:missing")?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn from_client(client: Client) -> Result<Self> {
        Self::builder().client(client).build()
    }

    /// A store sharing an existing pool, for example the one the application's cache uses
    /// (Flask-Session's `SESSION_REDIS`).
    ///
    /// The pool's own settings apply. Build it with `test_on_check_out(false)`: r2d2's default
    /// sends a `PING` before every checkout, an extra round trip that doubles the cost of each
    /// store operation. Such a pool opens connections with `redis::Client`'s defaults, which
    /// have no read or write timeout: set `connection_timeout` on the pool, and prefer
    /// [`builder`](Self::builder) when a stalled server must not stall requests.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    /// let pool = r2d2::Pool::builder()
    ///     .max_size(16)
    ///     .test_on_check_out(false)
    ///     .connection_timeout(Duration::from_secs(1))
    ///     .build(client)
    ///     .unwrap();
    /// let store = server_session::store::RedisStore::from_pool(pool);
    /// assert_eq!(server_session::store::Store::load(&store, "session:missing")?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn from_pool(pool: Pool<Client>) -> Self {
        Self {
            pool: Pools::Shared(pool),
            target: None,
        }
    }

    /// Runs one command on a pooled connection and converts its reply.
    ///
    /// On our own pool, a connection whose command failed for any reason other than an error
    /// reply from the server (timeout, reset, unparsable reply) is marked broken, so the pool
    /// discards it instead of handing out a connection with a reply still in flight. A pooled
    /// connection the server closed (it restarted, or dropped idle clients) is retried once on
    /// a fresh connection, so a restart costs no request.
    fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let result = match &self.pool {
            Pools::Own { pool, connector } => {
                pool.get().map_err(no_connection).and_then(|mut conn| {
                    let error = match cmd.query(&mut conn.connection) {
                        Ok(reply) => return Ok(reply),
                        Err(e) => e,
                    };
                    conn.broken |= !is_server_reply(&error);
                    if !error.is_connection_dropped() {
                        return Err(error.into());
                    }
                    drop(conn);
                    Ok(cmd.query(&mut connector.open()?.connection)?)
                })
            }
            Pools::Shared(pool) => pool
                .get()
                .map_err(no_connection)
                .and_then(|mut conn| Ok(cmd.query(&mut *conn)?)),
        };
        match &self.target {
            Some(target) => result.map_err(|e| e.at(|| target.to_string())),
            None => result,
        }
    }
}

/// No pooled connection within the checkout timeout; r2d2's message carries the last
/// connection error.
pub(super) fn no_connection(e: r2d2::Error) -> Error {
    Error::Store(StoreError::new("redis", ErrorKind::Unavailable, e))
}

/// Whether the error is an error reply the server sent, after which the connection is fine.
pub(super) fn is_server_reply(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ::redis::ErrorKind::Server(_) | ::redis::ErrorKind::Extension
    )
}

/// Milliseconds since the Unix epoch for `PXAT`/`PEXPIREAT`; at least 1, since Redis rejects 0
/// and negative times but treats any time in the past as "already expired".
pub(super) fn unix_ms(t: SystemTime) -> u64 {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// `SET key value <condition> PXAT ms`: true when the server stored the value (`OK`), false
/// when the condition failed (nil).
pub(super) fn set_cmd(key: &str, value: &[u8], condition: &str, expires: SystemTime) -> Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key)
        .arg(value)
        .arg(condition)
        .arg("PXAT")
        .arg(unix_ms(expires));
    cmd
}

pub(super) fn is_ok(reply: &Value) -> bool {
    matches!(reply, Value::Okay)
}

/// The conditional write, run atomically by the server: `SET` only if the key still holds
/// the expected bytes. Replies 1 (written), the current bytes (changed) or nil (gone).
pub(super) static REPLACE: Lua = Lua::new(
    "\
local current = redis.call('GET', KEYS[1])
if not current then return false end
if current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1",
);

/// The script's reply as a [`Replaced`](crate::store::Replaced).
pub(super) fn replaced(reply: Value) -> crate::store::Replaced {
    use crate::store::Replaced;
    match reply {
        Value::Int(1) => Replaced::Done,
        Value::BulkString(current) => Replaced::Changed(current),
        _ => Replaced::Gone,
    }
}

/// Implements [`Store`](super::Store) for a type with a `query(&self, &Cmd) -> Result<T>`
/// method, one command per operation as the table on [`RedisStore`] shows. The
/// `RedisClusterStore` shares it, so both stores send exactly the same commands.
macro_rules! store_by_commands {
    ($store:ty) => {
        impl $crate::store::Store for $store {
            fn user_index(&self) -> Option<&dyn $crate::store::UserIndex> {
                Some(self)
            }

            fn load(&self, key: &str) -> $crate::Result<Option<Vec<u8>>> {
                self.query(::redis::cmd("GET").arg(key))
            }

            fn create(
                &self,
                key: &str,
                value: &[u8],
                expires: ::std::time::SystemTime,
            ) -> $crate::Result<bool> {
                let cmd = $crate::store::redis::set_cmd(key, value, "NX", expires);
                let reply: ::redis::Value = self.query(&cmd)?;
                Ok($crate::store::redis::is_ok(&reply))
            }

            fn save(
                &self,
                key: &str,
                value: &[u8],
                expires: ::std::time::SystemTime,
            ) -> $crate::Result<bool> {
                let cmd = $crate::store::redis::set_cmd(key, value, "XX", expires);
                let reply: ::redis::Value = self.query(&cmd)?;
                Ok($crate::store::redis::is_ok(&reply))
            }

            fn replace(
                &self,
                key: &str,
                expected: &[u8],
                value: &[u8],
                expires: ::std::time::SystemTime,
            ) -> $crate::Result<$crate::store::Replaced> {
                let ms = $crate::store::redis::unix_ms(expires);
                let args = |cmd: &mut ::redis::Cmd| {
                    cmd.arg(expected).arg(value).arg(ms);
                };
                let script = &$crate::store::redis::REPLACE;
                let reply = script.run(|cmd| self.query(cmd), key, args)?;
                Ok($crate::store::redis::replaced(reply))
            }

            fn touch(&self, key: &str, expires: ::std::time::SystemTime) -> $crate::Result<bool> {
                let ms = $crate::store::redis::unix_ms(expires);
                let changed: i64 = self.query(::redis::cmd("PEXPIREAT").arg(key).arg(ms))?;
                Ok(changed == 1)
            }

            fn delete(&self, key: &str) -> $crate::Result<()> {
                let _removed: i64 = self.query(::redis::cmd("DEL").arg(key))?;
                Ok(())
            }

            fn load_and_touch(
                &self,
                key: &str,
                expires: ::std::time::SystemTime,
            ) -> $crate::Result<Option<Vec<u8>>> {
                let mut cmd = ::redis::cmd("GETEX");
                cmd.arg(key)
                    .arg("PXAT")
                    .arg($crate::store::redis::unix_ms(expires));
                self.query(&cmd)
            }
        }

        $crate::store::redis::users::user_index_by_commands!($store);
    };
}
#[cfg(feature = "redis-cluster")]
pub(super) use store_by_commands;

store_by_commands!(RedisStore);

/// The r2d2 manager of our own pool: opens connections with the connect timeout, then sets
/// the read and write timeouts (the I/O timeout) the `redis` crate leaves unset.
#[derive(Debug, Clone)]
struct Connector {
    client: Client,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl Connector {
    /// A connection with the connect timeout on its handshake and the I/O timeout on every
    /// read and write.
    fn open(&self) -> Result<Pooled<Connection>, RedisError> {
        let connection = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.io_timeout))?;
        connection.set_write_timeout(Some(self.io_timeout))?;
        Ok(Pooled::new(connection))
    }

    /// The start-up check: one connection (with its handshake) and a `PING`.
    fn check(&self) -> Result<(), RedisError> {
        let mut conn = self.open()?;
        ::redis::cmd("PING").query::<()>(&mut conn.connection)
    }
}

impl ManageConnection for Connector {
    type Connection = Pooled<Connection>;
    type Error = RedisError;

    fn connect(&self) -> Result<Pooled<Connection>, RedisError> {
        self.open()
    }

    /// Only called if someone turns `test_on_check_out` back on; our pool never does.
    fn is_valid(&self, conn: &mut Pooled<Connection>) -> Result<(), RedisError> {
        ::redis::cmd("PING").query::<()>(&mut conn.connection)
    }

    fn has_broken(&self, conn: &mut Pooled<Connection>) -> bool {
        conn.has_broken()
    }
}
