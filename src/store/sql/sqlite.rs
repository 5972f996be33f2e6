//! The SQLite dialect (feature `sqlite`): sessions in a database file, in Flask-Session's
//! SQLAlchemy table, so a Flask app using `SESSION_TYPE = "sqlalchemy"` on the same file
//! shares them:
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
//! it; text in that format sorts like time, so every expiry check compares text.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::dialect::DialectImpl;
use super::statements::Names;
use super::{Arg, Dialect, SqlStore, SqlStoreBuilder};
use crate::civil::civil_from_days;
use crate::store::ConnectionSettings;
use crate::{Error, ErrorKind, Result, StoreError};

/// Sessions in an SQLite database file, in Flask-Session's `sessions` table.
///
/// How the [`ConnectionSettings`] apply: `io_timeout` is SQLite's busy timeout, how long a
/// statement waits for another writer's lock before failing with
/// [`ErrorKind::Unavailable`] (the whole bound of an operation: there is no retry after it);
/// `checkout_timeout` bounds the wait for a pooled connection, `max_connections` sizes the pool;
/// `connect_timeout` does not apply (opening a file does not wait). Readers never wait for
/// writers (WAL), so a request that only reads its session is served while another process
/// holds the write lock.
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
pub type SqliteStore = SqlStore<Sqlite>;

/// Configures and opens a [`SqliteStore`]: [`path`](SqlStoreBuilder::path) plus the settings
/// every SQL store shares.
///
/// ```
/// use std::time::Duration;
/// use server_session::store::{ConnectionSettings, SqliteStore};
///
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::builder()
///     .path(dir.path().join("sessions.db"))
///     .table("web_sessions")
///     .connection(ConnectionSettings { io_timeout: Duration::from_secs(1), ..Default::default() })
///     .build()?;
/// assert_eq!(store.table(), "web_sessions");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type SqliteStoreBuilder = SqlStoreBuilder<Sqlite>;

/// The SQLite [`Dialect`]: the type parameter of [`SqliteStore`]. It keeps the count of
/// writes that paces the store's WAL checkpoints.
#[derive(Debug)]
pub struct Sqlite {
    /// Writes so far.
    writes: AtomicUsize,
    /// The write count at which the next WAL checkpoint is due; `usize::MAX` while one runs.
    checkpoint_due: AtomicUsize,
}

impl Dialect for Sqlite {}

/// How many writes pass between two of the store's WAL checkpoints.
const CHECKPOINT_EVERY: usize = 1000;
/// How many writes pass before a checkpoint that could not finish is tried again.
const CHECKPOINT_RETRY: usize = 50;

impl SqlStore<Sqlite> {
    /// The size the `-wal` file is cut back to when a checkpoint resets it
    /// (`journal_size_limit`), and the bound it stays under while writes go on (tested under
    /// load): 64 MiB.
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
    /// assert!(format!("{builder:?}").contains("Unset"));
    /// ```
    pub fn builder() -> SqliteStoreBuilder {
        SqlStoreBuilder::with_options(())
    }
}

impl SqlStoreBuilder<Sqlite> {
    /// The database file, created if missing with mode `0600` (its directory must exist; the
    /// `-wal` and `-shm` files SQLite adds get the same mode), even when the
    /// [start-up check](Self::startup_check) is off. No default: set this or
    /// [`pool`](Self::pool). Each connection the store opens uses WAL journaling,
    /// `synchronous = NORMAL`, `journal_size_limit` = [`SqliteStore::WAL_SIZE_LIMIT`] and the
    /// I/O timeout as its busy timeout. An empty path or an in-memory database (`:memory:`,
    /// `file::memory:`) is refused: each pooled connection would get its own.
    ///
    /// ```
    /// let builder = server_session::store::SqliteStore::builder().path("/var/lib/app/sessions.db");
    /// assert!(format!("{builder:?}").contains("sessions.db"));
    /// ```
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = super::builder::Source::Open(path.into());
        self
    }
}

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

