//! Pooled PostgreSQL connections that keep their prepared statements and never wait longer
//! than their timeouts.
//!
//! The `postgres` crate's blocking client has no read timeout: a server that accepts and never
//! answers pins the calling thread forever. So each connection here drives a `tokio-postgres`
//! client on its own single-threaded runtime (what the blocking client does inside, too) and
//! wraps every round trip in a timer: the handshake in the connect timeout, each statement in
//! the I/O timeout. A connection that timed out is marked broken and discarded by the pool.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::types::ToSql;
use postgres::{NoTls, Row, Socket, Statement};
use r2d2::ManageConnection;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use super::{target_of, timed_out};
use crate::store::ConnectionSettings;
use crate::{Error, ErrorKind, Result, StoreError};

/// A TLS connector the store can use: [`NoTls`], or a `MakeTlsConnect` from
/// `postgres-native-tls` or `postgres-openssl`. Implemented for every type that qualifies.
///
/// ```
/// fn accepts<T: server_session::store::PostgresTls>() {}
/// accepts::<postgres::NoTls>();
/// ```
pub trait PostgresTls:
    MakeTlsConnect<Socket, TlsConnect: Send + TlsConnect<Socket, Future: Send>, Stream: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> PostgresTls for T where
    T: MakeTlsConnect<Socket, TlsConnect: Send + TlsConnect<Socket, Future: Send>, Stream: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// An r2d2 connection manager whose connections keep their prepared statements and bound
/// every round trip in time.
///
/// Each connection is opened within the connect timeout (TCP, TLS, authentication and the
/// `SET statement_timeout`), and each statement on it waits at most the I/O timeout for the
/// server (see [`ConnectionSettings`]). Build your own pool with it to share connections with
/// the rest of the app.
///
/// ```no_run
/// use server_session::store::{PostgresManager, PostgresStore};
///
/// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
/// let pool = r2d2::Pool::builder()
///     .max_size(20)
///     .test_on_check_out(false)
///     .build(PostgresManager::new(config, postgres::NoTls))?;
/// let store = PostgresStore::builder().pool(pool).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresManager<T = NoTls> {
    config: tokio_postgres::Config,
    tls: T,
    target: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    statement_timeout: Option<Duration>,
}

impl<T: PostgresTls> PostgresManager<T> {
    /// A manager connecting with `config` and `tls`, with the default
    /// [`ConnectionSettings`] timeouts and a statement timeout equal to the I/O timeout.
    ///
    /// ```
    /// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
    /// let manager = server_session::store::PostgresManager::new(config, postgres::NoTls);
    /// assert!(format!("{manager:?}").contains("localhost:5432"));
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn new(config: postgres::Config, tls: T) -> Self {
        Self::from_async(to_async(&config), tls)
    }

    pub(super) fn from_async(config: tokio_postgres::Config, tls: T) -> Self {
        let defaults = ConnectionSettings::default();
        Self {
            target: target_of(&config),
            config,
            tls,
            connect_timeout: defaults.connect_timeout,
            io_timeout: defaults.io_timeout,
            statement_timeout: Some(defaults.io_timeout),
        }
    }

    /// Takes the connect and I/O timeouts of `settings` (the pool's own settings size the
    /// pool); the statement timeout follows the I/O timeout unless set after this.
    ///
    /// ```
    /// use std::time::Duration;
    /// use server_session::store::{ConnectionSettings, PostgresManager};
    /// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
    /// let settings = ConnectionSettings { io_timeout: Duration::from_millis(500), ..Default::default() };
    /// let manager = PostgresManager::new(config, postgres::NoTls).connection(settings);
    /// assert!(format!("{manager:?}").contains("500ms"));
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn connection(mut self, settings: ConnectionSettings) -> Self {
        self.connect_timeout = settings.connect_timeout;
        self.io_timeout = settings.io_timeout;
        self.statement_timeout = Some(settings.io_timeout);
        self
    }

    /// The longest a statement may run before the server cancels it (`SET statement_timeout`
    /// on each new connection); `None` leaves the server's setting. Default: the I/O timeout,
    /// so the server gives up when the client does.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
    /// let manager = server_session::store::PostgresManager::new(config, postgres::NoTls)
    ///     .statement_timeout(None);
    /// assert!(format!("{manager:?}").contains("statement_timeout: None"));
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// `host:port` of the server, for messages.
    pub(super) fn target(&self) -> &str {
        &self.target
    }

    /// Opens a connection: everything up to a usable session within the connect timeout.
    fn open(&self) -> Result<PostgresConnection> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Store(StoreError::new("postgres", ErrorKind::Other, e)))?;
        let handshake = async {
            let (client, connection) = self.config.connect(self.tls.clone()).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    log::debug!("postgres connection ended: {e}");
                }
            });
            if let Some(timeout) = self.statement_timeout {
                let millis = timeout.as_millis().max(1);
                let set = format!("SET statement_timeout = {millis}");
                client.batch_execute(&set).await?;
            }
            Ok::<_, tokio_postgres::Error>((client, driver))
        };
        let limit = self.connect_timeout;
        let opened = runtime.block_on(async { tokio::time::timeout(limit, handshake).await });
        let (client, _driver) = match opened {
            Ok(done) => done?,
            Err(_) => return Err(timed_out("connect timeout", limit)),
        };
        Ok(PostgresConnection {
            runtime,
            io: Io {
                limit: self.io_timeout,
                broken: false,
            },
            client,
            statements: HashMap::new(),
        })
    }
}

