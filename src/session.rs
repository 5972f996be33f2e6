//! One request's view of a session: lazy, typed, committed once at the end.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Codec, MsgPack, SessionMap, Value};
use crate::lifetime::{self, CREATED_KEY, LIFETIME_KEY, MAX_SESSION_LIFETIME};
use crate::merge::Updates;
use crate::scratch::Scratch;
use crate::signer::Signed;
use crate::store::Store;
use crate::users::USER_UNTIL_KEY;
use crate::{Error, Result, SessionId, SessionManager};

/// The key Flask stores a session's permanence under.
pub(crate) const PERMANENT_KEY: &str = "_permanent";

/// The key Flask keeps flashed messages under: a list of `[category, message]` pairs.
pub(crate) const FLASHES_KEY: &str = "_flashes";

/// The keys that describe the session rather than hold its data: a session with nothing else
/// is empty (never stored), and `keys`, `len` and `is_empty` leave them out.
const INTERNAL_KEYS: [&str; 4] = [PERMANENT_KEY, CREATED_KEY, LIFETIME_KEY, USER_UNTIL_KEY];

fn is_internal(key: &str) -> bool {
    INTERNAL_KEYS.contains(&key)
}

/// A session opened by [`SessionManager::open`]; end the request with [`Session::commit`].
/// Dropping a session without committing it discards its changes.
///
/// Nothing is read from the store until the first method that needs the data. Keys are
/// strings; values are anything serde can (de)serialise. Three keys describe the session
/// rather than hold its data, and `keys`, `len` and `is_empty` leave them out: `_permanent`
/// (Flask's permanence flag, see [`Session::set_permanent`]), `_ss_lifetime` (see
/// [`Session::set_lifetime`]) and `_ss_created` (see
/// [`ConfigBuilder::absolute_lifetime`](crate::ConfigBuilder::absolute_lifetime)).
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
    /// The incoming id and its signature when the current key signed it (see
    /// `SessionManager::session_cookie`).
    pub(crate) signed: Option<Signed>,
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
        signed: Option<Signed>,
    ) -> Self {
        Self {
            manager,
            id,
            data: None,
            stored: false,
            modified: false,
            accessed: false,
            stale_id: None,
            signed,
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
        let data = self.data_mut()?;
        match data.get_mut(key) {
            Some(slot) => *slot = value,
            None => drop(data.insert(key.to_owned(), value)),
        }
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

    /// The keys in insertion order, without the internal ones (`_permanent`, `_ss_created`,
    /// `_ss_lifetime`, `_user_until`).
    pub fn keys(&mut self) -> Result<impl Iterator<Item = &str>> {
        Ok(self
            .data()?
            .keys()
            .map(String::as_str)
            .filter(|k| !is_internal(k)))
    }

    /// The number of keys, as [`keys`](Session::keys) lists them.
    pub fn len(&mut self) -> Result<usize> {
        Ok(self.keys()?.count())
    }

    /// Whether the session holds nothing but (perhaps) `_permanent`, `_ss_created` and
    /// `_ss_lifetime`; such a session is never stored.
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every key except the permanence flag and the creation time (so data added
    /// after a `clear` does not restart the absolute lifetime). A stored session that ends the
    /// request empty is deleted from the store.
    pub fn clear(&mut self) -> Result<()> {
        self.data_mut()?
            .retain(|key, _| key == PERMANENT_KEY || key == CREATED_KEY);
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

    /// The idle lifetime of this session: its own (see [`set_lifetime`](Session::set_lifetime))
    /// or the configuration's [`lifetime`](crate::Config::lifetime).
    pub fn lifetime(&mut self) -> Result<Duration> {
        let config = self.manager.config();
        Ok(lifetime::idle_lifetime(config, self.data()?))
    }

    /// Gives this session its own idle lifetime from now on, instead of the configuration's
    /// ("remember me"): kept across requests (as `_ss_lifetime`, in whole seconds), it sets the
    /// store expiry at each commit and a permanent cookie's `Expires`; an absolute lifetime,
    /// when configured, still caps both. With [`set_permanent(false)`](Session::set_permanent)
    /// it makes a browser-session cookie whose session also ends soon on the server.
    ///
    /// Errors: [`Error::InvalidLifetime`] for less than one second or more than
    /// [`MAX_SESSION_LIFETIME`] (400 days); nothing changes then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// let mut session = manager.open(None);
    /// session.insert("user", "ada")?;
    /// session.set_permanent(false)?; // the cookie ends with the browser session
    /// session.set_lifetime(Duration::from_secs(15 * 60))?; // the server forgets it sooner
    /// let cookie = session.commit()?.set_cookie().unwrap().to_owned();
    /// assert!(!cookie.contains("Expires"));
    ///
    /// let mut next = manager.open(Some(cookie.split(';').next().unwrap()));
    /// assert_eq!(next.lifetime()?, Duration::from_secs(900), "kept across requests");
    /// assert!(next.set_lifetime(Duration::ZERO).is_err());
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn set_lifetime(&mut self, lifetime: Duration) -> Result<()> {
        let secs = lifetime.as_secs();
        if secs == 0 || lifetime > MAX_SESSION_LIFETIME {
            return Err(Error::InvalidLifetime(lifetime));
        }
        self.insert_value(LIFETIME_KEY, Value::from(secs))
    }

    /// Adds a flashed message for a later request, as Flask's `flash(message, category)`
    /// does: appended to the `_flashes` list as a `[category, message]` pair, so Flask's
    /// `get_flashed_messages(with_categories=True)` shows it too. Merged like
    /// [`update`](Session::update): messages flashed by overlapping requests are all kept.
    ///
    /// ```
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// let mut login = manager.open(None);
    /// login.flash("message", "Welcome back, ada")?;
    /// let cookie = login.commit()?.set_cookie().unwrap().split(';').next().unwrap().to_owned();
    ///
    /// let mut next = manager.open(Some(&cookie));
    /// let flashes = next.take_flashes()?;
    /// assert_eq!(flashes, [("message".to_owned(), "Welcome back, ada".to_owned())]);
    /// assert!(next.take_flashes()?.is_empty(), "shown once");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn flash(&mut self, category: &str, message: &str) -> Result<()> {
        let pair = Value::Array(vec![Value::from(category), Value::from(message)]);
        self.update(FLASHES_KEY, move |flashes: Option<Vec<Value>>| {
            let mut flashes = flashes.unwrap_or_default();
            flashes.push(pair.clone());
            flashes
        })?;
        Ok(())
    }

    /// Removes and returns the flashed messages, oldest first, as `(category, message)`
    /// pairs, like Flask's `get_flashed_messages(with_categories=True)`; empty when there are
    /// none. Messages flashed by a Flask app come back too. When a stored message is not a
    /// pair of strings, [`Error::ValueType`] and the messages stay.
    pub fn take_flashes(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self.take(FLASHES_KEY)?.unwrap_or_default())
    }

    /// Moves the data to a fresh id at commit and deletes the old entry: call it when the
    /// user's privileges change (log in) to defeat session fixation. The creation time moves
    /// with the data: logging in does not extend an absolute lifetime.
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
        self.data = Some(SessionMap::default());
        self.loaded = None;
        self.updates = Updates::default();
    }

    /// Saves what changed and returns the headers to send; see [`Commit`](crate::Commit).
    pub fn commit(self) -> Result<crate::Commit> {
        let manager = self.manager;
        crate::commit::commit(self).inspect_err(|e| manager.report_error(e))
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
            let data = match loaded {
                Some(mut data) => {
                    let config = self.manager.config();
                    self.modified |= lifetime::stamp_creation(config, &mut data, SystemTime::now());
                    let loaded = self.loaded.as_deref().unwrap_or_default();
                    self.modified |= self.manager.needs_upgrade(loaded);
                    data
                }
                None => {
                    self.id = None;
                    self.manager.new_map()
                }
            };
            self.data = Some(data);
        }
        Ok(self.data.get_or_insert_with(SessionMap::default))
    }

    /// Whether `key` still has the value this request loaded (absent in a new session).
    fn unchanged(&mut self, key: &str) -> Result<bool> {
        let current = self.data()?.get(key).cloned();
        Ok(self.original()?.get(key) == current.as_ref())
    }

    /// The session as this request loaded it: empty for a new one.
    fn original(&self) -> Result<SessionMap> {
        match &self.loaded {
            Some(bytes) => self.manager.decode_stored(bytes),
            None => Ok(SessionMap::default()),
        }
    }

    /// The stored session, decoded; its bytes are kept in `loaded`.
    fn load(&mut self) -> Result<Option<SessionMap>> {
        let Some(id) = &self.id else {
            return Ok(None);
        };
        let manager = self.manager;
        let key = manager.store_key(id);
        let found = manager
            .store()
            .load(&key)
            .inspect_err(|e| manager.report_error(e))?;
        let data = manager.read_found(&key, found.as_deref())?;
        if data.is_some() {
            self.loaded = found;
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

pub(crate) fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let mut bytes = Scratch::take(); // reused: inserting a number allocates nothing
    rmp_serde::encode::write_named(bytes.buffer(), value)
        .map_err(|e| Error::Encode(Box::new(e)))?;
    rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| Error::Encode(Box::new(e)))
}
