//! The PostgreSQL dialect (feature `postgres`): sessions in Flask-Session's SQLAlchemy table,
//! so a Flask app using `SESSION_TYPE = "sqlalchemy"` on the same database shares them:
//!
//! ```sql
//! CREATE TABLE "sessions" (
//!     id SERIAL NOT NULL,              -- INTEGER NOT NULL when a sequence is configured
//!     session_id VARCHAR(255),
//!     data BYTEA,
//!     expiry TIMESTAMP WITHOUT TIME ZONE,
//!     PRIMARY KEY (id),
//!     UNIQUE (session_id)
//! );
//! CREATE INDEX "sessions_expiry_idx" ON "sessions" (expiry);
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use postgres::NoTls;
use postgres::error::SqlState;
use postgres::types::ToSql;

use super::dialect::DialectImpl;
use super::statements::{Names, quote};
use super::{Arg, Dialect, SqlStore, SqlStoreBuilder, builder::Source};
use crate::store::ConnectionSettings;
use crate::store::redact::{SecretUrl, redact};
use crate::{Error, ErrorKind, Result, StoreError};

mod connection;

use connection::to_async;
pub use connection::{PostgresConnection, PostgresManager, PostgresTls};

/// Sessions in a PostgreSQL table, in Flask-Session's `sessions` layout.
///
/// A dropped connection is retried on a fresh one. Every operation is bounded in time (see
/// [`ConnectionSettings`]): a server that stops answering fails it within the I/O timeout (the
/// connection is then discarded), and one that cannot be reached within the checkout timeout,
/// each with [`ErrorKind::Unavailable`]. Errors read `postgres <host:port>: <cause>`.
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{PostgresStore, Store};
///
/// let store = PostgresStore::open("postgres://postgres@127.0.0.1:5432/test")?;
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// assert!(store.create("session:a", b"data", expires)?);
/// assert_eq!(store.load("session:a")?, Some(b"data".to_vec()));
/// # Ok::<(), server_session::Error>(())
/// ```
pub type PostgresStore<T = NoTls> = SqlStore<Postgres<T>>;

/// Configures and opens a [`PostgresStore`]: where the database is ([`url`](Self::url),
/// [`config`](Self::config) or [`pool`](Self::pool)), its schema, sequence and statement
/// timeout, plus the settings every SQL store shares.
///
/// No wait is unbounded: opening a connection takes at most the connect timeout (TCP, TLS,
/// authentication), each statement at most the I/O timeout, and waiting for a pooled connection
/// at most the checkout timeout (see [`ConnectionSettings`]).
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::{ConnectionSettings, PostgresStore};
///
/// let store = PostgresStore::builder()
///     .url("postgres://app@db.internal:5432/app")
///     .schema("web")
///     .table("flask_sessions")
///     .connection(ConnectionSettings {
///         io_timeout: Duration::from_millis(500),
///         ..ConnectionSettings::default()
///     })
///     .build()?; // connects and checks the table: a wrong URL fails here, not on a request
/// # Ok::<(), server_session::Error>(())
/// ```
pub type PostgresStoreBuilder<T = NoTls> = SqlStoreBuilder<Postgres<T>>;

/// The PostgreSQL [`Dialect`], connecting through the TLS connector `T`: the type parameter of
/// [`PostgresStore`].
pub struct Postgres<T = NoTls>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for Postgres<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Postgres")
    }
}

impl<T: PostgresTls> Dialect for Postgres<T> {}

/// Where a [`PostgresStoreBuilder`] connects to.
#[derive(Debug)]
pub enum PostgresTarget {
    /// A URL or key-value string; shown without its password.
    Url(SecretUrl),
    /// A parsed `postgres::Config`.
    Config(Box<postgres::Config>),
}

/// What only PostgreSQL has: the TLS connector, schema, sequence and statement timeout.
pub struct PostgresOptions<T> {
    tls: T,
    schema: Option<String>,
    sequence: Option<String>,
    /// `None`: follow the I/O timeout.
    statement_timeout: Option<Option<Duration>>,
}

