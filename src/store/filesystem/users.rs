//! The [`UserIndex`] of the [`FileStore`]: one small file per user in the `users`
//! subdirectory, named like a session file by the lowercase hex SHA-256 of the user name, and
//! holding one `key<TAB>until` line per record (`until` in Unix milliseconds), sorted by key.
//!
//! Index files are written like session files (temp file, then rename, under the store's
//! lock; the store's mode) and read without the lock. Every rewrite drops the lapsed records
//! and removes a file left with none; [`Sweep`](crate::store::Sweep) and threshold pruning
//! rewrite or remove the files holding lapsed records, so the index never outgrows the live
//! sessions. Session counting, pruning and sweeping of sessions never look into `users`
//! (named `server-session-users.__wz_cache` in cachelib's layout, a name cachelib skips).

use std::collections::BTreeMap;

use super::*;
use crate::store::UserIndex;

/// The subdirectory of the index files (in the native layout).
pub(super) const USERS_DIR: &str = "users";

/// One user's records: session key -> `until`, Unix milliseconds.
type Records = BTreeMap<String, u64>;

/// The keys an index line cannot hold: a tab or a line break would split the record.
pub(super) fn check_index_key(key: &str) -> Result<()> {
    if key.contains(['\t', '\n', '\r']) {
        return Err(Error::InvalidKey(
            "a file store key must not contain a tab or a line break".into(),
        ));
    }
    Ok(())
}

/// The records of an index file's bytes; a line that is not `key<TAB>digits` is skipped.
fn parse(bytes: &[u8]) -> Records {
    let record = |line: &[u8]| {
        let line = std::str::from_utf8(line).ok()?;
        let (key, until) = line.split_once('\t')?;
        Some((key.to_owned(), until.parse().ok()?))
    };
    bytes.split(|&b| b == b'\n').filter_map(record).collect()
}

/// The bytes of an index file holding `records`.
fn render(records: &Records) -> Vec<u8> {
    let lines = records
        .iter()
        .map(|(key, until)| format!("{key}\t{until}\n"));
    lines.collect::<String>().into_bytes()
}

/// The index file's bytes; empty when there is none.
fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        read => read,
    }
}

/// Only the records whose `until` has not passed at `now`.
fn live(mut records: Records, now: u64) -> Records {
    records.retain(|_, until| *until > now);
    records
}

impl FileStore {
    fn users_dir(&self) -> PathBuf {
        self.directory.join(self.layout.users_dir())
    }

    fn read_records(&self, name: &str) -> io::Result<Records> {
        Ok(parse(&read_bytes(&self.users_dir().join(name))?))
    }

    /// Writes the records live at `now` to the index file `name`, or removes it when none are.
    fn store_records(&self, _locked: &Locked<'_>, name: &str, records: Records) -> Result<()> {
        let records = live(records, now_ms());
        if records.is_empty() {
            remove_file(&self.users_dir().join(name))?;
            return Ok(());
        }
        self.write_file(&self.users_dir(), name, &[&render(&records)])
    }

    /// Without the lock: up to `limit` index files a rewrite would change (a lapsed record, a
    /// malformed line), and stale temp files of the index.
    fn scan_users(&self, limit: usize, now: u64) -> Result<(Vec<String>, Vec<PathBuf>)> {
        let entries = match fs::read_dir(self.users_dir()) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            entries => entries?,
        };
        let untidy = |path: &Path| {
            let bytes = read_bytes(path)?;
            Ok(render(&live(parse(&bytes), now)) != bytes)
        };
        Ok(scan(entries, is_entry_name, limit, untidy)?)
    }

    /// Under the lock: rewrites each of the index files `names` with its live records (read
    /// again, so a record linked since the scan is kept), or removes it.
    fn tidy_users(&self, locked: &Locked<'_>, names: &[String]) -> Result<()> {
        for name in names {
            let records = self.read_records(name)?;
            self.store_records(locked, name, records)?;
        }
        Ok(())
    }

    /// For [`Sweep`]: tidies up to `limit` index files holding lapsed records, and removes the
    /// index's stale temp files.
    pub(super) fn sweep_users(&self, limit: usize) -> Result<()> {
        let (untidy, stale) = self.scan_users(limit, now_ms())?;
        if !untidy.is_empty() {
            let locked = self.lock()?;
            self.tidy_users(&locked, &untidy)?;
        }
        for temp in stale {
            remove_file(&temp)?;
        }
        Ok(())
    }

    /// For a prune, with the lock held: tidies every index file holding lapsed records.
    pub(super) fn prune_users(&self, locked: &Locked<'_>) -> Result<()> {
        let (untidy, _) = self.scan_users(usize::MAX, now_ms())?;
        self.tidy_users(locked, &untidy)
    }
}

/// One index file per user under `users/`, of `key<TAB>until-ms` lines: see [`FileStore`].
impl UserIndex for FileStore {
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
        check_index_key(key)?;
        self.in_dir(|| {
            let name = file_name(user);
            let locked = self.lock()?;
            create_directory(&self.users_dir())?;
            let mut records = self.read_records(&name)?;
            records.insert(key.to_owned(), unix_ms(until));
            self.store_records(&locked, &name, records)
        })
    }

    fn user_keys(&self, user: &str) -> Result<Vec<String>> {
        self.in_dir(|| {
            let records = live(self.read_records(&file_name(user))?, now_ms());
            Ok(records.into_keys().collect())
        })
    }

    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
        self.in_dir(|| {
            let name = file_name(user);
            let locked = self.lock()?;
            let mut records = self.read_records(&name)?;
            let before = records.len();
            records.retain(|key, _| !keys.contains(key));
            if records.len() == before {
                return Ok(());
            }
            self.store_records(&locked, &name, records)
        })
    }
}
