//! Sessions in an SQLite database, in Flask-Session's SQLAlchemy table (feature `sqlite`).
//!
//! The table is the one Flask-Session 0.8 creates, so a Flask app using `SESSION_TYPE =
//! "sqlalchemy"` on the same database file shares the sessions:
//!
//! ```sql
//! CREATE TABLE "sessions" (
//!     id INTEGER NOT NULL,
//!     session_id VARCHAR(255),
//!     data BLOB,
//!     expiry DATETIME,
//!     PRIMARY KEY (id),
//!     UNIQUE (session_id)
//! );
//! CREATE INDEX "sessions_expiry_idx" ON "sessions" (expiry);
//! ```
//!
//! `expiry` holds naive UTC as text, `YYYY-MM-DD HH:MM:SS.ffffff`, exactly as SQLAlchemy writes
//! it; text in that format sorts like time, so every expiry check compares text. A row whose
//! `expiry` is NULL is expired.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use r2d2::{ManageConnection, Pool};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::sql::{self, Statements};
use super::{Replaced, Store, Sweep};
use crate::{Error, ErrorKind, Result, StoreError};

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(StoreError::new("sqlite", kind_of(&e), e))
    }
}

/// Another connection's lock is a store that did not answer in time; a file that cannot be
/// opened, read or written is a setup problem.
fn kind_of(error: &rusqlite::Error) -> ErrorKind {
    let rusqlite::Error::SqliteFailure(e, _) = error else {
        return ErrorKind::Other;
    };
    match e.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
        ErrorCode::CannotOpen
        | ErrorCode::PermissionDenied
        | ErrorCode::ReadOnly
        | ErrorCode::NotADatabase
        | ErrorCode::AuthorizationForStatementDenied => ErrorKind::Rejected,
        _ => ErrorKind::Other,
    }
}

/// Where the builder gets its connections.
#[derive(Debug)]
enum Source {
    Unset,
    Path(PathBuf),
    Pool(Pool<SqliteConnectionManager>),
}

/// Configures and opens a [`SqliteStore`]; every setting is documented with its default.
///
/// ```
/// use std::time::Duration;
/// use server_session::store::SqliteStore;
///
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::builder()
///     .path(dir.path().join("sessions.db"))
///     .table("web_sessions")
///     .busy_timeout(Duration::from_secs(2))
///     .max_connections(4)
///     .build()?;
/// assert_eq!(store.table(), "web_sessions");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SqliteStoreBuilder {
    source: Source,
    table: String,
    create_table: bool,
    expiry_index: bool,
    busy_timeout: Duration,
    max_connections: u32,
}

impl Default for SqliteStoreBuilder {
    fn default() -> Self {
        Self {
            source: Source::Unset,
            table: "sessions".into(),
            create_table: true,
            expiry_index: true,
            busy_timeout: Duration::from_secs(2),
            max_connections: 10,
        }
    }
}

