//! The crate's one error type, and [`StoreError`], the one shape of every store failure.

use std::fmt;

/// Boxed source error of a codec, a backend client or the application.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in server-session.
///
/// Invalid input from clients (malformed or forged cookies, unknown ids) is never an error: it
/// yields a fresh session. Errors are reserved for configuration mistakes, application misuse and
/// store failures. [`kind`](Error::kind) sorts any of them without naming a backend, so an app
/// answers 503 or 500 in one `match`.
///
/// ```
/// use server_session::{Config, Error, ErrorKind};
/// let err = Config::builder().use_signer(true).build().unwrap_err();
/// assert!(matches!(err, Error::Config(_)));
/// assert_eq!(err.kind(), ErrorKind::Other);
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The configuration is invalid; the message says which setting and why.
    Config(String),
    /// The operating system's random number generator failed.
    Random(getrandom::Error),
    /// Session data could not be encoded by the codec.
    Encode(BoxError),
    /// Stored bytes could not be decoded by the codec.
    Decode(BoxError),
    /// A typed read found a value that does not convert to the requested type.
    ValueType {
        /// The session key that was read.
        key: String,
        /// Why the conversion failed.
        source: BoxError,
    },
    /// Sessions are disabled: the [`NullStore`](crate::store::NullStore) cannot store data.
    SessionsDisabled,
    /// The store reported every freshly generated id as taken: a store that never accepts a
    /// `create` (with 16+ bytes of entropy, real collisions do not happen).
    IdCollision,
    /// A store key is not acceptable to the store (too long, forbidden characters).
    InvalidKey(String),
    /// A store operation failed: see [`StoreError`] for which store, where and why.
    Store(StoreError),
    /// Other requests of the same session changed it before each of this commit's `attempts`
    /// to merge its changes in; nothing of this request was written.
    Conflict {
        /// How many times the commit merged and tried again.
        attempts: usize,
    },
    /// The encoded session is larger than the limit: the smaller of
    /// [`max_session_bytes`](crate::ConfigBuilder::max_session_bytes) and the store's own
    /// [`max_value_bytes`](crate::store::Store::max_value_bytes). Found before any store I/O:
    /// nothing was written, the stored session is as it was.
    TooLarge {
        /// The encoded session's size in bytes.
        size: usize,
        /// The limit it is over, in bytes.
        limit: usize,
    },
    /// [`Session::set_lifetime`](crate::Session::set_lifetime) was given less than one second
    /// or more than [`MAX_SESSION_LIFETIME`](crate::MAX_SESSION_LIFETIME).
    InvalidLifetime(std::time::Duration),
    /// An error of the application, passed through an adapter (see [`Error::other`]).
    Other(BoxError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, the same for every backend.
///
/// ```
/// use server_session::{Error, ErrorKind, StoreError};
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let err = Error::from(StoreError::new("redis", ErrorKind::Unavailable, refused));
/// let status = match err.kind() {
///     ErrorKind::Unavailable => 503,
///     _ => 500,
/// };
/// assert_eq!(status, 503);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The store could not be reached or did not answer in time: connection refused, a
    /// timeout, no pooled connection free. Worth a retry later (HTTP 503).
    Unavailable,
    /// The store answered but refused: authentication failed, no such database or table,
    /// permission denied, a value over its size limit. A setup problem; retrying will not help.
    Rejected,
    /// Other requests of the session kept committing while this one tried to merge its
    /// changes in (HTTP 409): retrying the request is safe.
    Conflict,
    /// Anything else: invalid configuration, undecodable data, application errors.
    Other,
}

impl ErrorKind {
    /// The kind of an I/O error: network failures and timeouts are
    /// [`Unavailable`](Self::Unavailable), permission and missing paths
    /// [`Rejected`](Self::Rejected).
    ///
    /// ```
    /// use server_session::ErrorKind;
    /// let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    /// assert_eq!(ErrorKind::of_io(&denied), ErrorKind::Rejected);
    /// let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
    /// assert_eq!(ErrorKind::of_io(&timed_out), ErrorKind::Unavailable);
    /// ```
    pub fn of_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        match error.kind() {
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::TimedOut
            | Io::WouldBlock
            | Io::UnexpectedEof
            | Io::AddrNotAvailable
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::NetworkDown
            | Io::Interrupted => Self::Unavailable,
            Io::PermissionDenied
            | Io::NotFound
            | Io::ReadOnlyFilesystem
            | Io::NotADirectory
            | Io::IsADirectory
            | Io::StorageFull
            | Io::QuotaExceeded => Self::Rejected,
            _ => Self::Other,
        }
    }
}

/// A store operation that failed: which store, what it was talking to, what kind of failure,
/// the root cause in words, and the backend's own error as the typed [`source`].
///
/// `to_string()` reads `"<store> <target>: <cause>"`, e.g. `redis 127.0.0.1:6379:
/// authentication failed` or `file store /var/lib/app/sessions: permission denied`. The target
/// never holds a password. The backend's error stays available, typed, through
/// [`downcast_ref`](Self::downcast_ref).
///
/// Third-party stores build their errors with the same constructors:
///
/// ```
/// use server_session::{ErrorKind, StoreError};
/// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let err = StoreError::new("redis", ErrorKind::Unavailable, io)
///     .with_target("127.0.0.1:6379")
///     .with_cause("connection refused");
/// assert_eq!(err.to_string(), "redis 127.0.0.1:6379: connection refused");
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
/// assert!(err.downcast_ref::<std::io::Error>().is_some());
/// ```
///
/// [`source`]: std::error::Error::source
#[derive(Debug)]
pub struct StoreError {
    store: &'static str,
    target: Option<String>,
    kind: ErrorKind,
    cause: String,
    source: Option<BoxError>,
}

