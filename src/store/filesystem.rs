//! Sessions as files in a directory, like Flask-Session's `filesystem` backend.
//!
//! One file per session, named by the lowercase hex SHA-256 of the store key, so no key can
//! escape the directory or collide with the lock file (`.lock`) or a temp file (`.tmp-*`).
//! In the native [`FileLayout`] (the default) a file is a 24-byte header then the payload:
//!
//! | bytes  | content                                   |
//! |--------|-------------------------------------------|
//! | 0..7   | magic `SRVSESS`                           |
//! | 7      | format version, 1                         |
//! | 8..16  | expiry, Unix milliseconds, u64 big-endian |
//! | 16..24 | payload length, u64 big-endian            |
//!
//! Every write goes to a fresh temp file that is then renamed over the entry, so a reader
//! (which never locks) sees the old file or the new one, never a torn one. Mutations hold an
//! in-process mutex plus an exclusive `fs2` lock on `.lock`, so threads and processes sharing the
//! directory never both win a `create` and a late `save` never resurrects a deleted entry.
//!
//! The [`UserIndex`] lives in the `users` subdirectory (see `filesystem/users.rs`), which the
//! session count, pruning and sweeping of session files never enter.
//!
//! [`FileLayout::Cachelib`] writes cachelib's files instead, with cachelib's file count and
//! pruning, and renames the lock file, the temp files and `users` so that cachelib never
//! counts or prunes them: see `filesystem/cachelib.rs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrayvec::ArrayVec;
use ring::digest;

use super::{Replaced, Store, Sweep, UserIndex};
use crate::{Error, Result};

mod cachelib;
mod entry;
mod users;

use entry::*;

const MAGIC: &[u8; 7] = b"SRVSESS";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 24;
const LOCK_FILE: &str = ".lock";
const TEMP_PREFIX: &str = ".tmp-";
/// Temp files older than this are leftovers of a crashed writer; sweep removes them.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// How a [`FileStore`] lays out its directory: the format of a session file and the
/// bookkeeping files next to them. Chosen with [`FileStoreBuilder::layout`].
///
/// | | [`Native`](FileLayout::Native) (default) | [`Cachelib`](FileLayout::Cachelib) |
/// |---|---|---|
/// | file name | hex SHA-256 of the key | the same (cachelib's `_get_filename`) |
/// | header | `SRVSESS`, version, expiry in Unix ms, payload length (24 bytes) | expiry in Unix seconds, 0 = never, 4 bytes native-endian (`struct.pack("I")`) |
/// | payload | the codec's bytes | the codec's bytes: pair it with [`Pickle`](crate::codec::Pickle) |
/// | who reads it | this crate | also cachelib's `FileSystemCache`: Flask-Session 0.8's `filesystem` type (and `cachelib` with a `FileSystemCache`) |
/// | threshold | counted in memory; a prune after a create leaves 90% | cachelib's file-count entry, kept up to date; cachelib's prune before each write |
/// | lock, temp files, user index | `.lock`, `.tmp-*`, `users/` | the same names ending in `.__wz_cache`, which cachelib never counts or prunes |
///
/// ```
/// use server_session::store::{FileLayout, FileStore};
///
/// let dir = tempfile::tempdir()?;
/// let store = FileStore::builder().directory(dir.path()).build()?;
/// assert_eq!(store.layout(), FileLayout::Native);
/// assert_eq!(FileLayout::default(), FileLayout::Native);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileLayout {
    /// The crate's own format: a 24-byte header (magic `SRVSESS`, version 1, the expiry in
    /// Unix milliseconds and the payload length, both u64 big-endian) then the payload; the
    /// length catches a truncated file. Only this crate reads it.
    #[default]
    Native,
    /// cachelib 0.17's `FileSystemCache` format, so a Flask app with
    /// `SESSION_TYPE = "filesystem"` and `SESSION_FILE_DIR` on the same directory shares the
    /// sessions (with the [`Pickle`](crate::codec::Pickle) codec, as Flask-Session pickles the
    /// session dict there). Expiries are whole seconds.
    Cachelib,
}

/// Configures and opens a [`FileStore`]; every setting has the Flask-Session default.
///
/// ```
/// use server_session::store::FileStore;
///
/// let dir = std::env::temp_dir().join(format!("server-session-doc-{}", std::process::id()));
/// let store = FileStore::builder().directory(&dir).threshold(1000).mode(0o640).build()?;
/// assert_eq!(store.threshold(), 1000);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStoreBuilder {
    directory: PathBuf,
    threshold: usize,
    mode: u32,
    sync: bool,
    layout: FileLayout,
}

