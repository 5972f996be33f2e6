//! JSON codec: Flask-Session 0.8 with `SESSION_SERIALIZATION_FORMAT = 'json'` (msgspec's JSON
//! encoder on the session dict).
//!
//! Output is compact (`{"_permanent":true,"value":"42"}`), keys in insertion order, non-ASCII
//! text unescaped. Values without a JSON counterpart are written the way msgspec writes the
//! Python objects they come from: bytes as standard base64 with padding, timestamps (extension
//! type -1) as RFC 3339 UTC strings, non-finite floats as `null`. Reading JSON back gives strings
//! for those, as it does in Python. A top-level array or scalar, a duplicate top-level key, or
//! nesting deeper than 127 arrays and objects (the session's own object included) is an error.

use std::cell::Cell;
use std::{fmt, io};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use indexmap::map::Entry;
use rmpv::Value;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::msgpack::MAX_NESTING;
use crate::civil::civil_from_days;
use crate::codec::{Codec, SessionHasher, SessionMap};
use crate::{Error, Result};

/// JSON codec, byte-compatible with Flask-Session 0.8's `json` serialization format.
///
/// Encoding fails with [`Error::Encode`] for values JSON cannot hold: map keys that are not
/// strings, strings that are not valid UTF-8, and extension types other than timestamps.
///
/// ```
/// use server_session::codec::{Codec, Json, SessionMap, Value};
///
/// let mut map = SessionMap::default();
/// map.insert("_permanent".to_owned(), Value::Boolean(true));
/// map.insert("value".to_owned(), Value::from("42"));
/// map.insert("by".to_owned(), Value::Binary(vec![0, 1, 255]));
///
/// let bytes = Json.encode(&map)?;
/// assert_eq!(bytes, br#"{"_permanent":true,"value":"42","by":"AAH/"}"#);
///
/// let back = Json.decode(&bytes)?;
/// assert_eq!(back["value"], Value::from("42"));
/// assert_eq!(back["by"], Value::from("AAH/"));
///
/// // A JSON array is not a session: a decode error, never a panic.
/// assert!(Json.decode(b"[1,2]").is_err());
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Json;

impl Codec for Json {
    fn encode(&self, map: &SessionMap) -> Result<Vec<u8>> {
        let failure = Cell::new(None);
        let mut out = Vec::with_capacity(128);
        let mut writer = serde_json::Serializer::with_formatter(&mut out, MsgspecFloats);
        let session = Session {
            map,
            failure: &failure,
        };
        match session.serialize(&mut writer) {
            Ok(()) => Ok(out),
            Err(e) => Err(Error::Encode(match failure.take() {
                Some(own) => Box::new(own),
                None => Box::new(e),
            })),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionMap> {
        // serde_json stops after 127 nested arrays/objects (MAX_NESTING), so deep input cannot
        // exhaust the stack.
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Decode(Box::new(e)))?;
        into_session_map(value).map_err(|e| Error::Decode(Box::new(e)))
    }
}

/// What this codec itself finds wrong with a payload or a session.
#[derive(Debug)]
enum JsonError {
    /// The top-level value is not an object.
    NotAnObject,
    /// The same top-level key appears twice.
    DuplicateKey(String),
    /// A map key is not a valid UTF-8 string.
    NonStringKey,
    /// A string value is not valid UTF-8.
    InvalidUtf8,
    /// An extension type other than the timestamp (-1).
    UnsupportedExt(i8),
    /// A timestamp extension that is malformed or outside the years 1 to 9999.
    InvalidTimestamp,
    /// Arrays and maps are nested deeper than [`MAX_NESTING`].
    TooDeep,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("the payload is not a JSON object"),
            Self::DuplicateKey(key) => write!(f, "the top-level key {key:?} appears twice"),
            Self::NonStringKey => f.write_str("a map key is not a UTF-8 string"),
            Self::InvalidUtf8 => f.write_str("a string is not valid UTF-8"),
            Self::UnsupportedExt(ty) => {
                write!(f, "MessagePack extension type {ty} has no JSON form")
            }
            Self::InvalidTimestamp => {
                f.write_str("a timestamp is malformed or outside the years 1 to 9999")
            }
            Self::TooDeep => write!(f, "arrays and maps are nested deeper than {MAX_NESTING}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// The top-level object of a decoded payload as a [`SessionMap`].
fn into_session_map(value: Value) -> Result<SessionMap, JsonError> {
    let Value::Map(entries) = value else {
        return Err(JsonError::NotAnObject);
    };
    let mut map = SessionMap::with_capacity_and_hasher(entries.len(), SessionHasher::default());
    for (key, value) in entries {
        let Value::String(key) = key else {
            return Err(JsonError::NonStringKey);
        };
        match map.entry(key.into_str().ok_or(JsonError::NonStringKey)?) {
            Entry::Occupied(e) => return Err(JsonError::DuplicateKey(e.key().clone())),
            Entry::Vacant(e) => e.insert(value),
        };
    }
    Ok(map)
}

/// serde_json's compact output with floats written as msgspec writes them: ryu's shortest
/// round-trip digits and notation (`1.5`, `1e20`, `1.5e-7`), where serde_json itself now writes
/// `1e+20`. Non-finite floats never get here: they are written as `null` before.
struct MsgspecFloats;

impl serde_json::ser::Formatter for MsgspecFloats {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(ryu::Buffer::new().format_finite(value).as_bytes())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(ryu::Buffer::new().format_finite(value).as_bytes())
    }
}

/// Where a serialization records the error it met, so that it reaches the caller typed rather
/// than as serde_json's message.
type Failure = Cell<Option<JsonError>>;

/// The session as a JSON object.
struct Session<'a> {
    map: &'a SessionMap,
    failure: &'a Failure,
}

impl Serialize for Session<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(self.map.len()))?;
        for (key, value) in self.map {
            out.serialize_entry(key, &self.wrap(value))?;
        }
        out.end()
    }
}

