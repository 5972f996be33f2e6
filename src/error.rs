//! The crate's one error type.

use std::fmt;

/// Boxed source error of a codec or a backend client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in server-session.
///
/// Invalid input from clients (malformed or forged cookies, unknown ids) is never an error: it
/// yields a fresh session. Errors are reserved for configuration mistakes, application misuse and
/// store failures.
///
/// ```
/// use server_session::{Config, Error};
/// let err = Config::builder().use_signer(true).build().unwrap_err();
/// assert!(matches!(err, Error::Config(_)));
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
    /// A filesystem operation failed.
    Io(std::io::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "invalid session configuration: {msg}"),
            Error::Random(_) => f.write_str("the system random number generator failed"),
            Error::Encode(_) => f.write_str("session data could not be encoded"),
            Error::Decode(_) => f.write_str("stored session data could not be decoded"),
            Error::ValueType { key, .. } => {
                write!(f, "session value {key:?} does not have the requested type")
            }
            Error::SessionsDisabled => {
                f.write_str("sessions are disabled (NullStore): nothing can be stored")
            }
            Error::IdCollision => f.write_str("the store refused every fresh session id"),
            Error::InvalidKey(reason) => write!(f, "invalid store key: {reason}"),
            Error::Io(_) => f.write_str("session file operation failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Random(e) => Some(e),
            Error::Encode(e) | Error::Decode(e) => Some(e.as_ref()),
            Error::ValueType { source, .. } => Some(source.as_ref()),
            Error::Io(e) => Some(e),
            Error::Config(_)
            | Error::SessionsDisabled
            | Error::IdCollision
            | Error::InvalidKey(_) => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
