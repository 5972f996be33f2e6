//! Every setting of Flask-Session's configuration, validated once, immutable afterwards.

use std::time::Duration;

use crate::id::{MAX_ID_BYTES, MIN_ID_BYTES};
use crate::{Error, Result};

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level navigations (the default).
    Lax,
    /// Sent on cross-site requests too; requires `Secure`.
    None,
}

impl SameSite {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// The default [`max_session_bytes`](ConfigBuilder::max_session_bytes): 256 KiB.
pub const DEFAULT_MAX_SESSION_BYTES: usize = 256 * 1024;

/// Validated session settings; build with [`Config::builder`]. Cannot change once built.
///
/// ```
/// use std::time::Duration;
/// use server_session::{Config, SameSite};
///
/// let config = Config::builder()
///     .cookie_name("sid")
///     .cookie_secure(true)
///     .lifetime(Duration::from_secs(3600))
///     .use_signer(true)
///     .secret_key("a long random secret")
///     .build()?;
/// assert_eq!(config.cookie_name(), "sid");
/// assert_eq!(config.cookie_same_site(), Some(SameSite::Lax));
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    cookie_name: String,
    cookie_domain: Option<String>,
    cookie_path: String,
    cookie_http_only: bool,
    cookie_secure: bool,
    cookie_same_site: Option<SameSite>,
    lifetime: Duration,
    absolute_lifetime: Option<Duration>,
    permanent: bool,
    refresh_each_request: bool,
    merge_concurrent_changes: bool,
    upgrade_legacy_pickles: bool,
    max_session_bytes: usize,
    use_signer: bool,
    secret_key: Option<Vec<u8>>,
    fallback_secret_keys: Vec<Vec<u8>>,
    key_prefix: String,
    id_length: usize,
}

impl Default for Config {
    /// Flask-Session's defaults, with `SameSite=Lax` as the one safer difference.
    fn default() -> Self {
        Self {
            cookie_name: "session".into(),
            cookie_domain: None,
            cookie_path: "/".into(),
            cookie_http_only: true,
            cookie_secure: false,
            cookie_same_site: Some(SameSite::Lax),
            lifetime: Duration::from_secs(31 * 24 * 60 * 60),
            absolute_lifetime: None,
            permanent: true,
            refresh_each_request: true,
            merge_concurrent_changes: true,
            upgrade_legacy_pickles: true,
            max_session_bytes: DEFAULT_MAX_SESSION_BYTES,
            use_signer: false,
            secret_key: None,
            fallback_secret_keys: Vec::new(),
            key_prefix: "session:".into(),
            id_length: 32,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cookie_name", &self.cookie_name)
            .field("cookie_domain", &self.cookie_domain)
            .field("cookie_path", &self.cookie_path)
            .field("cookie_http_only", &self.cookie_http_only)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_same_site", &self.cookie_same_site)
            .field("lifetime", &self.lifetime)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("permanent", &self.permanent)
            .field("refresh_each_request", &self.refresh_each_request)
            .field("merge_concurrent_changes", &self.merge_concurrent_changes)
            .field("upgrade_legacy_pickles", &self.upgrade_legacy_pickles)
            .field("max_session_bytes", &self.max_session_bytes)
            .field("use_signer", &self.use_signer)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("fallback_secret_keys", &self.fallback_secret_keys.len())
            .field("key_prefix", &self.key_prefix)
            .field("id_length", &self.id_length)
            .finish()
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
        }
    }