impl SqliteStoreBuilder {
    /// The database file, created if missing with mode `0600` (its directory must exist; the
    /// `-wal` and `-shm` files SQLite adds get the same mode). No default: set this or
    /// [`pool`](Self::pool). Each connection the store opens uses WAL journaling,
    /// `synchronous = NORMAL`, `journal_size_limit` =
    /// [`SqliteStore::WAL_SIZE_LIMIT`] and the
    /// [busy timeout](Self::busy_timeout). An empty path or an in-memory database
    /// (`:memory:`, `file::memory:`) is refused: each pooled connection would get its own.
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder().path("/var/lib/app/sessions.db");
    /// ```
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Source::Path(path.into());
        self
    }

    /// Use an existing pool instead of opening a file. Its connections are used as they are:
    /// set WAL and a busy timeout in the manager's `with_init` for the same performance.
    /// [`busy_timeout`](Self::busy_timeout) and [`max_connections`](Self::max_connections) do
    /// not apply.
    ///
    /// ```
    /// use server_session::store::SqliteStore;
    /// let dir = tempfile::tempdir()?;
    /// let manager = r2d2_sqlite::SqliteConnectionManager::file(dir.path().join("app.db"));
    /// let pool = r2d2::Pool::new(manager)?;
    /// let store = SqliteStore::builder().pool(pool.clone()).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(mut self, pool: Pool<SqliteConnectionManager>) -> Self {
        self.source = Source::Pool(pool);
        self
    }

    /// The table name (`SESSION_SQLALCHEMY_TABLE`). Default: `sessions`. Must match
    /// `[A-Za-z_][A-Za-z0-9_]{0,62}`; it is quoted in every statement.
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder().table("flask_sessions");
    /// ```
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Whether [`build`](Self::build) creates the table (and its expiry index) when it is
    /// missing. Default: `true`. An existing table is never altered.
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder().create_table(false);
    /// ```
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = create;
        self
    }

    /// Whether a table created by [`build`](Self::build) gets an index on `expiry`, so a
    /// sweep finds expired rows without scanning the table. Default: `true`.
    ///
    /// The index costs writes: every request that refreshes a session moves its index entry
    /// (in SQLite's WAL, one more page per commit). Turn it off when sweeps are rare and the
    /// table is small; Flask-Session's own table has no such index.
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder().expiry_index(false);
    /// ```
    pub fn expiry_index(mut self, index: bool) -> Self {
        self.expiry_index = index;
        self
    }

    /// How long a store operation waits for another writer's lock (and for a pooled
    /// connection) before failing with [`ErrorKind::Unavailable`]: the whole bound of an
    /// operation, as there is no retry after it. Readers never wait for writers (WAL), so a
    /// request that only reads its session is served while another process holds the write
    /// lock. Default: 2 seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = server_session::store::SqliteStore::builder().busy_timeout(Duration::from_secs(1));
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The most connections the store's pool opens. Default: 10.
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder().max_connections(4);
    /// ```
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Validates the settings, opens the database, creates the table if missing and allowed,
    /// and prepares every statement once (which checks the table's columns).
    ///
    /// Errors: [`Error::Config`] for an invalid table name, no path or pool, zero connections,
    /// or a missing table with [`create_table(false)`](Self::create_table);
    /// [`Error::Store`] when the database cannot be opened or the table lacks a column;
    /// [`Error::Store`] of kind [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when a
    /// given pool has no connection to offer.
    ///
    /// ```
    /// use server_session::{store::SqliteStore, Error};
    /// let err = SqliteStore::builder().path("x.db").table("x; DROP TABLE y").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn build(self) -> Result<SqliteStore> {
        sql::validate_identifier("table", &self.table)?;
        if self.busy_timeout.is_zero() {
            return Err(Error::Config(
                "the SQLite busy_timeout must be above zero".into(),
            ));
        }
        let (busy_timeout, max) = (self.busy_timeout, self.max_connections);
        let (pool, target) = match self.source {
            Source::Unset => {
                return Err(Error::Config(
                    "the SQLite store needs a database path or a pool".into(),
                ))
            }
            Source::Pool(pool) => (pool, None),
            Source::Path(path) => {
                let target: Arc<str> = path.display().to_string().into();
                let pool = open_pool(&path, busy_timeout, max).map_err(|e| at(e, &target))?;
                (pool, Some(target))
            }
        };
        let statements = Statements::new(&sql::quote(&self.table), None, |n| format!("?{n}"));
        let store = SqliteStore {
            pool,
            table: self.table,
            statements,
            target,
            writes: AtomicUsize::new(0),
            checkpoint_due: AtomicUsize::new(CHECKPOINT_EVERY),
        };
        let create = self.create_table.then_some(self.expiry_index);
        let mut conn = store.checkout()?;
        ensure_table(&mut conn, &store.table, create)
            .and_then(|()| prepare_all(&conn, &store.statements))
            .map_err(|e| store.at(e))?;
        drop(conn);
        Ok(store)
    }
}

/// `error` naming the database file.
fn at(error: Error, target: &str) -> Error {
    error.at(|| target.to_owned())
}

/// Refuses paths that would give each pooled connection its own database.
fn check_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file::memory:") {
        return Err(Error::Config(format!(
            "the SQLite store needs a database file, not {text:?}: each pooled connection \
             would get its own private database"
        )));
    }
    Ok(())
}

/// Creates the database file with mode 0600 if it is missing, so that SQLite (which gives
/// its `-wal` and `-shm` files the database's mode) never makes them readable by others.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Store(StoreError::new(
            "sqlite",
            ErrorKind::of_io(&e),
            e,
        ))),
    }
}

/// Opens the first connection directly (so a bad path is a typed error), then the pool.
fn open_pool(path: &Path, busy: Duration, max: u32) -> Result<Pool<SqliteConnectionManager>> {
    check_path(path)?;
    if max == 0 {
        return Err(Error::Config(
            "the SQLite store needs at least one connection".into(),
        ));
    }
    create_private(path)?;
    let manager = SqliteConnectionManager::file(path).with_init(move |conn| configure(conn, busy));
    drop(manager.connect()?);
    Ok(Pool::builder()
        .max_size(max)
        .min_idle(Some(1))
        .connection_timeout(busy)
        .test_on_check_out(false)
        .build_unchecked(manager))
}

