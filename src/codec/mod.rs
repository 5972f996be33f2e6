//! Codecs turn the session map into stored bytes and back.

use indexmap::IndexMap;

use crate::Result;

mod json;
mod msgpack;
mod pickle;

pub use json::Json;
pub use msgpack::MsgPack;
pub use pickle::{Pickle, PickleError};

/// Any MessagePack value: nil, bool, int, float, str, bin, array, map or ext (timestamps).
pub use rmpv::Value;

/// The session's data: string keys in insertion order, each holding any [`Value`].
///
/// Make one with `SessionMap::default()`. Its keys are hashed with [`SessionHasher`].
pub type SessionMap = IndexMap<String, Value, SessionHasher>;

/// The hasher of [`SessionMap`]: foldhash, seeded at random per map, several times faster
/// than the standard library's SipHash on short keys such as `_permanent` (a session map
/// is looked up a dozen times a request).
pub type SessionHasher = foldhash::fast::RandomState;

/// Serialises a [`SessionMap`] for the store.
pub trait Codec: Send + Sync {
    /// The bytes to store for `map`.
    fn encode(&self, map: &SessionMap) -> Result<Vec<u8>>;
    /// The bytes to store for `map`, written into `out` (which arrives empty), so that a
    /// buffer can be reused; the default calls [`encode`](Codec::encode).
    fn encode_into(&self, map: &SessionMap, out: &mut Vec<u8>) -> Result<()> {
        *out = self.encode(map)?;
        Ok(())
    }
    /// The map stored in `bytes`; [`Error::Decode`](crate::Error::Decode) when they are not a
    /// valid payload of this codec.
    fn decode(&self, bytes: &[u8]) -> Result<SessionMap>;
}