impl Default for FileStoreBuilder {
    fn default() -> Self {
        Self {
            directory: PathBuf::from("flask_session"),
            threshold: 500,
            mode: 0o600,
            sync: false,
            layout: FileLayout::Native,
        }
    }
}

impl FileStoreBuilder {
    /// The directory holding the session files (`SESSION_FILE_DIR`). Default: `flask_session`,
    /// relative to the working directory. It is created (mode 0700) if missing; an existing
    /// directory keeps its permissions.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?; // in production e.g. /var/lib/app/sessions
    /// let store = server_session::store::FileStore::builder().directory(dir.path()).build()?;
    /// assert_eq!(store.directory(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = directory.into();
        self
    }

    /// The most session files to keep (`SESSION_FILE_THRESHOLD`); 0 means unlimited. Default: 500.
    ///
    /// When a `create` takes the count over the threshold, expired files are removed, then the
    /// files closest to expiry, until at most 90% of `threshold` remain (all of it below 10).
    /// The count is kept in memory and re-read from the directory at each prune, so with
    /// several processes sharing one directory the bound is approximate. Once the store is
    /// full, one `create` in `threshold / 10` lists the directory: keep the threshold modest,
    /// or use 0 and a [`Sweeper`](crate::store::Sweeper) for large numbers of sessions.
    /// [`FileLayout::Cachelib`] counts and prunes as cachelib does instead (see
    /// [`layout`](Self::layout)): once full, every write lists the directory.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let builder = server_session::store::FileStore::builder().directory(dir.path());
    /// let store = builder.threshold(0).build()?; // unlimited
    /// assert_eq!(store.threshold(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold;
        self
    }

    /// The permission bits of session files (`SESSION_FILE_MODE`). Default: `0o600`.
    ///
    /// Must include owner read and write and nothing beyond `0o777`. The bits are set
    /// explicitly, so the process umask does not weaken or strengthen them.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use std::time::{Duration, SystemTime};
    /// use server_session::store::{FileStore, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = FileStore::builder().directory(dir.path()).mode(0o640).build()?;
    /// store.create("session:abc", b"data", SystemTime::now() + Duration::from_secs(60))?;
    /// let mut files = std::fs::read_dir(dir.path())?.filter_map(|entry| entry.ok());
    /// let file = files.find(|f| !f.file_name().to_string_lossy().starts_with('.')).unwrap();
    /// assert_eq!(file.metadata()?.permissions().mode() & 0o777, 0o640);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whether to `fsync` each file before renaming it into place, and the directory after.
    /// Default: `false`.
    ///
    /// With `false` a write costs about a third as much, and a rename is still atomic, so
    /// readers never see a torn file; but after a power loss (not a process crash) the last
    /// writes may be lost. Sessions are usually cheap to lose; turn this on when they are not.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use server_session::store::{FileStore, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = FileStore::builder().directory(dir.path()).sync(true).build()?;
    /// store.create("session:abc", b"data", SystemTime::now() + Duration::from_secs(60))?;
    /// assert_eq!(store.load("session:abc")?, Some(b"data".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The file format and bookkeeping of the directory (see [`FileLayout`]). Default:
    /// [`FileLayout::Native`].
    ///
    /// [`FileLayout::Cachelib`] shares the directory with cachelib's `FileSystemCache`, and so
    /// with Flask-Session 0.8's `filesystem` backend: use the [`Pickle`](crate::codec::Pickle)
    /// codec with it, the same key prefix, and the same threshold on both sides. In this layout
    /// the threshold follows cachelib: the count lives in cachelib's `__wz_cache_count` entry
    /// (kept up to date by every create, delete and sweep, whenever the threshold is not 0 or
    /// the entry exists), and any write that finds it over the threshold first removes every
    /// expired file, then the files with the earliest expiry (a file that never expires, expiry
    /// 0, first), until it is back at the threshold; the session being written is never the
    /// one removed. All processes on one directory must use the same layout.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use server_session::store::{FileLayout, FileStore, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = FileStore::builder().directory(dir.path()).layout(FileLayout::Cachelib).build()?;
    /// let expires = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    /// store.create("session:abc", b"\x80\x04}.", expires)?; // a pickled empty dict
    /// // The file cachelib reads: the expiry in seconds, native-endian, then the payload.
    /// // Its name: hashlib.sha256(b"session:abc").hexdigest()
    /// let name = "a29d803b477eb42083ebd25596356c45c98474d5c0dacb79829833ca2176e85b";
    /// let bytes = std::fs::read(dir.path().join(name))?;
    /// assert_eq!(bytes[..4], 2_000_000_000u32.to_ne_bytes());
    /// assert_eq!(&bytes[4..], b"\x80\x04}.");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn layout(mut self, layout: FileLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Validates the settings, creates the directory if needed and opens the lock file.
    ///
    /// Errors: [`Error::Config`] for an empty directory path, or a mode with bits beyond `0o777`
    /// or without owner read-write; [`Error::Store`] naming the directory and the cause when the directory or lock file
    /// cannot be made (`file store /srv/sessions: permission denied`).
    ///
    /// ```
    /// use server_session::{store::FileStore, Error};
    /// let err = FileStore::builder().mode(0o200).build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn build(self) -> Result<FileStore> {
        self.validate()?;
        let (lock_file, entries) = self
            .open_directory()
            .map_err(|e| e.at(|| self.directory.display().to_string()))?;
        let store = FileStore {
            directory: self.directory,
            threshold: self.threshold,
            mode: self.mode,
            sync: self.sync,
            layout: self.layout,
            state: Mutex::new(State { lock_file, entries }),
        };
        if store.layout == FileLayout::Cachelib && store.threshold > 0 {
            store.in_dir(|| store.reset_count())?;
        }
        Ok(store)
    }

    /// Creates the directory if missing and opens its lock file (which proves it writable);
    /// the lock file and the number of entries.
    fn open_directory(&self) -> Result<(File, usize)> {
        create_directory(&self.directory)?;
        let lock_file = open_lock_file(&self.directory.join(self.layout.lock_file()))?;
        Ok((lock_file, count_entries(&self.directory, self.layout)?))
    }

    fn validate(&self) -> Result<()> {
        if self.directory.as_os_str().is_empty() {
            return Err(Error::Config(
                "the file store directory must not be empty".into(),
            ));
        }
        if self.mode & !0o777 != 0 || self.mode & 0o600 != 0o600 {
            return Err(Error::Config(format!(
                "the file store mode {:#o} must be within 0o777 and include owner read-write (0o600)",
                self.mode
            )));
        }
        Ok(())
    }
}