/// Per-connection settings: WAL journaling, `synchronous = NORMAL`, the WAL size limit, the
/// busy timeout, and no automatic checkpoints: the store's own truncating ones (see
/// [`checkpoint`]) would otherwise find one running and give up.
fn configure(conn: &mut Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(
        None,
        "journal_size_limit",
        SqliteStore::WAL_SIZE_LIMIT as i64,
    )
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
    )?
    .exists(params![table])
}

/// Creates the table (and its expiry index when `create` is `Some(true)`), in one
/// transaction, unless the table exists; `create` is `None` when creating is off.
fn ensure_table(conn: &mut Connection, table: &str, create: Option<bool>) -> Result<()> {
    if table_exists(conn, table)? {
        return Ok(());
    }
    let Some(index) = create else {
        return Err(Error::Config(format!(
            "the session table {table:?} does not exist and create_table is off"
        )));
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !table_exists(&tx, table)? {
        tx.execute_batch(&create_table_sql(table, index))?;
    }
    Ok(tx.commit()?)
}

/// SQLAlchemy's DDL for Flask-Session's model on SQLite, plus the expiry index if wanted.
fn create_table_sql(table: &str, index: bool) -> String {
    let name = sql::quote(table);
    let mut ddl = format!(
        "CREATE TABLE {name} (\n\tid INTEGER NOT NULL, \n\tsession_id VARCHAR(255), \
         \n\tdata BLOB, \n\texpiry DATETIME, \n\tPRIMARY KEY (id), \n\tUNIQUE (session_id)\n);"
    );
    if index {
        let index = sql::quote(&sql::expiry_index_name(table));
        ddl.push_str(&format!("\nCREATE INDEX {index} ON {name} (expiry);"));
    }
    ddl
}

fn prepare_all(conn: &Connection, s: &Statements) -> Result<()> {
    for statement in [
        &s.load,
        &s.create,
        &s.save,
        &s.touch,
        &s.load_and_touch,
        &s.delete,
        &s.sweep,
    ] {
        conn.prepare_cached(statement)?;
    }
    Ok(())
}

/// Sessions in an SQLite database file, in Flask-Session's `sessions` table.
///
/// Statements are prepared once per pooled connection and cached; every value is bound.
/// Expired rows are never returned; remove them with [`Sweep::sweep`], from a
/// [`Sweeper`](super::Sweeper) or a [`CleanupEvery`](super::CleanupEvery) wrapper.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{SqliteStore, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("sessions.db"))?;
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// assert!(store.create("session:a", b"data", expires)?);
/// assert_eq!(store.load("session:a")?, Some(b"data".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    pool: Pool<SqliteConnectionManager>,
    table: String,
    statements: Statements,
    /// The database file, for error messages; unknown for a given pool.
    target: Option<Arc<str>>,
    /// Writes so far.
    writes: AtomicUsize,
    /// The write count at which the next WAL checkpoint is due; `usize::MAX` while one runs.
    checkpoint_due: AtomicUsize,
}

/// How many writes pass between two truncating WAL checkpoints.
const CHECKPOINT_EVERY: usize = 1000;
/// How many writes pass before a checkpoint that could not finish is tried again.
const CHECKPOINT_RETRY: usize = 50;

impl SqliteStore {
    /// The size the `-wal` file is truncated to after a checkpoint (`journal_size_limit`),
    /// and the bound it stays under while writes go on (tested under load): 64 MiB.
    pub const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

