//! One request's view of a session: lazy, typed, committed once at the end.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{Codec, MsgPack, SessionMap, Value};
use crate::merge::Updates;
use crate::store::Store;
use crate::users::USER_UNTIL_KEY;
use crate::{Error, Result, SessionId, SessionManager};

/// The key Flask stores a session's permanence under.
pub(crate) const PERMANENT_KEY: &str = "_permanent";

/// A session opened by [`SessionManager::open`]; end the request with [`Session::commit`].
/// Dropping a session without committing it discards its changes.
///
/// Nothing is read from the store until the first method that needs the data. Keys are
/// strings; values are anything serde can (de)serialise. The `_permanent` key is Flask's
/// permanence flag: use [`Session::set_permanent`]; `keys`, `len` and `is_empty` leave it out.
///
/// ```
/// use server_session::{Config, SessionManager, store::MemoryStore};
///
/// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
/// let mut session = manager.open(None);
/// assert_eq!(session.get::<u32>("visits")?, None);
/// session.insert("visits", &1u32)?;
/// session.insert("user", "ada")?;
/// assert_eq!(session.keys()?.collect::<Vec<_>>(), ["visits", "user"]);
/// let cookie = session.commit()?.set_cookie().unwrap().to_owned();
/// assert!(cookie.starts_with("session="));
/// # Ok::<(), server_session::Error>(())
/// ```
pub struct Session<'m, S: Store, C: Codec = MsgPack> {
    pub(crate) manager: &'m SessionManager<S, C>,
    /// The id the data lives under: a verified incoming id until loading proves it absent.
    pub(crate) id: Option<SessionId>,
    /// `None` until loaded.
    pub(crate) data: Option<SessionMap>,
    /// Whether `id` names an entry that exists in the store (known only once loaded).
    pub(crate) stored: bool,
    pub(crate) modified: bool,
    pub(crate) accessed: bool,
    /// An id to delete at commit: the old id after `regenerate`.
    pub(crate) stale_id: Option<SessionId>,
    /// The incoming cookie value when the current key signed it (see
    /// `SessionManager::session_cookie`).
    pub(crate) signed_cookie: Option<String>,
    /// The stored bytes as loaded: the commit writes only if the entry still holds them.
    pub(crate) loaded: Option<Vec<u8>>,
    /// The [`update`](Session::update)s to re-run on a fresh copy when the commit merges.
    pub(crate) updates: Updates,
}

impl<S: Store, C: Codec> std::fmt::Debug for Session<'_, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("loaded", &self.data.is_some())
            .field("stored", &self.stored)
            .field("modified", &self.modified)
            .field("accessed", &self.accessed)
            .finish_non_exhaustive()
    }
}

impl<'m, S: Store, C: Codec> Session<'m, S, C> {
    pub(crate) fn new(
        manager: &'m SessionManager<S, C>,
        id: Option<SessionId>,
        signed_cookie: Option<String>,
    ) -> Self {
        Self {
            manager,
            id,
            data: None,
            stored: false,
            modified: false,
            accessed: false,
            stale_id: None,
            signed_cookie,
            loaded: None,
            updates: Updates::default(),
        }
    }

