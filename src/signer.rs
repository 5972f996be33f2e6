//! Signed session-id cookies, byte-compatible with Flask-Session 0.8 (itsdangerous).

use arrayvec::ArrayString;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::SessionId;

const SALT: &[u8] = b"flask-session";
const SHA1_LEN: usize = 20;

/// Signs and verifies session ids as Flask-Session 0.8 does with `SESSION_USE_SIGNER`.
///
/// The key is `HMAC-SHA1(secret, "flask-session")`, the cookie value is
/// `sid + "." + base64url_nopad(HMAC-SHA1(key, sid))`. The first secret signs; every secret
/// (the first and the fallbacks) verifies, so keys can be rotated without logging users out.
///
/// ```
/// use server_session::Signer;
/// let signer = Signer::new("secret");
/// assert_eq!(signer.sign("abc"), "abc.UOOlglGtLOKQM3OFkrI8bWIohNg");
/// assert_eq!(signer.unsign("abc.UOOlglGtLOKQM3OFkrI8bWIohNg"), Some("abc"));
/// assert_eq!(signer.unsign("abc.forged"), None);
/// ```
pub struct Signer {
    keys: Vec<hmac::Key>,
}

impl Signer {
    /// A signer whose one key is derived from `secret`.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self::with_fallbacks(secret, std::iter::empty::<&[u8]>())
    }

    /// A signer that signs with `secret` and also accepts signatures made with `fallbacks`.
    pub fn with_fallbacks<K: AsRef<[u8]>>(
        secret: impl AsRef<[u8]>,
        fallbacks: impl IntoIterator<Item = K>,
    ) -> Self {
        let mut keys = vec![derive_key(secret.as_ref())];
        keys.extend(fallbacks.into_iter().map(|k| derive_key(k.as_ref())));
        Self { keys }
    }

    /// `sid.signature` signed with the current key.
    pub fn sign(&self, sid: &str) -> String {
        let mut out = String::with_capacity(sid.len() + 28);
        self.sign_into(sid, &mut out);
        out
    }

    /// Appends `sid.signature`, signed with the current key, to `out`.
    pub(crate) fn sign_into(&self, sid: &str, out: &mut String) {
        let tag = hmac::sign(&self.keys[0], sid.as_bytes());
        out.push_str(sid);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), out);
    }

    /// The id inside `value` when its signature verifies under any key (in constant time),
    /// else `None`.
    pub fn unsign<'a>(&self, value: &'a str) -> Option<&'a str> {
        self.verify(value).map(|(sid, _)| sid)
    }

    /// The id inside `value` when its signature verifies under any key, and whether the
    /// current key made it. Such a value is exactly what [`Signer::sign`] returns for the id:
    /// the signature decodes only from its one canonical base64 form.
    pub(crate) fn verify<'a>(&self, value: &'a str) -> Option<(&'a str, bool)> {
        let (sid, signature) = split(value)?;
        self.verify_parts(sid, signature)
            .map(|by_current| (sid, by_current))
    }

    /// Whether `signature` signs `sid`, and if so whether by the current key.
    pub(crate) fn verify_parts(&self, sid: &str, signature: &str) -> Option<bool> {
        let mut tag = [0u8; SHA1_LEN + 2];
        let len = URL_SAFE_NO_PAD.decode_slice(signature, &mut tag).ok()?;
        let tag = &tag[..len];
        let key = self
            .keys
            .iter()
            .position(|key| hmac::verify(key, sid.as_bytes(), tag).is_ok())?;
        Some(key == 0)
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer {{ keys: {} (redacted) }}", self.keys.len())
    }
}

/// An incoming id and its signature by the current key, kept so that the commit can send the
/// same cookie value back without signing again (inline: no allocation).
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    id: SessionId,
    signature: ArrayString<SIGNATURE_LEN>,
}

impl Signed {
    /// `id` with its verified `signature`; `None` when the signature is not of the usual length.
    pub(crate) fn new(id: &SessionId, signature: &str) -> Option<Self> {
        let signature = ArrayString::from(signature).ok()?;
        Some(Self {
            id: id.clone(),
            signature,
        })
    }

    /// The signature, when it signs `id`.
    pub(crate) fn signature_of(&self, id: &SessionId) -> Option<&str> {
        (self.id == *id).then_some(self.signature.as_str())
    }
}

