//! A per-thread spare buffer for encoding: a commit (or an `insert`) writes into the buffer
//! the previous one on the same thread left behind, instead of allocating a fresh one.

use std::cell::Cell;
use std::ops::Deref;

/// The largest buffer kept for the next use: a session bigger than this gets a fresh one.
const MAX_KEPT: usize = 64 * 1024;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer taken from this thread's spare (empty when another one holds it); given back
/// when dropped.
pub(crate) struct Scratch(Vec<u8>);

impl Scratch {
    /// The thread's spare buffer, emptied, or a new one.
    pub(crate) fn take() -> Self {
        let mut buffer = SPARE.try_with(Cell::take).unwrap_or_default();
        buffer.clear();
        Self(buffer)
    }

    /// The buffer, to write into.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Deref for Scratch {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.capacity() <= MAX_KEPT {
            let buffer = std::mem::take(&mut self.0);
            let _ = SPARE.try_with(|spare| spare.set(buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_reused_until_it_grows_too_big() {
        let mut first = Scratch::take();
        first.buffer().extend_from_slice(b"session");
        let address = first.as_ptr();
        drop(first);
        let mut second = Scratch::take();
        assert!(second.is_empty(), "handed out empty");
        second.buffer().push(1);
        assert_eq!(second.as_ptr(), address, "the same allocation");
        let third = Scratch::take();
        assert!(
            third.0.capacity() == 0,
            "the spare is in use: a new, empty one"
        );
        drop(third);
        second.buffer().resize(MAX_KEPT + 1, 0);
        drop(second);
        assert_eq!(Scratch::take().0.capacity(), 0, "too big to keep");
    }
}
