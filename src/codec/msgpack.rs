//! MessagePack codec: the storage format of Flask-Session 0.8 (msgspec's encoder on the session
//! dict).
//!
//! The payload is the bare map: string keys in insertion order (`_permanent` is an ordinary key),
//! values in their smallest encoding (integers at the narrowest width, floats as float 64, `str8`
//! for 32..=255-byte strings, `bin` for bytes, timestamps as extension type -1).
//!
//! Whatever msgspec (or this codec) writes decodes and re-encodes to the identical bytes, so a
//! session survives a read-modify-write byte for byte. Valid MessagePack from other writers is
//! accepted too and re-encoded in the smallest widths (same values and types). Duplicate top-level
//! keys, trailing bytes, a non-map top level and non-string or non-UTF-8 top-level keys are
//! rejected with [`Error::Decode`]. Arrays and maps may nest 127 deep (the session map
//! included) on both sides, as with the JSON codec, so every session that encodes also decodes.

use std::fmt;
use std::io::Write;

use rmp::encode;
use rmpv::Value;

use crate::codec::{Codec, SessionMap};
use crate::{BoxError, Error, Result};

mod decode;

/// MessagePack codec, byte-compatible with Flask-Session 0.8 (the default codec).
///
/// Every MessagePack value is kept as it is: integers of any width and sign, `f32` and `f64`,
/// strings (even invalid UTF-8 inside values), binary, arrays, maps with any key type and
/// extension values such as timestamps.
///
/// ```
/// use server_session::codec::{Codec, MsgPack, SessionMap, Value};
///
/// let mut map = SessionMap::default();
/// map.insert("_permanent".to_owned(), Value::Boolean(true));
/// map.insert("value".to_owned(), Value::from("42"));
///
/// let bytes = MsgPack.encode(&map)?;
/// assert_eq!(bytes, b"\x82\xaa_permanent\xc3\xa5value\xa242");
/// assert_eq!(MsgPack.decode(&bytes)?, map);
///
/// // Not a map at the top level: a decode error, never a panic.
/// assert!(MsgPack.decode(b"\x93\x01\x02\x03").is_err());
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgPack;

impl Codec for MsgPack {
    fn encode(&self, map: &SessionMap) -> Result<Vec<u8>> {
        // Room for a typical session (a few hundred bytes), so that encoding allocates once.
        let mut out = Vec::with_capacity(256);
        self.encode_into(map, &mut out)?;
        Ok(out)
    }

    fn encode_into(&self, map: &SessionMap, out: &mut Vec<u8>) -> Result<()> {
        write_session(out, map).map_err(Error::Encode)
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionMap> {
        Ok(decode::session_map(bytes)?)
    }
}

/// The deepest nesting of arrays and maps either codec accepts, counting the session map itself.
///
/// It is serde_json's recursion limit, so that both codecs accept the same sessions; encoding
/// enforces it too, so that every session that encodes also decodes.
pub(super) const MAX_NESTING: usize = 127;

/// What this codec itself finds wrong with a payload or a session.
#[derive(Debug)]
enum MsgPackError {
    /// The top-level value is not a map.
    NotAMap,
    /// A top-level key is not a string.
    NonStringKey,
    /// A top-level key is a string that is not valid UTF-8.
    NonUtf8Key,
    /// The same top-level key appears twice.
    DuplicateKey(String),
    /// Bytes follow the top-level map.
    TrailingBytes(usize),
    /// A string, binary, array, map or extension is longer than MessagePack allows.
    TooLong(usize),
    /// Arrays and maps are nested deeper than [`MAX_NESTING`].
    TooDeep,
    /// The payload ends inside a value.
    Truncated,
    /// The byte 0xc1, which MessagePack reserves, is where a value should start.
    Reserved,
}

impl fmt::Display for MsgPackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAMap => f.write_str("the payload is not a MessagePack map"),
            Self::NonStringKey => f.write_str("a top-level key is not a string"),
            Self::NonUtf8Key => f.write_str("a top-level key is not valid UTF-8"),
            Self::DuplicateKey(key) => write!(f, "the top-level key {key:?} appears twice"),
            Self::TrailingBytes(n) => write!(f, "{n} trailing byte(s) after the map"),
            Self::TooLong(n) => write!(f, "a length of {n} exceeds MessagePack's 2^32 - 1 limit"),
            Self::TooDeep => write!(f, "arrays and maps are nested deeper than {MAX_NESTING}"),
            Self::Truncated => f.write_str("the payload ends inside a value"),
            Self::Reserved => f.write_str("the reserved byte 0xc1 starts a value"),
        }
    }
}