    /// The session's id: the incoming one while it is live, `None` for a new session until
    /// the commit assigns one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_ref().map(SessionId::as_str)
    }

    /// The value under `key` converted to `T`; `None` when absent, [`Error::ValueType`] when
    /// it does not convert.
    pub fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        let Some(value) = self.data()?.get(key) else {
            return Ok(None);
        };
        rmpv::ext::from_value(value.clone())
            .map(Some)
            .map_err(|e| Error::ValueType {
                key: key.to_owned(),
                source: Box::new(e),
            })
    }

    /// The raw value under `key`, exactly as stored.
    pub fn get_value(&mut self, key: &str) -> Result<Option<&Value>> {
        Ok(self.data()?.get(key))
    }

    /// Stores `value` under `key`, keeping the key's position if it exists.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        let value = to_value(value)?;
        self.insert_value(key, value)
    }

    /// Stores a raw value under `key`.
    ///
    /// When another request of the same session committed meanwhile, this request's commit
    /// merges: the keys it set or removed take its values, every other key keeps the other
    /// request's. Two requests that both insert one key: the later commit's value wins.
    pub fn insert_value(&mut self, key: &str, value: Value) -> Result<()> {
        self.data_mut()?.insert(key.to_owned(), value);
        self.updates.forget(key);
        Ok(())
    }

    /// Replaces the value under `key` with `f(old)`, atomically with respect to the other
    /// requests of this session: when one of them committed meanwhile, the commit runs `f`
    /// again on the value it stored, so `update("visits", |n| n.unwrap_or(0) + 1)` from many
    /// parallel requests never loses an increment. `f` may therefore run more than once; a
    /// stored value that does not convert to `T` reaches it as `None`.
    ///
    /// ```
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// let mut first = manager.open(None);
    /// first.insert("visits", &1u32)?;
    /// let cookie = first.commit()?.set_cookie().unwrap().split(';').next().unwrap().to_owned();
    ///
    /// // Two overlapping requests of the same session, committed one after the other.
    /// let mut a = manager.open(Some(&cookie));
    /// let mut b = manager.open(Some(&cookie));
    /// a.update("visits", |n: Option<u32>| n.unwrap_or(0) + 1)?;
    /// b.update("visits", |n: Option<u32>| n.unwrap_or(0) + 1)?;
    /// a.commit()?;
    /// b.commit()?; // merges: re-runs its update on the 2 that `a` stored
    /// assert_eq!(manager.open(Some(&cookie)).get::<u32>("visits")?, Some(3));
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn update<T, F>(&mut self, key: &str, mut f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send + 'static,
    {
        let old = match self.get::<T>(key) {
            Err(Error::ValueType { .. }) => None,
            other => other?,
        };
        let new = f(old);
        let depends_on_stored = self.updates.touches(key) || self.unchanged(key)?;
        self.insert(key, &new)?;
        if depends_on_stored {
            self.updates.record(key, move |old: Option<&Value>| {
                let old = old.and_then(|v| rmpv::ext::from_value(v.clone()).ok());
                to_value(&f(old))
            });
        }
        Ok(new)
    }

    /// Removes `key` and returns its value converted to `T`, like [`get`](Session::get):
    /// `None` when absent. When the value does not convert, [`Error::ValueType`] and the key
    /// stays.
    ///
    /// ```
    /// use server_session::{Config, Session, SessionManager, store::MemoryStore};
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// let mut session: Session<'_, MemoryStore> = manager.open(None);
    /// session.insert("next", "/account")?;
    /// assert!(session.take::<u32>("next").is_err(), "not a number: kept");
    /// assert_eq!(session.take::<String>("next")?.as_deref(), Some("/account"));
    /// assert_eq!(session.take::<String>("next")?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        let value = self.get::<T>(key)?;
        self.remove(key)?;
        Ok(value)
    }

    /// Removes `key` and returns its raw value, if it was there.
    pub fn remove(&mut self, key: &str) -> Result<Option<Value>> {
        let removed = self.data()?.shift_remove(key);
        self.modified |= removed.is_some();
        self.updates.forget(key);
        Ok(removed)
    }

    /// Whether `key` is present.
    pub fn contains_key(&mut self, key: &str) -> Result<bool> {
        Ok(self.data()?.contains_key(key))
    }

    /// The keys in insertion order, without the internal ones (`_permanent`, `_user_until`).
    pub fn keys(&mut self) -> Result<impl Iterator<Item = &str>> {
        Ok(self
            .data()?
            .keys()
            .map(String::as_str)
            .filter(|k| !is_internal(k)))
    }

    /// The number of keys, without the internal ones.
    pub fn len(&mut self) -> Result<usize> {
        Ok(self.keys()?.count())
    }

    /// Whether the session holds nothing but (perhaps) `_permanent`; such a session is never
    /// stored.
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every key except the permanence flag. A stored session that ends the request
    /// empty is deleted from the store.
    pub fn clear(&mut self) -> Result<()> {
        self.data_mut()?.retain(|key, _| key == PERMANENT_KEY);
        self.updates = Updates::default();
        Ok(())
    }

    /// Whether the cookie outlives the browser session (Flask's `session.permanent`).
    pub fn is_permanent(&mut self) -> Result<bool> {
        Ok(is_permanent(self.data()?))
    }

    /// Makes the session permanent (`_permanent = True`) or a browser-session one.
    pub fn set_permanent(&mut self, permanent: bool) -> Result<()> {
        let data = self.data_mut()?;
        if permanent {
            data.insert(PERMANENT_KEY.to_owned(), Value::Boolean(true));
        } else {
            data.shift_remove(PERMANENT_KEY);
        }
        Ok(())
    }

    /// Moves the data to a fresh id at commit and deletes the old entry: call it when the
    /// user's privileges change (log in) to defeat session fixation.
    pub fn regenerate(&mut self) -> Result<()> {
        self.data_mut()?;
        if self.stored {
            self.stale_id = self.id.take();
            self.stored = false;
        }
        self.id = None;
        Ok(())
    }

    /// Ends the session: at commit the stored entry is deleted and the browser told to drop
    /// the cookie. Reads nothing from the store.
    pub fn destroy(&mut self) {
        self.accessed = true;
        self.modified = true;
        self.stored = self.id.is_some();
        self.data = Some(SessionMap::new());
        self.loaded = None;
        self.updates = Updates::default();
    }

    /// Saves what changed and returns the headers to send; see [`Commit`](crate::Commit).
    pub fn commit(self) -> Result<crate::Commit> {
        crate::commit::commit(self)
    }

    fn data_mut(&mut self) -> Result<&mut SessionMap> {
        self.modified = true;
        self.data()
    }

    fn data(&mut self) -> Result<&mut SessionMap> {
        self.accessed = true;
        if self.data.is_none() {
            let loaded = self.load()?;
            self.stored = loaded.is_some();
            if loaded.is_none() {
                self.id = None;
            }
            self.data = Some(loaded.unwrap_or_else(|| self.manager.new_map()));
        }
        Ok(self.data.get_or_insert_with(SessionMap::new))
    }

    /// Whether `key` still has the value this request loaded (absent in a new session).
    fn unchanged(&mut self, key: &str) -> Result<bool> {
        let current = self.data()?.get(key).cloned();
        Ok(self.original()?.get(key) == current.as_ref())
    }

    /// The session as this request loaded it: empty for a new one.
    fn original(&self) -> Result<SessionMap> {
        match &self.loaded {
            Some(bytes) => self.manager.codec().decode(bytes),
            None => Ok(SessionMap::new()),
        }
    }

    /// The stored session, decoded; its bytes are kept in `loaded`.
    fn load(&mut self) -> Result<Option<SessionMap>> {
        let Some(id) = &self.id else {
            return Ok(None);
        };
        let key = self.manager.store_key(id);
        let Some(bytes) = self.manager.store().load(&key)? else {
            return Ok(None);
        };
        let data = self.manager.decode_or_discard(&key, &bytes)?;
        if data.is_some() {
            self.loaded = Some(bytes);
        }
        Ok(data)
    }
}

pub(crate) fn is_permanent(data: &SessionMap) -> bool {
    matches!(data.get(PERMANENT_KEY), Some(Value::Boolean(true)))
}

/// Whether `data` holds anything worth storing: a key besides the internal ones.
pub(crate) fn has_content(data: &SessionMap) -> bool {
    data.keys().any(|k| !is_internal(k))
}

/// Keys the crate keeps for itself: hidden from `keys()` and `len()`, and never a reason to
/// store a session.
fn is_internal(key: &str) -> bool {
    key == PERMANENT_KEY || key == USER_UNTIL_KEY
}

pub(crate) fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| Error::Encode(Box::new(e)))?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| Error::Encode(Box::new(e)))
}
