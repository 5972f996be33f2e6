//! The end of a request: what to write to the store and which headers to send.

use std::time::SystemTime;

use crate::codec::{Codec, SessionMap};
use crate::events::SessionEvent;
use crate::lifetime;
use crate::merge::merge;
use crate::scratch::Scratch;
use crate::session::{has_content, is_permanent};
use crate::store::{Replaced, Store};
use crate::users::Link;
use crate::{Error, Result, Session, SessionId};

/// How often a freshly generated id may collide before the commit gives up.
const CREATE_ATTEMPTS: usize = 3;

/// How often a commit merges with a copy that other requests changed again before it gives
/// up with [`Error::Conflict`].
const MERGE_ATTEMPTS: usize = 32;

/// What a committed request must send: at most one `Set-Cookie`, and `Vary: Cookie` when the
/// session was accessed.
///
/// ```
/// use server_session::{Config, SessionManager, store::MemoryStore};
/// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
///
/// let untouched = manager.open(None).commit()?;
/// assert_eq!(untouched.headers().count(), 0);
///
/// let mut session = manager.open(None);
/// session.insert("n", &1)?;
/// let commit = session.commit()?;
/// let names: Vec<_> = commit.headers().map(|(name, _)| name).collect();
/// assert_eq!(names, ["Set-Cookie", "Vary"]);
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    set_cookie: Option<String>,
    vary_cookie: bool,
}

impl Commit {
    /// The `Set-Cookie` header value to send, if any.
    pub fn set_cookie(&self) -> Option<&str> {
        self.set_cookie.as_deref()
    }

    /// Whether to send `Vary: Cookie` (the response depended on the session).
    pub fn vary_cookie(&self) -> bool {
        self.vary_cookie
    }

    /// The headers to add to the response, as (name, value) pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let set_cookie = self.set_cookie().map(|value| ("Set-Cookie", value));
        let vary = self.vary_cookie.then_some(("Vary", "Cookie"));
        set_cookie.into_iter().chain(vary)
    }
}

/// Design.md "Request flow" step 3, in order.
pub(crate) fn commit<S: Store, C: Codec>(mut session: Session<'_, S, C>) -> Result<Commit> {
    let now = SystemTime::now();
    let set_cookie = match session.data.take() {
        None => skip_failed_refresh(&session, refresh_unloaded(&session, now)),
        Some(mut data) => commit_loaded(&mut session, &mut data, now)?,
    };
    if let Some(stale) = &session.stale_id {
        let manager = session.manager;
        manager.store().delete(&manager.store_key(stale))?;
    }
    Ok(Commit {
        set_cookie,
        vary_cookie: session.accessed,
    })
}

fn commit_loaded<S: Store, C: Codec>(
    session: &mut Session<'_, S, C>,
    data: &mut SessionMap,
    now: SystemTime,
) -> Result<Option<String>> {
    let manager = session.manager;
    let expires = lifetime::expiry(manager.config(), data, now);
    let live = has_content(data) && expires > now;
    let link = live
        .then(|| manager.renew_link(data, now, expires))
        .flatten();
    session.modified |= link.is_some();
    if !has_content(data) {
        end(session)
    } else if expires <= now {
        log::info!("a session reached its absolute lifetime during a request: deleted");
        forget(session)
    } else if session.modified {
        write(session, data, expires, link.as_ref()).map(Some)
    } else {
        Ok(skip_failed_refresh(
            session,
            refresh_loaded(session, data, expires),
        ))
    }
}

/// A refresh only extends the expiry of a session this request did not change: when the
/// store fails it, the response still goes out (a later request refreshes), so an outage
/// never fails a route that does not need the session.
fn skip_failed_refresh<S: Store, C: Codec>(
    session: &Session<'_, S, C>,
    refreshed: Result<Option<String>>,
) -> Option<String> {
    refreshed.unwrap_or_else(|err| {
        session.manager.report_error(&err);
        log::warn!("session expiry not refreshed, the response goes out without it: {err}");
        None
    })
}

/// An empty session is never stored; a stored one that became empty is deleted.
fn end<S: Store, C: Codec>(session: &Session<'_, S, C>) -> Result<Option<String>> {
    if !session.modified {
        return Ok(None);
    }
    forget(session)
}

/// Deletes the stored session and tells the browser to drop a cookie it has.
fn forget<S: Store, C: Codec>(session: &Session<'_, S, C>) -> Result<Option<String>> {
    let manager = session.manager;
    if let (Some(id), true) = (&session.id, session.stored) {
        manager.store().delete(&manager.store_key(id))?;
    }
    let had_cookie = session.stored || session.stale_id.is_some();
    Ok(had_cookie.then(|| manager.deletion_cookie()))
}

fn write<S: Store, C: Codec>(
    session: &mut Session<'_, S, C>,
    data: &SessionMap,
    expires: SystemTime,
    link: Option<&Link>,
) -> Result<String> {
    let manager = session.manager;
    let bytes = manager.encode_for_write(data)?;
    let (Some(id), true) = (session.id.clone(), session.stored) else {
        let id = create(session, &bytes, expires, link)?;
        return Ok(cookie_for(session, &id, is_permanent(data), expires));
    };
    let key = manager.store_key(&id);
    manager.write_link(link, &key)?;
    let saved = match session.loaded.take() {
        Some(loaded) if manager.config().merge_concurrent_changes() => {
            save_merging(session, &key, data, Write { bytes, loaded }, expires)?
        }
        _ => match manager.store().save(&key, &bytes, expires)? {
            true => Saved::Written(is_permanent(data), expires),
            false => Saved::Gone,
        },
    };
    match saved {
        Saved::Written(permanent, expires) => Ok(cookie_for(session, &id, permanent, expires)),
        Saved::Gone => {
            log::info!("session ended by another request before this one saved it");
            Ok(manager.deletion_cookie())
        }
    }
}

