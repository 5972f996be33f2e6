//! An in-process store for tests and single-process apps.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Replaced, Store, Sweep, UserIndex};
use crate::Result;
use entries::{Entries, Entry};

mod entries;

/// How many writes may pass between two automatic evictions of expired entries, at least.
const MIN_EVICTION_INTERVAL: usize = 1024;

/// Sessions in a hash map inside the process; lost when the process exits.
///
/// Expired entries are never returned, and they are evicted automatically: after a number of
/// writes at least as large as the map was at the last eviction, so the cost stays constant per
/// write and memory stays bounded by the number of live sessions.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// assert!(store.create("session:a", b"data", expires)?);
/// assert_eq!(store.load("session:a")?, Some(b"data".to_vec()));
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Entries,
    /// The [`UserIndex`]: each user's session keys with the time their record lapses.
    users: HashMap<String, HashMap<String, SystemTime>>,
    writes_since_eviction: usize,
    size_after_eviction: usize,
}

impl Inner {
    fn live_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let now = SystemTime::now();
        self.entries.get_mut(key).filter(|e| e.is_live(now))
    }

    fn count_write(&mut self) {
        self.writes_since_eviction += 1;
        if self.writes_since_eviction >= self.size_after_eviction.max(MIN_EVICTION_INTERVAL) {
            self.evict_expired(usize::MAX);
        }
    }

    fn evict_expired(&mut self, limit: usize) -> usize {
        let now = SystemTime::now();
        let mut evicted = 0;
        self.entries.retain(|entry| {
            let evict = evicted < limit && !entry.is_live(now);
            evicted += usize::from(evict);
            !evict
        });
        self.users.retain(|_, records| {
            records.retain(|_, until| *until > now);
            !records.is_empty()
        });
        self.writes_since_eviction = 0;
        self.size_after_eviction = self.entries.len();
        evicted
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries held, live or expired but not yet evicted.
    ///
    /// ```
    /// let store = server_session::store::MemoryStore::new();
    /// assert_eq!(store.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no entries at all.
    ///
    /// ```
    /// assert!(server_session::store::MemoryStore::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single HashMap call), so a poisoned lock is safe to keep using.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().live_mut(key).map(|e| e.value().to_vec()))
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let mut inner = self.lock();
        if inner.live_mut(key).is_some() {
            return Ok(false);
        }
        inner.entries.insert(key, value, expires);
        inner.count_write();
        Ok(true)
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let mut inner = self.lock();
        let Some(entry) = inner.live_mut(key) else {
            return Ok(false);
        };
        entry.set_value(value);
        entry.expires = expires;
        Ok(true)
    }

    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        let mut inner = self.lock();
        let Some(entry) = inner.live_mut(key) else {
            return Ok(Replaced::Gone);
        };
        if entry.value() != expected {
            return Ok(Replaced::Changed(entry.value().to_vec()));
        }
        entry.set_value(value);
        entry.expires = expires;
        Ok(Replaced::Done)
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        let mut inner = self.lock();
        let Some(entry) = inner.live_mut(key) else {
            return Ok(false);
        };
        entry.expires = expires;
        Ok(true)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.lock().entries.remove(key);
        Ok(())
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let mut inner = self.lock();
        Ok(inner.live_mut(key).map(|entry| {
            entry.expires = expires;
            entry.value().to_vec()
        }))
    }
}

/// Records lapse with their `until`: a user's lapsed records go when that user is next
/// linked, and everyone's with the periodic eviction of expired entries (and [`Sweep`]).
impl UserIndex for MemoryStore {
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
        let mut inner = self.lock();
        let records = inner.users.entry(user.to_owned()).or_default();
        let now = SystemTime::now();
        records.retain(|_, until| *until > now);
        records.insert(key.to_owned(), until);
        Ok(())
    }

    fn user_keys(&self, user: &str) -> Result<Vec<String>> {
        let now = SystemTime::now();
        let inner = self.lock();
        let records = inner.users.get(user).into_iter().flatten();
        let live = records.filter(|(_, until)| **until > now);
        Ok(live.map(|(key, _)| key.clone()).collect())
    }

    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
        let mut inner = self.lock();
        if let Some(records) = inner.users.get_mut(user) {
            for key in keys {
                records.remove(key);
            }
            if records.is_empty() {
                inner.users.remove(user);
            }
        }
        Ok(())
    }
}

impl Sweep for MemoryStore {
    fn sweep(&self, limit: usize) -> Result<usize> {
        Ok(self.lock().evict_expired(limit))
    }
}
