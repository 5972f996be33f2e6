//! Whether a memcached server is in use, or left out for a back-off after it could not be
//! reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One server's health: up, or down until an instant, after which exactly one request tries
/// it again (the probe) while the others keep leaving it out.
#[derive(Debug)]
pub(super) struct Health {
    /// Milliseconds after `origin` until which the server is left out; 0 while it is up.
    down_until: AtomicU64,
    origin: Instant,
}

impl Health {
    pub(super) fn new() -> Self {
        Self {
            down_until: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Whether a request may use the server now. When its back-off has passed, the first
    /// caller gets `true` and pushes the back-off out by `backoff` for everyone else, so a dead
    /// server costs one failed attempt per back-off, not one per request.
    pub(super) fn usable(&self, backoff: Duration) -> bool {
        let until = self.down_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= until
            && self
                .down_until
                .compare_exchange(
                    until,
                    now + millis(backoff),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Leaves the server out for `backoff`; true when it was up until now.
    pub(super) fn mark_down(&self, backoff: Duration) -> bool {
        let until = self.now_ms() + millis(backoff);
        self.down_until.swap(until, Ordering::AcqRel) == 0
    }

    /// Puts the server back in use; true when it was down until now.
    pub(super) fn mark_up(&self) -> bool {
        self.down_until.load(Ordering::Acquire) != 0
            && self.down_until.swap(0, Ordering::AcqRel) != 0
    }

    /// Milliseconds since `origin`, at least 1 so that a deadline is never 0 ("up").
    fn now_ms(&self) -> u64 {
        millis(self.origin.elapsed()).saturating_add(1)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_server_is_left_out_then_probed_once() {
        let health = Health::new();
        let backoff = Duration::from_millis(50);
        assert!(health.usable(backoff), "a new server is up");
        assert!(
            health.mark_down(backoff),
            "first mark_down reports the change"
        );
        assert!(!health.mark_down(backoff), "already down");
        assert!(!health.usable(backoff), "left out during the back-off");
        std::thread::sleep(Duration::from_millis(60));
        assert!(health.usable(backoff), "one probe after the back-off");
        assert!(!health.usable(backoff), "only one probe");
        assert!(health.mark_up(), "the probe succeeded");
        assert!(!health.mark_up(), "already up");
        assert!(health.usable(backoff));
    }
}
