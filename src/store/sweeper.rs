//! A background thread that sweeps expired entries out of a [`Sweep`] store.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Sweep;
use crate::{Error, Result, SessionEvent, SessionEvents};

/// Sweeps a store every `interval` on a plain thread until stopped or dropped.
///
/// Each round removes expired entries in batches of `batch` until a batch comes back short, so
/// one round never holds a store lock for long. Sweep errors are logged and retried next round.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use server_session::store::{MemoryStore, Sweeper};
///
/// use server_session::store::Store;
/// use std::time::SystemTime;
///
/// let store = Arc::new(MemoryStore::new());
/// store.create("session:abc", b"data", SystemTime::now() + Duration::from_millis(20))?;
/// let sweeper = Sweeper::spawn(store.clone(), Duration::from_millis(10), 1000)?;
/// for _ in 0..500 {
///     if store.is_empty() {
///         break;
///     }
///     std::thread::sleep(Duration::from_millis(10));
/// }
/// assert!(store.is_empty(), "the expired entry was swept");
/// sweeper.stop();
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug)]
pub struct Sweeper {
    stop: Arc<StopFlag>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct StopFlag {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopFlag {
    /// Waits up to `interval`; true when a stop was requested.
    fn wait(&self, interval: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, interval, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        *stopped
    }

    fn request(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }
}

impl Sweeper {
    /// Starts the thread; the first round runs after one `interval`.
    pub fn spawn<S: Sweep + 'static>(
        store: Arc<S>,
        interval: Duration,
        batch: usize,
    ) -> Result<Self> {
        Self::spawn_reporting(store, interval, batch, NoEvents)
    }

    /// [`spawn`](Self::spawn), reporting to `events` each round's
    /// [`SessionEvent::Swept`] count (when it removed anything) and each failed sweep as
    /// [`SessionEvent::StoreError`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use server_session::store::{MemoryStore, Store, Sweeper};
    /// use server_session::{SessionEvent, SessionMetrics};
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// store.create("k", b"v", SystemTime::now() - Duration::from_secs(1))?;
    /// let metrics = Arc::new(SessionMetrics::default());
    /// let sweeper = Sweeper::spawn_reporting(store, Duration::from_millis(10), 100, metrics.clone())?;
    /// std::thread::sleep(Duration::from_millis(200));
    /// sweeper.stop();
    /// assert_eq!(metrics.count(SessionEvent::Swept(0)), 1);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn spawn_reporting<S: Sweep + 'static>(
        store: Arc<S>,
        interval: Duration,
        batch: usize,
        events: impl SessionEvents + 'static,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::Config(
                "the sweeper's batch size must be at least 1".into(),
            ));
        }
        let stop = Arc::new(StopFlag::default());
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("server-session-sweeper".into())
            .spawn(move || {
                while !flag.wait(interval) {
                    sweep_round(store.as_ref(), batch, &flag, &events);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for the current batch to finish.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.request();
        if let Some(thread) = self.thread.take() {
            // The thread only panics if the store panics; nothing is left to clean up then.
            let _ = thread.join();
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn sweep_round<S: Sweep + ?Sized>(
    store: &S,
    batch: usize,
    stop: &StopFlag,
    events: &impl SessionEvents,
) {
    let mut swept = 0;
    loop {
        match store.sweep(batch) {
            Ok(removed) if removed == batch && !stop.wait(Duration::ZERO) => swept += removed,
            Ok(removed) => {
                swept += removed;
                break;
            }
            Err(err) => {
                log::warn!("session sweep failed, retrying next round: {err}");
                events.on_event(SessionEvent::StoreError);
                break;
            }
        }
    }
    if swept > 0 {
        events.on_event(SessionEvent::Swept(swept));
    }
}

/// The hook of a sweeper nobody listens to.
struct NoEvents;

impl SessionEvents for NoEvents {
    fn on_event(&self, _: SessionEvent) {}
}
