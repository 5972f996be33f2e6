//! Pickle codec: what Flask-Session 0.6 and older stored on every backend (`pickle.dumps` of the
//! session dict) and what cachelib's `FileSystemCache` stores in its files.
//!
//! The decoder (`decode.rs`, with the objects and known globals in `build.rs`) is a small
//! interpreter of pickle's data opcodes that never imports or calls anything; `encode.rs` writes
//! protocol 4. The mapping, the refusals and the limits are documented on [`Pickle`].

use std::fmt;

use crate::codec::{Codec, SessionMap};
use crate::{Error, Result};

mod build;
mod decode;
mod encode;
mod op;
mod text;
mod time;

#[cfg(test)]
mod tests;

/// Python pickle codec: reads the session dicts CPython pickles (protocols 0 to 5), as
/// Flask-Session 0.6 and older stored them and cachelib's `FileSystemCache` stores them, and
/// writes pickles that Python's `pickle.loads` reads back into the same Python types.
///
/// The decoder is a small interpreter of the data opcodes of protocols 0 to 5. It never imports
/// or calls anything: of the globals a pickle may name, it knows only the data types below and
/// evaluates them itself; any other global (`os.system`, a class with `__reduce__`, ...) is a
/// [`PickleError::Global`] naming it, and the opcodes that create instances, set object state or
/// fetch external data are refused as well ([`PickleError::Refused`]). It is bounded: values nest
/// at most 127 deep (the session dict included, as with the other codecs), the memo holds at
/// most 2^20 objects, a length prefix is checked against the bytes present before anything is
/// allocated, integer text is limited to CPython's 4300 digits, and shared references (the memo)
/// can expand the decoded session to at most 1 MiB plus 64 times the input's size.
///
/// | Python, pickled | [`Value`] | encoded back as |
/// |---|---|---|
/// | `None`, `bool`, `float` | `Nil`, `Boolean`, `F64` | the same type |
/// | `int` within `i64` / `u64` | `Integer` | `int` |
/// | a larger `int` | `Ext(`[`Pickle::BIG_INT_EXT`]`, ` its little-endian two's complement`)` | `int` (exact) |
/// | `str` | `String` | `str` |
/// | `bytes`, `bytearray` | `Binary` | `bytes` |
/// | `list`, `tuple`, `set`, `frozenset` | `Array` | `list`; `tuple` as a dict key |
/// | `dict` (any hashable keys) | `Map`, in order | `dict` |
/// | `datetime.datetime` with a `datetime.timezone` | `Ext(-1, ..)`: the timestamp in UTC | `datetime` in UTC |
/// | naive `datetime.datetime` | `String`: `2030-01-02T03:04:05[.ffffff]` | `str` |
/// | `datetime.date` | `String`: `2030-01-02` | `str` |
///
/// The datetime rows are the shapes Flask-Session 0.8 (msgspec) gives the same Python values in
/// MessagePack, so a session reads alike whichever of the two formats Python wrote it in: an
/// aware datetime is a timestamp extension in msgspec's layout (32, 64 or 96 bit), while naive
/// datetimes and dates are ISO 8601 text (msgspec has no other form for them, and they come back
/// to Python as `str` just as after Flask-Session 0.8's own upgrade of a pickled session). Other
/// values Python can pickle (`timedelta`, `Decimal`, `UUID`, instances of classes, tz-aware
/// datetimes with a `zoneinfo` zone, ...) are decode errors. Encoding writes protocol 4
/// (readable by Python 3.4 and later), without frames or memo; an `F32` becomes a `float`.
///
/// ```
/// use server_session::codec::{Codec, Pickle, SessionMap, Value};
///
/// // pickle.dumps({"_permanent": True, "user": "ada", "n": 2**70}, protocol=2)
/// let bytes = b"\x80\x02}q\x00(X\n\x00\x00\x00_permanentq\x01\x88X\x04\x00\x00\x00userq\x02\
///     X\x03\x00\x00\x00adaq\x03X\x01\x00\x00\x00nq\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\
///     \x00@u.";
/// let map = Pickle.decode(bytes)?;
/// assert_eq!(map["_permanent"], Value::Boolean(true));
/// assert_eq!(map["user"], Value::from("ada"));
/// // 2**70 does not fit 64 bits: it is kept exactly, as an extension value.
/// assert_eq!(map["n"], Value::Ext(Pickle::BIG_INT_EXT, vec![0, 0, 0, 0, 0, 0, 0, 0, 0x40]));
///
/// // What it writes, it reads back.
/// assert_eq!(Pickle.decode(&Pickle.encode(&map)?)?, map);
///
/// // A pickle that would run a command is refused, never run.
/// assert!(Pickle.decode(b"cos\nsystem\n(Vecho hi\ntR.").is_err());
/// # Ok::<(), server_session::Error>(())
/// ```
///
/// [`Value`]: crate::codec::Value
#[derive(Debug, Default, Clone, Copy)]
pub struct Pickle;

