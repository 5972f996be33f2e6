//! One SQL store, [`SqlStore`], over Flask-Session's SQLAlchemy `sessions` table, with a
//! [`Dialect`] per database: [`SqliteStore`](super::SqliteStore) (feature `sqlite`) and
//! [`PostgresStore`](super::PostgresStore) (feature `postgres`).
//!
//! The statements, the table check and creation, the retries, the start-up check, the builder
//! and the [`Store`] operations exist once, here. A dialect says only what differs between
//! databases: how to connect and pool, the placeholder style, the DDL, how values (above all
//! the expiry time) are bound, and which errors are worth a retry.
//!
//! A row's `expiry` holds naive UTC, as SQLAlchemy writes it; every expiry check compares with
//! the application's clock (bound as a parameter), as Flask-Session does; a row whose `expiry`
//! is NULL is expired.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use r2d2::{Pool, PooledConnection};

use super::{Replaced, Store, Sweep, UserIndex};
use crate::{Error, ErrorKind, Result, StoreError};

mod builder;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statements;

pub use builder::SqlStoreBuilder;
#[cfg(feature = "postgres")]
pub use postgres::{
    Postgres, PostgresConnection, PostgresManager, PostgresStore, PostgresStoreBuilder, PostgresTls,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{Sqlite, SqliteStore, SqliteStoreBuilder};
use statements::{Names, Statements, UserStatements};

/// A database [`SqlStore`] can keep sessions in: [`Sqlite`] or [`Postgres`]. Sealed: the
/// crate's own dialects are the only ones (a new database is one file in this crate).
pub trait Dialect: dialect::DialectImpl {}

/// A value bound to a statement parameter; each dialect binds it in its own type.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A session key (`session_id`).
    Key(&'a str),
    /// Session data (`data`).
    Bytes(&'a [u8]),
    /// An expiry or the current time, bound as the dialect's naive UTC timestamp.
    Time(SystemTime),
    /// A row limit.
    Int(i64),
}

pub(crate) mod dialect {
    use super::{Arg, Names};
    use crate::store::ConnectionSettings;
    use crate::{Error, Result};
    use r2d2::ManageConnection;

    /// A dialect's pooled connection.
    pub(crate) type Conn<D> = <<D as DialectImpl>::Manager as ManageConnection>::Connection;

    /// What a dialect implements; hidden behind [`Dialect`](super::Dialect).
    pub trait DialectImpl: Sized + Send + Sync + 'static {
        /// The pool's connection manager.
        type Manager: ManageConnection<Error: Into<Error>>;
        /// Where the builder opens the database from (a path, a URL).
        type Target: std::fmt::Debug;
        /// The dialect's own builder settings.
        type Options: std::fmt::Debug;
        /// The store's name in error messages: `sqlite`, `postgres`.
        const NAME: &'static str;
        /// The store's type name in configuration errors: `SqliteStore`, `PostgresStore`.
        const LABEL: &'static str;

        /// The dialect's naive UTC timestamp column type.
        const TIMESTAMP: &'static str;

        /// The validated table names, from the table and the dialect's options.
        fn names(table: &str, options: &Self::Options) -> Result<Names>;
        /// The placeholder of the 1-based parameter `n`: `?1`, `$1`.
        fn placeholder(n: usize) -> String;
        /// The value expression of a new row's `id`, when the database does not assign it.
        fn id_value(names: &Names) -> Option<String>;
        /// Checks the dialect's own options against `settings`.
        fn validate(options: &Self::Options, settings: &ConnectionSettings) -> Result<()>;
        /// The manager opening connections to `target`, and the target's name for messages.
        /// Does no network I/O.
        fn manager(
            target: Self::Target,
            options: Self::Options,
            settings: &ConnectionSettings,
        ) -> Result<(Self::Manager, String)>;
        /// The dialect's per-store state.
        fn new() -> Self;

        /// Whether the session table exists.
        fn table_exists(conn: &mut Conn<Self>, names: &Names) -> Result<bool>;
        /// Creates the table (and the expiry index when `index`); losing a creation race to
        /// another process is success.
        fn create_table(conn: &mut Conn<Self>, names: &Names, index: bool) -> Result<()>;
        /// Runs `ddl`, statements that create what does not exist yet; losing a creation
        /// race to another process is success.
        fn create_missing(conn: &mut Conn<Self>, ddl: &str) -> Result<()>;
        /// Prepares `sql` on `conn` (cached for later calls).
        fn prepare(conn: &mut Conn<Self>, sql: &str) -> Result<()>;
        /// Executes `sql` with `args`; the number of rows it changed.
        fn execute(conn: &mut Conn<Self>, sql: &str, args: &[Arg]) -> Result<u64>;
        /// The first column of the row `sql` returns for `args`: `None` when there is no row,
        /// `Some(None)` for a NULL.
        fn query_bytes(
            conn: &mut Conn<Self>,
            sql: &str,
            args: &[Arg],
        ) -> Result<Option<Option<Vec<u8>>>>;
        /// The first column, text, of every row `sql` returns for `args`.
        fn query_texts(conn: &mut Conn<Self>, sql: &str, args: &[Arg]) -> Result<Vec<String>>;
        /// Whether `error` is worth a retry on a fresh connection.
        fn is_transient(error: &Error) -> bool;
        /// Runs after each successful write on the connection that made it.
        fn after_write(&self, _conn: &mut Conn<Self>) {}
    }
}

use dialect::Conn;

/// Sleeps before each retry of a transient failure; one more attempt than delays in all.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(250),
];