impl std::error::Error for MsgPackError {}

/// For the decode path (the encode path boxes its errors into [`Error::Encode`] itself).
impl From<MsgPackError> for Error {
    fn from(e: MsgPackError) -> Self {
        Error::Decode(Box::new(e))
    }
}

/// Writes the session as a MessagePack map with string keys, in insertion order.
fn write_session<W: Write>(wr: &mut W, map: &SessionMap) -> Result<(), BoxError> {
    encode::write_map_len(wr, len_u32(map.len())?)?;
    for (key, value) in map {
        write_str_bytes(wr, key.as_bytes())?;
        write_value(wr, value, 1)?;
    }
    Ok(())
}

/// Writes `value`, found inside `depth` arrays and maps, in its smallest encoding.
fn write_value<W: Write>(wr: &mut W, value: &Value, depth: usize) -> Result<(), BoxError> {
    match value {
        // Invalid UTF-8 stays a string: rmpv's own writer would turn it into `bin`.
        Value::String(s) => write_str_bytes(wr, s.as_bytes()),
        Value::Binary(bytes) => {
            encode::write_bin_len(wr, len_u32(bytes.len())?)?;
            Ok(wr.write_all(bytes)?)
        }
        Value::Array(items) => {
            let depth = nested(depth)?;
            encode::write_array_len(wr, len_u32(items.len())?)?;
            items
                .iter()
                .try_for_each(|item| write_value(wr, item, depth))
        }
        Value::Map(entries) => write_map(wr, entries, nested(depth)?),
        Value::Ext(ty, data) => {
            encode::write_ext_meta(wr, len_u32(data.len())?, *ty)?;
            Ok(wr.write_all(data)?)
        }
        scalar => Ok(rmpv::encode::write_value(wr, scalar)?),
    }
}

/// Writes a nested map whose keys and values are inside `depth` arrays and maps.
fn write_map<W: Write>(
    wr: &mut W,
    entries: &[(Value, Value)],
    depth: usize,
) -> Result<(), BoxError> {
    encode::write_map_len(wr, len_u32(entries.len())?)?;
    for (key, value) in entries {
        write_value(wr, key, depth)?;
        write_value(wr, value, depth)?;
    }
    Ok(())
}

/// The nesting inside one more array or map than `depth`, within [`MAX_NESTING`].
fn nested(depth: usize) -> Result<usize, MsgPackError> {
    Some(depth + 1)
        .filter(|&d| d <= MAX_NESTING)
        .ok_or(MsgPackError::TooDeep)
}

/// Writes a string marker for `bytes` and the bytes (UTF-8 or not), in the smallest width.
fn write_str_bytes<W: Write>(wr: &mut W, bytes: &[u8]) -> Result<(), BoxError> {
    encode::write_str_len(wr, len_u32(bytes.len())?)?;
    wr.write_all(bytes)?;
    Ok(())
}