impl Pickle {
    /// The MessagePack extension type of a Python `int` outside `i64` and `u64`: its payload is
    /// the integer's little-endian two's complement in the fewest bytes (pickle's own `LONG1`
    /// form), so the value survives a read-modify-write exactly. 76 is `b'L'`, pickle's `LONG`
    /// opcode.
    ///
    /// ```
    /// use server_session::codec::{Codec, Pickle, SessionMap, Value};
    ///
    /// // -2**64 - 1, which neither i64 nor u64 holds: 0xfe_ffff_ffff_ffff_ffff in 72 bits.
    /// let big = Value::Ext(Pickle::BIG_INT_EXT, vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    /// let mut map = SessionMap::default();
    /// map.insert("big".into(), big.clone());
    /// let bytes = Pickle.encode(&map)?;
    /// // LONG1 of 9 bytes, as CPython writes this int.
    /// assert!(bytes.ends_with(b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xfeu."));
    /// assert_eq!(Pickle.decode(&bytes)?["big"], big);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub const BIG_INT_EXT: i8 = 76;

    /// The value pickled in `bytes`, of any type: the codec reads session dicts, this reads
    /// cachelib's file-count entry (an `int`), with the same rules and limits.
    pub(crate) fn decode_value(
        bytes: &[u8],
    ) -> std::result::Result<crate::codec::Value, PickleError> {
        decode::value(bytes)
    }

    /// A protocol 4 pickle of `value`, of any type (see [`Pickle::decode_value`]).
    pub(crate) fn encode_value(
        value: &crate::codec::Value,
    ) -> std::result::Result<Vec<u8>, PickleError> {
        encode::value(value)
    }
}

impl Codec for Pickle {
    fn encode(&self, map: &SessionMap) -> Result<Vec<u8>> {
        encode::session(map).map_err(|e| Error::Encode(Box::new(e)))
    }

    fn decode(&self, bytes: &[u8]) -> Result<SessionMap> {
        decode::session(bytes).map_err(|e| Error::Decode(Box::new(e)))
    }
}

