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
    /// A MongoDB operation failed: server unreachable within the timeouts, a command error, or
    /// an index that could not be created.
    #[cfg(feature = "mongodb")]
    MongoDb(mongodb::error::Error),
    /// An SQLite operation failed (after retries, for a busy or locked database).
    #[cfg(feature = "sqlite")]
    Sqlite(rusqlite::Error),
    /// A PostgreSQL operation failed (after retries, for a dropped connection).
    #[cfg(feature = "postgres")]
    Postgres(postgres::Error),
    /// No pooled connection could be had within the pool's connection timeout.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
    Pool(r2d2::Error),
    /// A Redis command failed: the server was unreachable within the connect timeout, did not
    /// answer within the read/write timeouts, or replied with an error.
    #[cfg(feature = "redis")]
    Redis(redis::RedisError),
    /// A memcached operation failed: see [`MemcachedError`](crate::store::MemcachedError).
    #[cfg(feature = "memcached")]
    Memcached(crate::store::MemcachedError),
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
            #[cfg(feature = "mongodb")]
            Error::MongoDb(_) => f.write_str("MongoDB session store operation failed"),
            #[cfg(feature = "sqlite")]
            Error::Sqlite(_) => f.write_str("SQLite session store operation failed"),
            #[cfg(feature = "postgres")]
            Error::Postgres(_) => f.write_str("PostgreSQL session store operation failed"),
            #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
            Error::Pool(_) => f.write_str("no session store connection available from the pool"),
            #[cfg(feature = "redis")]
            Error::Redis(_) => f.write_str("Redis session store operation failed"),
            #[cfg(feature = "memcached")]
            Error::Memcached(_) => f.write_str("memcached session store operation failed"),
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
            #[cfg(feature = "mongodb")]
            Error::MongoDb(e) => Some(e),
            #[cfg(feature = "sqlite")]
            Error::Sqlite(e) => Some(e),
            #[cfg(feature = "postgres")]
            Error::Postgres(e) => Some(e),
            #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
            Error::Pool(e) => Some(e),
            #[cfg(feature = "redis")]
            Error::Redis(e) => Some(e),
            #[cfg(feature = "memcached")]
            Error::Memcached(e) => Some(e),
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

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

#[cfg(feature = "postgres")]
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Pool(e)
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Redis(e)
    }
}

#[cfg(feature = "memcached")]
impl From<crate::store::MemcachedError> for Error {
    fn from(e: crate::store::MemcachedError) -> Self {
        Error::Memcached(e)
    }
}