/// Sessions in Flask-Session's SQLAlchemy `sessions` table, on the database `D` speaks to.
///
/// Use it through [`SqliteStore`](super::SqliteStore) and
/// [`PostgresStore`](super::PostgresStore). Statements are prepared once per pooled
/// connection and cached; every value is bound. Expired rows are never returned; remove them
/// with [`Sweep::sweep`], from a [`Sweeper`](super::Sweeper) or a
/// [`CleanupEvery`](super::CleanupEvery) wrapper.
pub struct SqlStore<D: Dialect> {
    pool: Pool<D::Manager>,
    names: Names,
    statements: Statements,
    users: UserStatements,
    /// The database (file or `host:port`), for error messages; unknown for a given pool.
    target: Option<Arc<str>>,
    dialect: D,
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(D::LABEL)
            .field("target", &self.target)
            .field("table", &self.names.qualified)
            .field("pool", &self.pool.state())
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The session table's name.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// let dir = tempfile::tempdir()?;
    /// let store = server_session::store::SqliteStore::open(dir.path().join("s.db"))?;
    /// assert_eq!(store.table(), "sessions");
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table(&self) -> &str {
        &self.names.table
    }

    /// The connection pool, for running other statements on the same database.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// let dir = tempfile::tempdir()?;
    /// let store = server_session::store::SqliteStore::open(dir.path().join("s.db"))?;
    /// let conn = store.pool().get()?;
    /// let rows: i64 = conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
    /// assert_eq!(rows, 0);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(&self) -> &Pool<D::Manager> {
        &self.pool
    }

    /// Runs `op` on a pooled connection, retrying transient failures on a fresh one (after
    /// each [`BACKOFF`] delay); after a write, the dialect's `after_write`. Errors name the
    /// database.
    fn run<R>(&self, write: bool, op: impl Fn(&mut Conn<D>) -> Result<R>) -> Result<R> {
        let mut delays = BACKOFF.iter();
        loop {
            let result = self.checkout().and_then(|mut conn| {
                let done = op(&mut conn)?;
                if write {
                    self.dialect.after_write(&mut conn);
                }
                Ok(done)
            });
            match result {
                Err(e) if D::is_transient(&e) => match delays.next() {
                    Some(delay) => {
                        log::debug!("transient {} error, retrying in {delay:?}: {e}", D::NAME);
                        std::thread::sleep(*delay);
                    }
                    None => return Err(self.at(e)),
                },
                done => return done.map_err(|e| self.at(e)),
            }
        }
    }

    /// A pooled connection within the checkout timeout.
    fn checkout(&self) -> Result<PooledConnection<D::Manager>> {
        self.pool.get().map_err(no_connection::<D>)
    }

    /// `error` naming the database, when the store knows it.
    fn at(&self, error: Error) -> Error {
        match &self.target {
            Some(target) => error.at(|| target.to_string()),
            None => error,
        }
    }

    /// Executes the write `sql`; whether it changed exactly one row.
    fn changed_one(&self, sql: &str, args: &[Arg]) -> Result<bool> {
        self.run(true, |conn| D::execute(conn, sql, args))
            .map(|rows| rows == 1)
    }

    /// The `data` of the row `sql` returns, if any (a NULL `data` reads as none).
    fn data_row(&self, write: bool, sql: &str, args: &[Arg]) -> Result<Option<Vec<u8>>> {
        self.run(write, |conn| D::query_bytes(conn, sql, args))
            .map(Option::flatten)
    }
}

