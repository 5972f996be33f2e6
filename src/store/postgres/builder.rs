//! The builder of [`PostgresStore`].

use std::time::Duration;

use postgres::NoTls;
use r2d2::{ManageConnection, Pool};

use super::{
    ensure_table, is_transient, prepare_all, Names, PostgresConnection, PostgresManager,
    PostgresStore, PostgresTls,
};
use crate::store::sql;
use crate::{Error, Result};

/// Where the builder gets its connections.
#[derive(Debug)]
enum Source<T: PostgresTls> {
    Unset,
    Url(String),
    Config(Box<postgres::Config>),
    Pool(Pool<PostgresManager<T>>),
}

/// Configures and opens a [`PostgresStore`]; every setting is documented with its default.
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::PostgresStore;
///
/// let store = PostgresStore::builder()
///     .url("postgres://app@db.internal:5432/app")
///     .schema("web")
///     .table("flask_sessions")
///     .connect_timeout(Duration::from_secs(2))
///     .max_connections(16)
///     .build()?;
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug)]
pub struct PostgresStoreBuilder<T: PostgresTls = NoTls> {
    source: Source<T>,
    tls: T,
    table: String,
    schema: Option<String>,
    sequence: Option<String>,
    create_table: bool,
    expiry_index: bool,
    connect_timeout: Duration,
    statement_timeout: Option<Duration>,
    max_connections: u32,
}

impl<T: PostgresTls> PostgresStoreBuilder<T> {
    pub(super) fn new(tls: T) -> Self {
        Self {
            source: Source::Unset,
            tls,
            table: "sessions".into(),
            schema: None,
            sequence: None,
            create_table: true,
            expiry_index: true,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
            max_connections: 10,
        }
    }

