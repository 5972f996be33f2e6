//! The objects a pickle builds, the few globals the decoder evaluates itself, and the session
//! values the objects become.
//!
//! Objects live in one arena and refer to each other by index, as Python objects refer to each
//! other: a list put in the memo and appended to later is the same list wherever it is fetched.
//! Only at the end are they turned into [`Value`] trees, within a budget that bounds what
//! shared references can expand to.

use indexmap::map::Entry;
use rmpv::Value;

use super::{PickleError, nested, time};
use crate::codec::{SessionHasher, SessionMap};

/// An index into the arena.
pub(super) type Id = usize;

/// What one pickle object is.
#[derive(Debug)]
pub(super) enum Obj {
    /// A finished leaf: `None`, bool, int, float, str, bytes, or a converted `datetime`/`date`.
    Value(Value),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    /// A `set` (`frozen: false`, mutable and unhashable) or a `frozenset`.
    Set {
        items: Vec<Id>,
        frozen: bool,
    },
    /// One of the globals the decoder knows, not yet called.
    Global(Global),
    /// A `datetime.timedelta`, in microseconds (only ever a timezone's offset).
    Timedelta(i64),
    /// A `datetime.timezone`: its UTC offset in microseconds.
    Timezone(i64),
}

/// The globals a pickle of session data names, each evaluated here without importing anything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Global {
    DateTime,
    Date,
    Timezone,
    Timedelta,
    Set,
    FrozenSet,
    ByteArray,
    Bytes,
    /// `_codecs.encode`: how protocols 0 to 2 pickle `bytes` (`encode(latin1_text, "latin1")`).
    Encode,
}

impl Global {
    /// The global `module.name`, if it is one of the known ones (`__builtin__` is Python 2's
    /// name of `builtins`, which protocols 0 to 2 write).
    pub(super) fn resolve(module: &str, name: &str) -> Result<Self, PickleError> {
        Ok(match (module, name) {
            ("datetime", "datetime") => Self::DateTime,
            ("datetime", "date") => Self::Date,
            ("datetime", "timezone") => Self::Timezone,
            ("datetime", "timedelta") => Self::Timedelta,
            ("builtins" | "__builtin__", "set") => Self::Set,
            ("builtins" | "__builtin__", "frozenset") => Self::FrozenSet,
            ("builtins" | "__builtin__", "bytearray") => Self::ByteArray,
            ("builtins" | "__builtin__", "bytes") => Self::Bytes,
            ("_codecs" | "codecs", "encode") => Self::Encode,
            _ => return Err(PickleError::Global(shortened(&format!("{module}.{name}")))),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::DateTime => "datetime.datetime class",
            Self::Date => "datetime.date class",
            Self::Timezone => "datetime.timezone class",
            Self::Timedelta => "datetime.timedelta class",
            Self::Set => "set class",
            Self::FrozenSet => "frozenset class",
            Self::ByteArray => "bytearray class",
            Self::Bytes => "bytes class",
            Self::Encode => "codecs.encode function",
        }
    }
}

/// `name` cut to 200 characters, so that an error never carries a huge input along.
fn shortened(name: &str) -> String {
    name.chars().take(200).collect()
}

/// How much a decoding may still materialise, in bytes (see [`Budget::for_input`]).
pub(super) struct Budget(usize);

/// What one value costs the budget besides its payload.
const NODE_COST: usize = 32;

impl Budget {
    /// 1 MiB plus 64 times the input: a pickle without shared references never comes near it
    /// (each object takes at least one opcode byte), so everything that decodes also decodes
    /// again after encoding.
    pub(super) fn for_input(len: usize) -> Self {
        Budget((1 << 20) + len.saturating_mul(64))
    }

