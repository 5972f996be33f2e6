//! The connections of one memcached server: at most `max_connections` open in total, idle or
//! busy, and a bounded wait for one when all are busy.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::server::Conn;

/// The idle connections and how many are open in total (idle, busy, or being opened).
#[derive(Debug)]
struct State {
    idle: Vec<Conn>,
    open: usize,
}

/// A pool that never opens more than `max` connections and never waits longer than `wait`
/// for one.
#[derive(Debug)]
pub(super) struct Pool {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
    wait: Duration,
}

/// The right to use one of the pool's connections: an idle one, or a slot to open a new one
/// in. Dropped without [`keep`](Self::keep), the connection is closed and the slot freed.
#[derive(Debug)]
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    /// The connection; `None` until one is opened in a new slot.
    pub(super) conn: Option<Conn>,
    keep: bool,
}

impl Pool {
    pub(super) fn new(max: usize, wait: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            max,
            wait,
        }
    }

    /// The most connections open at once, and how long a checkout waits for one.
    pub(super) fn limits(&self) -> (usize, Duration) {
        (self.max, self.wait)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a single step: a panic cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle connection, else a slot for a new one while fewer than `max` are open, else
    /// whichever of the two frees first within the checkout wait; `None` after that wait.
    pub(super) fn checkout(&self) -> Option<Lease<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Some(self.lease(Some(conn)));
            }
            if state.open < self.max {
                state.open += 1;
                return Some(self.lease(None));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = match self.freed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn lease(&self, conn: Option<Conn>) -> Lease<'_> {
        Lease {
            pool: self,
            conn,
            keep: false,
        }
    }

    /// Takes back a leased slot: its connection goes idle, or the slot is freed.
    fn give_back(&self, conn: Option<Conn>) {
        let mut state = self.lock();
        match conn {
            Some(conn) => state.idle.push(conn),
            None => state.open -= 1,
        }
        drop(state);
        self.freed.notify_one();
    }
}

impl Lease<'_> {
    /// Returns the connection to the pool for the next operation.
    pub(super) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take().filter(|_| self.keep);
        self.pool.give_back(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_max_and_the_wait_is_bounded() {
        let pool = Pool::new(2, Duration::from_millis(100));
        let (a, b) = (pool.checkout().unwrap(), pool.checkout().unwrap());
        let start = Instant::now();
        assert!(pool.checkout().is_none(), "a third connection");
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_millis(400), "{waited:?}");
        drop(a);
        let c = pool
            .checkout()
            .expect("a slot freed by a closed connection");
        drop((b, c));
        assert_eq!(pool.lock().open, 0);
    }

    #[test]
    fn a_waiting_checkout_gets_the_slot_freed_meanwhile() {
        let pool = Pool::new(1, Duration::from_secs(5));
        let held = pool.checkout().unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| pool.checkout().map(drop).is_some());
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            assert!(waiter.join().unwrap());
        });
    }
}