/// No pooled connection within the checkout timeout; r2d2's message ends with the last
/// connection error.
fn no_connection<D: Dialect>(e: r2d2::Error) -> Error {
    Error::Store(StoreError::new(D::NAME, ErrorKind::Unavailable, e))
}

/// Makes sure the session table and its user index table exist: creates them (the session
/// table with the expiry index when `create` is `Some(true)`) unless creating is off (`None`),
/// then prepares every statement, which fails on a missing table or column.
fn set_up<D: Dialect>(
    conn: &mut Conn<D>,
    names: &Names,
    statements: &Statements,
    users: &UserStatements,
    create: Option<bool>,
) -> Result<()> {
    if let Some(index) = create {
        if !D::table_exists(conn, names)? {
            D::create_table(conn, names, index)?;
        }
        D::create_missing(conn, &names.users_ddl(D::TIMESTAMP))?;
    } else if !D::table_exists(conn, names)? {
        return Err(Error::Config(format!(
            "the session table {} does not exist and create_table is off",
            names.qualified
        )));
    }
    let all = statements.all().into_iter().chain(users.all());
    all.into_iter().try_for_each(|sql| D::prepare(conn, sql))
}

impl<D: Dialect> Store for SqlStore<D> {
    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = SystemTime::now();
        self.data_row(
            false,
            &self.statements.load,
            &[Arg::Key(key), Arg::Time(now)],
        )
    }

    fn check_key(&self, key: &str) -> Result<()> {
        statements::check_key(key)
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        statements::check_key(key)?;
        let args = [
            Arg::Key(key),
            Arg::Bytes(value),
            Arg::Time(expires),
            Arg::Time(SystemTime::now()),
        ];
        self.changed_one(&self.statements.create, &args)
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let args = [
            Arg::Key(key),
            Arg::Bytes(value),
            Arg::Time(expires),
            Arg::Time(SystemTime::now()),
        ];
        self.changed_one(&self.statements.save, &args)
    }

    /// One `UPDATE … AND data = expected`; only when it changed no row, a `SELECT` of what
    /// is there now.
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        let args = [
            Arg::Key(key),
            Arg::Bytes(value),
            Arg::Time(expires),
            Arg::Time(SystemTime::now()),
            Arg::Bytes(expected),
        ];
        if self.changed_one(&self.statements.replace, &args)? {
            return Ok(Replaced::Done);
        }
        Ok(statements::not_replaced(self.load(key)?))
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        let args = [
            Arg::Key(key),
            Arg::Time(expires),
            Arg::Time(SystemTime::now()),
        ];
        self.changed_one(&self.statements.touch, &args)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.changed_one(&self.statements.delete, &[Arg::Key(key)])
            .map(drop)
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let args = [
            Arg::Key(key),
            Arg::Time(expires),
            Arg::Time(SystemTime::now()),
        ];
        self.data_row(true, &self.statements.load_and_touch, &args)
    }
}

impl<D: Dialect> Sweep for SqlStore<D> {
    /// Deletes up to `limit` rows whose expiry has passed or is NULL, in one statement.
    fn sweep(&self, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let args = [Arg::Time(SystemTime::now()), Arg::Int(limit)];
        let removed = self.run(true, |conn| D::execute(conn, &self.statements.sweep, &args))?;
        self.run(true, |conn| D::execute(conn, &self.users.sweep, &args))?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}

/// The records live in `<table>_users` (see [`SqlStoreBuilder::build`]); lapsed ones go with
/// [`Sweep::sweep`], up to its limit per call, besides the sessions it counts.
impl<D: Dialect> UserIndex for SqlStore<D> {
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
        statements::check_key(user)?;
        statements::check_key(key)?;
        let args = [Arg::Key(user), Arg::Key(key), Arg::Time(until)];
        self.run(true, |conn| D::execute(conn, &self.users.link, &args))
            .map(drop)
    }

    fn user_keys(&self, user: &str) -> Result<Vec<String>> {
        let args = [Arg::Key(user), Arg::Time(SystemTime::now())];
        self.run(false, |conn| D::query_texts(conn, &self.users.keys, &args))
    }

    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
        self.run(true, |conn| {
            keys.iter().try_for_each(|key| {
                let args = [Arg::Key(user), Arg::Key(key)];
                D::execute(conn, &self.users.unlink, &args).map(drop)
            })
        })
    }
}