/// Why the [`Pickle`] codec refused a payload or a session: the source of its
/// [`Error::Decode`] and [`Error::Encode`].
///
/// ```
/// use server_session::codec::{Codec, Pickle, PickleError};
/// use server_session::Error;
///
/// // A pickle whose `__reduce__` would call os.system("touch /tmp/owned").
/// let evil = b"\x80\x04\x95+\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\
///     \x8c\x10touch /tmp/owned\x94\x85\x94R\x94.";
/// let Err(Error::Decode(source)) = Pickle.decode(evil) else {
///     panic!("refused");
/// };
/// let Some(PickleError::Global(name)) = source.downcast_ref::<PickleError>() else {
///     panic!("a refused global");
/// };
/// assert_eq!(name, "posix.system");
/// assert!(!std::path::Path::new("/tmp/owned").exists());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PickleError {
    /// The payload ends inside an opcode or before `STOP`.
    Truncated,
    /// Bytes follow the `STOP` opcode.
    TrailingBytes(usize),
    /// A byte that is no pickle opcode.
    UnknownOpcode(u8),
    /// An opcode this codec never runs (instance creation, object state, persistent ids, the
    /// extension registry, out-of-band buffers, Python 2 `STRING`).
    Refused(&'static str),
    /// A global other than the data types the codec knows, as `module.name` (at most 200
    /// characters). It is never imported.
    Global(String),
    /// A protocol newer than 5.
    Protocol(u8),
    /// The opcodes do not form a valid pickle (what is wrong, in words).
    Malformed(&'static str),
    /// A `str` that is not valid UTF-8 (a lone surrogate), or a `str` value that cannot be
    /// encoded as one.
    InvalidUtf8,
    /// A `datetime` or `date` outside the years 1 to 9999 (in UTC, for an aware one) or with
    /// impossible fields.
    InvalidDateTime,
    /// An integer written in more than 4300 decimal digits (CPython's own limit).
    IntTooLong,
    /// A container that holds itself: a session is a tree.
    Recursive,
    /// Containers nested deeper than 127 (the session dict included).
    TooDeep,
    /// Shared references expand the session beyond the decoding budget, or the memo is full.
    TooLarge,
    /// The pickled value is not a dict.
    NotADict,
    /// A key of the session dict is not a `str`.
    NonStringKey,
    /// A key of the session dict appears twice.
    DuplicateKey(String),
    /// A value that has no session form (`timedelta`, `timezone`, a class or function itself).
    NotAValue(&'static str),
    /// A dict key or set element Python could not hash (a list, dict or set).
    Unhashable,
    /// Encoding: an extension type other than the timestamp (-1) and [`Pickle::BIG_INT_EXT`].
    UnsupportedExt(i8),
    /// Encoding: a timestamp outside the years 1 to 9999, malformed, or finer than the
    /// microseconds Python's `datetime` holds.
    InvalidTimestamp,
    /// Encoding: a value longer than a pickle length prefix allows.
    TooLong(usize),
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("the pickle is truncated"),
            Self::TrailingBytes(n) => write!(f, "{n} trailing byte(s) after the pickle's STOP"),
            Self::UnknownOpcode(op) => write!(f, "unknown pickle opcode 0x{op:02x}"),
            Self::Refused(what) => write!(f, "refused pickle opcode: {what}"),
            Self::Global(name) => write!(
                f,
                "refused pickle global {name}: only datetime, date, timezone, timedelta, set, \
                 frozenset, bytes, bytearray and codecs.encode are read, and nothing is called"
            ),
            Self::Protocol(p) => write!(f, "unsupported pickle protocol {p}"),
            Self::Malformed(what) => write!(f, "malformed pickle: {what}"),
            Self::InvalidUtf8 => f.write_str("a str is not valid UTF-8"),
            Self::InvalidDateTime => {
                f.write_str("a datetime or date is invalid or outside the years 1 to 9999")
            }
            Self::IntTooLong => f.write_str("an integer has more than 4300 decimal digits"),
            Self::Recursive => f.write_str("a container holds itself"),
            Self::TooDeep => write!(f, "containers are nested deeper than {MAX_NESTING}"),
            Self::TooLarge => f.write_str("the pickle expands beyond the decoding budget"),
            Self::NotADict => f.write_str("the pickled value is not a dict"),
            Self::NonStringKey => f.write_str("a session key is not a str"),
            Self::DuplicateKey(key) => write!(f, "the session key {key:?} appears twice"),
            Self::NotAValue(what) => write!(f, "a {what} is not a session value"),
            Self::Unhashable => f.write_str("a dict key or set element is unhashable"),
            Self::UnsupportedExt(ty) => {
                write!(f, "MessagePack extension type {ty} has no pickle form")
            }
            Self::InvalidTimestamp => f.write_str(
                "a timestamp is malformed, outside the years 1 to 9999 or finer than microseconds",
            ),
            Self::TooLong(n) => write!(f, "a length of {n} does not fit a pickle length prefix"),
        }
    }
}

impl std::error::Error for PickleError {}

/// The deepest nesting of containers, counting the session dict: the other codecs' limit.
use super::msgpack::MAX_NESTING;

/// The nesting inside one more container than `depth`, within [`MAX_NESTING`].
fn nested(depth: usize) -> Result<usize, PickleError> {
    Some(depth + 1)
        .filter(|&d| d <= MAX_NESTING)
        .ok_or(PickleError::TooDeep)
}