    /// `SESSION_COOKIE_NAME`.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }
    /// `SESSION_COOKIE_DOMAIN`.
    pub fn cookie_domain(&self) -> Option<&str> {
        self.cookie_domain.as_deref()
    }
    /// `SESSION_COOKIE_PATH`.
    pub fn cookie_path(&self) -> &str {
        &self.cookie_path
    }
    /// `SESSION_COOKIE_HTTPONLY`.
    pub fn cookie_http_only(&self) -> bool {
        self.cookie_http_only
    }
    /// `SESSION_COOKIE_SECURE`.
    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure
    }
    /// `SESSION_COOKIE_SAMESITE`; `None` omits the attribute.
    pub fn cookie_same_site(&self) -> Option<SameSite> {
        self.cookie_same_site
    }
    /// `PERMANENT_SESSION_LIFETIME`.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
    /// The longest a session lives from its creation, whatever its activity; `None` (the
    /// default) when off (no Flask name).
    pub fn absolute_lifetime(&self) -> Option<Duration> {
        self.absolute_lifetime
    }
    /// `SESSION_PERMANENT`.
    pub fn permanent(&self) -> bool {
        self.permanent
    }
    /// `SESSION_REFRESH_EACH_REQUEST`.
    pub fn refresh_each_request(&self) -> bool {
        self.refresh_each_request
    }
    /// Whether a commit merges its changes with those of overlapping requests (no Flask name).
    pub fn merge_concurrent_changes(&self) -> bool {
        self.merge_concurrent_changes
    }
    /// Whether a session Flask-Session 0.6 or older pickled is read and rewritten in this
    /// manager's codec (no Flask name).
    pub fn upgrade_legacy_pickles(&self) -> bool {
        self.upgrade_legacy_pickles
    }
    /// The largest encoded session a commit writes, before the store's own limit (no Flask
    /// name).
    pub fn max_session_bytes(&self) -> usize {
        self.max_session_bytes
    }
    /// `SESSION_USE_SIGNER`.
    pub fn use_signer(&self) -> bool {
        self.use_signer
    }
    pub(crate) fn secret_keys(&self) -> Option<(&[u8], &[Vec<u8>])> {
        let current = self.secret_key.as_deref()?;
        Some((current, &self.fallback_secret_keys))
    }
    /// `SESSION_KEY_PREFIX`.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
    /// `SESSION_ID_LENGTH`, in bytes of entropy.
    pub fn id_length(&self) -> usize {
        self.id_length
    }
}