/// The length of a signature: an HMAC-SHA1 tag in base64url without padding.
const SIGNATURE_LEN: usize = (SHA1_LEN * 4).div_ceil(3);

/// A signed value split at its last `.` into the id and the signature. A signature of the
/// expected length is found without a search.
pub(crate) fn split(value: &str) -> Option<(&str, &str)> {
    let dot = value.len().checked_sub(SIGNATURE_LEN + 1);
    match dot.filter(|&dot| value.as_bytes()[dot] == b'.') {
        Some(dot) if !value[dot + 1..].contains('.') => Some((&value[..dot], &value[dot + 1..])),
        _ => value.rsplit_once('.'),
    }
}

fn derive_key(secret: &[u8]) -> hmac::Key {
    let secret_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let derived = hmac::sign(&secret_key, SALT);
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, derived.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: [(&str, &str, &str); 4] = [
        ("secret", "abc", "abc.UOOlglGtLOKQM3OFkrI8bWIohNg"),
        (
            "dev-secret-key",
            "3vF4Ue0b9Vw8Yk1nq2Yk7u1G5zq0vR6B5JvX7lXxq0Q",
            "3vF4Ue0b9Vw8Yk1nq2Yk7u1G5zq0vR6B5JvX7lXxq0Q.y7IEEJkzn0HnIOGuOlbDEkFeCYY",
        ),
        (
            "another-secret-key",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.Ntlqd4W0YuoVELF4iOyFZETSTxo",
        ),
        (
            "ünïcode-secret",
            "Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb24",
            "Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb24.UsDGNcKM37KIgfwxxR3Fp0qIWvA",
        ),
    ];

    #[test]
    fn signs_exactly_like_flask_session() {
        for (secret, sid, cookie) in VECTORS {
            let signer = Signer::new(secret);
            assert_eq!(signer.sign(sid), cookie);
            assert_eq!(signer.unsign(cookie), Some(sid));
        }
    }

    #[test]
    fn rejects_forged_truncated_and_malformed_signatures() {
        let signer = Signer::new("secret");
        let good = "abc.UOOlglGtLOKQM3OFkrI8bWIohNg";
        for bad in [
            "abc.UOOlglGtLOKQM3OFkrI8bWIohNh",
            "abc.UOOlglGtLOKQM3OFkrI8bWIohN",
            "abd.UOOlglGtLOKQM3OFkrI8bWIohNg",
            "abc.",
            "abc",
            ".UOOlglGtLOKQM3OFkrI8bWIohNg",
            "abc.UOOlglGtLOKQM3OFkrI8bWIohNg==",
            "abc.!!!",
            "",
        ] {
            assert_eq!(signer.unsign(bad), None, "{bad:?}");
        }
        assert_eq!(Signer::new("other").unsign(good), None);
    }

    #[test]
    fn first_key_signs_and_fallbacks_verify() {
        let old = Signer::new("old");
        let rotated = Signer::with_fallbacks("new", ["old"]);
        let new_only = Signer::new("new");
        let old_cookie = old.sign("abc");
        assert_eq!(rotated.unsign(&old_cookie), Some("abc"));
        assert_eq!(rotated.sign("abc"), new_only.sign("abc"));
        assert_eq!(new_only.unsign(&old_cookie), None);
    }

    #[test]
    fn verify_tells_whether_the_current_key_signed() {
        let rotated = Signer::with_fallbacks("new", ["old"]);
        let current = rotated.sign("abc");
        assert_eq!(rotated.verify(&current), Some(("abc", true)));
        assert_eq!(
            rotated.verify(&Signer::new("old").sign("abc")),
            Some(("abc", false))
        );
        assert_eq!(rotated.verify("abc.UOOlglGtLOKQM3OFkrI8bWIohNg"), None);
    }

    #[test]
    fn only_the_canonical_encoding_of_a_signature_verifies() {
        // 27 base64 characters carry 162 bits for a 160-bit tag: the last character's two low
        // bits must be zero, so no second spelling of a valid cookie exists.
        let signer = Signer::new("secret");
        assert!(signer.unsign("abc.UOOlglGtLOKQM3OFkrI8bWIohNg").is_some());
        for spelling in [
            "abc.UOOlglGtLOKQM3OFkrI8bWIohNh",
            "abc.UOOlglGtLOKQM3OFkrI8bWIohNi",
        ] {
            assert_eq!(signer.unsign(spelling), None, "{spelling}");
        }
    }
}
