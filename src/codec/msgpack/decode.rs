//! MessagePack straight into a [`SessionMap`], in one pass over the bytes: each value is built
//! once, in its final owned form, with no intermediate tree.
//!
//! Every length is checked against the bytes that are left before anything is allocated, and
//! arrays and maps nest at most [`MAX_NESTING`](super::MAX_NESTING) deep (the session map included), so no input
//! can make it allocate more than a small multiple of its own size or overflow the stack.

use indexmap::map::Entry;
use rmpv::Value;

use super::{MsgPackError, nested};
use crate::codec::{SessionHasher, SessionMap};

/// The session map in `bytes`: a map with UTF-8 string keys, each once, and nothing after it.
pub(super) fn session_map(bytes: &[u8]) -> Result<SessionMap, MsgPackError> {
    let mut reader = Reader { rest: bytes };
    let len = match reader.byte()? {
        marker @ 0x80..=0x8f => usize::from(marker & 0x0f),
        0xde => reader.len(2)?,
        0xdf => reader.len(4)?,
        _ => return Err(MsgPackError::NotAMap),
    };
    let mut map =
        SessionMap::with_capacity_and_hasher(reader.count(len, 2)?, SessionHasher::default());
    for _ in 0..len {
        let key = reader.key()?;
        let value = reader.value(1)?;
        match map.entry(key.to_owned()) {
            Entry::Occupied(e) => return Err(MsgPackError::DuplicateKey(e.key().clone())),
            Entry::Vacant(e) => e.insert(value),
        };
    }
    match reader.rest.len() {
        0 => Ok(map),
        n => Err(MsgPackError::TrailingBytes(n)),
    }
}

/// The bytes not read yet.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgPackError> {
        if n > self.rest.len() {
            return Err(MsgPackError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, MsgPackError> {
        Ok(self.take(1)?[0])
    }

    /// The next `N` bytes as an array, for a big-endian number.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgPackError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A big-endian length of `width` (1, 2 or 4) bytes.
    fn len(&mut self, width: usize) -> Result<usize, MsgPackError> {
        let len = match width {
            1 => u32::from(self.byte()?),
            2 => u32::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?),
        };
        Ok(len as usize) // u32 always fits the usize of the platforms Rust supports here
    }

    /// `len` items of at least `min_size` bytes each, if that many bytes are left: what can
    /// safely be reserved for them.
    fn count(&self, len: usize, min_size: usize) -> Result<usize, MsgPackError> {
        match len.checked_mul(min_size) {
            Some(needed) if needed <= self.rest.len() => Ok(len),
            _ => Err(MsgPackError::Truncated),
        }
    }

    /// A top-level key: a UTF-8 string.
    fn key(&mut self) -> Result<&'a str, MsgPackError> {
        let len = match self.byte()? {
            marker @ 0xa0..=0xbf => usize::from(marker & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return Err(MsgPackError::NonStringKey),
        };
        std::str::from_utf8(self.take(len)?).map_err(|_| MsgPackError::NonUtf8Key)
    }

    /// The next value, found inside `depth` arrays and maps.
    fn value(&mut self, depth: usize) -> Result<Value, MsgPackError> {
        let start = self.rest;
        let marker = self.byte()?;
        Ok(match marker {
            0x00..=0x7f => Value::from(marker),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.items(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.string(usize::from(marker & 0x1f), start)?,
            0xc0 => Value::Nil,
            0xc1 => return Err(MsgPackError::Reserved),
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (marker - 0xc4))?;
                Value::Binary(self.take(len)?.to_vec())
            }
            0xc7..=0xc9 => {
                let len = self.len(1 << (marker - 0xc7))?;
                self.ext(len)?
            }
            0xca => Value::F32(f32::from_be_bytes(self.array()?)),
            0xcb => Value::F64(f64::from_be_bytes(self.array()?)),
            0xcc => Value::from(self.byte()?),
            0xcd => Value::from(u16::from_be_bytes(self.array()?)),
            0xce => Value::from(u32::from_be_bytes(self.array()?)),
            0xcf => Value::from(u64::from_be_bytes(self.array()?)),
            0xd0 => Value::from(i8::from_be_bytes(self.array()?)),
            0xd1 => Value::from(i16::from_be_bytes(self.array()?)),
            0xd2 => Value::from(i32::from_be_bytes(self.array()?)),
            0xd3 => Value::from(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => self.ext(1 << (marker - 0xd4))?,
            0xd9..=0xdb => {
                let len = self.len(1 << (marker - 0xd9))?;
                self.string(len, start)?
            }
            0xdc | 0xdd => {
                let len = self.len(2 << (marker - 0xdc))?;
                self.items(len, depth)?
            }
            0xde | 0xdf => {
                let len = self.len(2 << (marker - 0xde))?;
                self.map(len, depth)?
            }
            0xe0..=0xff => Value::from(marker as i8),
        })
    }

    /// A string of `len` bytes; `start` is where its marker began. Invalid UTF-8 stays a
    /// string holding those bytes (rare: built the way rmpv builds it).
    fn string(&mut self, len: usize, start: &'a [u8]) -> Result<Value, MsgPackError> {
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Value::from(text)),
            Err(_) => {
                let marker_len = start.len() - self.rest.len() - len;
                let mut whole = &start[..marker_len + len];
                let value = rmpv::decode::read_value_ref(&mut whole)
                    .map_err(|_| MsgPackError::Truncated)?;
                Ok(value.to_owned())
            }
        }
    }

    /// An extension value of `len` data bytes after its type byte.
    fn ext(&mut self, len: usize) -> Result<Value, MsgPackError> {
        let ty = i8::from_be_bytes(self.array()?);
        Ok(Value::Ext(ty, self.take(len)?.to_vec()))
    }

    /// An array of `len` values, inside `depth` arrays and maps.
    fn items(&mut self, len: usize, depth: usize) -> Result<Value, MsgPackError> {
        let depth = nested(depth)?;
        let mut items = Vec::with_capacity(self.count(len, 1)?);
        for _ in 0..len {
            items.push(self.value(depth)?);
        }
        Ok(Value::Array(items))
    }

    /// A map of `len` entries with keys of any type, inside `depth` arrays and maps.
    fn map(&mut self, len: usize, depth: usize) -> Result<Value, MsgPackError> {
        let depth = nested(depth)?;
        let mut entries = Vec::with_capacity(self.count(len, 2)?);
        for _ in 0..len {
            let key = self.value(depth)?;
            entries.push((key, self.value(depth)?));
        }
        Ok(Value::Map(entries))
    }
}