/// Builds a [`Config`]; every setter names its Flask-Session key and default.
///
/// ```
/// use server_session::{Config, Error};
/// // A `__Host-` cookie must be Secure with Path=/ and no Domain.
/// let err = Config::builder().cookie_name("__Host-session").build().unwrap_err();
/// assert!(matches!(err, Error::Config(_)));
/// ```
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// The cookie settings to use behind HTTPS: the name `__Host-session`, `Secure`,
    /// `HttpOnly`, `SameSite=Lax`, `Path=/` and no `Domain`, so the browser sends the cookie
    /// only over HTTPS, only to this exact host, and never to scripts. Setters called after it
    /// override it (a Flask app sharing the sessions needs the same cookie name).
    ///
    /// ```
    /// use server_session::{Config, SameSite};
    /// let config = Config::builder().https_defaults().build()?;
    /// assert_eq!(config.cookie_name(), "__Host-session");
    /// assert!(config.cookie_secure() && config.cookie_http_only());
    /// assert_eq!((config.cookie_path(), config.cookie_domain()), ("/", None));
    /// assert_eq!(config.cookie_same_site(), Some(SameSite::Lax));
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn https_defaults(mut self) -> Self {
        let config = &mut self.config;
        config.cookie_name = "__Host-session".into();
        config.cookie_secure = true;
        config.cookie_http_only = true;
        config.cookie_same_site = Some(SameSite::Lax);
        config.cookie_path = "/".into();
        config.cookie_domain = None;
        self
    }

    /// `SESSION_COOKIE_NAME`; default `session`.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.cookie_name = name.into();
        self
    }
    /// `SESSION_COOKIE_DOMAIN`; default none (host-only cookie).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie_domain = Some(domain.into());
        self
    }
    /// `SESSION_COOKIE_PATH`; default `/`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.cookie_path = path.into();
        self
    }
    /// `SESSION_COOKIE_HTTPONLY`; default true.
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.config.cookie_http_only = http_only;
        self
    }
    /// `SESSION_COOKIE_SECURE`; default false.
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.config.cookie_secure = secure;
        self
    }
    /// `SESSION_COOKIE_SAMESITE`; default `Some(SameSite::Lax)` (Flask's is none).
    pub fn cookie_same_site(mut self, same_site: Option<SameSite>) -> Self {
        self.config.cookie_same_site = same_site;
        self
    }
    /// `PERMANENT_SESSION_LIFETIME`; default 31 days. The store expiry is always now + lifetime;
    /// permanent sessions' cookies expire then too.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.config.lifetime = lifetime;
        self
    }
    /// Default off: the longest a session lives from its creation, however active it is (no
    /// Flask name). A session older than this is read as absent and deleted; every commit
    /// caps the store expiry and a permanent cookie's `Expires` at creation + this, so the
    /// idle [`lifetime`](Self::lifetime) (and a session's own
    /// [`set_lifetime`](crate::Session::set_lifetime)) can never take it further.
    /// [`regenerate`](crate::Session::regenerate) keeps the creation time: logging in does not
    /// restart the clock. The creation time is stored in the session as `_ss_created` (Unix
    /// seconds); a session without one (made by a Flask app, or before this was on) is
    /// counted from the first request that reads it. At least one second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use server_session::{Config, SessionManager, store::MemoryStore};
    ///
    /// let twelve_hours = Duration::from_secs(12 * 3600);
    /// let config = Config::builder().absolute_lifetime(twelve_hours).build()?;
    /// assert_eq!(config.absolute_lifetime(), Some(twelve_hours));
    /// let manager = SessionManager::new(MemoryStore::new(), config)?;
    /// let mut session = manager.open(None);
    /// session.insert("user", "ada")?;
    /// assert!(session.get::<u64>("_ss_created")?.is_some(), "the creation time");
    /// assert_eq!(session.keys()?.collect::<Vec<_>>(), ["user"]);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.absolute_lifetime = Some(lifetime);
        self
    }
    /// `SESSION_PERMANENT`; default true. New sessions get `_permanent = True`; a non-permanent
    /// session's cookie has no `Expires` and ends with the browser session.
    pub fn permanent(mut self, permanent: bool) -> Self {
        self.config.permanent = permanent;
        self
    }
    /// `SESSION_REFRESH_EACH_REQUEST`; default true: every request that carries a live session
    /// extends its store expiry (a `touch`, not a rewrite) and re-sends a permanent cookie.
    pub fn refresh_each_request(mut self, refresh: bool) -> Self {
        self.config.refresh_each_request = refresh;
        self
    }
    /// Default true: a commit writes only if the stored session is still the one this request
    /// loaded; if another request of the session committed meanwhile, it re-applies this
    /// request's own changes (the keys it set or removed, its
    /// [`update`](crate::Session::update)s) onto that copy and writes again, so overlapping
    /// requests never lose each other's changes. False: the whole session is written as this
    /// request sees it, and the last commit wins (Flask-Session's behaviour), one comparison
    /// cheaper.
    ///
    /// ```
    /// let config = server_session::Config::builder().merge_concurrent_changes(false).build()?;
    /// assert!(!config.merge_concurrent_changes());
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn merge_concurrent_changes(mut self, merge: bool) -> Self {
        self.config.merge_concurrent_changes = merge;
        self
    }
    /// The largest encoded session a commit writes, in bytes; default 256 KiB
    /// ([`DEFAULT_MAX_SESSION_BYTES`]). A store with a hard limit of its own (memcached's item
    /// size) lowers it to that. A commit over it fails with [`Error::TooLarge`] before any
    /// store I/O, and the stored session stays as it was; a bigger session another app
    /// stored is still read.
    ///
    /// ```
    /// let config = server_session::Config::builder().max_session_bytes(64 * 1024).build()?;
    /// assert_eq!(config.max_session_bytes(), 65536);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn max_session_bytes(mut self, bytes: usize) -> Self {
        self.config.max_session_bytes = bytes;
        self
    }
    /// Whether a stored session that Flask-Session 0.6 or older pickled (`pickle.dumps` of the
    /// session dict, which the codec rejects) is read with the [`Pickle`](crate::codec::Pickle)
    /// codec and rewritten in the manager's codec by the request's commit, even when the
    /// request changed nothing; default true, so users of such an app stay logged in. Off, it
    /// reads as absent (a fresh session) and stays in the store for Flask-Session 0.8 to
    /// upgrade. A pickle that is not a session dict reads as absent either way and stays.
    ///
    /// ```
    /// let config = server_session::Config::builder().upgrade_legacy_pickles(false).build()?;
    /// assert!(!config.upgrade_legacy_pickles());
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn upgrade_legacy_pickles(mut self, upgrade: bool) -> Self {
        self.config.upgrade_legacy_pickles = upgrade;
        self
    }
    /// `SESSION_USE_SIGNER`; default false. Requires a secret key.
    pub fn use_signer(mut self, use_signer: bool) -> Self {
        self.config.use_signer = use_signer;
        self
    }
    /// `SECRET_KEY`; default none. Signs session ids when the signer is on.
    pub fn secret_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.config.secret_key = Some(key.into());
        self
    }
    /// `SECRET_KEY_FALLBACKS`; default none. Older keys still accepted when verifying.
    pub fn fallback_secret_keys<K: Into<Vec<u8>>>(
        mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        self.config.fallback_secret_keys = keys.into_iter().map(Into::into).collect();
        self
    }
    /// `SESSION_KEY_PREFIX`; default `session:`. Store key = prefix + id.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }
    /// `SESSION_ID_LENGTH` in bytes of entropy; default 32 (43 characters); 16 to 64.
    pub fn id_length(mut self, bytes: usize) -> Self {
        self.config.id_length = bytes;
        self
    }

    /// The validated configuration, or [`Error::Config`] naming the first invalid setting.
    pub fn build(self) -> Result<Config> {
        let c = &self.config;
        validate_cookie(c)?;
        validate_signer(c)?;
        check(
            c.lifetime > Duration::ZERO,
            "lifetime must be longer than zero",
        )?;
        check(
            c.absolute_lifetime
                .is_none_or(|a| a >= Duration::from_secs(1)),
            "absolute_lifetime must be at least one second",
        )?;
        check(
            c.max_session_bytes > 0,
            "max_session_bytes must be above zero",
        )?;
        check(
            (MIN_ID_BYTES..=MAX_ID_BYTES).contains(&c.id_length),
            "id_length must be 16 to 64 bytes of entropy",
        )?;
        check(
            c.key_prefix.len() <= 128 && !c.key_prefix.bytes().any(|b| b.is_ascii_control()),
            "key_prefix must be at most 128 bytes without control characters",
        )?;
        Ok(self.config)
    }
}