impl<T> std::fmt::Debug for PostgresOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("sequence", &self.sequence)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// The longest statement timeout accepted.
const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

impl SqlStore<Postgres<NoTls>> {
    /// A store on the database at `url` (without TLS), every other setting at its default.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://app@localhost/app")?;
    /// assert_eq!(store.table(), "sessions");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// A builder without TLS, with the defaults (table `sessions`, created if missing).
    ///
    /// ```
    /// let builder = server_session::store::PostgresStore::builder();
    /// assert!(format!("{builder:?}").contains("Unset"));
    /// ```
    pub fn builder() -> PostgresStoreBuilder<NoTls> {
        Self::builder_with_tls(NoTls)
    }
}

impl<T: PostgresTls> SqlStore<Postgres<T>> {
    /// A builder connecting through `tls`, with the defaults.
    ///
    /// ```
    /// let builder = server_session::store::PostgresStore::builder_with_tls(postgres::NoTls);
    /// assert!(format!("{builder:?}").contains("sessions"));
    /// ```
    pub fn builder_with_tls(tls: T) -> PostgresStoreBuilder<T> {
        SqlStoreBuilder::with_options(PostgresOptions {
            tls,
            schema: None,
            sequence: None,
            statement_timeout: None,
        })
    }

    /// The table's schema, if one was configured.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://app@localhost/app")?;
    /// assert_eq!(store.schema(), None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn schema(&self) -> Option<&str> {
        self.names.schema.as_deref()
    }

    /// The sequence giving `id` values, if one was configured.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://app@localhost/app")?;
    /// assert_eq!(store.sequence(), None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn sequence(&self) -> Option<&str> {
        self.names.sequence.as_deref()
    }
}

impl<T: PostgresTls> SqlStoreBuilder<Postgres<T>> {
    /// A connection URL or key-value string, as `postgres::Config` parses it, e.g.
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` or `host=/run/postgresql user=app dbname=app`.
    /// No default: set this, [`config`](Self::config) or [`pool`](Self::pool). The password
    /// is never printed: `Debug` and every error show `***` instead.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().url("postgres://app:pw@localhost/app");
    /// assert!(!format!("{b:?}").contains("pw@"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Open(PostgresTarget::Url(SecretUrl::new(url)));
        self
    }

    /// Connection settings as a `postgres::Config`.
    ///
    /// ```
    /// let mut config = postgres::Config::new();
    /// config.host("localhost").user("app").dbname("app");
    /// let b = server_session::store::PostgresStore::builder().config(config);
    /// assert!(format!("{b:?}").contains("Config"));
    /// ```
    pub fn config(mut self, config: postgres::Config) -> Self {
        self.source = Source::Open(PostgresTarget::Config(Box::new(config)));
        self
    }

    /// The schema holding the table (`SESSION_SQLALCHEMY_SCHEMA`). Default: none, the
    /// connection's `search_path`. Validated and quoted like the table; never created.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().schema("web");
    /// assert!(format!("{b:?}").contains("\"web\""));
    /// ```
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.options.schema = Some(schema.into());
        self
    }

    /// The sequence giving `id` values (`SESSION_SQLALCHEMY_SEQUENCE`). Default: none, `id`
    /// is a `SERIAL`. As with Flask-Session, the name is not schema-qualified (it resolves
    /// through `search_path`); it is created, if missing, with the table.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().sequence("sessions_id_seq");
    /// assert!(format!("{b:?}").contains("sessions_id_seq"));
    /// ```
    pub fn sequence(mut self, sequence: impl Into<String>) -> Self {
        self.options.sequence = Some(sequence.into());
        self
    }

    /// The server-side statement timeout of each connection (`SET statement_timeout`);
    /// `None` keeps the server's. Default: the I/O timeout, so the server cancels a statement
    /// when the client stops waiting for it. Does not apply to a given [`pool`](Self::pool).
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().statement_timeout(None);
    /// assert!(format!("{b:?}").contains("statement_timeout: Some(None)"));
    /// ```
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.statement_timeout = Some(timeout);
        self
    }
}

