//! Sessions tied to a user, and "log out everywhere": [`Session::set_user`] and
//! [`SessionManager::destroy_user_sessions`], over the store's [`UserIndex`].
//!
//! The user lives in the session itself, under `_user_id` (the key Flask-Login uses, so a
//! Flask app sharing the store sees the same user), and the index record of the session lasts
//! until the time stored under `_user_until`: one lifetime past the session's own expiry, renewed
//! by a commit once the session's expiry would pass it (about once a lifetime, so most requests
//! cost nothing extra). A session found past its `_user_until` (kept alive meanwhile by an app
//! that does not renew the record, such as Flask) may have lost its record: it is treated as
//! absent and deleted, so no session escapes a log-out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::{Codec, SessionMap, Value};
use crate::store::{Store, UserIndex};
use crate::{Error, Result, Session, SessionManager};

/// The key a session's user lives under.
pub(crate) const USER_KEY: &str = "_user_id";
/// The key of the Unix second the session's index record lapses at.
pub(crate) const USER_UNTIL_KEY: &str = "_user_until";
/// The longest user id accepted, in bytes.
const MAX_USER_BYTES: usize = 128;

/// An index record to write: the user's name in the index and the record's end.
#[derive(Debug)]
pub(crate) struct Link {
    user: String,
    until: SystemTime,
}

impl<S: UserIndex, C: Codec> Session<'_, S, C> {
    /// Ties the session to `user` (stored under `_user_id`), so that
    /// [`SessionManager::destroy_user_sessions`] finds it. Call [`regenerate`](Self::regenerate)
    /// with it at log-in. Only stores that implement [`UserIndex`] offer it (memcached does
    /// not: it cannot enumerate). An empty id, or one over 128 bytes, is
    /// [`Error::InvalidKey`].
    ///
    /// On a store without an index the method does not exist, at compile time:
    ///
    /// ```compile_fail
    /// use server_session::{Config, SessionManager, store::NullStore};
    /// let manager = SessionManager::new(NullStore, Config::default())?;
    /// manager.open(None).set_user("ada")?; // error: NullStore is not a UserIndex
    /// # Ok::<(), server_session::Error>(())
    /// ```
    ///
    /// ```
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// let mut session = manager.open(None);
    /// session.regenerate()?;
    /// session.set_user("ada")?;
    /// assert_eq!(session.user()?.as_deref(), Some("ada"));
    /// session.commit()?;
    /// assert_eq!(manager.destroy_user_sessions("ada")?, 1);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn set_user(&mut self, user: &str) -> Result<()> {
        if user.is_empty() || user.len() > MAX_USER_BYTES {
            return Err(Error::InvalidKey(format!(
                "a user id must be 1 to {MAX_USER_BYTES} bytes long, not {}",
                user.len()
            )));
        }
        self.insert(USER_KEY, user)?;
        self.remove(USER_UNTIL_KEY).map(drop)
    }
}

impl<S: Store, C: Codec> Session<'_, S, C> {
    /// The user the session is tied to (`_user_id`), if any.
    ///
    /// ```
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// assert_eq!(manager.open(None).user()?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn user(&mut self) -> Result<Option<String>> {
        self.get::<String>(USER_KEY)
    }
}

impl<S: UserIndex, C: Codec> SessionManager<S, C> {
    /// Destroys every live session tied to `user` (see [`Session::set_user`]) and returns how
    /// many: "log out everywhere", after a password change or a stolen device. Each session the
    /// index names is checked to still belong to `user` before it is deleted. A request of
    /// one of them that is under way when this runs cannot bring it back (its commit finds it
    /// gone).
    ///
    /// ```
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
    /// for user in ["ada", "ada", "bob"] {
    ///     let mut session = manager.open(None);
    ///     session.set_user(user)?;
    ///     session.commit()?;
    /// }
    /// assert_eq!(manager.destroy_user_sessions("ada")?, 2);
    /// assert_eq!(manager.destroy_user_sessions("ada")?, 0);
    /// assert_eq!(manager.destroy_user_sessions("bob")?, 1);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn destroy_user_sessions(&self, user: &str) -> Result<usize> {
        let name = self.user_index_name(user);
        let keys = self.store().user_keys(&name)?;
        let mut destroyed = 0;
        for key in &keys {
            let Some(bytes) = self.store().load(key)? else {
                continue;
            };
            let owned = self.codec().decode(&bytes).ok();
            if owned.is_some_and(|data| user_of(&data) == Some(user)) {
                self.store().delete(key)?;
                destroyed += 1;
            }
        }
        self.store().unlink_user(&name, &keys)?;
        Ok(destroyed)
    }
}

impl<S: Store, C: Codec> SessionManager<S, C> {
    /// The name of `user`'s records in the index: `user-index:<key prefix><user>`. It never
    /// starts with the key prefix (unless that is empty), so no cookie value makes a Flask
    /// app sharing the store read it as a session.
    fn user_index_name(&self, user: &str) -> String {
        format!("user-index:{}{user}", self.config().key_prefix())
    }

    /// When the session has a user and its index record would lapse before `expires` (or has
    /// none yet), moves `_user_until` one more lifetime (`expires - now`) past `expires` and
    /// returns the record to write. Nothing when the store keeps no index.
    pub(crate) fn renew_link(
        &self,
        data: &mut SessionMap,
        now: SystemTime,
        expires: SystemTime,
    ) -> Option<Link> {
        self.store().user_index()?;
        let user = user_of(data)?;
        if until_of(data).is_some_and(|until| until >= expires) {
            return None;
        }
        let lifetime = expires.duration_since(now).unwrap_or_default();
        let until = whole_second_after(expires + lifetime);
        let link = Link {
            user: self.user_index_name(user),
            until,
        };
        let secs = until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        data.insert(USER_UNTIL_KEY.to_owned(), Value::from(secs));
        Some(link)
    }

    /// Writes `link` for the session under `key`, before the session itself is written: a
    /// record without its session is harmless, a session without its record is not.
    pub(crate) fn write_link(&self, link: Option<&Link>, key: &str) -> Result<()> {
        match (link, self.store().user_index()) {
            (Some(link), Some(index)) => index.link_user(&link.user, key, link.until),
            _ => Ok(()),
        }
    }

    /// Whether `data` belongs to a user and its index record may have lapsed.
    pub(crate) fn link_lapsed(&self, data: &SessionMap) -> bool {
        let lapsed = until_of(data).is_some_and(|until| until <= SystemTime::now());
        lapsed && user_of(data).is_some() && self.store().user_index().is_some()
    }
}

fn user_of(data: &SessionMap) -> Option<&str> {
    data.get(USER_KEY).and_then(Value::as_str)
}

fn until_of(data: &SessionMap) -> Option<SystemTime> {
    let secs = data.get(USER_UNTIL_KEY)?.as_u64()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `time` rounded up to a whole second, as `_user_until` stores it.
fn whole_second_after(time: SystemTime) -> SystemTime {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    UNIX_EPOCH + Duration::from_secs(secs)
}
