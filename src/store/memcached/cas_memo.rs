//! The cas unique each key last loaded with, so that a conditional write over exactly the
//! bytes a request loaded is one `cas` instead of `gets` + `cas`: the extra round trip made a
//! modifying request ~1.45x the cost of one with merging off.
//!
//! Bounded: values over [`MAX_VALUE`] are not kept, and once the kept keys and values reach
//! [`MAX_BYTES`] the memo starts over. A missing entry only costs the `gets`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The most key and value bytes kept in all: 4 MiB.
const MAX_BYTES: usize = 4 << 20;
/// The largest value kept: 64 KiB.
const MAX_VALUE: usize = 64 << 10;

#[derive(Debug, Default)]
pub(super) struct CasMemo(Mutex<Entries>);

#[derive(Debug, Default)]
struct Entries {
    /// key → (cas unique, the value it was read with)
    map: HashMap<String, (u64, Box<[u8]>)>,
    /// The key and value bytes in `map`.
    bytes: usize,
}

impl CasMemo {
    /// Remembers that `key` held `value` with cas unique `unique`.
    pub(super) fn remember(&self, key: &str, value: &[u8], unique: u64) {
        if unique == 0 || value.len() > MAX_VALUE {
            return;
        }
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries.forget(key);
        if entries.bytes + key.len() + value.len() > MAX_BYTES {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += key.len() + value.len();
        entries.map.insert(key.to_owned(), (unique, value.into()));
    }

    /// The cas unique `key` was read with, if it was read with exactly `value`; the entry is
    /// forgotten either way (a write follows, which changes the unique).
    pub(super) fn take(&self, key: &str, value: &[u8]) -> Option<u64> {
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (unique, kept) = entries.forget(key)?;
        (*kept == *value).then_some(unique)
    }
}

impl Entries {
    fn forget(&mut self, key: &str) -> Option<(u64, Box<[u8]>)> {
        let (unique, value) = self.map.remove(key)?;
        self.bytes -= key.len() + value.len();
        Some((unique, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_the_unique_only_for_the_same_bytes_once() {
        let memo = CasMemo::default();
        memo.remember("k", b"v1", 7);
        assert_eq!(memo.take("k", b"v2"), None, "other bytes");
        assert_eq!(memo.take("k", b"v1"), None, "forgotten by the first take");
        memo.remember("k", b"v1", 8);
        assert_eq!(memo.take("k", b"v1"), Some(8));
        assert_eq!(memo.take("k", b"v1"), None);
    }

    #[test]
    fn stays_within_its_bytes() {
        let memo = CasMemo::default();
        let value = vec![0; MAX_VALUE];
        for n in 0..200 {
            memo.remember(&format!("key{n}"), &value, 1);
        }
        let entries = memo.0.lock().unwrap();
        assert!(entries.bytes <= MAX_BYTES, "{}", entries.bytes);
        let counted: usize = entries
            .map
            .iter()
            .map(|(k, (_, v))| k.len() + v.len())
            .sum();
        assert_eq!(counted, entries.bytes);
        drop(entries);
        memo.remember("big", &vec![0; MAX_VALUE + 1], 1);
        assert_eq!(
            memo.take("big", &vec![0; MAX_VALUE + 1]),
            None,
            "too big to keep"
        );
    }
}