/// Sessions as files in a directory (Flask-Session's `filesystem` backend).
///
/// Safe to share between threads and between processes using the same directory. Expired files
/// are never returned; remove them with [`Sweep::sweep`] (for example from a
/// [`Sweeper`](super::Sweeper)) or let threshold pruning do it.
///
/// Its [`UserIndex`] keeps one file per user in the `users` subdirectory
/// (`server-session-users.__wz_cache` in [`FileLayout::Cachelib`]), named by the hex
/// SHA-256 of the user name, of `key<TAB>until` lines (`until` in Unix milliseconds), written
/// like the session files (temp file and rename under the lock, the store's mode). Each
/// rewrite drops the lapsed records; sweeping and pruning rewrite or remove the files holding
/// lapsed ones, and never count index files as sessions. A key with a tab or a line break is
/// refused ([`Error::InvalidKey`]).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{FileStore, Store};
///
/// let dir = std::env::temp_dir().join(format!("server-session-doc-{}", std::process::id()));
/// let store = FileStore::new(&dir)?;
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// assert!(store.create("session:a", b"data", expires)?);
/// assert_eq!(store.load("session:a")?, Some(b"data".to_vec()));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FileStore {
    directory: PathBuf,
    threshold: usize,
    mode: u32,
    sync: bool,
    layout: FileLayout,
    state: Mutex<State>,
}

/// Guarded by the in-process mutex; the file lock on `lock_file` guards against other processes.
#[derive(Debug)]
struct State {
    lock_file: File,
    /// Approximate number of entry files (exact after a prune, blind to other processes); the
    /// native layout's count (cachelib's layout keeps its count in a file).
    entries: usize,
}

/// Holds both locks; releases the file lock, then the mutex, when dropped.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // An unlock failure cannot be reported from drop; closing the file (at the latest when
        // the process exits) releases the lock anyway.
        let _ = fs2::FileExt::unlock(&self.state.lock_file);
    }
}

