//! The builder of [`PostgresStore`].

use crate::store::builder::setters;
use std::time::Duration;

use postgres::NoTls;
use r2d2::{ManageConnection, Pool};

use super::connection::to_async;
use super::{
    ensure_table, is_transient, prepare_all, Names, PostgresConnection, PostgresManager,
    PostgresStore, PostgresTls,
};
use crate::store::redact::{redact, SecretUrl};
use crate::store::{sql, ConnectionSettings};
use crate::{Error, Result};

/// Where the builder gets its connections.
#[derive(Debug)]
enum Source<T: PostgresTls> {
    Unset,
    Url(SecretUrl),
    Config(Box<postgres::Config>),
    Pool(Pool<PostgresManager<T>>),
}

/// Configures and opens a [`PostgresStore`]; every setting is documented with its default.
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
#[derive(Debug)]
pub struct PostgresStoreBuilder<T: PostgresTls = NoTls> {
    source: Source<T>,
    tls: T,
    table: String,
    schema: Option<String>,
    sequence: Option<String>,
    create_table: bool,
    expiry_index: bool,
    settings: ConnectionSettings,
    /// `None`: follow the I/O timeout.
    statement_timeout: Option<Option<Duration>>,
    startup_check: bool,
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
            settings: ConnectionSettings::default(),
            statement_timeout: None,
            startup_check: true,
        }
    }

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
        self.source = Source::Url(SecretUrl::new(url));
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
    /// [`connection`](Self::connection) and [`statement_timeout`](Self::statement_timeout) do
    /// not.
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

    setters! {
        /// How the store connects, waits and pools: see [`ConnectionSettings`] for the meaning
        /// and the defaults (connect 1 s, I/O 2 s, checkout 1 s, 16 connections):
        ///
        /// - `connect_timeout` bounds opening one connection: TCP connect, TLS, authentication
        ///   and the session set-up;
        /// - `io_timeout` bounds each statement's round trip;
        /// - `max_connections` is the most connections the pool opens, idle or busy;
        /// - `checkout_timeout` is how long an operation waits for a pooled connection.
        ///
        /// A `connect_timeout` in the URL bounds each TCP connect attempt; this connect timeout
        /// bounds the whole opening of a connection all the same.
        ///
        /// ```
        /// use std::time::Duration;
        /// use server_session::store::{ConnectionSettings, PostgresStore};
        /// let b = PostgresStore::builder().connection(ConnectionSettings {
        ///     checkout_timeout: Duration::from_millis(300),
        ///     ..ConnectionSettings::default()
        /// });
        /// ```
        connection(settings: ConnectionSettings) => settings;
    }

    /// The server-side statement timeout of each connection (`SET statement_timeout`);
    /// `None` keeps the server's. Default: the I/O timeout, so the server cancels a statement
    /// when the client stops waiting for it.
    ///
    /// ```
    /// let b = server_session::store::PostgresStore::builder().statement_timeout(None);
    /// ```
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    setters! {
        /// Whether [`build`](Self::build) connects once, creates the table if missing and
        /// allowed, and prepares every statement, so that an unreachable server, a wrong password,
        /// a missing database or an unusable table fails the build with its cause. Default: `true`.
        ///
        /// With `false`, `build` does no I/O and the table is neither checked nor created: it must
        /// exist. Requests fail (within the timeouts) until the server answers.
        ///
        /// ```
        /// // Builds at once, even though nothing listens on port 1.
        /// let store = server_session::store::PostgresStore::builder()
        ///     .url("postgres://app@127.0.0.1:1/app")
        ///     .startup_check(false)
        ///     .build();
        /// assert!(store.is_ok());
        /// ```
        startup_check(check: bool) => startup_check;
    }

    /// Validates the settings, runs the start-up check (see
    /// [`startup_check`](Self::startup_check)) and starts the pool.
    ///
    /// Errors: [`Error::Config`] for an invalid table, schema or sequence name, no source, an
    /// unparsable URL (shown without its password), a zero or absurd timeout or connection
    /// count, or a missing table with [`create_table(false)`](Self::create_table);
    /// [`Error::Store`] naming the server and the cause (`postgres 127.0.0.1:5432: connection
    /// refused`, `... no answer within the connect timeout (1s)`, `... password authentication
    /// failed for user "app"`, `... database "x" does not exist`) when the check fails.
    ///
    /// ```
    /// use server_session::{store::PostgresStore, Error};
    /// let err = PostgresStore::builder().url("postgres://localhost/app").table("a\"b").build();
    /// assert!(matches!(err, Err(Error::Config(_))));
    ///
    /// let err = PostgresStore::builder().url("postgres://app:pw@127.0.0.1:1/app").build().unwrap_err();
    /// assert_eq!(err.to_string(), "postgres 127.0.0.1:1: connection refused");
    /// ```
    pub fn build(self) -> Result<PostgresStore<T>> {
        let names = Names::validated(
            &self.table,
            self.schema.as_deref(),
            self.sequence.as_deref(),
        )?;
        self.validate()?;
        let statements = names.statements();
        let create = self.create_table.then_some(self.expiry_index);
        let check = self.startup_check;
        let setup = |conn: &mut PostgresConnection| {
            sql::retry(is_transient, || {
                ensure_table(conn, &names, create)?;
                prepare_all(conn, &statements)
            })
        };
        let (pool, target) = match self.into_manager()? {
            Ok((manager, settings)) => {
                let target = manager.target().to_owned();
                if check {
                    // A direct connection, so its own error comes back, not a checkout timeout.
                    let checked = manager.connect().and_then(|mut conn| setup(&mut conn));
                    checked.map_err(|e| e.at(|| target.clone()))?;
                }
                (own_pool(manager, settings), Some(target))
            }
            Err(pool) => {
                if check {
                    let mut conn = pool.get().map_err(super::no_connection)?;
                    setup(&mut conn)?;
                }
                (pool, None)
            }
        };
        Ok(PostgresStore {
            pool,
            target,
            names,
            statements,
        })
    }

    fn validate(&self) -> Result<()> {
        self.settings.validate("PostgresStore")?;
        match self.statement_timeout {
            Some(Some(timeout)) if timeout.is_zero() || timeout > MAX_STATEMENT_TIMEOUT => {
                Err(Error::Config(format!(
                    "PostgresStore statement_timeout is {timeout:?}: it must be above zero and \
                     at most {MAX_STATEMENT_TIMEOUT:?} (None keeps the server's)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The manager of a new pool with its settings, or the given pool.
    #[allow(clippy::type_complexity)]
    fn into_manager(
        self,
    ) -> Result<Result<(PostgresManager<T>, ConnectionSettings), Pool<PostgresManager<T>>>> {
        let mut config = match self.source {
            Source::Unset => {
                return Err(Error::Config(
                    "the PostgreSQL store needs a URL, a config or a pool".into(),
                ))
            }
            Source::Pool(pool) => return Ok(Err(pool)),
            Source::Url(url) => parse(&url)?,
            Source::Config(config) => to_async(&config),
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.settings.connect_timeout);
        }
        let mut manager = PostgresManager::from_async(config, self.tls).connection(self.settings);
        if let Some(timeout) = self.statement_timeout {
            manager = manager.statement_timeout(timeout);
        }
        Ok(Ok((manager, self.settings)))
    }
}

/// A pool around `manager` that opens connections on demand and never tests them on checkout.
fn own_pool<T: PostgresTls>(
    manager: PostgresManager<T>,
    settings: ConnectionSettings,
) -> Pool<PostgresManager<T>> {
    Pool::builder()
        .max_size(settings.max_connections)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(settings.checkout_timeout)
        .build_unchecked(manager)
}

/// The longest statement timeout accepted.
const MAX_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

fn parse(url: &SecretUrl) -> Result<tokio_postgres::Config> {
    url.expose().parse().map_err(|e: tokio_postgres::Error| {
        let why = redact(&e.to_string());
        Error::Config(format!("PostgresStore URL {url} is not valid: {why}"))
    })
}