impl<T: PostgresTls> DialectImpl for Postgres<T> {
    type Manager = PostgresManager<T>;
    type Target = PostgresTarget;
    type Options = PostgresOptions<T>;
    const NAME: &'static str = STORE;
    const LABEL: &'static str = "PostgresStore";
    const TIMESTAMP: &'static str = "TIMESTAMP WITHOUT TIME ZONE";

    fn names(table: &str, options: &PostgresOptions<T>) -> Result<Names> {
        let (schema, sequence) = (options.schema.as_deref(), options.sequence.as_deref());
        Names::validated(table, schema, sequence)
    }

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn id_value(names: &Names) -> Option<String> {
        let sequence = names.sequence.as_deref()?;
        Some(format!("nextval('{}')", quote(sequence)))
    }

    fn validate(options: &PostgresOptions<T>, _: &ConnectionSettings) -> Result<()> {
        match options.statement_timeout {
            Some(Some(timeout)) if timeout.is_zero() || timeout > MAX_STATEMENT_TIMEOUT => {
                Err(Error::Config(format!(
                    "PostgresStore statement_timeout is {timeout:?}: it must be above zero and \
                     at most {MAX_STATEMENT_TIMEOUT:?} (None keeps the server's)"
                )))
            }
            _ => Ok(()),
        }
    }

    fn manager(
        target: PostgresTarget,
        options: PostgresOptions<T>,
        settings: &ConnectionSettings,
    ) -> Result<(PostgresManager<T>, String)> {
        let mut config = match target {
            PostgresTarget::Url(url) => parse(&url)?,
            PostgresTarget::Config(config) => to_async(&config),
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(settings.connect_timeout);
        }
        let mut manager = PostgresManager::from_async(config, options.tls).connection(*settings);
        if let Some(timeout) = options.statement_timeout {
            manager = manager.statement_timeout(timeout);
        }
        let target = manager.target().to_owned();
        Ok((manager, target))
    }

    fn new() -> Self {
        Postgres(PhantomData)
    }

    fn table_exists(conn: &mut PostgresConnection, names: &Names) -> Result<bool> {
        let sql = "SELECT to_regclass($1::text) IS NOT NULL";
        let rows = conn.query(sql, &[&names.qualified])?;
        match rows.first() {
            Some(row) => Ok(row.try_get(0)?),
            None => Ok(false),
        }
    }

    /// In one simple query (one implicit transaction); losing the race to another process
    /// counts as created.
    fn create_table(conn: &mut PostgresConnection, names: &Names, index: bool) -> Result<()> {
        match conn.batch_execute(&create_table_sql(names, index)) {
            Err(e) if is_duplicate(&e) && Self::table_exists(conn, names)? => Ok(()),
            other => other,
        }
    }

    fn create_missing(conn: &mut PostgresConnection, ddl: &str) -> Result<()> {
        match conn.batch_execute(ddl) {
            Err(e) if is_duplicate(&e) => Ok(()),
            other => other,
        }
    }

    fn prepare(conn: &mut PostgresConnection, sql: &str) -> Result<()> {
        conn.prepared(sql).map(drop)
    }

    fn execute(conn: &mut PostgresConnection, sql: &str, args: &[Arg]) -> Result<u64> {
        conn.execute(sql, &bind(args))
    }

