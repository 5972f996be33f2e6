//! What the builders of the networked stores share: their plain setters, `connection` and
//! `startup_check` included (one [`ConnectionSettings`](super::ConnectionSettings) value each).

/// Builder setters that store their argument in a field and return the builder, each with the
/// documentation written above it:
///
/// ```text
/// impl FooBuilder {
///     setters! {
///         /// How many times a command is retried. Default: 1.
///         retries(retries: u32) => retries;
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