    /// A store on the database file at `path` with every other setting at its default.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = server_session::store::SqliteStore::open(dir.path().join("s.db"))?;
    /// assert_eq!(store.table(), "sessions");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::builder().path(path).build()
    }

    /// A builder with the defaults (table `sessions`, created if missing).
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder();
    /// ```
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder::default()
    }

    /// The session table's name.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = server_session::store::SqliteStore::open(dir.path().join("s.db"))?;
    /// assert_eq!(store.table(), "sessions");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The connection pool, for running other statements on the same database.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = server_session::store::SqliteStore::open(dir.path().join("s.db"))?;
    /// let rows: i64 = store.pool().get()?.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
    /// assert_eq!(rows, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(&self) -> &Pool<SqliteConnectionManager> {
        &self.pool
    }

    /// Runs `op` on a pooled connection.
    ///
    /// There is no retry: the busy timeout (which SQLite spends waiting for another writer's
    /// lock) is the operation's whole bound, as every statement is a single autocommit one.
    fn run<T>(&self, op: impl Fn(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.checkout()?;
        op(&conn).map_err(|e| self.at(e.into()))
    }

    /// A pooled connection within the busy timeout.
    fn checkout(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        self.pool.get().map_err(|e| {
            self.at(Error::Store(StoreError::new(
                "sqlite",
                ErrorKind::Unavailable,
                e,
            )))
        })
    }

    /// `error` naming the database file, when the store knows it.
    fn at(&self, error: Error) -> Error {
        match &self.target {
            Some(target) => at(error, target),
            None => error,
        }
    }

    /// Executes `statement` with `params`; whether exactly one row changed.
    fn changed_one(&self, statement: &str, params: impl rusqlite::Params + Copy) -> Result<bool> {
        self.write(|conn| conn.prepare_cached(statement)?.execute(params))
            .map(|rows| rows == 1)
    }

    /// Runs the write `op` on a pooled connection, then, every [`CHECKPOINT_EVERY`] writes,
    /// checkpoints the WAL on the same connection (one checkpoint at a time; one that could
    /// not finish is tried again [`CHECKPOINT_RETRY`] writes later).
    fn write<T>(&self, op: impl Fn(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.checkout()?;
        let written = op(&conn).map_err(|e| self.at(e.into()))?;
        let count = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let due = self.checkpoint_due.load(Ordering::Relaxed);
        let claimed = count >= due
            && (self.checkpoint_due)
                .compare_exchange(due, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        if claimed {
            let wait = if checkpoint(&conn) {
                CHECKPOINT_EVERY
            } else {
                CHECKPOINT_RETRY
            };
            self.checkpoint_due.store(count + wait, Ordering::Release);
        }
        Ok(written)
    }

    /// The `data` of the row `statement` returns, if any (a NULL `data` reads as none).
    fn data_row(
        &self,
        statement: &str,
        params: impl rusqlite::Params + Copy,
    ) -> Result<Option<Vec<u8>>> {
        self.run(|conn| data_row(conn, statement, params))
            .map(Option::flatten)
    }
}

fn data_row(
    conn: &Connection,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Option<Option<Vec<u8>>>> {
    conn.prepare_cached(statement)?
        .query_row(params, |row| row.get::<_, Option<Vec<u8>>>(0))
        .optional()
}

/// Copies the WAL into the database and truncates it, waiting (within the busy timeout) for
/// the readers of older snapshots to finish; whether it finished. SQLite's own checkpoints
/// never wait, so under steady load some reader always holds the WAL and it grows without
/// bound. A checkpoint that cannot finish (the database stayed busy, or another process was
/// checkpointing) is logged, not returned: the write before it succeeded.
fn checkpoint(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => true,
        Ok(_) => {
            log::debug!("SQLite WAL checkpoint left unfinished: the database stayed busy");
            false
        }
        Err(e) => {
            log::warn!("SQLite WAL checkpoint failed: {e}");
            false
        }
    }
}

fn now() -> String {
    sql::naive_utc_text(SystemTime::now())
}

impl Store for SqliteStore {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.data_row(&self.statements.load, params![key, now()])
    }

    fn check_key(&self, key: &str) -> Result<()> {
        sql::check_key(key)
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        sql::check_key(key)?;
        let expiry = sql::naive_utc_text(expires);
        self.changed_one(&self.statements.create, params![key, value, expiry, now()])
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let expiry = sql::naive_utc_text(expires);
        self.changed_one(&self.statements.save, params![key, value, expiry, now()])
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
        let expiry = sql::naive_utc_text(expires);
        let params = params![key, value, expiry, now(), expected];
        if self.changed_one(&self.statements.replace, params)? {
            return Ok(Replaced::Done);
        }
        Ok(sql::not_replaced(self.load(key)?))
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        let expiry = sql::naive_utc_text(expires);
        self.changed_one(&self.statements.touch, params![key, expiry, now()])
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.changed_one(&self.statements.delete, params![key])
            .map(drop)
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let expiry = sql::naive_utc_text(expires);
        let statement = &self.statements.load_and_touch;
        self.write(|conn| data_row(conn, statement, params![key, expiry, now()]))
            .map(Option::flatten)
    }
}

impl Sweep for SqliteStore {
    /// Deletes up to `limit` rows whose expiry has passed or is NULL, in one statement.
    fn sweep(&self, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(|conn| {
            conn.prepare_cached(&self.statements.sweep)?
                .execute(params![now(), limit])
        })
    }
}
