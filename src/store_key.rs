//! A store key (the key prefix and a session id) built without a heap allocation when short.

use std::ops::Deref;

use arrayvec::ArrayString;

/// How long a key may be and still be kept inline: the default prefix (`session:`) with the
/// longest id (86 characters) fits.
const INLINE: usize = 128;

/// The key of a session in the store: the configured prefix followed by the id.
pub(crate) enum StoreKey {
    /// A key of up to [`INLINE`] bytes.
    Inline(ArrayString<INLINE>),
    /// A longer key.
    Heap(String),
}

impl StoreKey {
    pub(crate) fn new(prefix: &str, id: &str) -> Self {
        let mut key = ArrayString::new();
        match key.try_push_str(prefix).and_then(|()| key.try_push_str(id)) {
            Ok(()) => Self::Inline(key),
            Err(_) => Self::Heap([prefix, id].concat()),
        }
    }
}

impl Deref for StoreKey {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Inline(key) => key,
            Self::Heap(key) => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_prefix_and_id_inline_or_on_the_heap() {
        let short = StoreKey::new("session:", "abc");
        assert!(matches!(short, StoreKey::Inline(_)));
        assert_eq!(&*short, "session:abc");
        let prefix = "p".repeat(100);
        let long = StoreKey::new(&prefix, &"i".repeat(43));
        assert!(matches!(long, StoreKey::Heap(_)));
        assert_eq!(&*long, format!("{prefix}{}", "i".repeat(43)));
        let exact = StoreKey::new(&"é".repeat(40), &"i".repeat(48));
        assert_eq!(exact.len(), INLINE);
        assert!(exact.starts_with('é') && exact.ends_with('i'));
    }
}
