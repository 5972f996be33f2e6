//! The session manager: configuration, store and codec chosen once, shared by every request.

use std::time::SystemTime;

use crate::codec::{Codec, MsgPack, Pickle, SessionMap, Value};
use crate::commit_locks::CommitLocks;
use crate::events::{SessionEvent, SessionEvents, SuspiciousLog};
use crate::lifetime;
use crate::scratch::Scratch;
use crate::session::PERMANENT_KEY;
use crate::signer::Signed;
use crate::store::Store;
use crate::store_key::StoreKey;
use crate::{Config, Error, Result, Session, SessionId, Signer, cookie};

/// Opens sessions from `Cookie` headers; one per application, shared by every thread.
///
/// The store and the codec are type parameters, so every call is statically dispatched.
///
/// ```
/// use server_session::{Config, SessionManager, store::MemoryStore};
///
/// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
///
/// // First request: no cookie yet.
/// let mut session = manager.open(None);
/// session.insert("user", "ada")?;
/// let set_cookie = session.commit()?.set_cookie().unwrap().to_owned();
///
/// // Next request: the browser sends the cookie back.
/// let cookie_header = set_cookie.split(';').next().unwrap();
/// let mut session = manager.open(Some(cookie_header));
/// assert_eq!(session.get::<String>("user")?.as_deref(), Some("ada"));
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug)]
pub struct SessionManager<S: Store, C: Codec = MsgPack> {
    store: S,
    codec: C,
    config: Config,
    signer: Option<Signer>,
    commit_locks: CommitLocks,
    /// The largest encoded session a commit writes: the configuration's limit or the
    /// store's, whichever is smaller.
    max_session_bytes: usize,
    events: Hook,
    suspicious: SuspiciousLog,
}