impl FileStore {
    /// A store in `directory` with every other setting at its default.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("server-session-doc-{}", std::process::id()));
    /// let store = server_session::store::FileStore::new(&dir)?;
    /// assert_eq!(store.directory(), dir.as_path());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(directory: impl Into<PathBuf>) -> Result<Self> {
        Self::builder().directory(directory).build()
    }

    /// A builder with the Flask-Session defaults.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = server_session::store::FileStore::builder().directory(dir.path()).build()?;
    /// assert_eq!(store.threshold(), 500);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> FileStoreBuilder {
        FileStoreBuilder::default()
    }

    /// The directory holding the session files.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("server-session-doc-{}", std::process::id()));
    /// let store = server_session::store::FileStore::new(&dir)?;
    /// assert!(store.directory().is_dir());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The most session files kept; 0 means unlimited.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("server-session-doc-{}", std::process::id()));
    /// let store = server_session::store::FileStore::new(&dir)?;
    /// assert_eq!(store.threshold(), 500);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The layout of the directory's files.
    ///
    /// ```
    /// use server_session::store::{FileLayout, FileStore};
    /// let dir = tempfile::tempdir()?;
    /// let builder = FileStore::builder().directory(dir.path()).layout(FileLayout::Cachelib);
    /// assert_eq!(builder.build()?.layout(), FileLayout::Cachelib);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn layout(&self) -> FileLayout {
        self.layout
    }

    fn lock(&self) -> Result<Locked<'_>> {
        // Every update of `State` is a single assignment, so a poisoned mutex is safe to reuse.
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        fs2::FileExt::lock_exclusive(&state.lock_file)?;
        Ok(Locked { state })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.join(name)
    }

    /// Writes a complete entry to a temp file and renames it over `name`. Call with the lock held.
    fn write_entry(&self, name: &str, expires: SystemTime, value: &[u8]) -> Result<()> {
        let header = self.layout.header(expires, value.len());
        self.write_file(&self.directory, name, &[&header, value])
    }

    /// Writes `parts` to a fresh temp file in `dir` and renames it over `name` there, so a
    /// reader sees the old file or the new one. Call with the lock held.
    fn write_file(&self, dir: &Path, name: &str, parts: &[&[u8]]) -> Result<()> {
        let temp = dir.join(temp_name(self.layout)?);
        let written = self
            .write_temp(&temp, parts)
            .and_then(|()| fs::rename(&temp, dir.join(name)));
        if let Err(e) = written {
            // Best effort: the write error is the one worth reporting.
            let _ = fs::remove_file(&temp);
            return Err(e.into());
        }
        if self.sync {
            sync_directory(dir)?;
        }
        Ok(())
    }

    fn write_temp(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        set_create_mode(&mut options, self.mode);
        let mut file = options.open(path)?;
        set_file_mode(&file, self.mode)?;
        for part in parts {
            file.write_all(part)?;
        }
        if self.sync {
            file.sync_all()?;
        }
        Ok(())
    }

    /// Under the lock: the live entry's payload, rewritten with a new expiry; `None` when gone.
    fn touch_entry(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let name = self.entry_name(key)?;
        let mut locked = self.lock()?;
        let payload = match read_live(self.layout, &self.path(&name), now_ms()) {
            Ok(Some(payload)) => payload,
            Ok(None) | Err(ReadError::Corrupt) => return Ok(None),
            Err(ReadError::Io(e)) => return Err(e.into()),
        };
        self.before_write(&mut locked, &name);
        self.write_entry(&name, expires, &payload)?;
        Ok(Some(payload))
    }

    /// The file name of `key`'s entry; cachelib's layout refuses the key of its file count.
    fn entry_name(&self, key: &str) -> Result<String> {
        if self.layout == FileLayout::Cachelib {
            cachelib::check_key(key)?;
        }
        Ok(file_name(key))
    }

    /// Removes `name` if it is still dead (corrupt, or expired at `now`) once the lock is held,
    /// so a valid file a writer just renamed in is never removed. Call with the lock held, and
    /// pass what it returns on to [`removed`](Self::removed).
    fn remove_if_dead(&self, name: &str, now: u64) -> Result<bool> {
        let path = self.path(name);
        Ok(is_dead(open_entry(self.layout, &path)?, now) && remove_file(&path)?)
    }

    /// Before a write under the lock: cachelib's layout prunes when its count is over the
    /// threshold, as cachelib does before each `set`; the native layout prunes after creates.
    fn before_write(&self, locked: &mut Locked<'_>, name: &str) {
        if self.layout == FileLayout::Cachelib {
            self.prune_if_over(locked, name);
        }
    }

    /// After the session file `name` was created under the lock: counts it, and in the
    /// native layout prunes when the count is over the threshold. A failure to do either is
    /// logged: the session is stored, and a later write tries again.
    fn added(&self, locked: &mut Locked<'_>, name: &str) {
        if self.layout == FileLayout::Cachelib {
            return self.adjust_count(locked, 1);
        }
        locked.state.entries += 1;
        if self.threshold > 0
            && locked.state.entries > self.threshold
            && let Err(e) = self.prune(locked, name)
        {
            log::warn!("pruning the session directory failed: {e:?}");
        }
    }

    /// After `n` session files were removed under the lock: counts them.
    fn removed(&self, locked: &mut Locked<'_>, n: usize) {
        if n == 0 {
            return;
        }
        match self.layout {
            FileLayout::Native => locked.state.entries = locked.state.entries.saturating_sub(n),
            FileLayout::Cachelib => {
                self.adjust_count(locked, -i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// After a create went over the threshold: removes dead files, then the files closest to
    /// expiry (never `keep`, the one just created) until at most 90% of `threshold` remain,
    /// so that the directory is listed once per tenth of the threshold, not on every create.
    /// Then rewrites (or removes) the user index files holding lapsed records.
    fn prune(&self, locked: &mut Locked<'_>, keep: &str) -> Result<()> {
        let now = now_ms();
        let mut ranked = self.rank_entries(keep, now)?;
        ranked.sort_unstable();
        let low_water = self.threshold - self.threshold / 10;
        let mut remaining = ranked.len() + 1;
        for (rank, name) in ranked {
            if rank != 0 && remaining <= low_water {
                break;
            }
            if remove_file(&self.path(&name))? {
                remaining -= 1;
            }
        }
        locked.state.entries = remaining;
        self.prune_users(locked)
    }

    /// Every entry file but `keep`, with its expiry; 0 for an expired or corrupt file.
    fn rank_entries(&self, keep: &str, now: u64) -> Result<Vec<(u64, String)>> {
        let mut ranked = Vec::new();
        for name in entry_names(&self.directory, self.layout)? {
            if name == keep {
                continue;
            }
            let rank = match open_entry(self.layout, &self.path(&name))? {
                Slot::Missing => continue,
                Slot::Found { expires_ms, .. } if expires_ms > now => expires_ms,
                Slot::Found { .. } | Slot::Corrupt => 0,
            };
            ranked.push((rank, name));
        }
        Ok(ranked)
    }

    /// Without the lock: up to `limit` dead entry names, and stale temp files.
    fn scan_dead(&self, limit: usize, now: u64) -> Result<(Vec<String>, Vec<PathBuf>)> {
        let dead = |path: &Path| Ok(is_dead(open_entry(self.layout, path)?, now));
        let entries = fs::read_dir(&self.directory)?;
        Ok(scan(entries, self.layout.entry_filter(), limit, dead)?)
    }
}

/// Up to `limit` names of the entry files in `entries` (the names `is_entry` accepts) for
/// which `wanted` holds, and the stale temp files among them.
fn scan(
    entries: fs::ReadDir,
    is_entry: fn(&str) -> bool,
    limit: usize,
    mut wanted: impl FnMut(&Path) -> io::Result<bool>,
) -> io::Result<(Vec<String>, Vec<PathBuf>)> {
    let (mut found, mut stale) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_entry(name) {
            if wanted(&entry.path())? {
                found.push(name.to_owned());
            }
        } else if name.starts_with(TEMP_PREFIX) && is_stale(&entry) {
            stale.push(entry.path());
        }
        if found.len() >= limit {
            break;
        }
    }
    Ok((found, stale))
}

impl FileStore {
    /// Runs `op`, naming the directory in its error: `file store /dir: permission denied`.
    fn in_dir<T>(&self, op: impl FnOnce() -> Result<T>) -> Result<T> {
        op().map_err(|e| e.at(|| self.directory.display().to_string()))
    }
}

impl Store for FileStore {
    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    /// Refuses a key with a tab or a line break, which a line of the user index cannot hold,
    /// and in cachelib's layout the key of cachelib's file count, `__wz_cache_count`.
    fn check_key(&self, key: &str) -> Result<()> {
        users::check_index_key(key)?;
        self.entry_name(key).map(drop)
    }

    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.in_dir(|| {
            let name = self.entry_name(key)?;
            let now = now_ms();
            match read_live(self.layout, &self.path(&name), now) {
                Err(ReadError::Corrupt) => {
                    let mut locked = self.lock()?;
                    let removed = self.remove_if_dead(&name, now)?;
                    self.removed(&mut locked, usize::from(removed));
                    Ok(None)
                }
                Err(ReadError::Io(e)) => Err(e.into()),
                Ok(payload) => Ok(payload),
            }
        })
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.in_dir(|| {
            let name = self.entry_name(key)?;
            let mut locked = self.lock()?;
            let previous = open_entry(self.layout, &self.path(&name))?;
            if is_live(&previous, now_ms()) {
                return Ok(false);
            }
            self.before_write(&mut locked, &name);
            self.write_entry(&name, expires, value)?;
            if matches!(previous, Slot::Missing) {
                self.added(&mut locked, &name);
            }
            Ok(true)
        })
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.in_dir(|| {
            let name = self.entry_name(key)?;
            let mut locked = self.lock()?;
            if !is_live(&open_entry(self.layout, &self.path(&name))?, now_ms()) {
                return Ok(false);
            }
            self.before_write(&mut locked, &name);
            self.write_entry(&name, expires, value)?;
            Ok(true)
        })
    }

    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        self.in_dir(|| {
            let name = self.entry_name(key)?;
            let mut locked = self.lock()?;
            let current = match read_live(self.layout, &self.path(&name), now_ms()) {
                Ok(Some(current)) => current,
                Ok(None) | Err(ReadError::Corrupt) => return Ok(Replaced::Gone),
                Err(ReadError::Io(e)) => return Err(e.into()),
            };
            if current != expected {
                return Ok(Replaced::Changed(current));
            }
            self.before_write(&mut locked, &name);
            self.write_entry(&name, expires, value)?;
            Ok(Replaced::Done)
        })
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        self.in_dir(|| Ok(self.touch_entry(key, expires)?.is_some()))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.in_dir(|| {
            let path = self.path(&self.entry_name(key)?);
            let mut locked = self.lock()?;
            let removed = remove_file(&path)?;
            self.removed(&mut locked, usize::from(removed));
            Ok(())
        })
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        self.in_dir(|| self.touch_entry(key, expires))
    }
}

