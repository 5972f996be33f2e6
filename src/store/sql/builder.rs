//! [`SqlStoreBuilder`]: the settings every SQL dialect shares, validated once in `build`.

use r2d2::{ManageConnection, Pool};

use super::dialect::DialectImpl;
use super::statements::{Statements, UserStatements};
use super::{Dialect, SqlStore, set_up};
use crate::store::ConnectionSettings;
use crate::store::builder::setters;
use crate::{Error, Result};

/// Where the builder gets its connections.
pub(super) enum Source<D: DialectImpl> {
    Unset,
    Open(D::Target),
    Pool(Pool<D::Manager>),
}

impl<D: DialectImpl> std::fmt::Debug for Source<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Unset => f.write_str("Unset"),
            Source::Open(target) => f.debug_tuple("Open").field(target).finish(),
            Source::Pool(pool) => f.debug_tuple("Pool").field(&pool.state()).finish(),
        }
    }
}

/// Configures and opens an [`SqlStore`]; every setting is documented with its default. The
/// dialect adds its own setters: where the database is ([`SqliteStoreBuilder`]'s `path`,
/// [`PostgresStoreBuilder`]'s `url`), and what only it has (a schema, a statement timeout).
///
/// [`SqliteStoreBuilder`]: crate::store::SqliteStoreBuilder
/// [`PostgresStoreBuilder`]: crate::store::PostgresStoreBuilder
pub struct SqlStoreBuilder<D: Dialect> {
    pub(super) source: Source<D>,
    pub(super) options: D::Options,
    table: String,
    create_table: bool,
    expiry_index: bool,
    settings: ConnectionSettings,
    startup_check: bool,
}

impl<D: Dialect> std::fmt::Debug for SqlStoreBuilder<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStoreBuilder")
            .field("source", &self.source)
            .field("options", &self.options)
            .field("table", &self.table)
            .field("create_table", &self.create_table)
            .field("expiry_index", &self.expiry_index)
            .field("settings", &self.settings)
            .field("startup_check", &self.startup_check)
            .finish()
    }
}

impl<D: Dialect> SqlStoreBuilder<D> {
    /// A builder with the defaults and the dialect's `options`.
    pub(super) fn with_options(options: D::Options) -> Self {
        Self {
            source: Source::Unset,
            options,
            table: "sessions".into(),
            create_table: true,
            expiry_index: true,
            settings: ConnectionSettings::default(),
            startup_check: true,
        }
    }

