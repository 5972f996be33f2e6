//! The pickle machine: runs the data opcodes of protocols 0 to 5 over a stack, a mark stack and
//! a memo, building objects in an arena ([`build`](super::build)). It never imports or calls
//! anything; the globals it knows are evaluated by [`call`].

use std::collections::HashMap;

use rmpv::Value;

use super::build::{Budget, Builder, Global, Id, Obj, call};
use super::op::*;
use super::{PickleError, text};
use crate::codec::SessionMap;

/// The most objects the memo may hold (CPython writes one entry per object it pickles).
const MAX_MEMO: usize = 1 << 20;

/// The session pickled in `bytes`.
pub(super) fn session(bytes: &[u8]) -> Result<SessionMap, PickleError> {
    let mut machine = Machine::new(bytes);
    let root = machine.run()?;
    Builder::new(&machine.objs, machine.budget).session(root)
}

/// Whatever value is pickled in `bytes`, not only a session dict (cachelib's file count is an
/// `int`).
pub(super) fn value(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut machine = Machine::new(bytes);
    let root = machine.run()?;
    Builder::new(&machine.objs, machine.budget).top_value(root)
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    /// The stack length at each open `MARK`; nothing below the last one may be popped.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    budget: Budget,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8]) -> Self {
        Machine {
            input,
            pos: 0,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            budget: Budget::for_input(input.len()),
        }
    }

    /// Runs the opcodes up to `STOP` and returns the one object left on the stack.
    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            match self.byte()? {
                STOP => return self.finish(),
                op => self.step(op)?,
            }
        }
    }

    fn finish(&self) -> Result<Id, PickleError> {
        if self.pos < self.input.len() {
            return Err(PickleError::TrailingBytes(self.input.len() - self.pos));
        }
        match (self.stack.as_slice(), self.marks.is_empty()) {
            ([root], true) => Ok(*root),
            _ => Err(PickleError::Malformed("STOP leaves other than one object")),
        }
    }

    fn step(&mut self, op: u8) -> Result<(), PickleError> {
        match op {
            MARK => self.marks.push(self.stack.len()),
            POP => self.pop_any()?,
            POP_MARK => drop(self.pop_mark()?),
            DUP => self.stack.push(self.top()?),
            PUT | BINPUT | LONG_BINPUT | MEMOIZE => self.put(op)?,
            GET | BINGET | LONG_BINGET => self.get(op)?,
            GLOBAL => {
                let module = String::from_utf8_lossy(self.line()?);
                let name = String::from_utf8_lossy(self.line()?);
                self.push(Obj::Global(Global::resolve(&module, &name)?));
            }
            STACK_GLOBAL => {
                let name = self.pop_text()?;
                let module = self.pop_text()?;
                self.push(Obj::Global(Global::resolve(&module, &name)?));
            }
            REDUCE => self.reduce()?,
            APPEND | APPENDS | SETITEM | SETITEMS | ADDITEMS => self.add_items(op)?,
            PROTO => {
                let protocol = self.byte()?;
                if protocol > HIGHEST_PROTOCOL {
                    return Err(PickleError::Protocol(protocol));
                }
            }
            // A frame only announces how many bytes follow; they must be there.
            FRAME => {
                let len = u64::from_le_bytes(self.array()?);
                if usize::try_from(len).map_or(true, |len| len > self.input.len() - self.pos) {
                    return Err(PickleError::Truncated);
                }
            }
            _ => {
                let obj = self.object(op)?;
                self.push(obj);
            }
        }
        Ok(())
    }

    /// The new object of `op`: a literal, or a container of the objects above a mark.
    fn object(&mut self, op: u8) -> Result<Obj, PickleError> {
        let value = match op {
            NONE => Value::Nil,
            NEWTRUE => Value::Boolean(true),
            NEWFALSE => Value::Boolean(false),
            INT => match self.line()? {
                b"00" => Value::Boolean(false), // protocol 0 and 1 write bools so
                b"01" => Value::Boolean(true),
                line => text::int_from_decimal(line)?,
            },
            LONG => {
                let line = self.line()?;
                text::int_from_decimal(line.strip_suffix(b"L").unwrap_or(line))?
            }
            BININT => Value::from(i32::from_le_bytes(self.array()?)),
            BININT1 => Value::from(self.byte()?),
            BININT2 => Value::from(u16::from_le_bytes(self.array()?)),
            LONG1 => {
                let len = self.byte()?;
                text::int_from_le(self.take(usize::from(len))?)
            }
            LONG4 => text::int_from_le(self.take_i32_len()?),
            FLOAT => Value::F64(text::float_from_text(self.line()?)?),
            BINFLOAT => Value::F64(f64::from_be_bytes(self.array()?)),
            UNICODE => Value::from(text::raw_unicode_escape(self.line()?)?),
            SHORT_BINUNICODE => {
                let len = self.byte()?;
                utf8(self.take(usize::from(len))?)?
            }
            BINUNICODE => utf8(self.take_u32_len()?)?,
            BINUNICODE8 => utf8(self.take_u64_len()?)?,
            SHORT_BINSTRING => {
                let len = self.byte()?;
                Value::from(text::ascii_string(self.take(usize::from(len))?)?)
            }
            BINSTRING => Value::from(text::ascii_string(self.take_i32_len()?)?),
            SHORT_BINBYTES => {
                let len = self.byte()?;
                Value::Binary(self.take(usize::from(len))?.to_vec())
            }
            BINBYTES => Value::Binary(self.take_u32_len()?.to_vec()),
            BINBYTES8 | BYTEARRAY8 => Value::Binary(self.take_u64_len()?.to_vec()),
            _ => return self.container(op),
        };
        Ok(Obj::Value(value))
    }

    fn container(&mut self, op: u8) -> Result<Obj, PickleError> {
        Ok(match op {
            EMPTY_LIST => Obj::List(Vec::new()),
            EMPTY_DICT => Obj::Dict(Vec::new()),
            EMPTY_TUPLE => Obj::Tuple(Vec::new()),
            EMPTY_SET => Obj::Set {
                items: Vec::new(),
                frozen: false,
            },
            LIST => Obj::List(self.pop_mark()?),
            TUPLE => Obj::Tuple(self.pop_mark()?),
            DICT => Obj::Dict(pairs(self.pop_mark()?)?),
            FROZENSET => Obj::Set {
                items: self.pop_mark()?,
                frozen: true,
            },
            TUPLE1 => Obj::Tuple(self.pop_n(1)?),
            TUPLE2 => Obj::Tuple(self.pop_n(2)?),
            TUPLE3 => Obj::Tuple(self.pop_n(3)?),
            other => {
                return Err(
                    refusal(other).map_or(PickleError::UnknownOpcode(other), PickleError::Refused)
                );
            }
        })
    }

    /// `APPEND(S)`, `SETITEM(S)`, `ADDITEMS`: adds the popped objects to the list, dict or set
    /// below them.
    fn add_items(&mut self, op: u8) -> Result<(), PickleError> {
        let items = match op {
            APPEND => vec![self.pop()?],
            SETITEM => self.pop_n(2)?,
            _ => self.pop_mark()?,
        };
        let target = self.top()?;
        match (op, &mut self.objs[target]) {
            (APPEND | APPENDS, Obj::List(list)) => list.extend(items),
            (SETITEM | SETITEMS, Obj::Dict(dict)) => dict.extend(pairs(items)?),
            (
                ADDITEMS,
                Obj::Set {
                    items: set,
                    frozen: false,
                },
            ) => set.extend(items),
            _ => {
                return Err(PickleError::Malformed(
                    "items added to an object of another type",
                ));
            }
        }
        Ok(())
    }

    /// `REDUCE`: calls a known global with a tuple of arguments.
    fn reduce(&mut self) -> Result<(), PickleError> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Obj::Global(global) = self.objs[callable] else {
            return Err(PickleError::Malformed(
                "REDUCE of something other than a global",
            ));
        };
        let Obj::Tuple(args) = &self.objs[args] else {
            return Err(PickleError::Malformed(
                "REDUCE with arguments that are not a tuple",
            ));
        };
        let obj = call(&self.objs, global, args)?;
        // Calls copy what they are given: charged, so repeated calls cannot take quadratic memory.
        self.budget.spend(match &obj {
            Obj::Set { items, .. } => items.len() * std::mem::size_of::<Id>(),
            Obj::Value(Value::Binary(bytes)) => bytes.len(),
            _ => 0,
        })?;
        self.push(obj);
        Ok(())
    }

    fn put(&mut self, op: u8) -> Result<(), PickleError> {
        let index = match op {
            PUT => self.index_line()?,
            BINPUT => u32::from(self.byte()?),
            LONG_BINPUT => u32::from_le_bytes(self.array()?),
            _ => u32::try_from(self.memo.len()).map_err(|_| PickleError::TooLarge)?, // MEMOIZE
        };
        let top = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(PickleError::TooLarge);
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn get(&mut self, op: u8) -> Result<(), PickleError> {
        let index = match op {
            GET => self.index_line()?,
            BINGET => u32::from(self.byte()?),
            _ => u32::from_le_bytes(self.array()?), // LONG_BINGET
        };
        let id = self.memo.get(&index).copied();
        self.stack
            .push(id.ok_or(PickleError::Malformed("a memo fetch of an empty slot"))?);
        Ok(())
    }

    fn index_line(&mut self) -> Result<u32, PickleError> {
        std::str::from_utf8(self.line()?)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(PickleError::Malformed("a memo index is not a number"))
    }

    // -- the stack ------------------------------------------------------------------------

    fn push(&mut self, obj: Obj) {
        self.stack.push(self.objs.len());
        self.objs.push(obj);
    }

    /// Where the objects of the innermost mark begin.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn top(&self) -> Result<Id, PickleError> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.fence() => Ok(id),
            _ => Err(PickleError::Malformed(
                "an opcode needs an object where there is none",
            )),
        }
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>, PickleError> {
        let start = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&s| s >= self.fence());
        let start = start.ok_or(PickleError::Malformed(
            "an opcode needs more objects than there are",
        ))?;
        Ok(self.stack.split_off(start))
    }

    /// The objects above the innermost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or(PickleError::Malformed("no MARK to pop to"))?;
        Ok(self.stack.split_off(mark))
    }

    /// `POP`: the top object, or the innermost mark when nothing is above it.
    fn pop_any(&mut self) -> Result<(), PickleError> {
        if self.marks.last() == Some(&self.stack.len()) {
            self.marks.pop();
            return Ok(());
        }
        self.pop().map(drop)
    }

    /// A `str` popped for `STACK_GLOBAL`.
    fn pop_text(&mut self) -> Result<String, PickleError> {
        let id = self.pop()?;
        match &self.objs[id] {
            Obj::Value(Value::String(s)) => Ok(s.as_str().unwrap_or_default().to_owned()),
            _ => Err(PickleError::Malformed(
                "STACK_GLOBAL of something other than str",
            )),
        }
    }

    // -- the input ------------------------------------------------------------------------

    /// The next `n` bytes: never more than the input holds, so no length prefix allocates.
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len());
        let bytes = &self.input[self.pos..end.ok_or(PickleError::Truncated)?];
        self.pos += n;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        self.take(N)?.try_into().map_err(|_| PickleError::Truncated)
    }

    /// A text opcode's argument, up to its newline.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.input[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        self.pos += len + 1;
        Ok(&rest[..len])
    }

    fn take_u32_len(&mut self) -> Result<&'a [u8], PickleError> {
        let len = u32::from_le_bytes(self.array()?);
        self.take(usize::try_from(len).map_err(|_| PickleError::Truncated)?)
    }

    fn take_u64_len(&mut self) -> Result<&'a [u8], PickleError> {
        let len = u64::from_le_bytes(self.array()?);
        self.take(usize::try_from(len).map_err(|_| PickleError::Truncated)?)
    }

    /// The payload of `LONG4` and `BINSTRING`, whose length is signed.
    fn take_i32_len(&mut self) -> Result<&'a [u8], PickleError> {
        let len = i32::from_le_bytes(self.array()?);
        let len = usize::try_from(len).map_err(|_| PickleError::Malformed("a negative length"))?;
        self.take(len)
    }
}

fn utf8(bytes: &[u8]) -> Result<Value, PickleError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PickleError::InvalidUtf8)?;
    Ok(Value::from(text))
}

/// `[k1, v1, k2, v2, ..]` as pairs.
fn pairs(items: Vec<Id>) -> Result<Vec<(Id, Id)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(PickleError::Malformed("a dict of an odd number of objects"));
    }
    Ok(items
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .collect())
}