fn check(ok: bool, message: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config(message.to_owned()))
    }
}

/// RFC 6265 token characters, as allowed in a cookie name.
fn is_token(name: &str) -> bool {
    const SEPARATORS: &[u8] = b"()<>@,;:\\\"/[]?={} \t";
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !SEPARATORS.contains(&b))
}

fn is_attribute_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b';')
}

fn validate_cookie(c: &Config) -> Result<()> {
    check(
        is_token(&c.cookie_name),
        "cookie_name must be a non-empty RFC 6265 token",
    )?;
    check(
        c.cookie_path.starts_with('/') && is_attribute_value(&c.cookie_path),
        "cookie_path must start with '/' and hold no ';' or control characters",
    )?;
    if let Some(domain) = &c.cookie_domain {
        check(
            !domain.is_empty() && is_attribute_value(domain) && !domain.contains(' '),
            "cookie_domain must be a host name without spaces, ';' or control characters",
        )?;
    }
    if c.cookie_name.starts_with("__Host-") {
        check(
            c.cookie_secure && c.cookie_path == "/" && c.cookie_domain.is_none(),
            "a __Host- cookie needs cookie_secure, cookie_path \"/\" and no cookie_domain",
        )?;
    }
    if c.cookie_name.starts_with("__Secure-") {
        check(c.cookie_secure, "a __Secure- cookie needs cookie_secure")?;
    }
    if c.cookie_same_site == Some(SameSite::None) {
        check(
            c.cookie_secure,
            "SameSite=None needs cookie_secure (browsers reject it otherwise)",
        )?;
    }
    Ok(())
}

