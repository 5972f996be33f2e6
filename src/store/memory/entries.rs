//! The MemoryStore's entries: each one a single allocation holding its key and its value.

use std::hash::BuildHasher;
use std::time::SystemTime;

use hashbrown::HashTable;

/// A stored session: the key's bytes, then the value's, in one buffer.
#[derive(Debug)]
pub(super) struct Entry {
    key_and_value: Vec<u8>,
    key_len: usize,
    pub(super) expires: SystemTime,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.key_and_value[..self.key_len]
    }

    pub(super) fn value(&self) -> &[u8] {
        &self.key_and_value[self.key_len..]
    }

    /// Replaces the value, reusing the buffer.
    pub(super) fn set_value(&mut self, value: &[u8]) {
        self.key_and_value.truncate(self.key_len);
        self.key_and_value.extend_from_slice(value);
    }

    pub(super) fn is_live(&self, now: SystemTime) -> bool {
        self.expires > now
    }
}

/// The entries by key. Hashed with foldhash: the keys are ids this process generated (a
/// request with an unknown id only looks one up), so nobody can fill the table with colliding
/// keys.
#[derive(Debug, Default)]
pub(super) struct Entries {
    table: HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
}

impl Entries {
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let hash = self.hasher.hash_one(key.as_bytes());
        self.table.find_mut(hash, |e| e.key() == key.as_bytes())
    }

    /// Stores `value` under `key`, replacing an entry of the same key.
    pub(super) fn insert(&mut self, key: &str, value: &[u8], expires: SystemTime) {
        self.remove(key);
        let mut key_and_value = Vec::with_capacity(key.len() + value.len());
        key_and_value.extend_from_slice(key.as_bytes());
        key_and_value.extend_from_slice(value);
        let entry = Entry {
            key_and_value,
            key_len: key.len(),
            expires,
        };
        let hash = self.hasher.hash_one(key.as_bytes());
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key()));
    }

    pub(super) fn remove(&mut self, key: &str) {
        let hash = self.hasher.hash_one(key.as_bytes());
        if let Ok(entry) = self.table.find_entry(hash, |e| e.key() == key.as_bytes()) {
            entry.remove();
        }
    }

    /// Keeps the entries for which `keep` is true.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.table.retain(|entry| keep(entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_replacement() {
        let mut entries = Entries::default();
        let at = SystemTime::UNIX_EPOCH;
        entries.insert("a", b"one", at);
        entries.insert("ab", b"two", at);
        entries.insert("a", b"three", at);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries.get_mut("a").map(|e| e.value().to_vec()),
            Some(b"three".to_vec())
        );
        let entry = entries.get_mut("ab").unwrap();
        entry.set_value(b"");
        assert_eq!(entry.value(), b"");
        assert!(entries.get_mut("b").is_none());
        entries.retain(|e| e.value().is_empty());
        assert!(entries.get_mut("a").is_none() && entries.get_mut("ab").is_some());
        entries.remove("ab");
        assert_eq!(entries.len(), 0);
    }
}
