//! Writes a session as a protocol 4 pickle that Python's `pickle.loads` reads back into the
//! types of the module's table: no frames, no memo (nothing is shared), CPython's own opcodes
//! for each type.

use rmpv::{Integer, Value};

use super::op::*;
use super::time::{TIMESTAMP_EXT, utc_state};
use super::{Pickle, PickleError, nested, text};
use crate::codec::SessionMap;

/// The protocol written: readable by Python 3.4 and later.
const PROTOCOL: u8 = 4;

/// The pickle of `map`, a `dict` with `str` keys in the map's order.
pub(super) fn session(map: &SessionMap) -> Result<Vec<u8>, PickleError> {
    // Room for a typical session (a few hundred bytes), so that encoding allocates once.
    let mut w = Writer(Vec::with_capacity(256));
    w.0.extend_from_slice(&[PROTO, PROTOCOL, EMPTY_DICT]);
    if !map.is_empty() {
        w.0.push(MARK);
        for (key, value) in map {
            w.str(key);
            w.value(value, 1)?;
        }
        w.0.push(SETITEMS);
    }
    w.0.push(STOP);
    Ok(w.0)
}

/// The pickle of one value of any type (cachelib's file count is an `int`).
pub(super) fn value(value: &Value) -> Result<Vec<u8>, PickleError> {
    let mut w = Writer(Vec::with_capacity(16));
    w.0.extend_from_slice(&[PROTO, PROTOCOL]);
    w.value(value, 0)?;
    w.0.push(STOP);
    Ok(w.0)
}

struct Writer(Vec<u8>);

impl Writer {
    /// Writes `value`, found inside `depth` containers.
    fn value(&mut self, value: &Value, depth: usize) -> Result<(), PickleError> {
        match value {
            Value::Nil => self.0.push(NONE),
            Value::Boolean(b) => self.0.push(if *b { NEWTRUE } else { NEWFALSE }),
            Value::Integer(n) => self.int(*n),
            Value::F32(f) => self.float(f64::from(*f)),
            Value::F64(f) => self.float(*f),
            Value::String(s) => self.str(s.as_str().ok_or(PickleError::InvalidUtf8)?),
            Value::Binary(bytes) => self.bytes(bytes),
            Value::Array(items) => self.list(items, nested(depth)?)?,
            Value::Map(entries) => self.dict(entries, nested(depth)?)?,
            Value::Ext(TIMESTAMP_EXT, data) => self.datetime(&utc_state(data)?),
            Value::Ext(Pickle::BIG_INT_EXT, data) => self.long(data)?,
            Value::Ext(ty, _) => return Err(PickleError::UnsupportedExt(*ty)),
        }
        Ok(())
    }

    /// Writes a dict key: an array becomes a tuple, which Python can hash; a map cannot be one.
    fn key(&mut self, value: &Value, depth: usize) -> Result<(), PickleError> {
        match value {
            Value::Array(items) => self.tuple(items, nested(depth)?),
            Value::Map(_) => Err(PickleError::Unhashable),
            other => self.value(other, depth),
        }
    }

    fn list(&mut self, items: &[Value], depth: usize) -> Result<(), PickleError> {
        self.0.push(EMPTY_LIST);
        if !items.is_empty() {
            self.0.push(MARK);
            items.iter().try_for_each(|item| self.value(item, depth))?;
            self.0.push(APPENDS);
        }
        Ok(())
    }

    fn tuple(&mut self, items: &[Value], depth: usize) -> Result<(), PickleError> {
        if items.len() > 3 {
            self.0.push(MARK);
        }
        items.iter().try_for_each(|item| self.key(item, depth))?;
        self.0.push(match items.len() {
            0 => EMPTY_TUPLE,
            1 => TUPLE1,
            2 => TUPLE2,
            3 => TUPLE3,
            _ => TUPLE,
        });
        Ok(())
    }

    fn dict(&mut self, entries: &[(Value, Value)], depth: usize) -> Result<(), PickleError> {
        self.0.push(EMPTY_DICT);
        if !entries.is_empty() {
            self.0.push(MARK);
            for (key, value) in entries {
                self.key(key, depth)?;
                self.value(value, depth)?;
            }
            self.0.push(SETITEMS);
        }
        Ok(())
    }

    /// An int in CPython's form: `BININT1`, `BININT2`, `BININT`, else `LONG1`.
    fn int(&mut self, n: Integer) {
        match (n.as_u64(), n.as_i64().and_then(|n| i32::try_from(n).ok())) {
            (Some(small @ 0..=0xff), _) => self.0.extend_from_slice(&[BININT1, small as u8]),
            (Some(small @ 0..=0xffff), _) => {
                self.0.push(BININT2);
                self.0.extend_from_slice(&(small as u16).to_le_bytes());
            }
            (_, Some(word)) => {
                self.0.push(BININT);
                self.0.extend_from_slice(&word.to_le_bytes());
            }
            _ => {
                let bytes = text::le_of_integer(n); // 9 bytes at most
                self.0.extend_from_slice(&[LONG1, bytes.len() as u8]);
                self.0.extend_from_slice(&bytes);
            }
        }
    }

    /// A [`Pickle::BIG_INT_EXT`] payload: the int's little-endian two's complement as it is.
    fn long(&mut self, bytes: &[u8]) -> Result<(), PickleError> {
        match u8::try_from(bytes.len()) {
            Ok(len) => self.0.extend_from_slice(&[LONG1, len]),
            Err(_) => {
                let len =
                    i32::try_from(bytes.len()).map_err(|_| PickleError::TooLong(bytes.len()))?;
                self.0.push(LONG4);
                self.0.extend_from_slice(&len.to_le_bytes());
            }
        }
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn float(&mut self, f: f64) {
        self.0.push(BINFLOAT);
        self.0.extend_from_slice(&f.to_be_bytes());
    }

    fn str(&mut self, text: &str) {
        self.sized(text.as_bytes(), [SHORT_BINUNICODE, BINUNICODE, BINUNICODE8]);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.sized(bytes, [SHORT_BINBYTES, BINBYTES, BINBYTES8]);
    }

    /// `payload` after the opcode of its size class: 1-, 4- or 8-byte little-endian length.
    fn sized(&mut self, payload: &[u8], [short, long, huge]: [u8; 3]) {
        if let Ok(len) = u8::try_from(payload.len()) {
            self.0.extend_from_slice(&[short, len]);
        } else if let Ok(len) = u32::try_from(payload.len()) {
            self.0.push(long);
            self.0.extend_from_slice(&len.to_le_bytes());
        } else {
            self.0.push(huge);
            self.0
                .extend_from_slice(&(payload.len() as u64).to_le_bytes());
        }
        self.0.extend_from_slice(payload);
    }

    /// `datetime.datetime(state, datetime.timezone(datetime.timedelta(0, 0, 0)))`, as CPython
    /// pickles an aware UTC datetime.
    fn datetime(&mut self, state: &[u8; 10]) {
        self.global("datetime");
        self.0.extend_from_slice(&[SHORT_BINBYTES, 10]);
        self.0.extend_from_slice(state);
        self.global("timezone");
        self.global("timedelta");
        self.0
            .extend_from_slice(&[BININT1, 0, BININT1, 0, BININT1, 0, TUPLE3, REDUCE]);
        self.0.extend_from_slice(&[TUPLE1, REDUCE, TUPLE2, REDUCE]);
    }

    /// `datetime.<name>` by `STACK_GLOBAL`.
    fn global(&mut self, name: &str) {
        self.str("datetime");
        self.str(name);
        self.0.push(STACK_GLOBAL);
    }
}