fn validate_signer(c: &Config) -> Result<()> {
    let has_key = c.secret_key.as_ref().is_some_and(|k| !k.is_empty());
    check(
        !c.use_signer || has_key,
        "use_signer needs a non-empty secret_key",
    )?;
    check(
        c.fallback_secret_keys.iter().all(|k| !k.is_empty()),
        "fallback_secret_keys must not be empty",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_flask_session() {
        let c = Config::builder().build().unwrap();
        assert_eq!(c.cookie_name(), "session");
        assert_eq!(c.cookie_domain(), None);
        assert_eq!(c.cookie_path(), "/");
        assert!(c.cookie_http_only());
        assert!(!c.cookie_secure());
        assert_eq!(c.cookie_same_site(), Some(SameSite::Lax));
        assert_eq!(c.lifetime(), Duration::from_secs(2_678_400));
        assert_eq!(c.absolute_lifetime(), None);
        assert!(c.permanent());
        assert!(c.refresh_each_request());
        assert!(!c.use_signer());
        assert_eq!(c.key_prefix(), "session:");
        assert_eq!(c.id_length(), 32);
    }

    fn rejected(builder: ConfigBuilder) -> String {
        match builder.build() {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn invalid_settings_are_config_errors() {
        let b = Config::builder;
        assert!(rejected(b().use_signer(true)).contains("secret_key"));
        assert!(rejected(b().use_signer(true).secret_key("")).contains("secret_key"));
        assert!(rejected(b().id_length(15)).contains("id_length"));
        assert!(rejected(b().id_length(65)).contains("id_length"));
        for name in ["", "a b", "a;b", "a=b", "sé", "a\u{0}"] {
            assert!(
                rejected(b().cookie_name(name)).contains("cookie_name"),
                "{name:?}"
            );
        }
        assert!(rejected(b().cookie_name("__Host-s")).contains("__Host-"));
        let host = || b().cookie_name("__Host-s").cookie_secure(true);
        assert!(rejected(host().cookie_path("/app")).contains("__Host-"));
        assert!(rejected(host().cookie_domain("example.com")).contains("__Host-"));
        assert!(host().build().is_ok());
        assert!(rejected(b().cookie_name("__Secure-s")).contains("__Secure-"));
        assert!(rejected(b().cookie_path("app")).contains("cookie_path"));
        assert!(rejected(b().cookie_path("/a;b")).contains("cookie_path"));
        assert!(rejected(b().cookie_domain("a;b")).contains("cookie_domain"));
        assert!(rejected(b().cookie_same_site(Some(SameSite::None))).contains("SameSite"));
        assert!(rejected(b().lifetime(Duration::ZERO)).contains("lifetime"));
        let subsecond = b().absolute_lifetime(Duration::from_millis(999));
        assert!(rejected(subsecond).contains("absolute_lifetime"));
        assert!(rejected(b().key_prefix("a\nb")).contains("key_prefix"));
        assert!(rejected(b().fallback_secret_keys([""])).contains("fallback"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Config::builder()
            .secret_key("hunter2-secret")
            .build()
            .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