/// The manager's [`SessionEvents`] hook, if any.
#[derive(Default)]
struct Hook(Option<Box<dyn SessionEvents>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl<S: Store> SessionManager<S, MsgPack> {
    /// A manager storing MessagePack (Flask-Session 0.8's format) in `store`.
    ///
    /// Errors: [`Error::InvalidKey`] when the store cannot hold the keys this configuration
    /// makes (the key prefix followed by the longest session id), e.g. a prefix with a space
    /// on memcached.
    pub fn new(store: S, config: Config) -> Result<Self> {
        Self::with_codec(store, MsgPack, config)
    }
}

impl<S: Store, C: Codec> SessionManager<S, C> {
    /// A manager with an explicit codec, e.g. [`Json`](crate::codec::Json).
    ///
    /// ```
    /// use server_session::{codec::Json, Config, SessionManager, store::MemoryStore};
    /// let manager = SessionManager::with_codec(MemoryStore::new(), Json, Config::default())?;
    /// assert_eq!(manager.config().cookie_name(), "session");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    ///
    /// Errors: as [`new`](SessionManager::new).
    pub fn with_codec(store: S, codec: C, config: Config) -> Result<Self> {
        store.check_key(&longest_key(&config))?;
        let signer = config
            .secret_keys()
            .filter(|_| config.use_signer())
            .map(|(current, fallbacks)| Signer::with_fallbacks(current, fallbacks));
        let store_limit = store.max_value_bytes().unwrap_or(usize::MAX);
        Ok(Self {
            max_session_bytes: config.max_session_bytes().min(store_limit),
            store,
            codec,
            config,
            signer,
            commit_locks: CommitLocks::new(),
            events: Hook::default(),
            suspicious: SuspiciousLog::default(),
        })
    }

    /// Reports every [`SessionEvent`] of this manager to `events` (default: no hook; each
    /// event then costs one branch). [`SessionMetrics`](crate::SessionMetrics) is a ready
    /// hook that counts them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use server_session::{Config, SessionEvent, SessionManager, SessionMetrics, store::MemoryStore};
    ///
    /// let metrics = Arc::new(SessionMetrics::default());
    /// let manager = SessionManager::new(MemoryStore::new(), Config::default())?
    ///     .with_events(Arc::clone(&metrics));
    /// let mut session = manager.open(Some("session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    /// assert_eq!(session.get::<u32>("n")?, None);
    /// assert_eq!(metrics.count(SessionEvent::UnknownId), 1);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn with_events(mut self, events: impl SessionEvents + 'static) -> Self {
        self.events = Hook(Some(Box::new(events)));
        self
    }

    /// Reports the store failure or merge conflict `error` is, if it is one.
    pub(crate) fn report_error(&self, error: &Error) {
        match error {
            Error::Store(_) => self.report(SessionEvent::StoreError),
            Error::Conflict { .. } => self.report(SessionEvent::Conflict),
            _ => {}
        }
    }

    /// The live session in what the store `found` under `key`: reports it loaded, or the id
    /// unknown when the store had nothing.
    pub(crate) fn read_found(&self, key: &str, found: Option<&[u8]>) -> Result<Option<SessionMap>> {
        let Some(bytes) = found else {
            self.report(SessionEvent::UnknownId);
            return Ok(None);
        };
        let data = self.decode_live(key, bytes)?;
        if data.is_some() {
            self.report(SessionEvent::Loaded);
        }
        Ok(data)
    }

    /// Reports `event` to the hook, and suspicious ones to the (rate-limited) log.
    pub(crate) fn report(&self, event: SessionEvent) {
        self.suspicious.note(event);
        if let Some(events) = &self.events.0 {
            events.on_event(event);
        }
    }

    /// Opens the session named by the request's `Cookie` header. No I/O happens here: the
    /// cookie is found, its signature verified in constant time (when signing is on) and the
    /// id validated; anything invalid yields a new, empty session.
    pub fn open(&self, cookie_header: Option<&str>) -> Session<'_, S, C> {
        let incoming = cookie_header.and_then(|header| {
            cookie::values(header, self.config.cookie_name()).find_map(|v| self.incoming(v))
        });
        match incoming {
            Some((id, signed)) => Session::new(self, Some(id), signed),
            None => Session::new(self, None, None),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The id in an incoming cookie value, and the value itself when the current key signed
    /// it: the commit sends such a value back as it came instead of signing the id again.
    fn incoming(&self, value: &str) -> Option<(SessionId, Option<Signed>)> {
        let malformed = || self.report(SessionEvent::MalformedCookie);
        let Some(signer) = &self.signer else {
            return SessionId::parse(value).map(|id| (id, None)).or_else(|| {
                malformed();
                None
            });
        };
        let Some((id, signature)) = crate::signer::split(value)
            .and_then(|(sid, signature)| Some((SessionId::parse(sid)?, signature)))
        else {
            malformed();
            return None;
        };
        let Some(by_current_key) = signer.verify_parts(id.as_str(), signature) else {
            self.report(SessionEvent::BadSignature);
            return None;
        };
        let signed = by_current_key
            .then(|| Signed::new(&id, signature))
            .flatten();
        Some((id, signed))
    }

    /// Encodes `data` for a write: [`Error::TooLarge`] when it is over the session limit.
    pub(crate) fn encode_for_write(&self, data: &SessionMap) -> Result<Scratch> {
        let mut bytes = Scratch::take();
        self.codec.encode_into(data, bytes.buffer())?;
        if bytes.len() > self.max_session_bytes {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit: self.max_session_bytes,
            });
        }
        Ok(bytes)
    }

    /// Waits for this process's turn to write the stored session under `key` (see
    /// [`CommitLocks`]).
    pub(crate) fn commit_turn(&self, key: &str) -> std::sync::MutexGuard<'_, ()> {
        self.commit_locks.turn(key)
    }

    pub(crate) fn store_key(&self, id: &SessionId) -> StoreKey {
        StoreKey::new(self.config.key_prefix(), id.as_str())
    }

    /// The data of a brand-new session: `_permanent` when sessions are permanent by default,
    /// the creation time when an absolute lifetime is configured.
    pub(crate) fn new_map(&self) -> SessionMap {
        let mut map = SessionMap::default();
        if self.config.permanent() {
            map.insert(PERMANENT_KEY.to_owned(), Value::Boolean(true));
        }
        lifetime::stamp_creation(&self.config, &mut map, SystemTime::now());
        map
    }

    /// [`decode_or_discard`](Self::decode_or_discard), and a session past its absolute
    /// lifetime is deleted and read as absent too.
    pub(crate) fn decode_live(&self, key: &str, bytes: &[u8]) -> Result<Option<SessionMap>> {
        let Some(data) = self.decode_or_discard(key, bytes)? else {
            return Ok(None);
        };
        if lifetime::expired(&self.config, &data, SystemTime::now()) {
            log::info!("a session reached its absolute lifetime: deleted, a fresh one starts");
        } else if self.link_lapsed(&data) {
            log::info!("a session past its user index record (it may be lost): deleted");
        } else {
            return Ok(Some(data));
        }
        self.store.delete(key)?;
        Ok(None)
    }

    /// Decodes a stored payload; one that does not decode is deleted and read as absent, so
    /// the request continues with a fresh session instead of failing forever.
    ///
    /// A pickle (what Flask-Session 0.6 and older stored) is read as absent but left in the
    /// store: Flask-Session 0.8 still reads pickles and rewrites them in its own format, so a
    /// Python app sharing the store can still migrate that user's session.
    pub(crate) fn decode_or_discard(&self, key: &str, bytes: &[u8]) -> Result<Option<SessionMap>> {
        let decoded = self.decode_stored(bytes);
        if let Err(Error::Decode(_)) = decoded {
            self.report(SessionEvent::Undecodable);
        }
        match decoded {
            Ok(map) => Ok(Some(map)),
            Err(Error::Decode(_)) if is_pickle(bytes) => {
                log::info!(
                    "ignoring a stored pickle (a session pickled by Flask-Session 0.6 or older \
                     that is not a session dict, or upgrade_legacy_pickles is off): a fresh \
                     session for this request, the entry is left for Flask-Session 0.8"
                );
                Ok(None)
            }
            Err(Error::Decode(err)) => {
                log::warn!("discarding a stored session that does not decode: {err}");
                if let Err(err) = self.store.delete(key) {
                    log::warn!("could not delete the undecodable session: {err}");
                }
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The `Set-Cookie` value naming `id`, with `Expires` for permanent sessions.
    /// `signed` is the incoming id the current key signed, if any: when it is `id`, its
    /// signature is what signing would produce, so it is sent as it is.
    /// The session in stored `bytes`, as the codec reads it, or, when the codec rejects them
    /// and [`Config::upgrade_legacy_pickles`] is on, as a session dict Flask-Session 0.6 or
    /// older pickled.
    pub(crate) fn decode_stored(&self, bytes: &[u8]) -> Result<SessionMap> {
        match self.codec.decode(bytes) {
            Err(Error::Decode(e)) if self.config.upgrade_legacy_pickles() && is_pickle(bytes) => {
                let map = Pickle.decode(bytes).map_err(|_| Error::Decode(e))?;
                log::info!(
                    "read a session pickled by Flask-Session 0.6 or older: this request's \
                     commit rewrites it in the session codec"
                );
                Ok(map)
            }
            decoded => decoded,
        }
    }

    /// Whether stored `bytes` that decoded are a legacy pickle the commit must rewrite in the
    /// codec (see [`decode_stored`](Self::decode_stored)).
    pub(crate) fn needs_upgrade(&self, bytes: &[u8]) -> bool {
        self.config.upgrade_legacy_pickles()
            && is_pickle(bytes)
            && self.codec.decode(bytes).is_err()
    }

    pub(crate) fn session_cookie(
        &self,
        id: &SessionId,
        signed: Option<&Signed>,
        permanent: bool,
        expires: SystemTime,
    ) -> String {
        let reusable = signed.and_then(|signed| signed.signature_of(id));
        cookie::session_cookie(&self.config, permanent.then_some(expires), |out| {
            match (&self.signer, reusable) {
                (Some(_), Some(signature)) => {
                    out.push_str(id.as_str());
                    out.push('.');
                    out.push_str(signature);
                }
                (Some(signer), None) => signer.sign_into(id.as_str(), out),
                (None, _) => out.push_str(id.as_str()),
            }
        })
    }

    pub(crate) fn deletion_cookie(&self) -> String {
        cookie::deletion_cookie(&self.config)
    }
}

/// The longest store key `config` makes: the prefix and an id of the configured length, whose
/// characters (base64url) every store accepts.
fn longest_key(config: &Config) -> String {
    let id_chars = (config.id_length() * 4).div_ceil(3);
    let mut key = String::with_capacity(config.key_prefix().len() + id_chars);
    key.push_str(config.key_prefix());
    key.extend(std::iter::repeat_n('A', id_chars));
    key
}

/// Whether `bytes` look like a Python pickle of the kind Flask-Session 0.6 and older stored
/// (`pickle.dumps(dict)`): protocol 2 to 5 starts with the PROTO opcode `0x80` and the protocol
/// number; protocols 0 and 1 start a dict with `(` (MARK) or `}` (EMPTY_DICT). Every pickle ends
/// with the STOP opcode `.`. Only asked about payloads the codec rejected.
fn is_pickle(bytes: &[u8]) -> bool {
    matches!(bytes, [0x80, 2..=5, .., b'.'] | [b'(' | b'}', .., b'.'])
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::store::MemoryStore;

    /// `pickle.dumps({"_permanent": True, "user": "legacy"})` with Python 3's default protocol
    /// (4), and the same dict with protocols 2, 1 and 0.
    const PICKLES: [&[u8]; 4] = [
        b"\x80\x04\x95#\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\n_permanent\x94\x88\x8c\x04user\x94\x8c\x06legacy\x94u.",
        b"\x80\x02}q\x00(X\n\x00\x00\x00_permanentq\x01\x88X\x04\x00\x00\x00userq\x02X\x06\x00\x00\x00legacyq\x03u.",
        b"}q\x00(X\n\x00\x00\x00_permanentq\x01I01\nX\x04\x00\x00\x00userq\x02X\x06\x00\x00\x00legacyq\x03u.",
        b"(dp0\nV_permanent\np1\nI01\nsVuser\np2\nVlegacy\np3\ns.",
    ];

    fn manager_with(key: &str, payload: &[u8]) -> SessionManager<MemoryStore> {
        manager_configured(key, payload, Config::default())
    }

    fn manager_configured(
        key: &str,
        payload: &[u8],
        config: Config,
    ) -> SessionManager<MemoryStore> {
        let manager = SessionManager::new(MemoryStore::new(), config).unwrap();
        let expires = SystemTime::now() + Duration::from_secs(60);
        assert!(manager.store().create(key, payload, expires).unwrap());
        manager
    }

    #[test]
    fn a_legacy_pickle_is_read_and_rewritten_in_the_codec_by_the_commit() {
        let id = "p".repeat(43);
        let key = format!("session:{id}");
        for pickle in PICKLES {
            for read in [true, false] {
                let manager = manager_with(&key, pickle);
                let mut session = manager.open(Some(&format!("session={id}")));
                if read {
                    let user = session.get::<String>("user").unwrap();
                    assert_eq!(user.as_deref(), Some("legacy"));
                }
                session.commit().unwrap();
                let stored = manager.store().load(&key).unwrap().expect("still stored");
                let upgraded = manager
                    .codec()
                    .decode(&stored)
                    .expect("the codec's format now");
                assert_eq!(
                    upgraded["user"],
                    Value::from("legacy"),
                    "{pickle:?}, read {read}"
                );
                assert_eq!(upgraded["_permanent"], Value::Boolean(true));
            }
        }
    }

    #[test]
    fn with_upgrades_off_a_legacy_pickle_reads_as_absent_and_stays_in_the_store() {
        let off = || {
            Config::builder()
                .upgrade_legacy_pickles(false)
                .build()
                .unwrap()
        };
        for pickle in PICKLES {
            assert!(is_pickle(pickle), "{pickle:?}");
            let manager = manager_configured("session:p", pickle, off());
            assert_eq!(
                manager.decode_or_discard("session:p", pickle).unwrap(),
                None
            );
            assert_eq!(
                manager.store().load("session:p").unwrap().as_deref(),
                Some(pickle),
                "left for Flask-Session 0.8 to read and upgrade"
            );
        }
    }

    #[test]
    fn a_pickle_that_is_no_session_dict_reads_as_absent_and_stays() {
        // pickle.dumps([1, 2]) and pickle.dumps({1: 2}, protocol=2): no dict of str keys.
        let lists: [&[u8]; 2] = [
            b"\x80\x04\x95\t\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e.",
            b"\x80\x02}q\x00K\x01K\x02s.",
        ];
        for pickle in lists {
            assert!(is_pickle(pickle), "{pickle:?}");
            let manager = manager_with("session:n", pickle);
            assert_eq!(
                manager.decode_or_discard("session:n", pickle).unwrap(),
                None
            );
            let stored = manager.store().load("session:n").unwrap();
            assert_eq!(stored.as_deref(), Some(pickle), "left in place");
        }
    }

    #[test]
    fn other_undecodable_payloads_are_still_deleted() {
        for garbage in [&b"\x80\x04garbage"[..], b"\xc1", b"\x80\x09x.", b"(", b"."] {
            assert!(!is_pickle(garbage), "{garbage:?}");
            let manager = manager_with("session:g", garbage);
            assert_eq!(
                manager.decode_or_discard("session:g", garbage).unwrap(),
                None
            );
            assert_eq!(manager.store().load("session:g").unwrap(), None);
        }
    }
}
