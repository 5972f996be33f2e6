//! The pool and the pooled connection that [`RedisStore`](super::RedisStore) and
//! `RedisClusterStore` share.

use ::redis::ConnectionLike;
use r2d2::{ManageConnection, Pool};

use crate::store::ConnectionSettings;

/// A pool of `manager`'s connections, at most `max_connections`, opened in the background,
/// with no `PING` on checkout (r2d2's default, an extra round trip per store operation).
pub(crate) fn pool<M: ManageConnection>(settings: &ConnectionSettings, manager: M) -> Pool<M> {
    Pool::builder()
        .max_size(settings.max_connections)
        .connection_timeout(settings.checkout_timeout)
        .test_on_check_out(false)
        .build_unchecked(manager)
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
