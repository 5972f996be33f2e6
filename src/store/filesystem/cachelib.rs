//! [`FileLayout::Cachelib`]: the directory as cachelib 0.17's `FileSystemCache` keeps it, which
//! is what Flask-Session 0.8's `filesystem` backend (and its `cachelib` backend with a
//! `FileSystemCache`) reads and writes.
//!
//! What cachelib does (`cachelib/file.py`), and so what this layout does:
//! - A session file is named by the lowercase hex SHA-256 of the UTF-8 store key
//!   (`_get_filename`, the default `hash_method`); Flask-Session's key is
//!   `SESSION_KEY_PREFIX + sid`.
//! - It holds `struct.pack("I", expiry)`, 4 bytes in the machine's byte order, then the value
//!   pickled with `pickle.HIGHEST_PROTOCOL`; Flask-Session pickles `dict(session)` itself (its
//!   `SESSION_SERIALIZATION_FORMAT` plays no part). The expiry is `int(time()) + timeout` in
//!   Unix seconds, 0 meaning never; `get` returns the value while `expiry == 0 or expiry >=
//!   time()` and leaves an expired file where it is.
//! - With a threshold other than 0, cachelib counts its files in a cache entry of its own,
//!   `__wz_cache_count` (expiry 0, a pickled `int`), reset to the number of files at start-up
//!   and moved by one on each new file and each delete. Every `set` first prunes when the
//!   count is over the threshold: all expired files (`expiry != 0 and expiry < now`), then
//!   the files in order of their expiry, 0 first, until the count is at the threshold.
//! - Names ending in `.__wz_cache` (its temp files) and the count file are "management"
//!   files: never counted, read or pruned. Everything else in the directory is.
//!
//! So this layout names its lock file, temp files and user index directory with that suffix,
//! keeps the count entry up to date under the store's lock (cachelib itself updates it
//! without a lock, so with both apps writing it is as approximate as cachelib's own), and
//! prunes in cachelib's order, except that it never removes the session it is writing and
//! also removes files too short to hold a header (cachelib skips them).

use super::*;
use crate::codec::{Pickle, Value};

/// The lock file: a management name, so cachelib never counts or removes it.
pub(super) const LOCK_FILE: &str = ".server-session.lock.__wz_cache";
/// The user index directory, named so that cachelib skips it.
pub(super) const USERS_DIR: &str = "server-session-users.__wz_cache";
/// cachelib's `_fs_transaction_suffix`, ending our temp file names too.
pub(super) const TEMP_SUFFIX: &str = ".__wz_cache";
/// `struct.pack("I", expiry)`.
pub(super) const HEADER_LEN: usize = 4;
/// cachelib's `_fs_count_file`: the key of its file count.
const COUNT_KEY: &str = "__wz_cache_count";
/// The count's file name: `hashlib.sha256(b"__wz_cache_count").hexdigest()`.
const COUNT_NAME: &str = "79bc207ee04a581ab2348ca1f3494e64cd0ec36128735b8c6bc85ddd8fe1938c";
/// The expiry in Unix ms of a file stamped 0: it never expires.
const NEVER: u64 = u64::MAX;

/// Session file names: every hex SHA-256 name but the count's.
pub(super) fn is_entry_name(name: &str) -> bool {
    super::is_entry_name(name) && name != COUNT_NAME
}

/// Refuses the count's key, which would overwrite cachelib's count.
pub(super) fn check_key(key: &str) -> Result<()> {
    if key == COUNT_KEY {
        return Err(Error::InvalidKey(format!(
            "{COUNT_KEY:?} is cachelib's file count, not a session key"
        )));
    }
    Ok(())
}

/// The header of a file that expires at `expires`: its Unix second, rounded down as cachelib's
/// `int(time()) + timeout`, within 1 (0 would mean never) and `u32::MAX` (in 2106).
pub(super) fn header(expires: SystemTime) -> [u8; HEADER_LEN] {
    let secs = expires
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = u32::try_from(secs).unwrap_or(u32::MAX).max(1);
    stamp.to_ne_bytes()
}

/// `(expiry in Unix ms, payload length)` of a file of `file_len` bytes starting with `header`.
pub(super) fn parse_header(header: &[u8], file_len: u64) -> Option<(u64, usize)> {
    let stamp = u32::from_ne_bytes(header.try_into().ok()?);
    let len = usize::try_from(file_len.checked_sub(HEADER_LEN as u64)?).ok()?;
    Some((expires_ms(stamp), len))
}

/// The expiry in Unix ms of a file stamped `stamp`, for the store's `expires_ms > now` rule:
/// cachelib reads a file while `stamp >= now`, so it lives through the stamp's first
/// millisecond.
fn expires_ms(stamp: u32) -> u64 {
    match stamp {
        0 => NEVER,
        secs => u64::from(secs) * 1000 + 1,
    }
}

