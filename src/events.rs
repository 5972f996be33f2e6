//! What happens to sessions, for metrics and security monitoring: [`SessionEvent`], the
//! [`SessionEvents`] hook a manager reports them to, and [`SessionMetrics`], a ready hook
//! that counts them and renders the counts for Prometheus.
//!
//! A manager has no hook unless one is set with
//! [`SessionManager::with_events`](crate::SessionManager::with_events): reporting then costs
//! one predictable branch per event. Independently of any hook, forged and malformed cookies
//! and unknown session ids are logged at warn level, at most once a second per kind (with the
//! number left out since), so a flood of them cannot flood the log.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Something that happened to a session; see each variant for where it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A stored session was read.
    Loaded,
    /// A cookie named a session that is not in the store (unknown, expired or ended): a
    /// fresh session starts.
    UnknownId,
    /// A session cookie's signature did not verify (forged, or signed with a retired key).
    BadSignature,
    /// A session cookie's value is not a session id.
    MalformedCookie,
    /// A stored session did not decode (corrupt, or in a format this codec does not read).
    Undecodable,
    /// A commit merged its changes with those another request committed meanwhile.
    Merged,
    /// A commit gave up merging ([`Error::Conflict`](crate::Error::Conflict)).
    Conflict,
    /// A store operation failed: the request got the error, or its refresh was skipped.
    StoreError,
    /// A [`Sweeper`](crate::store::Sweeper) round removed this many expired entries.
    Swept(usize),
}

impl SessionEvent {
    /// Every kind, in the order [`SessionMetrics`] lists them (`Swept` with a count of 0).
    pub const ALL: [SessionEvent; 9] = [
        SessionEvent::Loaded,
        SessionEvent::UnknownId,
        SessionEvent::BadSignature,
        SessionEvent::MalformedCookie,
        SessionEvent::Undecodable,
        SessionEvent::Merged,
        SessionEvent::Conflict,
        SessionEvent::StoreError,
        SessionEvent::Swept(0),
    ];

    /// The kind's name in metrics: `loaded`, `unknown_id`, ... `swept`.
    ///
    /// ```
    /// assert_eq!(server_session::SessionEvent::BadSignature.name(), "bad_signature");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            SessionEvent::Loaded => "loaded",
            SessionEvent::UnknownId => "unknown_id",
            SessionEvent::BadSignature => "bad_signature",
            SessionEvent::MalformedCookie => "malformed_cookie",
            SessionEvent::Undecodable => "undecodable",
            SessionEvent::Merged => "merged",
            SessionEvent::Conflict => "conflict",
            SessionEvent::StoreError => "store_error",
            SessionEvent::Swept(_) => "swept",
        }
    }

    /// The kind's position in [`ALL`](Self::ALL).
    fn index(self) -> usize {
        match self {
            SessionEvent::Loaded => 0,
            SessionEvent::UnknownId => 1,
            SessionEvent::BadSignature => 2,
            SessionEvent::MalformedCookie => 3,
            SessionEvent::Undecodable => 4,
            SessionEvent::Merged => 5,
            SessionEvent::Conflict => 6,
            SessionEvent::StoreError => 7,
            SessionEvent::Swept(_) => 8,
        }
    }
}

/// Receives every [`SessionEvent`] of a manager (and of a [`Sweeper`](crate::store::Sweeper)
/// given it), on the thread of the request. Keep it quick: it runs inside the request.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use server_session::{SessionEvent, SessionEvents};
///
/// #[derive(Default)]
/// struct ForgedCookies(AtomicUsize);
///
/// impl SessionEvents for ForgedCookies {
///     fn on_event(&self, event: SessionEvent) {
///         if event == SessionEvent::BadSignature {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// let forged = ForgedCookies::default();
/// forged.on_event(SessionEvent::BadSignature);
/// assert_eq!(forged.0.load(Ordering::Relaxed), 1);
/// ```
pub trait SessionEvents: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: SessionEvent);
}

impl<T: SessionEvents + ?Sized> SessionEvents for Arc<T> {
    fn on_event(&self, event: SessionEvent) {
        (**self).on_event(event);
    }
}