impl DialectImpl for Sqlite {
    type Manager = SqliteConnectionManager;
    type Target = PathBuf;
    type Options = ();
    const NAME: &'static str = "sqlite";
    const LABEL: &'static str = "SqliteStore";
    const TIMESTAMP: &'static str = "DATETIME";

    fn names(table: &str, _: &()) -> Result<Names> {
        Names::validated(table, None, None)
    }

    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }

    fn id_value(_: &Names) -> Option<String> {
        None
    }

    fn validate(_: &(), _: &ConnectionSettings) -> Result<()> {
        Ok(())
    }

    fn manager(
        path: PathBuf,
        _: (),
        settings: &ConnectionSettings,
    ) -> Result<(SqliteConnectionManager, String)> {
        let target = path.display().to_string();
        check_path(&path)?;
        create_private(&path).map_err(|e| e.at(|| target.clone()))?;
        let busy = settings.io_timeout;
        let manager = SqliteConnectionManager::file(path).with_init(move |c| configure(c, busy));
        Ok((manager, target))
    }

    fn new() -> Self {
        Sqlite {
            writes: AtomicUsize::new(0),
            checkpoint_due: AtomicUsize::new(CHECKPOINT_EVERY),
        }
    }

    fn table_exists(conn: &mut Connection, names: &Names) -> Result<bool> {
        Ok(table_exists(conn, &names.table)?)
    }

    /// In one immediate transaction, so two processes creating the table take turns.
    fn create_table(conn: &mut Connection, names: &Names, index: bool) -> Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !table_exists(&tx, &names.table)? {
            tx.execute_batch(&create_table_sql(names, index))?;
        }
        Ok(tx.commit()?)
    }

    fn create_missing(conn: &mut Connection, ddl: &str) -> Result<()> {
        Ok(conn.execute_batch(ddl)?)
    }

    fn prepare(conn: &mut Connection, sql: &str) -> Result<()> {
        conn.prepare_cached(sql)?;
        Ok(())
    }

    fn execute(conn: &mut Connection, sql: &str, args: &[Arg]) -> Result<u64> {
        let rows = conn
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args))?;
        Ok(u64::try_from(rows).unwrap_or(u64::MAX))
    }

    fn query_bytes(
        conn: &mut Connection,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<Option<Vec<u8>>>> {
        let mut statement = conn.prepare_cached(sql)?;
        let row = statement.query_row(rusqlite::params_from_iter(args), |row| row.get(0));
        Ok(row.optional()?)
    }

    fn query_texts(conn: &mut Connection, sql: &str, args: &[Arg]) -> Result<Vec<String>> {
        let mut statement = conn.prepare_cached(sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(args), |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// SQLite never answers "try again": a busy database already waited its busy timeout.
    fn is_transient(_: &Error) -> bool {
        false
    }

    /// Every [`CHECKPOINT_EVERY`] writes, checkpoints the WAL on the same connection (one
    /// checkpoint at a time; one that could not finish is tried again [`CHECKPOINT_RETRY`]
    /// writes later).
    fn after_write(&self, conn: &mut Connection) {
        let count = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let due = self.checkpoint_due.load(Ordering::Relaxed);
        let claimed = count >= due
            && (self.checkpoint_due)
                .compare_exchange(due, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        if claimed {
            let wait = if checkpoint(conn) {
                CHECKPOINT_EVERY
            } else {
                CHECKPOINT_RETRY
            };
            self.checkpoint_due.store(count + wait, Ordering::Release);
        }
    }
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE";
    conn.prepare_cached(sql)?.exists(params![table])
}

/// SQLAlchemy's DDL for Flask-Session's model on SQLite, plus the expiry index if wanted.
fn create_table_sql(names: &Names, index: bool) -> String {
    let table = &names.qualified;
    let mut ddl = format!(
        "CREATE TABLE {table} (\n\tid INTEGER NOT NULL, \n\tsession_id VARCHAR(255), \
         \n\tdata BLOB, \n\texpiry DATETIME, \n\tPRIMARY KEY (id), \n\tUNIQUE (session_id)\n);"
    );
    if index {
        let index = names.expiry_index();
        ddl.push_str(&format!("\nCREATE INDEX {index} ON {table} (expiry);"));
    }
    ddl
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

/// Per-connection settings: WAL journaling, `synchronous = NORMAL`, the WAL size limit, the
/// busy timeout, and no automatic checkpoints: the store's own waiting ones (see
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

/// Copies the WAL into the database and waits (within the busy timeout) for the readers of
/// older snapshots to finish, so that the next write starts the WAL from its beginning again;
/// whether it finished. The file keeps its size up to `journal_size_limit`: later writes
/// overwrite it in place, which costs less than growing a truncated file again (a `TRUNCATE`
/// checkpoint made the SQLite cycle ~25% slower). SQLite's own checkpoints never wait, so
/// under steady load some reader always holds the WAL and it grows without bound. A
/// checkpoint that cannot finish (the database stayed busy, or another process was
/// checkpointing) is logged, not returned: the write before it succeeded.
fn checkpoint(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
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

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Key(key) => ToSqlOutput::Borrowed(ValueRef::Text(key.as_bytes())),
            Arg::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Arg::Time(time) => ToSqlOutput::Owned(Value::Text(naive_utc_text(time))),
            Arg::Int(n) => ToSqlOutput::Owned(Value::Integer(n)),
        })
    }
}

/// `time` as SQLAlchemy writes a naive UTC `DateTime` to SQLite: `YYYY-MM-DD HH:MM:SS.ffffff`.
///
/// Text in this format sorts like the times it names, so SQL compares expiries as text. Times
/// outside years 1..=9999 are clamped to that range.
fn naive_utc_text(time: SystemTime) -> String {
    const MIN_MICROS: i64 = -62_135_596_800_000_000; // 0001-01-01 00:00:00
    const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31 23:59:59.999999
    let micros = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    }
    .clamp(MIN_MICROS, MAX_MICROS);
    let (days, micros_of_day) = (
        micros.div_euclid(86_400_000_000),
        micros.rem_euclid(86_400_000_000),
    );
    let (year, month, day) = civil_from_days(days);
    let secs = micros_of_day / 1_000_000;
    // Hand-written digits: this runs up to three times per request, format! costs ~5x more.
    let mut text = String::with_capacity(26);
    push_digits(&mut text, year, 4);
    text.push('-');
    push_digits(&mut text, month, 2);
    text.push('-');
    push_digits(&mut text, day, 2);
    text.push(' ');
    push_digits(&mut text, secs / 3600, 2);
    text.push(':');
    push_digits(&mut text, secs / 60 % 60, 2);
    text.push(':');
    push_digits(&mut text, secs % 60, 2);
    text.push('.');
    push_digits(&mut text, micros_of_day % 1_000_000, 6);
    text
}