    /// Use an existing pool instead of opening the database. Its connections are used as they
    /// are, and the pool's own settings apply: [`connection`](Self::connection) does not.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// use server_session::store::SqliteStore;
    /// let dir = tempfile::tempdir()?;
    /// let manager = r2d2_sqlite::SqliteConnectionManager::file(dir.path().join("app.db"));
    /// let pool = r2d2::Pool::new(manager)?;
    /// let store = SqliteStore::builder().pool(pool.clone()).build()?;
    /// assert_eq!(store.pool().max_size(), pool.max_size());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(mut self, pool: Pool<D::Manager>) -> Self {
        self.source = Source::Pool(pool);
        self
    }

    /// The table name (`SESSION_SQLALCHEMY_TABLE`). Default: `sessions`. Must match
    /// `[A-Za-z_][A-Za-z0-9_]{0,62}`; it is quoted in every statement.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// let builder = server_session::store::SqliteStore::builder().table("flask_sessions");
    /// assert!(format!("{builder:?}").contains("flask_sessions"));
    /// # }
    /// ```
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    setters! {
        /// Whether [`build`](Self::build) creates the table (and its expiry index) when it is
        /// missing. Default: `true`. An existing table is never altered.
        ///
        /// ```
        /// # #[cfg(feature = "sqlite")] {
        /// use server_session::{store::SqliteStore, Error};
        /// let dir = tempfile::tempdir()?;
        /// let built = SqliteStore::builder().path(dir.path().join("s.db")).create_table(false).build();
        /// assert!(matches!(built, Err(Error::Config(_))));
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        create_table(create: bool) => create_table;

        /// Whether a table created by [`build`](Self::build) gets an index on `expiry`, so a
        /// sweep finds expired rows without scanning the table. Default: `true`.
        ///
        /// The index costs writes: every request that refreshes a session moves its index
        /// entry (in SQLite's WAL, one more page per commit). Turn it off when sweeps are rare
        /// and the table is small; Flask-Session's own table has no such index.
        ///
        /// ```
        /// # #[cfg(feature = "sqlite")] {
        /// let builder = server_session::store::SqliteStore::builder().expiry_index(false);
        /// assert!(format!("{builder:?}").contains("expiry_index: false"));
        /// # }
        /// ```
        expiry_index(index: bool) => expiry_index;

        /// How the store connects, waits and pools: see [`ConnectionSettings`] for the meaning
        /// and the defaults (connect 1 s, I/O 2 s, checkout 1 s, 16 connections), and the
        /// dialect's builder for how each applies to its database.
        ///
        /// ```
        /// # #[cfg(feature = "sqlite")] {
        /// use std::time::Duration;
        /// use server_session::store::{ConnectionSettings, SqliteStore};
        /// let dir = tempfile::tempdir()?;
        /// let store = SqliteStore::builder()
        ///     .path(dir.path().join("s.db"))
        ///     .connection(ConnectionSettings { max_connections: 4, ..ConnectionSettings::default() })
        ///     .build()?;
        /// assert_eq!(store.pool().max_size(), 4);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        connection(settings: ConnectionSettings) => settings;

        /// Whether [`build`](Self::build) opens one connection, creates the table if missing
        /// and allowed, and prepares every statement, so that an unreachable server, a wrong
        /// password, a missing database, an unusable file or table fails the build with its
        /// cause. Default: `true`.
        ///
        /// With `false`, `build` makes no connection and the table is neither checked nor
        /// created: it must exist. Requests fail (within the timeouts) until the database
        /// answers.
        ///
        /// ```
        /// # #[cfg(feature = "postgres")] {
        /// // Builds at once, even though nothing listens on port 1.
        /// let store = server_session::store::PostgresStore::builder()
        ///     .url("postgres://app@127.0.0.1:1/app")
        ///     .startup_check(false)
        ///     .build();
        /// assert!(store.is_ok());
        /// # }
        /// ```
        startup_check(check: bool) => startup_check;
    }

    /// Validates the settings, runs the start-up check (see
    /// [`startup_check`](Self::startup_check)) and starts the pool.
    ///
    /// Errors: [`Error::Config`] for an invalid table (or schema, sequence) name, no source, a
    /// target the dialect refuses (an unparsable URL, shown without its password; an empty or
    /// in-memory SQLite path), a zero or absurd timeout or connection count, or a missing table
    /// with [`create_table(false)`](Self::create_table); [`Error::Store`] naming the database
    /// and the cause when the check fails.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// use server_session::{store::SqliteStore, Error};
    /// let err = SqliteStore::builder().path("x.db").table("x; DROP TABLE y").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// # }
    /// ```
    pub fn build(self) -> Result<SqlStore<D>> {
        let names = D::names(&self.table, &self.options)?;
        self.settings.validate(D::LABEL)?;
        D::validate(&self.options, &self.settings)?;
        let id = D::id_value(&names);
        let statements = Statements::new(&names.qualified, id.as_deref(), D::placeholder);
        let users = UserStatements::new(&names, D::placeholder);
        let create = self.create_table.then_some(self.expiry_index);
        let check = |conn: &mut _| set_up::<D>(conn, &names, &statements, &users, create);
        let (pool, target) = match self.source {
            Source::Unset => {
                return Err(Error::Config(format!(
                    "the {} needs a database to open or a pool",
                    D::LABEL
                )));
            }
            Source::Open(target) => {
                let (manager, target) = D::manager(target, self.options, &self.settings)?;
                if self.startup_check {
                    // A direct connection, so its own error comes back, not a checkout timeout.
                    let checked = manager
                        .connect()
                        .map_err(Into::into)
                        .and_then(|mut conn| check(&mut conn));
                    checked.map_err(|e| e.at(|| target.clone()))?;
                }
                (own_pool(manager, &self.settings), Some(target.into()))
            }
            Source::Pool(pool) => {
                if self.startup_check {
                    let mut conn = pool.get().map_err(super::no_connection::<D>)?;
                    check(&mut conn)?;
                }
                (pool, None)
            }
        };
        Ok(SqlStore {
            pool,
            names,
            statements,
            users,
            target,
            dialect: D::new(),
        })
    }
}

/// A pool around `manager` that opens connections on demand and never tests them on checkout.
fn own_pool<M: ManageConnection>(manager: M, settings: &ConnectionSettings) -> Pool<M> {
    Pool::builder()
        .max_size(settings.max_connections)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(settings.checkout_timeout)
        .build_unchecked(manager)
}