impl StoreError {
    /// A failure of `store` (a short lowercase name: `redis`, `sqlite`, `file store`, ...)
    /// caused by `source`; the cause in words is `source`'s innermost message until
    /// [`with_cause`](Self::with_cause) sets a better one.
    pub fn new(store: &'static str, kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        let cause = root_cause(source.as_ref());
        Self {
            store,
            target: None,
            kind,
            cause,
            source: Some(source),
        }
    }

    /// A failure with no underlying error, only a cause in words (an unexpected reply, say).
    ///
    /// ```
    /// use server_session::{ErrorKind, StoreError};
    /// let err = StoreError::message("memcached", ErrorKind::Other, "unexpected reply \"FOO\"");
    /// assert_eq!(err.to_string(), "memcached: unexpected reply \"FOO\"");
    /// ```
    pub fn message(store: &'static str, kind: ErrorKind, cause: impl Into<String>) -> Self {
        Self {
            store,
            target: None,
            kind,
            cause: cause.into(),
            source: None,
        }
    }

    /// What the store was talking to: `host:port`, a file path, a database name. Never a URL
    /// with its password.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The root cause in words, replacing the one taken from the source error.
    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = cause.into();
        self
    }

    /// The store's short name.
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// What the store was talking to, if known.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The root cause in words.
    pub fn cause(&self) -> &str {
        &self.cause
    }

    /// The backend's own error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref()?.downcast_ref::<E>()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(target) => write!(f, "{} {target}: {}", self.store, self.cause),
            None => write!(f, "{}: {}", self.store, self.cause),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The message of the innermost error in `error`'s source chain.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}

impl Error {
    /// The kind of failure, whatever the backend: [`ErrorKind::Unavailable`] for a store that
    /// is down or silent, [`ErrorKind::Rejected`] for one that refused, [`ErrorKind::Other`]
    /// for the rest.
    ///
    /// ```
    /// use server_session::{Error, ErrorKind};
    /// assert_eq!(Error::IdCollision.kind(), ErrorKind::Other);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(e) => e.kind(),
            Error::Conflict { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Other,
        }
    }

    /// An application error, to return from a handler through an adapter.
    ///
    /// ```
    /// use server_session::{Error, ErrorKind};
    /// let err = Error::other("the user database is down");
    /// assert_eq!(err.to_string(), "the user database is down");
    /// assert_eq!(err.kind(), ErrorKind::Other);
    /// ```
    pub fn other(error: impl Into<BoxError>) -> Self {
        Error::Other(error.into())
    }

    /// The backend's own error inside a store error, if it is an `E`.
    #[cfg(any(feature = "postgres", feature = "redis", feature = "mongodb"))]
    pub(crate) fn store_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Store(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The same error with `target` recorded, when it is a store error that has none yet.
    pub(crate) fn at(self, target: impl FnOnce() -> String) -> Self {
        match self {
            Error::Store(e) if e.target.is_none() => Error::Store(e.with_target(target())),
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "invalid session configuration: {msg}"),
            Error::Random(e) => write!(f, "the system random number generator failed: {e}"),
            Error::Encode(e) => write!(f, "session data could not be encoded: {e}"),
            Error::Decode(e) => write!(f, "stored session data could not be decoded: {e}"),
            Error::ValueType { key, source } => {
                write!(
                    f,
                    "session value {key:?} does not have the requested type: {source}"
                )
            }
            Error::SessionsDisabled => {
                f.write_str("sessions are disabled (NullStore): nothing can be stored")
            }
            Error::IdCollision => f.write_str("the store refused every fresh session id"),
            Error::InvalidKey(reason) => write!(f, "invalid store key: {reason}"),
            Error::Store(e) => e.fmt(f),
            Error::Conflict { attempts } => write!(
                f,
                "the session kept changing under concurrent requests: {attempts} merges failed"
            ),
            Error::TooLarge { size, limit } => write!(
                f,
                "the session is {size} bytes encoded, over the limit of {limit} bytes: nothing was written"
            ),
            Error::InvalidLifetime(lifetime) => write!(
                f,
                "a session lifetime must be 1 second to 400 days, not {lifetime:?}"
            ),
            Error::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Random(e) => Some(e),
            Error::Encode(e) | Error::Decode(e) | Error::Other(e) => Some(e.as_ref()),
            Error::ValueType { source, .. } => Some(source.as_ref()),
            Error::Store(e) => e.source.as_deref().map(|e| e as _),
            Error::Config(_)
            | Error::SessionsDisabled
            | Error::IdCollision
            | Error::Conflict { .. }
            | Error::TooLarge { .. }
            | Error::InvalidLifetime(_)
            | Error::InvalidKey(_) => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

/// A filesystem error of the [`FileStore`](crate::store::FileStore); the store adds its
/// directory as the target.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = ErrorKind::of_io(&e);
        Error::Store(StoreError::new("file store", kind, e))
    }
}

/// No pooled connection within the checkout timeout; the store adds its name's context.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Store(StoreError::new(
            "connection pool",
            ErrorKind::Unavailable,
            e,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_name_their_root_cause() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = Error::from(io).at(|| "/srv/sessions".into());
        assert_eq!(
            err.to_string(),
            "file store /srv/sessions: permission denied"
        );
        assert_eq!(err.kind(), ErrorKind::Rejected);
        let again = err.at(|| "/elsewhere".into());
        assert!(again.to_string().contains("/srv/sessions"), "{again}");
    }

    #[test]
    fn the_cause_is_the_innermost_message() {
        let inner = std::io::Error::other("disk on fire");
        let outer = std::io::Error::other(Error::from(inner));
        let err = StoreError::new("x", ErrorKind::Other, outer);
        assert_eq!(err.cause(), "disk on fire");
    }
}