    pub(super) fn spend(&mut self, bytes: usize) -> Result<(), PickleError> {
        self.0 = self.0.checked_sub(bytes).ok_or(PickleError::TooLarge)?;
        Ok(())
    }
}

/// Evaluates `global(*args)`, checking the arguments as the real callable would.
pub(super) fn call(objs: &[Obj], global: Global, args: &[Id]) -> Result<Obj, PickleError> {
    let arg = |i: usize| args.get(i).map(|&id| &objs[id]);
    let bad = || PickleError::Malformed("a known global called with arguments it does not take");
    let value = match (global, args.len()) {
        (Global::DateTime, 1 | 2) => {
            let offset = match arg(1) {
                None | Some(Obj::Value(Value::Nil)) => None,
                Some(Obj::Timezone(offset)) => Some(*offset),
                Some(_) => return Err(bad()),
            };
            time::datetime(binary(arg(0)).ok_or_else(bad)?, offset)?
        }
        (Global::Date, 1) => time::date(binary(arg(0)).ok_or_else(bad)?)?,
        (Global::Timedelta, 0..=3) => return timedelta(args.iter().map(|&id| &objs[id])),
        (Global::Timezone, 1 | 2) => return timezone(arg(0), arg(1)),
        (Global::Set | Global::FrozenSet, 0 | 1) => {
            let items = match arg(0) {
                None => Vec::new(),
                Some(Obj::List(items) | Obj::Tuple(items) | Obj::Set { items, .. }) => {
                    items.clone()
                }
                Some(_) => return Err(bad()),
            };
            let frozen = global == Global::FrozenSet;
            return Ok(Obj::Set { items, frozen });
        }
        (Global::Bytes | Global::ByteArray, 0) => Value::Binary(Vec::new()),
        (Global::Bytes | Global::ByteArray, 1) => {
            Value::Binary(binary(arg(0)).ok_or_else(bad)?.to_vec())
        }
        (Global::ByteArray | Global::Encode, 1 | 2) => Value::Binary(encode(
            text(arg(0)).ok_or_else(bad)?,
            arg(1).map(|a| text(Some(a))),
        )?),
        _ => return Err(bad()),
    };
    Ok(Obj::Value(value))
}

fn binary(obj: Option<&Obj>) -> Option<&[u8]> {
    match obj {
        Some(Obj::Value(Value::Binary(bytes))) => Some(bytes),
        _ => None,
    }
}

fn text(obj: Option<&Obj>) -> Option<&str> {
    match obj {
        Some(Obj::Value(Value::String(s))) => s.as_str(),
        _ => None,
    }
}

/// `codecs.encode(text, encoding)` for the encodings pickles use: Latin-1 (protocols 0 to 2
/// write bytes as their Latin-1 text) and UTF-8 (the default).
fn encode(text: &str, encoding: Option<Option<&str>>) -> Result<Vec<u8>, PickleError> {
    match encoding {
        None | Some(Some("utf-8" | "utf8")) => Ok(text.as_bytes().to_vec()),
        Some(Some("latin1" | "latin-1" | "iso-8859-1")) => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or(PickleError::Malformed(
                "a latin1 bytes text holds a character above U+00FF",
            )),
        _ => Err(PickleError::Malformed(
            "bytes in an encoding other than latin1 or utf-8",
        )),
    }
}

/// `timedelta(days, seconds, microseconds)` in microseconds.
fn timedelta<'a>(args: impl Iterator<Item = &'a Obj>) -> Result<Obj, PickleError> {
    const SCALE: [i64; 3] = [86_400_000_000, 1_000_000, 1];
    let mut total: i64 = 0;
    for (obj, scale) in args.zip(SCALE) {
        let Obj::Value(Value::Integer(n)) = obj else {
            return Err(PickleError::Malformed(
                "a timedelta of something else than ints",
            ));
        };
        total = n
            .as_i64()
            .and_then(|n| n.checked_mul(scale))
            .and_then(|n| n.checked_add(total))
            .ok_or(PickleError::Malformed("a timedelta out of range"))?;
    }
    Ok(Obj::Timedelta(total))
}

/// `timezone(offset[, name])`: Python requires the offset strictly within a day.
fn timezone(offset: Option<&Obj>, name: Option<&Obj>) -> Result<Obj, PickleError> {
    match (offset, name) {
        (Some(&Obj::Timedelta(us)), None | Some(Obj::Value(Value::String(_))))
            if us.unsigned_abs() < 86_400_000_000 =>
        {
            Ok(Obj::Timezone(us))
        }
        _ => Err(PickleError::Malformed("a timezone without a valid offset")),
    }
}