    /// A connection URL or key-value string, as `postgres::Config` parses it, e.g.
    /// `postgres://USER@HOST:PORT/DB` or `host=/run/postgresql user=app dbname=app`.
    /// No default: set this, [`config`](Self::config) or [`pool`](Self::pool).
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().url("postgres://app@localhost/app");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Url(url.into());
        self
    }

    /// Connection settings as a `postgres::Config`.
    ///
    /// ```
    /// let mut config = postgres::Config::new();
    /// config.host("localhost").user("app").dbname("app");
    /// let b = server_session::store::PostgresStore::builder().config(config);
    /// ```
    pub fn config(mut self, config: postgres::Config) -> Self {
        self.source = Source::Config(Box::new(config));
        self
    }

    /// Use an existing pool (see [`PostgresManager`]). Its own settings apply:
    /// [`connect_timeout`](Self::connect_timeout), [`statement_timeout`](Self::statement_timeout)
    /// and [`max_connections`](Self::max_connections) do not.
    ///
    /// ```no_run
    /// use server_session::store::{PostgresManager, PostgresStore};
    /// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
    /// let pool = r2d2::Pool::new(PostgresManager::new(config, postgres::NoTls))?;
    /// let store = PostgresStore::builder().pool(pool).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(mut self, pool: Pool<PostgresManager<T>>) -> Self {
        self.source = Source::Pool(pool);
        self
    }

    /// The table name (`SESSION_SQLALCHEMY_TABLE`). Default: `sessions`. Must match
    /// `[A-Za-z_][A-Za-z0-9_]{0,62}`; it is quoted in every statement.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().table("flask_sessions");
    /// ```
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The schema holding the table (`SESSION_SQLALCHEMY_SCHEMA`). Default: none, the
    /// connection's `search_path`. Validated and quoted like the table; never created.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().schema("web");
    /// ```
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The sequence giving `id` values (`SESSION_SQLALCHEMY_SEQUENCE`). Default: none, `id`
    /// is a `SERIAL`. As with Flask-Session, the name is not schema-qualified (it resolves
    /// through `search_path`); it is created, if missing, with the table.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().sequence("sessions_id_seq");
    /// ```
    pub fn sequence(mut self, sequence: impl Into<String>) -> Self {
        self.sequence = Some(sequence.into());
        self
    }

    /// Whether [`build`](Self::build) creates the table (and its expiry index) when it is
    /// missing. Default: `true`. An existing table is never altered.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().create_table(false);
    /// ```
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// Whether a table created by [`build`](Self::build) gets an index on `expiry`, so a
    /// sweep finds expired rows without scanning the table. Default: `true`.
    ///
    /// The index costs writes: every request that refreshes a session updates it. Turn it off
    /// when sweeps are rare and the table is small; Flask-Session's own table has no such index.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().expiry_index(false);
    /// ```
    pub fn expiry_index(mut self, index: bool) -> Self {
        self.expiry_index = index;
        self
    }

    /// How long to wait for a connection, both to open one (unless the URL sets
    /// `connect_timeout`) and to check one out of a busy pool. Default: 5 seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = server_session::store::PostgresStore::builder().connect_timeout(Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The server-side statement timeout of each connection; `None` keeps the server's.
    /// Default: 5 seconds.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().statement_timeout(None);
    /// ```
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The most connections the store's pool opens. Default: 10.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().max_connections(32);
    /// ```
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Validates the settings, connects, creates the table if missing and allowed, and
    /// prepares every statement once (which checks the table's columns).
    ///
    /// Errors: [`Error::Config`] for an invalid table, schema or sequence name, no source, zero
    /// connections, or a missing table with [`create_table(false)`](Self::create_table);
    /// [`Error::Store`] for an unparsable URL, an unreachable server (within the connect
    /// timeout), a table lacking a column, or (of kind
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)) a given pool with no connection
    /// to offer.
    ///
    /// ```
    /// use server_session::{store::PostgresStore, Error};
    /// let err = PostgresStore::builder().url("postgres://localhost/app").table("a\"b").build();
    /// assert!(matches!(err, Err(Error::Config(_))));
    /// ```
    pub fn build(self) -> Result<PostgresStore<T>> {
        let names = Names::validated(
            &self.table,
            self.schema.as_deref(),
            self.sequence.as_deref(),
        )?;
        let statements = names.statements();
        let create = self.create_table.then_some(self.expiry_index);
        let (pool, mut conn) = self.connect()?;
        sql::retry(is_transient, || {
            ensure_table(conn.get(), &names, create)?;
            prepare_all(conn.get(), &statements)
        })?;
        Ok(PostgresStore {
            pool,
            names,
            statements,
        })
    }

    /// The pool, and a connection to set the table up on.
    fn connect(self) -> Result<(Pool<PostgresManager<T>>, Checkout<T>)> {
        let config = match self.source {
            Source::Unset => {
                return Err(Error::Config(
                    "the PostgreSQL store needs a URL, a config or a pool".into(),
                ))
            }
            Source::Pool(pool) => {
                let conn = pool.get()?;
                return Ok((pool, Checkout::Pooled(conn)));
            }
            Source::Url(url) => url.parse::<postgres::Config>()?,
            Source::Config(config) => *config,
        };
        let timeouts = (self.connect_timeout, self.statement_timeout);
        open_pool(config, self.tls, timeouts, self.max_connections)
    }
}

/// The connection `build` sets the table up on: the given pool's, or a direct first one.
enum Checkout<T: PostgresTls> {
    Pooled(r2d2::PooledConnection<PostgresManager<T>>),
    Direct(PostgresConnection),
}

impl<T: PostgresTls> Checkout<T> {
    fn get(&mut self) -> &mut PostgresConnection {
        match self {
            Checkout::Pooled(conn) => conn,
            Checkout::Direct(conn) => conn,
        }
    }
}

/// Connects once directly (so an unreachable server is a typed error within the connect
/// timeout), then builds the pool around the same manager.
fn open_pool<T: PostgresTls>(
    mut config: postgres::Config,
    tls: T,
    (connect_timeout, statement_timeout): (Duration, Option<Duration>),
    max: u32,
) -> Result<(Pool<PostgresManager<T>>, Checkout<T>)> {
    if max == 0 {
        return Err(Error::Config(
            "the PostgreSQL store needs at least one connection".into(),
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    let manager = PostgresManager::new(config, tls).statement_timeout(statement_timeout);
    let first = manager.connect()?;
    let pool = Pool::builder()
        .max_size(max)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(connect_timeout)
        .build_unchecked(manager);
    Ok((pool, Checkout::Direct(first)))
}