    fn query_bytes(
        conn: &mut PostgresConnection,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<Option<Vec<u8>>>> {
        match conn.query_opt(sql, &bind(args))? {
            Some(row) => Ok(Some(row.try_get(0)?)),
            None => Ok(None),
        }
    }

    fn query_texts(conn: &mut PostgresConnection, sql: &str, args: &[Arg]) -> Result<Vec<String>> {
        let rows = conn.query(sql, &bind(args))?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// A dropped connection, a connection-class SQLSTATE (08xxx), a server shutting down or
    /// starting, a serialization failure or a deadlock: worth a retry on a fresh connection.
    fn is_transient(error: &Error) -> bool {
        let Some(e) = error.store_source::<postgres::Error>() else {
            return false;
        };
        if e.is_closed() {
            return true;
        }
        let retried = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        match e.code() {
            Some(code) => code.code().starts_with("08") || retried.contains(code),
            None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
        }
    }
}

/// Each argument as the PostgreSQL type it binds to (`SystemTime` as a naive UTC timestamp).
fn bind<'a>(args: &'a [Arg<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|arg| -> &(dyn ToSql + Sync) {
            match arg {
                Arg::Key(key) => key,
                Arg::Bytes(bytes) => bytes,
                Arg::Time(time) => time,
                Arg::Int(n) => n,
            }
        })
        .collect()
}

/// SQLAlchemy's DDL for Flask-Session's model on PostgreSQL, plus the expiry index.
fn create_table_sql(names: &Names, index: bool) -> String {
    let (id_type, mut ddl) = match &names.sequence {
        Some(seq) => (
            "INTEGER",
            format!("CREATE SEQUENCE IF NOT EXISTS {};\n", quote(seq)),
        ),
        None => ("SERIAL", String::new()),
    };
    let table = &names.qualified;
    ddl.push_str(&format!(
        "CREATE TABLE {table} (\n\tid {id_type} NOT NULL, \n\tsession_id VARCHAR(255), \
         \n\tdata BYTEA, \n\texpiry TIMESTAMP WITHOUT TIME ZONE, \n\tPRIMARY KEY (id), \
         \n\tUNIQUE (session_id)\n);"
    ));
    if index {
        let name = names.expiry_index();
        ddl.push_str(&format!("\nCREATE INDEX {name} ON {table} (expiry);"));
    }
    ddl
}

fn is_duplicate(error: &Error) -> bool {
    let duplicates = [
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_OBJECT,
        SqlState::UNIQUE_VIOLATION,
    ];
    let code = error
        .store_source::<postgres::Error>()
        .and_then(|e| e.code());
    code.is_some_and(|code| duplicates.contains(code))
}

fn parse(url: &SecretUrl) -> Result<tokio_postgres::Config> {
    url.expose().parse().map_err(|e: tokio_postgres::Error| {
        let why = redact(&e.to_string());
        Error::Config(format!("PostgresStore URL {url} is not valid: {why}"))
    })
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        let kind = kind_of(&e);
        let cause = cause_of(&e);
        Error::Store(StoreError::new(STORE, kind, e).with_cause(cause))
    }
}

/// The store's name in error messages.
const STORE: &str = "postgres";

/// SQLSTATEs (or classes) that mean the server refused for good: authentication (28),
/// missing database (3D) or schema (3F), permission, missing table or column.
const REJECTED: [&str; 6] = ["28", "3D", "3F", "42501", "42P01", "42703"];

fn kind_of(e: &postgres::Error) -> ErrorKind {
    match e.code() {
        None => ErrorKind::Unavailable,
        Some(code) if REJECTED.iter().any(|c| code.code().starts_with(c)) => ErrorKind::Rejected,
        Some(code) if code.code().starts_with("08") => ErrorKind::Unavailable,
        Some(_) if e.is_closed() => ErrorKind::Unavailable,
        Some(_) => ErrorKind::Other,
    }
}

/// What went wrong, in the words an operator searches for; never a password.
fn cause_of(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_owned();
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io {
        Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        Some(io) => redact(&io.to_string()),
        None if e.is_closed() => "the server closed the connection".to_owned(),
        None => redact(&e.to_string()),
    }
}

/// A round trip that got no answer within `limit` (`what` names the setting).
fn timed_out(what: &str, limit: Duration) -> Error {
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
    let cause = format!("no answer within the {what} ({limit:?})");
    Error::Store(StoreError::new(STORE, ErrorKind::Unavailable, io).with_cause(cause))
}

/// `host:port` of every server in `config`, comma-separated (a socket directory for Unix
/// sockets); never the user or password.
fn target_of(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut targets: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(path) => format!("{}/.s.PGSQL.{}", path.display(), port(i)),
        })
        .collect();
    if targets.is_empty() {
        let addrs = config.get_hostaddrs().iter().enumerate();
        targets = addrs.map(|(i, a)| format!("{a}:{}", port(i))).collect();
    }
    targets.join(",")
}