/// A [`SessionEvents`] hook that counts every kind of event in atomic counters (`Swept`
/// adds its count), and renders them in the Prometheus text format. Share it through an
/// `Arc`: one clone for the manager, one for the `/metrics` route.
///
/// ```
/// use std::sync::Arc;
/// use server_session::{Config, SessionEvent, SessionManager, SessionMetrics, store::MemoryStore};
///
/// let metrics = Arc::new(SessionMetrics::default());
/// let manager = SessionManager::new(MemoryStore::new(), Config::default())?
///     .with_events(Arc::clone(&metrics));
/// manager.open(Some("session=forged.cookie")).get::<u32>("n")?;
/// assert_eq!(metrics.count(SessionEvent::MalformedCookie), 1);
/// assert!(metrics
///     .prometheus()
///     .contains("server_session_events_total{event=\"malformed_cookie\"} 1\n"));
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct SessionMetrics {
    counts: [AtomicU64; SessionEvent::ALL.len()],
}

impl SessionMetrics {
    /// How many events of `kind` happened (for `Swept`, how many entries were swept).
    pub fn count(&self, kind: SessionEvent) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// Every counter as one Prometheus counter family, `server_session_events_total`, with an
    /// `event` label per kind.
    pub fn prometheus(&self) -> String {
        let mut text = String::from(
            "# HELP server_session_events_total Session events by kind.\n\
             # TYPE server_session_events_total counter\n",
        );
        for kind in SessionEvent::ALL {
            let (name, count) = (kind.name(), self.count(kind));
            let _ = writeln!(
                text,
                "server_session_events_total{{event=\"{name}\"}} {count}"
            );
        }
        text
    }
}

impl SessionEvents for SessionMetrics {
    fn on_event(&self, event: SessionEvent) {
        let add = match event {
            SessionEvent::Swept(n) => u64::try_from(n).unwrap_or(u64::MAX),
            _ => 1,
        };
        self.counts[event.index()].fetch_add(add, Ordering::Relaxed);
    }
}

/// At most one log line a second, counting the lines left out.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    /// The Unix second from which the next line may be logged.
    next_second: AtomicU64,
    /// Lines left out since the last one logged.
    suppressed: AtomicU64,
}

impl LogLimit {
    /// `Some(lines left out since the last)` when a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        self.allow_at(now.map_or(0, |d| d.as_secs()))
    }

    /// [`allow`](Self::allow) at the Unix second `now`.
    fn allow_at(&self, now: u64) -> Option<u64> {
        let next = self.next_second.load(Ordering::Relaxed);
        let claimed = now >= next
            && (self.next_second)
                .compare_exchange(next, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if claimed {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The warn-level lines about suspicious cookies, each kind limited on its own.
#[derive(Debug, Default)]
pub(crate) struct SuspiciousLog {
    bad_signature: LogLimit,
    malformed: LogLimit,
    unknown_id: LogLimit,
}

impl SuspiciousLog {
    /// Logs `event` at warn level when its kind is one to watch and its limit allows.
    pub(crate) fn note(&self, event: SessionEvent) {
        let (limit, what) = match event {
            SessionEvent::BadSignature => {
                (&self.bad_signature, "a session cookie with a bad signature")
            }
            SessionEvent::MalformedCookie => (&self.malformed, "a malformed session cookie"),
            SessionEvent::UnknownId => (&self.unknown_id, "a cookie naming no live session"),
            _ => return,
        };
        if let Some(left_out) = limit.allow() {
            log::warn!("{what} (and {left_out} more like it left out of the log since the last)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_once_a_second() {
        let limit = LogLimit::default();
        assert_eq!(limit.allow_at(100), Some(0));
        for _ in 0..1000 {
            assert_eq!(limit.allow_at(100), None);
        }
        assert_eq!(
            limit.allow_at(101),
            Some(1000),
            "the next line counts the ones left out"
        );
        assert_eq!(limit.allow_at(101), None);
        assert!(limit.allow().is_some(), "the clock is past second 102");
    }

    #[test]
    fn every_kind_has_its_own_counter_and_name() {
        let metrics = SessionMetrics::default();
        for (i, kind) in SessionEvent::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
            for _ in 0..=i {
                metrics.on_event(kind);
            }
        }
        metrics.on_event(SessionEvent::Swept(10));
        for (i, kind) in SessionEvent::ALL.into_iter().enumerate() {
            let expected = if kind.name() == "swept" {
                10
            } else {
                i as u64 + 1
            };
            assert_eq!(metrics.count(kind), expected, "{}", kind.name());
        }
        let names: std::collections::HashSet<_> =
            SessionEvent::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), SessionEvent::ALL.len());
    }
}
