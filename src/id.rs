//! Session ids: random, URL-safe, validated before use.

use arrayvec::ArrayString;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, Result};

/// The fewest bytes of entropy an id may carry (the configuration refuses fewer).
pub const MIN_ID_BYTES: usize = 16;
/// The most bytes of entropy an id may carry.
pub const MAX_ID_BYTES: usize = 64;

const MIN_ID_CHARS: usize = encoded_len(MIN_ID_BYTES);
const MAX_ID_CHARS: usize = encoded_len(MAX_ID_BYTES);

const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// Which bytes base64url uses: `A-Z`, `a-z`, `0-9`, `-` and `_`.
const URL_SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// A session id: base64url without padding, like Python's `secrets.token_urlsafe`.
///
/// ```
/// use server_session::SessionId;
/// let id = SessionId::generate(32)?;
/// assert_eq!(id.as_str().len(), 43);
/// assert!(SessionId::parse(id.as_str()).is_some());
/// assert!(SessionId::parse("../../etc/passwd").is_none());
/// # Ok::<(), server_session::Error>(())
/// ```
///
/// The characters are kept inline (no heap allocation per request).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(ArrayString<MAX_ID_CHARS>);

impl SessionId {
    /// A fresh id from `entropy_bytes` bytes of the operating system's CSPRNG.
    ///
    /// `entropy_bytes` must be between [`MIN_ID_BYTES`] and [`MAX_ID_BYTES`].
    pub fn generate(entropy_bytes: usize) -> Result<Self> {
        if !(MIN_ID_BYTES..=MAX_ID_BYTES).contains(&entropy_bytes) {
            return Err(Error::Config(format!(
                "session id length must be {MIN_ID_BYTES} to {MAX_ID_BYTES} bytes, not {entropy_bytes}"
            )));
        }
        let mut buf = [0u8; MAX_ID_BYTES];
        let bytes = &mut buf[..entropy_bytes];
        getrandom::fill(bytes).map_err(Error::Random)?;
        let mut chars = [0u8; MAX_ID_CHARS];
        let len = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut chars)
            .map_err(|e| Error::Config(format!("session id encoding: {e}")))?;
        let text = std::str::from_utf8(&chars[..len]).unwrap_or_default(); // base64: ASCII
        Ok(Self(ArrayString::from(text).unwrap_or_default()))
    }

    /// The id in `candidate` if it is well formed: only `A-Z a-z 0-9 - _`, and as long as an
    /// id of 16 to 64 bytes of entropy. Anything else is `None`.
    pub fn parse(candidate: &str) -> Option<Self> {
        let bytes = candidate.as_bytes();
        let well_formed = (MIN_ID_CHARS..=MAX_ID_CHARS).contains(&bytes.len())
            // No early exit: the loop unrolls, and a valid id is read to its end anyway.
            && bytes.iter().fold(true, |ok, &b| ok & URL_SAFE[usize::from(b)]);
        well_formed
            .then(|| ArrayString::from(candidate).ok())
            .flatten()
            .map(Self)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    /// Shows only a prefix: a full id in a log line is a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({}…)", &self.as_str()[..6])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_expected_length_and_differ() {
        let a = SessionId::generate(32).unwrap();
        let b = SessionId::generate(32).unwrap();
        assert_eq!(a.as_str().len(), 43);
        assert_eq!(SessionId::generate(16).unwrap().as_str().len(), 22);
        assert_eq!(SessionId::generate(64).unwrap().as_str().len(), 86);
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn generate_refuses_lengths_out_of_bounds() {
        assert!(matches!(SessionId::generate(15), Err(Error::Config(_))));
        assert!(matches!(SessionId::generate(65), Err(Error::Config(_))));
    }

    #[test]
    fn parse_rejects_bad_alphabet_and_lengths() {
        let good = "A".repeat(43);
        assert!(SessionId::parse(&good).is_some());
        assert!(SessionId::parse(&"A".repeat(21)).is_none());
        assert!(SessionId::parse(&"A".repeat(87)).is_none());
        for bad in ["../../etc/passwd", "%00%ff", "a.b.c.d", "", " "] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        }
        let with_dot = format!("{}.", "A".repeat(42));
        assert!(SessionId::parse(&with_dot).is_none());
        let with_unicode = format!("{}é", "A".repeat(41));
        assert!(SessionId::parse(&with_unicode).is_none());
    }

    #[test]
    fn debug_does_not_print_the_whole_id() {
        let id = SessionId::generate(32).unwrap();
        let shown = format!("{id:?}");
        assert!(!shown.contains(id.as_str()));
    }
}
