//! The [`Store`] contract and the stores that ship with the crate.
//!
//! A store keeps opaque bytes under string keys with an absolute expiry. The manager owns the
//! codec and the key prefix; a store never looks inside a value.

use std::time::SystemTime;

use crate::Result;

mod cleanup;
mod filesystem;
mod memory;
#[cfg(feature = "mongodb")]
mod mongodb;
mod null;
#[cfg(any(
    feature = "redis",
    feature = "memcached",
    feature = "postgres",
    feature = "mongodb"
))]
mod redact;
mod settings;
mod sweeper;

#[cfg(any(
    feature = "redis",
    feature = "memcached",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongodb"
))]
mod builder;
#[cfg(feature = "memcached")]
mod memcached;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis-cluster")]
mod redis_cluster;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

#[cfg(feature = "test-util")]
pub mod conformance;

#[cfg(feature = "mongodb")]
pub use self::mongodb::{MongoStore, MongoStoreBuilder};
pub use cleanup::CleanupEvery;
pub use filesystem::{FileLayout, FileStore, FileStoreBuilder};
pub use memory::MemoryStore;
pub use null::NullStore;
pub use settings::ConnectionSettings;
pub use sweeper::Sweeper;

#[cfg(feature = "memcached")]
pub use self::memcached::{MemcachedError, MemcachedStore, MemcachedStoreBuilder};
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder};
#[cfg(feature = "redis-cluster")]
pub use self::redis_cluster::{RedisClusterStore, RedisClusterStoreBuilder};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use self::sql::{Dialect, SqlStore, SqlStoreBuilder};
#[cfg(feature = "postgres")]
pub use self::sql::{
    Postgres, PostgresConnection, PostgresManager, PostgresStore, PostgresStoreBuilder, PostgresTls,
};
#[cfg(feature = "sqlite")]
pub use self::sql::{Sqlite, SqliteStore, SqliteStoreBuilder};

/// What a conditional write ([`Store::replace`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The entry still held the expected bytes: the new value and expiry are stored.
    Done,
    /// The entry holds other bytes (another request or app wrote it): nothing was written.
    Changed(Vec<u8>),
    /// The entry is missing or expired: nothing was written.
    Gone,
}

/// Where sessions live: bytes in, bytes out, each entry with an absolute expiry.
///
/// Every method is safe to call from many threads at once. An entry whose expiry has passed is
/// treated exactly like a missing one by every method, whether or not the store has removed it yet.
pub trait Store: Send + Sync {
    /// The stored bytes, or `None` when the key is missing or expired (never an expired value).
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Insert only if absent (or expired). `Ok(false)` when a live entry already has this key;
    /// the caller then picks a new id.
    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool>;

    /// Replace the value and expiry only if a live entry exists. `Ok(false)` when it is gone: a
    /// session destroyed or expired meanwhile is not resurrected by a late concurrent request.
    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool>;

    /// Set a new expiry without rewriting the value. `Ok(false)` when the entry is gone.
    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool>;

    /// Remove the entry; removing a missing key is `Ok`.
    fn delete(&self, key: &str) -> Result<()>;

    /// Replace the value and expiry only if the live entry still holds exactly `expected`
    /// (the bytes this request loaded); otherwise report what it holds now, or that it is gone.
    ///
    /// The manager calls this at commit for a session it loaded and changed, and merges this
    /// request's changes onto the [`Changed`](Replaced::Changed) value before trying again, so
    /// overlapping requests of one session never lose each other's updates. Every store of
    /// the crate does it atomically, in one step on the server where it can. The default, for
    /// stores written elsewhere, loads, compares and then saves: not atomic, so a write that
    /// lands between its load and its save is still lost.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use server_session::store::{MemoryStore, Replaced, Store};
    ///
    /// let store = MemoryStore::new();
    /// let expires = SystemTime::now() + Duration::from_secs(60);
    /// store.create("k", b"v1", expires)?;
    /// assert_eq!(store.replace("k", b"v1", b"v2", expires)?, Replaced::Done);
    /// assert_eq!(store.replace("k", b"v1", b"v3", expires)?, Replaced::Changed(b"v2".to_vec()));
    /// assert_eq!(store.replace("gone", b"v1", b"v3", expires)?, Replaced::Gone);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        match self.load(key)? {
            None => Ok(Replaced::Gone),
            Some(current) if current != expected => Ok(Replaced::Changed(current)),
            Some(_) if self.save(key, value, expires)? => Ok(Replaced::Done),
            Some(_) => Ok(Replaced::Gone),
        }
    }

    /// Checks that the store accepts `key` (length, characters); [`Error::InvalidKey`] naming
    /// the rule when it does not. The manager asks once, when it is built, with the key
    /// prefix followed by the longest session id, so a prefix no request could use is refused
    /// at start-up. The default accepts every key.
    ///
    /// [`Error::InvalidKey`]: crate::Error::InvalidKey
    fn check_key(&self, key: &str) -> Result<()> {
        let _ = key;
        Ok(())
    }

    /// The largest value the store can hold, when it has a hard limit of its own (memcached's
    /// item size); the manager lowers its
    /// [`max_session_bytes`](crate::ConfigBuilder::max_session_bytes) to it, so a commit over
    /// it fails before any I/O. The default: no limit of its own.
    fn max_value_bytes(&self) -> Option<usize> {
        None
    }

    /// This store as a [`UserIndex`], when it is one: the commit links a session to its user
    /// through it. Default: `None`; every store that implements [`UserIndex`] returns
    /// `Some(self)`.
    ///
    /// ```
    /// use server_session::store::{MemoryStore, NullStore, Store};
    /// assert!(MemoryStore::new().user_index().is_some());
    /// assert!(NullStore.user_index().is_none());
    /// ```
    fn user_index(&self) -> Option<&dyn UserIndex> {
        None
    }

    /// Set a new expiry and return the stored bytes, or `None` when the entry is gone.
    ///
    /// The manager calls this at commit for a session the handler never read, to extend its
    /// expiry and learn whether it is permanent. The default touches, then loads; stores with a
    /// native get-and-touch override it to do both in one step.
    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        if self.touch(key, expires)? {
            self.load(key)
        } else {
            Ok(None)
        }
    }
}