/// `len` as a MessagePack length.
fn len_u32(len: usize) -> Result<u32, MsgPackError> {
    u32::try_from(len).map_err(|_| MsgPackError::TooLong(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_err(bytes: &[u8]) -> String {
        match MsgPack.decode(bytes) {
            Err(Error::Decode(source)) => source.to_string(),
            other => panic!("expected Error::Decode, got {other:?}"),
        }
    }

    fn round_trip(bytes: &[u8]) {
        let map = MsgPack.decode(bytes).expect("decodes");
        assert_eq!(MsgPack.encode(&map).expect("encodes"), bytes);
    }

    #[test]
    fn empty_map_round_trips() {
        round_trip(b"\x80");
        assert!(MsgPack.decode(b"\x80").expect("decodes").is_empty());
    }

    #[test]
    fn truncated_payload_is_a_decode_error() {
        let full = b"\x82\xaa_permanent\xc3\xa5value\xa242";
        for cut in 0..full.len() {
            decode_err(&full[..cut]);
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert!(decode_err(b"\x81\xa1a\x01\x00").contains("trailing"));
    }

    #[test]
    fn non_map_top_level_is_rejected() {
        for bytes in [&b"\x93\x01\x02\x03"[..], b"\xc0", b"\xa3abc", b"\x05"] {
            assert!(decode_err(bytes).contains("not a MessagePack map"));
        }
    }

    #[test]
    fn non_string_keys_are_rejected() {
        assert!(decode_err(b"\x81\x01\x02").contains("not a string"));
        assert!(decode_err(b"\x81\xc4\x01a\x02").contains("not a string"));
        assert!(decode_err(b"\x81\xa1\xff\x02").contains("not valid UTF-8"));
    }

    #[test]
    fn duplicate_top_level_keys_are_rejected() {
        assert!(decode_err(b"\x82\xa1a\x01\xa1a\x02").contains("twice"));
    }

    #[test]
    fn non_minimal_encodings_are_accepted_and_normalised() {
        // uint8 for 5, str8 for a 1-byte key, int8 for +5, map16 for 1 entry.
        for bytes in [
            &b"\x81\xa1a\xcc\x05"[..],
            b"\x81\xd9\x01a\x05",
            b"\x81\xa1a\xd0\x05",
            b"\xde\x00\x01\xa1a\x05",
        ] {
            let map = MsgPack.decode(bytes).expect("valid MessagePack decodes");
            assert_eq!(map.get("a"), Some(&Value::from(5)), "{bytes:x?}");
            assert_eq!(MsgPack.encode(&map).expect("encodes"), b"\x81\xa1a\x05");
        }
    }

    #[test]
    fn nested_values_of_every_type_round_trip() {
        let mut payload = b"\x8a".to_vec();
        payload.extend_from_slice(b"\xa1n\xc0\xa1b\xc2\xa1u\xcd\x01\x2c\xa1i\xd1\xfe\xd4");
        payload.extend_from_slice(b"\xa1f\xca\x3f\xc0\x00\x00"); // f32 1.5
        payload.extend_from_slice(b"\xa1s\xa2\xff\xfe"); // invalid UTF-8 kept as str
        payload.extend_from_slice(b"\xa1e\xd5\x07\xab\xcd"); // fixext2, type 7
        payload.extend_from_slice(b"\xa1x\xc7\x03\x05abc"); // ext8, type 5
        payload.extend_from_slice(b"\xa1m\x82\x01\xa1z\xc3\x91\x00"); // int and bool keys
        payload.extend_from_slice(
            b"\xa1t\xc7\x0c\xff\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff",
        );
        round_trip(&payload);
    }

    #[test]
    fn long_values_use_the_smallest_width() {
        let mut map = SessionMap::default();
        map.insert("s".repeat(40), Value::from("x".repeat(300)));
        map.insert("b".into(), Value::Binary(vec![7; 70_000]));
        map.insert("a".into(), Value::Array(vec![Value::Nil; 16]));
        let bytes = MsgPack.encode(&map).expect("encodes");
        assert_eq!(&bytes[..3], b"\x83\xd9\x28");
        assert_eq!(&bytes[43..46], b"\xda\x01\x2c");
        assert_eq!(&bytes[348..353], b"\xc6\x00\x01\x11\x70");
        assert_eq!(&bytes[70_353..70_357], b"\xa1a\xdc\x00");
        round_trip(&bytes);
    }

    /// A session whose value "a" sits inside `depth - 1` arrays (plus the session map), holding
    /// `leaf` at the bottom.
    fn nested_payload(depth: usize, leaf: &[u8]) -> Vec<u8> {
        let mut payload = b"\x81\xa1a".to_vec();
        payload.extend(std::iter::repeat_n(0x91, depth - 1));
        payload.extend_from_slice(leaf);
        payload
    }

    #[test]
    fn deep_nesting_is_a_decode_error_not_a_stack_overflow() {
        assert!(decode_err(&nested_payload(100_000, b"\xc0")).contains("deeper"));
    }

    #[test]
    fn nesting_up_to_the_limit_round_trips_and_beyond_fails_both_ways() {
        for leaf in [&b"\xc0"[..], b"\xa1s", b"\xd4\x01\x02", b"\x90", b"\x80"] {
            let innermost = if leaf[0] & 0xf0 == 0x90 || leaf[0] & 0xf0 == 0x80 {
                1
            } else {
                0
            };
            round_trip(&nested_payload(MAX_NESTING - innermost, leaf));
            decode_err(&nested_payload(MAX_NESTING + 1 - innermost, leaf));
        }
        let mut value = Value::Nil;
        for _ in 0..MAX_NESTING {
            value = Value::Array(vec![value]);
        }
        let mut map = SessionMap::default();
        map.insert("a".into(), value);
        assert!(matches!(MsgPack.encode(&map), Err(Error::Encode(_))));
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // bin32, str32, array32, map32 and ext32 of 4 GiB - 1 with only a few bytes present.
        for value in [&b"\xc6"[..], b"\xdb", b"\xdd", b"\xdf", b"\xc9"] {
            let mut payload = b"\x81\xa1a".to_vec();
            payload.extend_from_slice(value);
            payload.extend_from_slice(b"\xff\xff\xff\xff\x01\x02");
            decode_err(&payload);
        }
        decode_err(b"\xdf\xff\xff\xff\xff\xa1a\x01");
    }

    /// A small deterministic generator (xorshift64) for the mutation test.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// `seed` with `edits` random one-byte changes, insertions or removals; never empty.
    fn mutant(seed: &[u8], edits: u64, state: &mut u64) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..edits {
            let at = (next(state) % bytes.len() as u64) as usize;
            let byte = next(state) as u8;
            match next(state) % 3 {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => drop(bytes.remove(at)),
            }
            if bytes.is_empty() {
                bytes.push(0x80);
            }
        }
        bytes
    }

    #[test]
    fn mutated_payloads_never_panic_and_what_decodes_survives_a_round_trip() {
        let seeds: [&[u8]; 3] = [
            b"\x83\xaa_permanent\xc3\xa2dt\xd6\xff\x70\xdd\x55\x25\xa1l\x93\x01\xa1a\x91\xcb\x40\x04\0\0\0\0\0\0",
            b"\x82\xa1i\xcd\x01\x2c\xa1m\x81\xa1k\x92\xd0\x80\xc4\x02\x00\xff",
            b"\x81\xa1s\xd9\x20xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ];
        let (mut state, mut decoded) = (0x9e37_79b9_7f4a_7c15_u64, 0);
        for round in 0..30_000 {
            let edits = 1 + next(&mut state) % 3;
            let bytes = mutant(seeds[round % seeds.len()], edits, &mut state);
            if let Ok(map) = MsgPack.decode(&bytes) {
                let encoded = MsgPack.encode(&map).expect("encodes");
                assert_eq!(MsgPack.decode(&encoded).expect("decodes"), map);
                decoded += 1;
            }
        }
        assert!(decoded > 1000, "only {decoded} mutants decoded");
    }

    /// What rmpv's own reader makes of `bytes` as a session (the decoder before this one):
    /// the oracle for [`the_one_pass_decoder_agrees_with_rmpv`].
    fn rmpv_session(bytes: &[u8]) -> Option<SessionMap> {
        let mut rest = bytes;
        let value = rmpv::decode::read_value_ref_with_max_depth(&mut rest, 1000).ok()?;
        let rmpv::ValueRef::Map(entries) = value else {
            return None;
        };
        let mut map = SessionMap::default();
        for (key, value) in entries {
            let rmpv::ValueRef::String(key) = key else {
                return None;
            };
            let key = key.as_str()?.to_owned();
            let value = value.to_owned();
            if map.contains_key(&key) || nests_too_deep(&value, 1) {
                return None;
            }
            map.insert(key, value);
        }
        rest.is_empty().then_some(map)
    }

    fn nests_too_deep(value: &Value, depth: usize) -> bool {
        let children: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => return false,
        };
        depth + 1 > MAX_NESTING || children.iter().any(|v| nests_too_deep(v, depth + 1))
    }

    #[test]
    fn the_one_pass_decoder_agrees_with_rmpv() {
        let seeds: [&[u8]; 4] = [
            b"\x83\xaa_permanent\xc3\xa2dt\xd6\xff\x70\xdd\x55\x25\xa1l\x93\x01\xa1a\x91\xcb\x40\x04\0\0\0\0\0\0",
            b"\x84\xa1i\xcd\x01\x2c\xa1m\x81\xa1k\x92\xd0\x80\xc4\x02\x00\xff\xa1n\xd3\x80\0\0\0\0\0\0\0\xa1u\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x83\xa1s\xd9\x04x\xffxx\xa1f\xca\x3f\xc0\x00\x00\xa1e\xc7\x03\x05abc",
            b"\xde\x00\x02\xa1a\xdc\x00\x02\xe0\x7f\xa1b\xdf\x00\x00\x00\x01\xc0\xd8\x01AAAAAAAAAAAAAAAA",
        ];
        let (mut state, mut decoded) = (0x2545_f491_4f6c_dd1d_u64, 0);
        for round in 0..40_000 {
            let edits = next(&mut state) % 3;
            let bytes = mutant(seeds[round % seeds.len()], edits, &mut state);
            let ours = MsgPack.decode(&bytes).ok();
            assert_eq!(ours, rmpv_session(&bytes), "{bytes:x?}");
            decoded += usize::from(ours.is_some());
        }
        assert!(decoded > 10_000, "only {decoded} mutants decoded");
    }

    #[test]
    fn errors_keep_their_source() {
        use std::error::Error as _;
        let err = MsgPack.decode(b"\x81\xa1a").expect_err("truncated");
        assert!(err.source().is_some());
    }
}
