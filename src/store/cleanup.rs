//! Sweeping as a side effect of writes: Flask-Session's `SESSION_CLEANUP_N_REQUESTS`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::{Replaced, Store, Sweep, UserIndex};
use crate::{Error, Result};

/// Wraps a [`Sweep`] store and sweeps one batch of expired entries every `every` writes.
///
/// Flask-Session's `SESSION_CLEANUP_N_REQUESTS` (it sweeps with probability 1/N per request;
/// this wrapper counts instead). Every `create`, `save`, `touch`, `load_and_touch` and `delete`
/// counts: one per committed request that changed or refreshed its session. The write that
/// completes a round of `every` then removes up to `batch` expired entries before returning;
/// a sweep error is logged, never returned, since the write itself succeeded. Reads do not
/// count. Works over any [`Sweep`] store (SQL, files, memory); for a background thread instead,
/// see [`Sweeper`](super::Sweeper).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{CleanupEvery, MemoryStore, Store};
///
/// let store = CleanupEvery::new(MemoryStore::new(), 2, 100)?;
/// let past = SystemTime::now() - Duration::from_secs(1);
/// store.create("old", b"x", past)?;
/// assert_eq!(store.inner().len(), 1);
/// store.create("new", b"y", SystemTime::now() + Duration::from_secs(60))?; // 2nd write: sweep
/// assert_eq!(store.inner().len(), 1);
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug)]
pub struct CleanupEvery<S> {
    inner: S,
    every: usize,
    batch: usize,
    writes: AtomicUsize,
}

impl<S: Sweep> CleanupEvery<S> {
    /// Sweeps up to `batch` expired entries from `store` every `every` writes.
    ///
    /// Errors: [`Error::Config`] when `every` or `batch` is 0.
    ///
    /// ```
    /// use server_session::{store::{CleanupEvery, MemoryStore}, Error};
    /// assert!(CleanupEvery::new(MemoryStore::new(), 1000, 500).is_ok());
    /// let err = CleanupEvery::new(MemoryStore::new(), 0, 500).unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn new(store: S, every: usize, batch: usize) -> Result<Self> {
        if every == 0 || batch == 0 {
            return Err(Error::Config(format!(
                "cleanup every {every} writes in batches of {batch}: both must be at least 1"
            )));
        }
        Ok(Self {
            inner: store,
            every,
            batch,
            writes: AtomicUsize::new(0),
        })
    }

    /// The wrapped store.
    ///
    /// ```
    /// use server_session::store::{CleanupEvery, MemoryStore};
    /// let store = CleanupEvery::new(MemoryStore::new(), 100, 100)?;
    /// assert!(store.inner().is_empty());
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use server_session::store::{CleanupEvery, MemoryStore, Store};
    ///
    /// let store = CleanupEvery::new(MemoryStore::new(), 100, 100)?;
    /// store.create("session:abc", b"data", SystemTime::now() + Duration::from_secs(60))?;
    /// let inner: MemoryStore = store.into_inner();
    /// assert_eq!(inner.load("session:abc")?, Some(b"data".to_vec()));
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Counts a successful write and sweeps when it completes a round.
    fn count<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok()
            && self.writes.fetch_add(1, Ordering::Relaxed) % self.every == self.every - 1
            && let Err(e) = self.inner.sweep(self.batch)
        {
            log::warn!("periodic session cleanup failed: {e}");
        }
        result
    }
}

impl<S: Sweep> Store for CleanupEvery<S> {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.load(key)
    }

    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.count(self.inner.create(key, value, expires))
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        self.count(self.inner.save(key, value, expires))
    }

    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        self.count(self.inner.replace(key, expected, value, expires))
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        self.count(self.inner.touch(key, expires))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.count(self.inner.delete(key))
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        self.count(self.inner.load_and_touch(key, expires))
    }

    fn check_key(&self, key: &str) -> Result<()> {
        self.inner.check_key(key)
    }

    fn max_value_bytes(&self) -> Option<usize> {
        self.inner.max_value_bytes()
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        self.inner.user_index()
    }
}

impl<S: Sweep + UserIndex> UserIndex for CleanupEvery<S> {
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
        self.inner.link_user(user, key, until)
    }
    fn user_keys(&self, user: &str) -> Result<Vec<String>> {
        self.inner.user_keys(user)
    }
    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
        self.inner.unlink_user(user, keys)
    }
}

impl<S: Sweep> Sweep for CleanupEvery<S> {
    fn sweep(&self, limit: usize) -> Result<usize> {
        self.inner.sweep(limit)
    }
}