/// A store that can find every session of a user, for
/// [`SessionManager::destroy_user_sessions`](crate::SessionManager::destroy_user_sessions)
/// ("log out everywhere"), through a side index it keeps next to the sessions: records of
/// *(user, session key, until)*. Flask-Session never reads the index, and what it reads is
/// unchanged.
///
/// The manager names the user (`user-index:<key prefix><id>`, so apps with different prefixes on
/// one store stay apart) and double-checks every key the index returns against the session's
/// own `_user_id` before deleting it, so a record that outlived its session, or a session since
/// tied to another user, is harmless. A store must never lose a live record: a session whose
/// record is gone escapes a later log-out.
///
/// Records past their `until` are never returned, and the store removes them itself (natively,
/// in its [`Sweep`], or when the user's records are next written): the index never grows
/// without bound. Memcached cannot enumerate keys, so `MemcachedStore` does not implement
/// this trait, and `set_user` does not exist for it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{MemoryStore, UserIndex};
///
/// let store = MemoryStore::new();
/// let until = SystemTime::now() + Duration::from_secs(60);
/// store.link_user("user-index:session:ada", "session:a", until)?;
/// store.link_user("user-index:session:ada", "session:b", until)?;
/// let mut keys = store.user_keys("user-index:session:ada")?;
/// keys.sort();
/// assert_eq!(keys, ["session:a", "session:b"]);
/// store.unlink_user("user-index:session:ada", &keys[..1])?;
/// assert_eq!(store.user_keys("user-index:session:ada")?, ["session:b"]);
/// # Ok::<(), server_session::Error>(())
/// ```
pub trait UserIndex: Store {
    /// Records that the session under `key` belongs to `user` until `until`; a later call
    /// for the same `user` and `key` moves `until`.
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()>;

    /// The keys recorded for `user` whose `until` has not passed, in no particular order
    /// (sessions destroyed since, or tied to another user since, included).
    fn user_keys(&self, user: &str) -> Result<Vec<String>>;

    /// Forgets the records of `user` for `keys`; keys without a record are ignored.
    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()>;
}

/// Implements [`Store`] for a pointer to a store by forwarding every call.
macro_rules! forward_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<S: Store + ?Sized> Store for $pointer {
            fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
                (**self).load(key)
            }
            fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
                (**self).create(key, value, expires)
            }
            fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
                (**self).save(key, value, expires)
            }
            fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
                (**self).touch(key, expires)
            }
            fn delete(&self, key: &str) -> Result<()> {
                (**self).delete(key)
            }
            fn replace(
                &self,
                key: &str,
                expected: &[u8],
                value: &[u8],
                expires: SystemTime,
            ) -> Result<Replaced> {
                (**self).replace(key, expected, value, expires)
            }
            fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
                (**self).load_and_touch(key, expires)
            }
            fn check_key(&self, key: &str) -> Result<()> {
                (**self).check_key(key)
            }
            fn max_value_bytes(&self) -> Option<usize> {
                (**self).max_value_bytes()
            }
            fn user_index(&self) -> Option<&dyn UserIndex> {
                (**self).user_index()
            }
        }
    };
}

forward_store!(
    /// A shared store is a store: one `Arc<FileStore>` can serve the manager and a [`Sweeper`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use server_session::store::{MemoryStore, Sweeper};
    /// use server_session::{Config, SessionManager};
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let _sweeper = Sweeper::spawn(Arc::clone(&store), Duration::from_secs(60), 1000)?;
    /// let manager = SessionManager::new(Arc::clone(&store), Config::default())?;
    /// let mut session = manager.open(None);
    /// session.insert("user", &"ada")?;
    /// session.commit()?;
    /// assert_eq!(store.len(), 1, "the manager wrote to the shared store");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    std::sync::Arc<S>
);
forward_store!(
    /// A borrowed store is a store, for a manager that does not own its store.
    &S
);

/// Implements [`UserIndex`] for a pointer to an index by forwarding every call.
macro_rules! forward_user_index {
    ($pointer:ty) => {
        impl<S: UserIndex + ?Sized> UserIndex for $pointer {
            fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
                (**self).link_user(user, key, until)
            }
            fn user_keys(&self, user: &str) -> Result<Vec<String>> {
                (**self).user_keys(user)
            }
            fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
                (**self).unlink_user(user, keys)
            }
        }
    };
}

forward_user_index!(std::sync::Arc<S>);
forward_user_index!(&S);

impl<S: Sweep + ?Sized> Sweep for std::sync::Arc<S> {
    fn sweep(&self, limit: usize) -> Result<usize> {
        (**self).sweep(limit)
    }
}

/// Stores without native expiry remove expired entries with [`Sweep::sweep`].
pub trait Sweep: Store {
    /// Remove up to `limit` expired entries and return how many were removed.
    fn sweep(&self, limit: usize) -> Result<usize>;
}