/// The count in a count file's bytes, as cachelib's `_file_count` reads it (`get() or 0`):
/// 0 when the file is too short, expired or holds no `int`.
fn count_of(bytes: &[u8], now: u64) -> i64 {
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return 0;
    };
    if expires_ms(u32::from_ne_bytes(*header)) <= now {
        return 0;
    }
    match Pickle::decode_value(payload) {
        Ok(Value::Integer(n)) => n.as_i64().unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// The order cachelib prunes live files in: by expiry, a file that never expires first.
fn prune_order(expires_ms: u64) -> u64 {
    if expires_ms == NEVER { 0 } else { expires_ms }
}

impl FileStore {
    /// At start-up with a threshold: sets the count to the number of session files, as
    /// cachelib's `__init__` does.
    pub(super) fn reset_count(&self) -> Result<()> {
        let locked = self.lock()?;
        let entries = count_entries(&self.directory, self.layout)?;
        self.write_count(&locked, i64::try_from(entries).unwrap_or(i64::MAX))
    }

    /// The count entry's value; `None` when there is no count file.
    fn read_count(&self) -> io::Result<Option<i64>> {
        match fs::read(self.path(COUNT_NAME)) {
            Ok(bytes) => Ok(Some(count_of(&bytes, now_ms()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `count` as cachelib does: expiry 0, then the pickled `int`.
    fn write_count(&self, _locked: &Locked<'_>, count: i64) -> Result<()> {
        let payload = Pickle::encode_value(&Value::from(count));
        let payload = payload.map_err(|e| Error::Encode(Box::new(e)))?;
        self.write_file(&self.directory, COUNT_NAME, &[&[0; HEADER_LEN], &payload])
    }

    /// After session files were created (`delta` > 0) or removed under the lock: moves the
    /// count by `delta` (never below 0), when there is a threshold or a count file (another
    /// app may have a threshold). A failure is logged: the session operation is done.
    pub(super) fn adjust_count(&self, locked: &mut Locked<'_>, delta: i64) {
        let adjusted = self.read_count().map_err(Error::from).and_then(|count| {
            if count.is_none() && self.threshold == 0 {
                return Ok(());
            }
            let count = count.unwrap_or(0).saturating_add(delta).max(0);
            self.write_count(locked, count)
        });
        if let Err(e) = adjusted {
            log::warn!("updating cachelib's file count failed: {e:?}");
        }
    }

    /// Before a write under the lock: prunes, when the count is over the threshold. A failure
    /// is logged: the write goes ahead, as cachelib's does.
    pub(super) fn prune_if_over(&self, locked: &mut Locked<'_>, keep: &str) {
        if self.threshold == 0 {
            return;
        }
        let threshold = i64::try_from(self.threshold).unwrap_or(i64::MAX);
        let pruned = self.read_count().map_err(Error::from).and_then(|count| {
            if count.unwrap_or(0) <= threshold {
                return Ok(());
            }
            self.prune_like_cachelib(locked, keep)
        });
        if let Err(e) = pruned {
            log::warn!("pruning the session directory failed: {e:?}");
        }
    }

    /// cachelib's `_prune`: removes every expired (or headerless) session file, then the live
    /// ones by expiry, one that never expires first, until `threshold` remain counting `keep`
    /// (the file about to be written, never removed). Writes the count that leaves, then
    /// tidies the user index as the native prune does.
    fn prune_like_cachelib(&self, locked: &mut Locked<'_>, keep: &str) -> Result<()> {
        let ranked = self.rank_entries(keep, now_ms())?;
        let (dead, mut live): (Vec<_>, Vec<_>) = ranked.into_iter().partition(|(r, _)| *r == 0);
        for (_, name) in &dead {
            remove_file(&self.path(name))?;
        }
        live.sort_unstable_by(|(a, x), (b, y)| (prune_order(*a), x).cmp(&(prune_order(*b), y)));
        let kept = usize::from(self.path(keep).is_file());
        let excess = (live.len() + kept).saturating_sub(self.threshold);
        for (_, name) in live.iter().take(excess) {
            remove_file(&self.path(name))?;
        }
        let count = live.len() + kept - excess;
        self.write_count(locked, i64::try_from(count).unwrap_or(i64::MAX))?;
        self.prune_users(locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_file_is_named_like_cachelibs() {
        assert_eq!(file_name(COUNT_KEY), COUNT_NAME);
        assert!(!is_entry_name(COUNT_NAME) && super::super::is_entry_name(COUNT_NAME));
        assert!(check_key(COUNT_KEY).is_err() && check_key("session:x").is_ok());
    }

    #[test]
    fn counts_read_like_cachelibs_file_count() {
        let never = [0u8; 4];
        let with = |header: [u8; 4], pickle: &[u8]| [&header[..], pickle].concat();
        // pickle.dumps(n, 5) for 5, 70000 and -3 (framed), as CPython writes them.
        let cases: [(&[u8], i64); 3] = [
            (b"\x80\x05K\x05.", 5),
            (b"\x80\x05\x95\x06\0\0\0\0\0\0\0Jp\x11\x01\0.", 70_000),
            (b"\x80\x05\x95\x06\0\0\0\0\0\0\0J\xfd\xff\xff\xff.", -3),
        ];
        for (pickle, n) in cases {
            assert_eq!(count_of(&with(never, pickle), 0), n, "{pickle:?}");
        }
        assert_eq!(count_of(b"\0\0", 0), 0, "too short");
        assert_eq!(count_of(&with(never, b"\x80\x05N."), 0), 0, "None");
        let expired = with(1u32.to_ne_bytes(), b"\x80\x05K\x05.");
        assert_eq!(count_of(&expired, 5_000), 0, "expired");
        let ours = Pickle::encode_value(&Value::from(42)).unwrap();
        assert_eq!(count_of(&with(never, &ours), 0), 42, "what we write");
    }

    #[test]
    fn stamps_are_whole_seconds_never_zero() {
        let at = |secs: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms);
        assert_eq!(
            header(at(1_700_000_000, 999)),
            1_700_000_000u32.to_ne_bytes()
        );
        assert_eq!(header(UNIX_EPOCH), 1u32.to_ne_bytes(), "0 would be never");
        assert_eq!(header(at(1 << 40, 0)), u32::MAX.to_ne_bytes());
        let (expires, len) = parse_header(&1_700_000_000u32.to_ne_bytes(), 10).unwrap();
        assert_eq!(len, 6);
        assert!(expires > 1_700_000_000_000 && expires <= 1_700_000_000_001);
        assert_eq!(parse_header(&[0; 4], 4), Some((NEVER, 0)));
        assert_eq!(prune_order(NEVER), 0);
    }
}