/// Appends the last `width` decimal digits of `value` (non-negative), zero-padded.
fn push_digits(text: &mut String, value: i64, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10_i64.pow(place)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    #[test]
    fn timestamps_match_sqlalchemy() {
        assert_eq!(naive_utc_text(at(0, 0)), "1970-01-01 00:00:00.000000");
        let expected = "2026-12-27 14:48:51.503858";
        assert_eq!(naive_utc_text(at(1_798_382_931, 503_858)), expected);
        assert_eq!(
            naive_utc_text(at(951_782_400, 1)),
            "2000-02-29 00:00:00.000001"
        );
        assert_eq!(
            naive_utc_text(at(4_107_542_399, 999_999)),
            "2100-02-28 23:59:59.999999"
        );
        let before = UNIX_EPOCH - Duration::from_micros(1);
        assert_eq!(naive_utc_text(before), "1969-12-31 23:59:59.999999");
        let far = at(400_000_000_000, 0);
        assert_eq!(naive_utc_text(far), "9999-12-31 23:59:59.999999");
    }

    #[test]
    fn text_order_is_time_order() {
        let times = [
            at(5, 0),
            at(5, 1),
            at(59, 999_999),
            at(60, 0),
            at(1_798_382_931, 0),
        ];
        for pair in times.windows(2) {
            assert!(naive_utc_text(pair[0]) < naive_utc_text(pair[1]));
        }
    }
}