impl Session<'_> {
    fn wrap<'v>(&'v self, value: &'v Value) -> Ser<'v> {
        let failure = self.failure;
        Ser {
            value,
            depth: 1,
            failure,
        }
    }
}

/// One value in msgspec's JSON form.
struct Ser<'a> {
    value: &'a Value,
    /// How many arrays and objects enclose the value, the session's own object included.
    depth: usize,
    failure: &'a Failure,
}

impl Serialize for Ser<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::F32(f) if !f.is_finite() => s.serialize_unit(),
            Value::F64(f) if !f.is_finite() => s.serialize_unit(),
            Value::String(text) => match text.as_str() {
                Some(text) => s.serialize_str(text),
                None => Err(self.fail(JsonError::InvalidUtf8)),
            },
            Value::Binary(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            Value::Array(items) => self.serialize_array(items, s),
            Value::Map(entries) => self.serialize_entries(entries, s),
            Value::Ext(-1, data) => match timestamp_rfc3339(data) {
                Some(text) => s.serialize_str(&text),
                None => Err(self.fail(JsonError::InvalidTimestamp)),
            },
            Value::Ext(ty, _) => Err(self.fail(JsonError::UnsupportedExt(*ty))),
            // Nil, Boolean, Integer and finite floats: rmpv's own impl writes them as msgspec does.
            scalar => scalar.serialize(s),
        }
    }
}

impl Ser<'_> {
    /// The depth of this array or map's items, recording `TooDeep` beyond [`MAX_NESTING`].
    fn items_depth<E: serde::ser::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_NESTING {
            return Err(self.fail(JsonError::TooDeep));
        }
        Ok(depth)
    }

    /// Records `err` for the caller and returns serde's stand-in for it.
    fn fail<E: serde::ser::Error>(&self, err: JsonError) -> E {
        let stand_in = E::custom(&err);
        self.failure.set(Some(err));
        stand_in
    }

    fn serialize_array<S: Serializer>(&self, items: &[Value], s: S) -> Result<S::Ok, S::Error> {
        let (depth, failure) = (self.items_depth()?, self.failure);
        let mut out = s.serialize_seq(Some(items.len()))?;
        for value in items {
            out.serialize_element(&Ser {
                value,
                depth,
                failure,
            })?;
        }
        out.end()
    }

    fn serialize_entries<S: Serializer>(
        &self,
        entries: &[(Value, Value)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let (depth, failure) = (self.items_depth()?, self.failure);
        let mut out = s.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            let Some(key) = key.as_str() else {
                return Err(self.fail(JsonError::NonStringKey));
            };
            out.serialize_entry(
                key,
                &Ser {
                    value,
                    depth,
                    failure,
                },
            )?;
        }
        out.end()
    }
}

