//! [`ConnectionSettings`]: the one set of connection settings every networked store takes.

use std::time::Duration;

use crate::{Error, Result};

/// The longest timeout a store accepts; anything longer is a mistake (a unit mix-up).
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The most connections a store accepts to open.
const MAX_CONNECTIONS: u32 = 10_000;

/// How a networked store connects, waits and pools: the same four settings, with the same
/// meaning and defaults, on the Redis, Redis Cluster, memcached, PostgreSQL and MongoDB stores
/// (and SQLite, where they apply). Pass it to the store builder's `connection` method;
/// `build()` refuses zero or absurd values with [`Error::Config`].
///
/// Together they bound every store operation: when nothing listens it fails within
/// `connect_timeout` (or `checkout_timeout` while the pool keeps retrying), and when the server
/// accepts but never answers within `io_timeout` (plus a small margin each store documents).
///
/// ```
/// use std::time::Duration;
/// use server_session::store::ConnectionSettings;
///
/// let settings = ConnectionSettings {
///     io_timeout: Duration::from_millis(500),
///     max_connections: 32,
///     ..ConnectionSettings::default()
/// };
/// assert_eq!(settings.connect_timeout, Duration::from_secs(1));
/// assert!(settings.validate("example").is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// How long opening one connection may take: TCP connect plus the handshake
    /// (authentication, database selection). Default: 1 second.
    pub connect_timeout: Duration,
    /// How long one operation may wait for the server once the request is on its way: each
    /// send and each reply. Default: 2 seconds. A connection that timed out is discarded.
    pub io_timeout: Duration,
    /// How long an operation waits for a pooled connection when all `max_connections` are busy
    /// or none can be opened. Default: 1 second.
    pub checkout_timeout: Duration,
    /// The most connections the store opens, idle or busy, in total (per server for stores
    /// that talk to several). Default: 16; size it to your server's worker threads.
    pub max_connections: u32,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(2),
            checkout_timeout: Duration::from_secs(1),
            max_connections: 16,
        }
    }
}

impl ConnectionSettings {
    /// Checks every setting: each timeout above zero and at most 10 minutes,
    /// `max_connections` from 1 to 10,000. `store` names the store in the message.
    ///
    /// ```
    /// use std::time::Duration;
    /// use server_session::{store::ConnectionSettings, Error};
    ///
    /// let zero = ConnectionSettings { io_timeout: Duration::ZERO, ..Default::default() };
    /// let err = zero.validate("RedisStore").unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// assert!(err.to_string().contains("io_timeout"), "{err}");
    /// ```
    pub fn validate(&self, store: &str) -> Result<()> {
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("checkout_timeout", self.checkout_timeout),
        ];
        for (name, timeout) in timeouts {
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err(Error::Config(format!(
                    "{store} {name} is {timeout:?}: it must be above zero and at most {MAX_TIMEOUT:?}"
                )));
            }
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(Error::Config(format!(
                "{store} max_connections is {}: it must be from 1 to {MAX_CONNECTIONS}",
                self.max_connections
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_extremes_are_not() {
        assert!(ConnectionSettings::default().validate("s").is_ok());
        let bad = [
            ConnectionSettings {
                connect_timeout: Duration::ZERO,
                ..Default::default()
            },
            ConnectionSettings {
                checkout_timeout: Duration::from_secs(601),
                ..Default::default()
            },
            ConnectionSettings {
                max_connections: 0,
                ..Default::default()
            },
            ConnectionSettings {
                max_connections: 10_001,
                ..Default::default()
            },
        ];
        for settings in bad {
            let err = settings.validate("s").unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{settings:?}");
        }
    }
}