impl Sweep for FileStore {
    /// Removes up to `limit` expired or corrupt session files, and any temp file a crashed
    /// writer left behind more than a minute ago (not counted). The directory is scanned
    /// without the lock; each removal re-checks the file under the lock. Then rewrites (or
    /// removes) up to `limit` user index files holding lapsed records (not counted either).
    fn sweep(&self, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let removed = self.sweep_sessions(limit)?;
        self.sweep_users(limit)?;
        Ok(removed)
    }
}

impl FileStore {
    /// The session part of [`Sweep::sweep`].
    fn sweep_sessions(&self, limit: usize) -> Result<usize> {
        let now = now_ms();
        let (dead, stale) = self.scan_dead(limit, now)?;
        let mut removed = 0;
        if !dead.is_empty() {
            let mut locked = self.lock()?;
            for name in &dead {
                removed += usize::from(self.remove_if_dead(name, now)?);
            }
            self.removed(&mut locked, removed);
        }
        for temp in stale {
            remove_file(&temp)?;
        }
        Ok(removed)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Removes a file; `Ok(false)` when it was already gone.
fn remove_file(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch, saturating (0 before the epoch).
fn unix_ms(time: SystemTime) -> u64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Platform
// ---------------------------------------------------------------------------------------------

fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    set_create_mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn create_directory(directory: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
}

#[cfg(unix)]
fn set_create_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(unix)]
fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// Makes the renames in `directory` durable.
#[cfg(unix)]
fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

#[cfg(not(unix))]
fn create_directory(directory: &Path) -> io::Result<()> {
    fs::create_dir_all(directory)
}

#[cfg(not(unix))]
fn set_create_mode(_options: &mut OpenOptions, _mode: u32) {}

#[cfg(not(unix))]
fn set_file_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> io::Result<()> {
    Ok(())
}