impl<T> fmt::Debug for PostgresManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresManager")
            .field("target", &self.target)
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl<T: PostgresTls> ManageConnection for PostgresManager<T> {
    type Connection = PostgresConnection;
    type Error = Error;

    /// A fresh connection; the error names no server (the store adds it).
    fn connect(&self) -> Result<PostgresConnection> {
        self.open()
    }

    /// Only called if someone turns `test_on_check_out` back on; the store's pool never does.
    fn is_valid(&self, conn: &mut PostgresConnection) -> Result<()> {
        conn.batch_execute("")
    }

    fn has_broken(&self, conn: &mut PostgresConnection) -> bool {
        conn.io.broken || conn.client.is_closed()
    }
}

/// The `tokio-postgres` form of a `postgres::Config`: every connection setting copied.
pub(super) fn to_async(config: &postgres::Config) -> tokio_postgres::Config {
    use tokio_postgres::config::Host;
    let mut out = tokio_postgres::Config::new();
    if let Some(user) = config.get_user() {
        out.user(user);
    }
    if let Some(password) = config.get_password() {
        out.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        out.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        out.options(options);
    }
    if let Some(name) = config.get_application_name() {
        out.application_name(name);
    }
    for host in config.get_hosts() {
        match host {
            Host::Tcp(name) => out.host(name),
            Host::Unix(path) => out.host_path(path),
        };
    }
    for addr in config.get_hostaddrs() {
        out.hostaddr(*addr);
    }
    for port in config.get_ports() {
        out.port(*port);
    }
    copy_connection_options(config, &mut out);
    out
}

/// The TLS, timeout, keepalive and host-selection options of `config`.
fn copy_connection_options(config: &postgres::Config, out: &mut tokio_postgres::Config) {
    out.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    if let Some(timeout) = config.get_connect_timeout() {
        out.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        out.tcp_user_timeout(*timeout);
    }
    if let Some(interval) = config.get_keepalives_interval() {
        out.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        out.keepalives_retries(retries);
    }
}

/// The I/O timeout of a connection, and whether it has expired once.
struct Io {
    limit: Duration,
    broken: bool,
}

impl Io {
    /// Drives `op` on `runtime` for at most the I/O timeout. A timeout leaves a reply in
    /// flight, so the connection is marked broken.
    fn wait<R>(
        &mut self,
        runtime: &Runtime,
        op: impl Future<Output = Result<R, tokio_postgres::Error>>,
    ) -> Result<R> {
        if self.broken {
            return Err(timed_out("I/O timeout (earlier)", self.limit));
        }
        let limit = self.limit;
        match runtime.block_on(async { tokio::time::timeout(limit, op).await }) {
            Ok(done) => Ok(done?),
            Err(_) => {
                self.broken = true;
                Err(timed_out("I/O timeout", self.limit))
            }
        }
    }
}

/// A pooled PostgreSQL connection with its cache of prepared statements. Every call on it
/// waits at most the store's I/O timeout.
///
/// ```no_run
/// use server_session::store::PostgresStore;
/// let store = PostgresStore::open("postgres://postgres@127.0.0.1:5432/test")?;
/// let mut conn = store.pool().get()?;
/// let rows = conn.query("SELECT count(*) FROM sessions", &[])?;
/// let count: i64 = rows[0].get(0);
/// assert!(count >= 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresConnection {
    runtime: Runtime,
    io: Io,
    client: Client,
    /// Prepared statements by SQL text.
    statements: HashMap<String, Statement>,
}

impl PostgresConnection {
    /// Runs `sql`, one or more statements without parameters, in one round trip.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://postgres@localhost/test")?;
    /// store.pool().get()?.batch_execute("VACUUM sessions")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batch_execute(&mut self, sql: &str) -> Result<()> {
        self.io.wait(&self.runtime, self.client.batch_execute(sql))
    }

    /// The rows `sql` returns for `params` (prepared, and cached on this connection).
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://postgres@localhost/test")?;
    /// let rows = store.pool().get()?.query("SELECT $1::int4", &[&7i32])?;
    /// assert_eq!(rows[0].get::<_, i32>(0), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        self.io
            .wait(&self.runtime, self.client.query(&statement, params))
    }

    /// The number of rows `sql` changed for `params` (prepared, and cached).
    pub(super) fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = self.prepared(sql)?;
        self.io
            .wait(&self.runtime, self.client.execute(&statement, params))
    }

    /// The row `sql` returns for `params`, if any (prepared, and cached).
    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let statement = self.prepared(sql)?;
        self.io
            .wait(&self.runtime, self.client.query_opt(&statement, params))
    }

    /// `sql` prepared on this connection, from the cache after the first time.
    pub(super) fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.io.wait(&self.runtime, self.client.prepare(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl fmt::Debug for PostgresConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnection")
            .field("closed", &self.client.is_closed())
            .field("broken", &self.io.broken)
            .field("io_timeout", &self.io.limit)
            .field("prepared_statements", &self.statements.len())
            .finish()
    }
}
