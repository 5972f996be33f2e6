//! The pool settings and the pooled connection that [`RedisStore`](super::RedisStore) and
//! `RedisClusterStore` share.

use std::time::Duration;

use ::redis::ConnectionLike;
use r2d2::{ManageConnection, Pool};

use crate::store::builder::zero_timeout;

/// The connection and pool settings of both Redis builders, with their defaults.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) pool_size: u32,
    pub(crate) checkout_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            pool_size: 16,
            checkout_timeout: Duration::from_secs(1),
        }
    }
}

impl PoolSettings {
    /// What is wrong with the settings, if anything: a zero timeout or pool size.
    pub(crate) fn problem(&self) -> Option<String> {
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
            ("checkout_timeout", self.checkout_timeout),
        ];
        if let Some(name) = zero_timeout(&timeouts) {
            return Some(format!("{name} must be above zero"));
        }
        (self.pool_size == 0).then(|| "pool_size must be at least 1".to_owned())
    }

    /// A pool of `manager`'s connections, opened in the background, with no `PING` on checkout
    /// (r2d2's default, an extra round trip per store operation).
    pub(crate) fn pool<M: ManageConnection>(&self, manager: M) -> Pool<M> {
        Pool::builder()
            .max_size(self.pool_size)
            .connection_timeout(self.checkout_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager)
    }
}

/// A pooled connection, and whether a failed command left it unfit for reuse.
pub(crate) struct Pooled<C> {
    pub(crate) connection: C,
    pub(crate) broken: bool,
}

impl<C: ConnectionLike> Pooled<C> {
    pub(crate) fn new(connection: C) -> Self {
        Self {
            connection,
            broken: false,
        }
    }

    /// Whether the pool must drop it: a command failed on it, or its socket is closed.
    pub(crate) fn has_broken(&self) -> bool {
        self.broken || !self.connection.is_open()
    }
}