/// What a save over a stored session did: wrote it (permanent or not, with this expiry), or
/// found it gone.
enum Saved {
    Written(bool, SystemTime),
    Gone,
}

/// The bytes to write, and the bytes the store must still hold for the write to happen.
struct Write {
    bytes: Scratch,
    loaded: Vec<u8>,
}

/// Writes over the entry only while it still holds what this request loaded; each time
/// another request changed it meanwhile, merges this request's changes onto that copy and
/// tries again. A session destroyed or expired meanwhile stays gone.
fn save_merging<S: Store, C: Codec>(
    session: &mut Session<'_, S, C>,
    key: &str,
    data: &SessionMap,
    mut write: Write,
    mut expires: SystemTime,
) -> Result<Saved> {
    let manager = session.manager;
    let mut permanent = is_permanent(data);
    let mut original = None;
    let _turn = manager.commit_turn(key);
    for _ in 0..MERGE_ATTEMPTS {
        let current = match manager
            .store()
            .replace(key, &write.loaded, &write.bytes, expires)?
        {
            Replaced::Done => return Ok(Saved::Written(permanent, expires)),
            Replaced::Gone => return Ok(Saved::Gone),
            Replaced::Changed(current) => current,
        };
        let Some(fresh) = manager.decode_live(key, &current)? else {
            return Ok(Saved::Gone);
        };
        if original.is_none() {
            original = Some(manager.decode_stored(&write.loaded)?);
        }
        let original = original.as_ref().unwrap_or(data);
        let merged = merge(original, data, fresh, &mut session.updates)?;
        manager.report(SessionEvent::Merged);
        if !has_content(&merged) {
            manager.store().delete(key)?;
            return Ok(Saved::Gone);
        }
        permanent = is_permanent(&merged);
        expires = lifetime::expiry(manager.config(), &merged, SystemTime::now());
        write = Write {
            bytes: manager.encode_for_write(&merged)?,
            loaded: current,
        };
    }
    Err(Error::Conflict {
        attempts: MERGE_ATTEMPTS,
    })
}

fn create<S: Store, C: Codec>(
    session: &Session<'_, S, C>,
    bytes: &[u8],
    expires: SystemTime,
    link: Option<&Link>,
) -> Result<SessionId> {
    let manager = session.manager;
    for _ in 0..CREATE_ATTEMPTS {
        let id = SessionId::generate(manager.config().id_length())?;
        let key = manager.store_key(&id);
        manager.write_link(link, &key)?;
        if manager.store().create(&key, bytes, expires)? {
            return Ok(id);
        }
    }
    Err(Error::IdCollision)
}

fn refresh_loaded<S: Store, C: Codec>(
    session: &Session<'_, S, C>,
    data: &SessionMap,
    expires: SystemTime,
) -> Result<Option<String>> {
    let manager = session.manager;
    let (Some(id), true) = (&session.id, session.stored) else {
        return Ok(None);
    };
    if !manager.config().refresh_each_request()
        || !manager.store().touch(&manager.store_key(id), expires)?
    {
        return Ok(None);
    }
    Ok(is_permanent(data).then(|| cookie_for(session, id, true, expires)))
}

/// The handler never read the session: extend its expiry and, to honour its permanence
/// without a separate read, learn `_permanent` from the same get-and-touch. A session with
/// its own lifetime (or an absolute one) gets a second touch with its own expiry.
fn refresh_unloaded<S: Store, C: Codec>(
    session: &Session<'_, S, C>,
    now: SystemTime,
) -> Result<Option<String>> {
    let manager = session.manager;
    let (Some(id), true) = (&session.id, manager.config().refresh_each_request()) else {
        return Ok(None);
    };
    let key = manager.store_key(id);
    let usual = now + manager.config().lifetime();
    let found = manager.store().load_and_touch(&key, usual)?;
    let Some(mut data) = manager.read_found(&key, found.as_deref())? else {
        return Ok(None);
    };
    let expires = lifetime::expiry(manager.config(), &data, now);
    if expires != usual && !manager.store().touch(&key, expires)? {
        return Ok(None);
    }
    let link = manager.renew_link(&mut data, now, expires);
    let loaded = found.as_deref().unwrap_or_default();
    if link.is_some() || manager.needs_upgrade(loaded) {
        rewrite(session, &key, link.as_ref(), (loaded, &data), expires)?;
    }
    Ok(is_permanent(&data).then(|| cookie_for(session, id, true, expires)))
}

/// Rewrites a session the handler never read: with its new `_user_until` after renewing its
/// index record (`link`), or in the codec after reading a legacy pickle; unless another
/// request changed it meanwhile (that one does it instead).
fn rewrite<S: Store, C: Codec>(
    session: &Session<'_, S, C>,
    key: &str,
    link: Option<&Link>,
    (loaded, data): (&[u8], &SessionMap),
    expires: SystemTime,
) -> Result<()> {
    let manager = session.manager;
    manager.write_link(link, key)?;
    let bytes = manager.encode_for_write(data)?;
    manager
        .store()
        .replace(key, loaded, &bytes, expires)
        .map(drop)
}

fn cookie_for<S: Store, C: Codec>(
    session: &Session<'_, S, C>,
    id: &SessionId,
    permanent: bool,
    expires: SystemTime,
) -> String {
    let signed = session.signed.as_ref();
    session
        .manager
        .session_cookie(id, signed, permanent, expires)
}