/// Seconds of 0001-01-01T00:00:00Z and of 9999-12-31T23:59:59Z since the Unix epoch: the range
/// of Python's `datetime` and of RFC 3339's four-digit years.
pub(super) const MIN_SECS: i64 = -62_135_596_800;
pub(super) const MAX_SECS: i64 = 253_402_300_799;

/// The RFC 3339 UTC text of a timestamp extension payload, as msgspec writes an aware datetime:
/// `2030-01-02T03:04:05Z`, with `.ffffff` only when the microseconds are not zero (nine digits
/// when the nanoseconds are not whole microseconds, which Python cannot produce).
fn timestamp_rfc3339(data: &[u8]) -> Option<String> {
    let (secs, nanos) = timestamp_parts(data)?;
    if !(MIN_SECS..=MAX_SECS).contains(&secs) {
        return None;
    }
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let time = secs.rem_euclid(86_400);
    let (hour, minute, second) = (time / 3600, time % 3600 / 60, time % 60);
    let fraction = match nanos {
        0 => String::new(),
        n if n % 1000 == 0 => format!(".{:06}", n / 1000),
        n => format!(".{n:09}"),
    };
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z"
    ))
}

/// Seconds and nanoseconds of the three timestamp layouts (32, 64 and 96 bit).
pub(super) fn timestamp_parts(data: &[u8]) -> Option<(i64, u32)> {
    let (secs, nanos) = match data.len() {
        4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        8 => {
            let packed = u64::from_be_bytes(data.try_into().ok()?);
            let nanos = u32::try_from(packed >> 34).ok()?;
            (i64::try_from(packed & 0x3_ffff_ffff).ok()?, nanos)
        }
        12 => {
            let nanos = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
            (i64::from_be_bytes(data.get(4..)?.try_into().ok()?), nanos)
        }
        _ => return None,
    };
    (nanos < 1_000_000_000).then_some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_err(bytes: &[u8]) -> String {
        match Json.decode(bytes) {
            Err(Error::Decode(source)) => source.to_string(),
            other => panic!("expected Error::Decode, got {other:?}"),
        }
    }

    fn encode_err(value: Value) -> String {
        let mut map = SessionMap::default();
        map.insert("k".into(), value);
        match Json.encode(&map) {
            Err(Error::Encode(source)) => source.to_string(),
            other => panic!("expected Error::Encode, got {other:?}"),
        }
    }

    fn encode_one(value: Value) -> String {
        let mut map = SessionMap::default();
        map.insert("k".into(), value);
        String::from_utf8(Json.encode(&map).expect("encodes")).expect("UTF-8")
    }

    fn ts(secs: i64, nanos: u32) -> Value {
        let mut data = nanos.to_be_bytes().to_vec();
        data.extend_from_slice(&secs.to_be_bytes());
        Value::Ext(-1, data)
    }

    #[test]
    fn invalid_json_is_a_decode_error() {
        for bytes in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"{\"a\":1}x",
            b"{'a':1}",
            b"\xff",
        ] {
            decode_err(bytes);
        }
    }

    #[test]
    fn top_level_must_be_an_object() {
        for bytes in [&b"[1,2]"[..], b"null", b"\"s\"", b"3"] {
            assert!(decode_err(bytes).contains("not a JSON object"));
        }
    }

    #[test]
    fn duplicate_top_level_keys_are_rejected() {
        assert!(decode_err(br#"{"a":1,"a":2}"#).contains("twice"));
    }

    #[test]
    fn deep_nesting_is_a_decode_error_not_a_stack_overflow() {
        let mut payload = b"{\"a\":".to_vec();
        payload.extend(std::iter::repeat_n(b'[', 100_000));
        assert!(decode_err(&payload).contains("recursion limit"));
    }

    /// A session whose value "a" sits inside `depth - 1` arrays (plus the session object).
    fn nested_value(depth: usize) -> (Value, String) {
        let mut value = Value::from(1);
        for _ in 1..depth {
            value = Value::Array(vec![value]);
        }
        let text = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        (value, text)
    }

    #[test]
    fn nesting_up_to_the_limit_round_trips_and_beyond_fails_both_ways() {
        let (value, text) = nested_value(MAX_NESTING);
        assert_eq!(Json.decode(text.as_bytes()).expect("decodes")["a"], value);
        assert_eq!(encode_one(value), text.replace("\"a\"", "\"k\""));
        let (value, text) = nested_value(MAX_NESTING + 1);
        decode_err(text.as_bytes());
        assert!(encode_err(value).contains("nested deeper"));
        // An empty array or object counts as a level too.
        for empty in [Value::Array(vec![]), Value::Map(vec![])] {
            let mut value = empty;
            for _ in 2..MAX_NESTING {
                value = Value::Array(vec![value]);
            }
            let text = String::from_utf8(Json.encode(&map_of(value.clone())).expect("encodes"));
            Json.decode(text.expect("UTF-8").as_bytes())
                .expect("decodes");
            assert!(encode_err(Value::Array(vec![value])).contains("nested deeper"));
        }
    }

    fn map_of(value: Value) -> SessionMap {
        let mut map = SessionMap::default();
        map.insert("k".into(), value);
        map
    }

    #[test]
    fn huge_inputs_fail_cleanly() {
        decode_err(br#"{"a":"unterminated"#);
        decode_err(br#"{"a":1e999}"#);
    }

    #[test]
    fn decoded_numbers_keep_their_kind() {
        let map = Json.decode(br#"{"u":18446744073709551615,"i":-5,"f":1.0,"n":null}"#);
        let map = map.expect("decodes");
        assert_eq!(map["u"], Value::from(u64::MAX));
        assert_eq!(map["i"], Value::from(-5));
        assert_eq!(map["f"], Value::F64(1.0));
        assert_eq!(map["n"], Value::Nil);
    }

    #[test]
    fn floats_are_written_as_msgspec_writes_them() {
        assert_eq!(encode_one(Value::F64(1.0)), r#"{"k":1.0}"#);
        assert_eq!(encode_one(Value::F64(-0.0)), r#"{"k":-0.0}"#);
        assert_eq!(encode_one(Value::F64(1e20)), r#"{"k":1e20}"#);
        assert_eq!(encode_one(Value::F64(1e16)), r#"{"k":1e16}"#);
        assert_eq!(encode_one(Value::F64(1e15)), r#"{"k":1000000000000000.0}"#);
        assert_eq!(encode_one(Value::F64(1.5e300)), r#"{"k":1.5e300}"#);
        assert_eq!(encode_one(Value::F64(0.0001)), r#"{"k":0.0001}"#);
        assert_eq!(encode_one(Value::F64(-1.5e-7)), r#"{"k":-1.5e-7}"#);
        assert_eq!(
            encode_one(Value::F64(0.1 + 0.2)),
            r#"{"k":0.30000000000000004}"#
        );
        assert_eq!(encode_one(Value::F64(123.0)), r#"{"k":123.0}"#);
        assert_eq!(encode_one(Value::F64(f64::NAN)), r#"{"k":null}"#);
        assert_eq!(encode_one(Value::F64(f64::NEG_INFINITY)), r#"{"k":null}"#);
        assert_eq!(encode_one(Value::F32(f32::INFINITY)), r#"{"k":null}"#);
        assert_eq!(encode_one(Value::F32(1.5)), r#"{"k":1.5}"#);
    }

    #[test]
    fn nested_maps_and_escapes() {
        let value = Value::Map(vec![(Value::from("q\"\n"), Value::Array(vec![Value::Nil]))]);
        assert_eq!(encode_one(value), r#"{"k":{"q\"\n":[null]}}"#);
        assert_eq!(encode_one(Value::from("é✓")), "{\"k\":\"é✓\"}");
    }

    #[test]
    fn values_without_a_json_form_are_encode_errors() {
        let int_key = Value::Map(vec![(Value::from(1), Value::Nil)]);
        assert!(encode_err(int_key).contains("map key"));
        let bad_utf8 = crate::codec::MsgPack.decode(b"\x81\xa1k\x91\xa1\xff");
        let bad_utf8 = bad_utf8.expect("decodes").swap_remove("k").expect("has k");
        assert!(encode_err(bad_utf8).contains("UTF-8"));
        assert!(encode_err(Value::Ext(5, vec![1])).contains("extension type 5"));
        assert!(encode_err(Value::Ext(-1, vec![1, 2, 3])).contains("timestamp"));
        assert!(encode_err(ts(0, 1_000_000_000)).contains("timestamp"));
        assert!(encode_err(ts(MAX_SECS + 1, 0)).contains("timestamp"));
        assert!(encode_err(ts(MIN_SECS - 1, 0)).contains("timestamp"));
    }

    #[test]
    fn encode_errors_are_typed() {
        let mut map = SessionMap::default();
        map.insert("k".into(), Value::Ext(3, vec![]));
        let Err(Error::Encode(source)) = Json.encode(&map) else {
            panic!("expected Error::Encode");
        };
        assert!(source.downcast_ref::<JsonError>().is_some());
    }

    #[test]
    fn timestamps_in_every_layout() {
        assert_eq!(
            timestamp_rfc3339(&0_u32.to_be_bytes()).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        let packed = (123_456_000_u64 << 34) | 1_893_553_445;
        let text = timestamp_rfc3339(&packed.to_be_bytes());
        assert_eq!(text.as_deref(), Some("2030-01-02T03:04:05.123456Z"));
        assert_eq!(
            encode_one(ts(-1, 5)),
            r#"{"k":"1969-12-31T23:59:59.000000005Z"}"#
        );
        assert_eq!(
            encode_one(ts(MIN_SECS, 0)),
            r#"{"k":"0001-01-01T00:00:00Z"}"#
        );
        assert_eq!(
            encode_one(ts(MAX_SECS, 0)),
            r#"{"k":"9999-12-31T23:59:59Z"}"#
        );
        assert_eq!(
            encode_one(ts(951_782_400, 0)),
            r#"{"k":"2000-02-29T00:00:00Z"}"#
        );
        assert_eq!(
            encode_one(ts(4_107_542_400, 0)),
            r#"{"k":"2100-03-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn mutated_payloads_never_panic_and_what_decodes_survives_a_round_trip() {
        let seed = br#"{"_permanent":true,"n":-12,"f":0.5,"s":"h\u00e9\n","l":[1,{"z":null}]}"#;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut decoded = 0;
        for _ in 0..30_000 {
            let mut bytes = seed.to_vec();
            let at = (next() % bytes.len() as u64) as usize;
            let byte = b"{}[]\",:0123456789.-eE \\u"[(next() % 24) as usize];
            match next() % 3 {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => drop(bytes.remove(at)),
            }
            if let Ok(map) = Json.decode(&bytes) {
                let text = Json.encode(&map).expect("encodes");
                assert_eq!(Json.decode(&text).expect("decodes again"), map);
                decoded += 1;
            }
        }
        assert!(decoded > 1000, "only {decoded} mutants decoded");
    }

    /// Found by the `json_decode` fuzz target: without serde_json's `float_roundtrip`, an
    /// integer too large for 64 bits was parsed to a neighbouring float, so a read-modify-write
    /// changed the stored number.
    #[test]
    fn huge_integers_parse_to_the_nearest_float_and_survive_a_round_trip() {
        let map = Json.decode(b"{\"max\":92233727203685477580}").unwrap();
        let exact: f64 = "92233727203685477580".parse().unwrap();
        assert_eq!(map.get("max"), Some(&Value::F64(exact)));
        assert_eq!(Json.decode(&Json.encode(&map).unwrap()).unwrap(), map);
    }
}