/// Turns the arena into session values, each object visited within the [`Budget`].
pub(super) struct Builder<'a> {
    objs: &'a [Obj],
    budget: Budget,
    /// The containers being converted (a container met again inside itself is a cycle).
    open: Vec<bool>,
}

impl<'a> Builder<'a> {
    pub(super) fn new(objs: &'a [Obj], budget: Budget) -> Self {
        let open = vec![false; objs.len()];
        Builder { objs, budget, open }
    }

    /// The session of the pickle's result `root`: a dict with distinct `str` keys.
    pub(super) fn session(mut self, root: Id) -> Result<SessionMap, PickleError> {
        let Obj::Dict(pairs) = &self.objs[root] else {
            return Err(PickleError::NotADict);
        };
        self.open[root] = true;
        let mut map = SessionMap::with_capacity_and_hasher(pairs.len(), SessionHasher::default());
        for &(key, value) in pairs {
            let Obj::Value(Value::String(key)) = &self.objs[key] else {
                return Err(PickleError::NonStringKey);
            };
            let key = key.as_str().ok_or(PickleError::NonStringKey)?.to_owned();
            let value = self.value(value, 1, false)?;
            match map.entry(key) {
                Entry::Occupied(e) => return Err(PickleError::DuplicateKey(e.key().clone())),
                Entry::Vacant(e) => e.insert(value),
            };
        }
        Ok(map)
    }

    /// The value of the pickle's result `root`, whatever its type.
    pub(super) fn top_value(mut self, root: Id) -> Result<Value, PickleError> {
        self.value(root, 0, false)
    }

    /// The value of object `id`, found inside `depth` containers; `hashable` for dict keys and
    /// set elements, which Python refuses to be lists, dicts or sets.
    fn value(&mut self, id: Id, depth: usize, hashable: bool) -> Result<Value, PickleError> {
        let objs = self.objs;
        let (items, pairs) = match &objs[id] {
            Obj::Value(value) => return self.leaf(value),
            Obj::Global(global) => return Err(PickleError::NotAValue(global.name())),
            Obj::Timedelta(_) => return Err(PickleError::NotAValue("datetime.timedelta")),
            Obj::Timezone(_) => return Err(PickleError::NotAValue("datetime.timezone")),
            Obj::Tuple(items)
            | Obj::Set {
                items,
                frozen: true,
            } => (items.as_slice(), None),
            _ if hashable => return Err(PickleError::Unhashable),
            Obj::List(items) | Obj::Set { items, .. } => (items.as_slice(), None),
            Obj::Dict(pairs) => (&[][..], Some(pairs.as_slice())),
        };
        let depth = nested(depth)?;
        self.enter(id)?;
        let element_hashable = hashable || matches!(objs[id], Obj::Set { .. });
        let value = match pairs {
            None => Value::Array(self.values(items, depth, element_hashable)?),
            Some(pairs) => Value::Map(self.pairs(pairs, depth)?),
        };
        self.open[id] = false;
        Ok(value)
    }

    fn values(
        &mut self,
        items: &[Id],
        depth: usize,
        hashable: bool,
    ) -> Result<Vec<Value>, PickleError> {
        items
            .iter()
            .map(|&item| self.value(item, depth, hashable))
            .collect()
    }

    fn pairs(
        &mut self,
        pairs: &[(Id, Id)],
        depth: usize,
    ) -> Result<Vec<(Value, Value)>, PickleError> {
        let mut out = Vec::with_capacity(pairs.len());
        for &(key, value) in pairs {
            out.push((
                self.value(key, depth, true)?,
                self.value(value, depth, false)?,
            ));
        }
        Ok(out)
    }

    /// Marks container `id` as being converted, charging it to the budget.
    fn enter(&mut self, id: Id) -> Result<(), PickleError> {
        if std::mem::replace(&mut self.open[id], true) {
            return Err(PickleError::Recursive);
        }
        self.budget.spend(NODE_COST)
    }

    /// A copy of a leaf value, charged to the budget.
    fn leaf(&mut self, value: &Value) -> Result<Value, PickleError> {
        let payload = match value {
            Value::String(s) => s.as_bytes().len(),
            Value::Binary(b) | Value::Ext(_, b) => b.len(),
            _ => 0,
        };
        self.budget.spend(NODE_COST + payload)?;
        Ok(value.clone())
    }
}
