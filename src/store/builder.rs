//! What the builders of the networked stores (Redis, Redis Cluster, memcached) share: their
//! plain setters and the check that no timeout is zero.

#[cfg(feature = "redis")]
use std::time::Duration;

/// Builder setters that store their argument in a field and return the builder, each with the
/// documentation written above it:
///
/// ```text
/// impl FooBuilder {
///     setters! {
///         /// How long a command may wait for its reply. Default: 2 seconds.
///         read_timeout(timeout: Duration) => read_timeout;
///     }
/// }
/// ```
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $type:ty) => $($field:ident).+;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $arg: $type) -> Self {
                self.$($field).+ = $arg;
                self
            }
        )*
    };
}
pub(super) use setters;

/// The name of the first zero duration in `timeouts`, which the builders refuse.
#[cfg(feature = "redis")]
pub(super) fn zero_timeout(timeouts: &[(&'static str, Duration)]) -> Option<&'static str> {
    timeouts
        .iter()
        .find(|(_, timeout)| timeout.is_zero())
        .map(|(name, _)| *name)
}
