//! Sessions in PostgreSQL, in Flask-Session's SQLAlchemy table (feature `postgres`).
//!
//! The table is the one Flask-Session 0.8 creates, so a Flask app using `SESSION_TYPE =
//! "sqlalchemy"` on the same database shares the sessions:
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
//!
//! `expiry` holds naive UTC. Every expiry check compares with the application's clock (bound
//! as a parameter), as Flask-Session does; a row whose `expiry` is NULL is expired.

use std::time::{Duration, SystemTime};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::NoTls;
use r2d2::Pool;

use super::redact::redact;
use super::sql::{self, Statements};
use super::{Replaced, Store, Sweep};
use crate::{Error, ErrorKind, Result, StoreError};

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

/// No pooled connection within the checkout timeout; r2d2's message ends with the last
/// connection error.
fn no_connection(e: r2d2::Error) -> Error {
    Error::Store(StoreError::new(STORE, ErrorKind::Unavailable, e))
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

mod builder;
mod connection;

pub use builder::PostgresStoreBuilder;
pub use connection::{PostgresConnection, PostgresManager, PostgresTls};

/// The validated identifiers and the SQL names built from them.
#[derive(Debug, Clone)]
struct Names {
    table: String,
    schema: Option<String>,
    sequence: Option<String>,
    /// `"schema"."table"` or `"table"`.
    qualified: String,
}

impl Names {
    fn validated(table: &str, schema: Option<&str>, sequence: Option<&str>) -> Result<Self> {
        sql::validate_identifier("table", table)?;
        schema.map_or(Ok(()), |s| sql::validate_identifier("schema", s))?;
        sequence.map_or(Ok(()), |s| sql::validate_identifier("sequence", s))?;
        let qualified = match schema {
            Some(schema) => format!("{}.{}", sql::quote(schema), sql::quote(table)),
            None => sql::quote(table),
        };
        Ok(Self {
            table: table.to_owned(),
            schema: schema.map(str::to_owned),
            sequence: sequence.map(str::to_owned),
            qualified,
        })
    }

    fn statements(&self) -> Statements {
        let nextval = self
            .sequence
            .as_deref()
            .map(|s| format!("nextval('{}')", sql::quote(s)));
        Statements::new(&self.qualified, nextval.as_deref(), |n| format!("${n}"))
    }

    /// SQLAlchemy's DDL for Flask-Session's model on PostgreSQL, plus the expiry index.
    fn create_sql(&self, index: bool) -> String {
        let (id_type, mut ddl) = match &self.sequence {
            Some(seq) => (
                "INTEGER",
                format!("CREATE SEQUENCE IF NOT EXISTS {};\n", sql::quote(seq)),
            ),
            None => ("SERIAL", String::new()),
        };
        let table = &self.qualified;
        ddl.push_str(&format!(
            "CREATE TABLE {table} (\n\tid {id_type} NOT NULL, \n\tsession_id VARCHAR(255), \
             \n\tdata BYTEA, \n\texpiry TIMESTAMP WITHOUT TIME ZONE, \n\tPRIMARY KEY (id), \
             \n\tUNIQUE (session_id)\n);"
        ));
        if index {
            let name = sql::quote(&sql::expiry_index_name(&self.table));
            ddl.push_str(&format!("\nCREATE INDEX {name} ON {table} (expiry);"));
        }
        ddl
    }
}

fn table_exists(conn: &mut PostgresConnection, names: &Names) -> Result<bool> {
    let sql = "SELECT to_regclass($1::text) IS NOT NULL";
    let rows = conn.query(sql, &[&names.qualified])?;
    match rows.first() {
        Some(row) => Ok(row.try_get(0)?),
        None => Ok(false),
    }
}

/// Creates the table (with the sequence, and the expiry index when `create` is `Some(true)`)
/// in one transaction (one simple query is one implicit transaction), unless the table exists; `create` is `None` when creating is off.
/// Losing a creation race to another process counts as existing.
fn ensure_table(conn: &mut PostgresConnection, names: &Names, create: Option<bool>) -> Result<()> {
    if table_exists(conn, names)? {
        return Ok(());
    }
    let Some(index) = create else {
        return Err(Error::Config(format!(
            "the session table {} does not exist and create_table is off",
            names.qualified
        )));
    };
    match conn.batch_execute(&names.create_sql(index)) {
        Err(e) if is_duplicate(&e) && table_exists(conn, names)? => Ok(()),
        other => other,
    }
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

fn prepare_all(conn: &mut PostgresConnection, s: &Statements) -> Result<()> {
    for statement in [
        &s.load,
        &s.create,
        &s.save,
        &s.touch,
        &s.load_and_touch,
        &s.delete,
        &s.sweep,
    ] {
        conn.prepared(statement)?;
    }
    Ok(())
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

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// Sessions in a PostgreSQL table, in Flask-Session's `sessions` layout.
///
/// Statements are prepared once per pooled connection and cached; every value is bound. A
/// dropped connection is retried on a fresh one.
///
/// Every operation is bounded in time (see [`ConnectionSettings`](super::ConnectionSettings)):
/// a server that stops answering fails it within the I/O timeout (the connection is then
/// discarded), and one that cannot be reached within the checkout timeout, each with
/// [`ErrorKind::Unavailable`]. Errors read `postgres <host:port>: <cause>`. Expired rows are never returned; remove them
/// with [`Sweep::sweep`], from a [`Sweeper`](super::Sweeper) or a
/// [`CleanupEvery`](super::CleanupEvery) wrapper.
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
#[derive(Debug)]
pub struct PostgresStore<T: PostgresTls = NoTls> {
    pool: Pool<PostgresManager<T>>,
    /// `host:port` of the server, for error messages; unknown for a given pool.
    target: Option<String>,
    names: Names,
    statements: Statements,
}

impl PostgresStore<NoTls> {
    /// A store on the database at `url` (without TLS), every other setting at its default.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://app@localhost/app")?;
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// A builder without TLS, with the defaults (table `sessions`, created if missing).
    ///
    /// ```
    /// let builder = server_session::store::PostgresStore::builder();
    /// ```
    pub fn builder() -> PostgresStoreBuilder<NoTls> {
        PostgresStoreBuilder::new(NoTls)
    }
}

impl<T: PostgresTls> PostgresStore<T> {
    /// A builder connecting through `tls`, with the defaults.
    ///
    /// ```
    /// let builder = server_session::store::PostgresStore::builder_with_tls(postgres::NoTls);
    /// ```
    pub fn builder_with_tls(tls: T) -> PostgresStoreBuilder<T> {
        PostgresStoreBuilder::new(tls)
    }

    /// The session table's name.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://app@localhost/app")?;
    /// assert_eq!(store.table(), "sessions");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn table(&self) -> &str {
        &self.names.table
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

    /// The connection pool, for running other statements on the same database.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://app@localhost/app")?;
    /// let state = store.pool().state();
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn pool(&self) -> &Pool<PostgresManager<T>> {
        &self.pool
    }

    /// Runs `op` on a pooled connection, retrying transient failures on a fresh one; errors
    /// name the server.
    fn run<R>(&self, op: impl Fn(&mut PostgresConnection) -> Result<R>) -> Result<R> {
        let result = sql::retry(is_transient, || {
            let mut conn = self.pool.get().map_err(no_connection)?;
            op(&mut conn)
        });
        match &self.target {
            Some(target) => result.map_err(|e| e.at(|| target.clone())),
            None => result,
        }
    }

    /// Executes `statement`; the number of rows it changed.
    fn execute(&self, statement: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.run(|conn| conn.execute(statement, params))
    }

    /// The `data` of the row `statement` returns, if any (a NULL `data` reads as none).
    fn data_row(&self, statement: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Vec<u8>>> {
        self.run(|conn| match conn.query_opt(statement, params)? {
            Some(row) => Ok(row.try_get::<_, Option<Vec<u8>>>(0)?),
            None => Ok(None),
        })
    }
}

impl<T: PostgresTls> Store for PostgresStore<T> {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.data_row(&self.statements.load, &[&key, &SystemTime::now()])
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        sql::check_key(key)?;
        let params: [&(dyn ToSql + Sync); 4] = [&key, &value, &expires, &SystemTime::now()];
        Ok(self.execute(&self.statements.create, &params)? == 1)
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let params: [&(dyn ToSql + Sync); 4] = [&key, &value, &expires, &SystemTime::now()];
        Ok(self.execute(&self.statements.save, &params)? == 1)
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
        let now = SystemTime::now();
        let params: [&(dyn ToSql + Sync); 5] = [&key, &value, &expires, &now, &expected];
        if self.execute(&self.statements.replace, &params)? == 1 {
            return Ok(Replaced::Done);
        }
        Ok(sql::not_replaced(self.load(key)?))
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        let params: [&(dyn ToSql + Sync); 3] = [&key, &expires, &SystemTime::now()];
        Ok(self.execute(&self.statements.touch, &params)? == 1)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.execute(&self.statements.delete, &[&key]).map(drop)
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let params: [&(dyn ToSql + Sync); 3] = [&key, &expires, &SystemTime::now()];
        self.data_row(&self.statements.load_and_touch, &params)
    }
}

impl<T: PostgresTls> Sweep for PostgresStore<T> {
    /// Deletes up to `limit` rows whose expiry has passed or is NULL, in one statement.
    fn sweep(&self, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let removed = self.execute(&self.statements.sweep, &[&SystemTime::now(), &limit])?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}
