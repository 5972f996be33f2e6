//! Timing checks for networked stores: a server that accepts and never answers, and a port where
//! nothing listens. Every store operation must fail within its documented bound, with
//! [`ErrorKind::Unavailable`], instead of pinning a worker thread.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Store, after};
use crate::store::ConnectionSettings;
use crate::{ErrorKind, Result};

/// A TCP server on loopback that accepts every connection, keeps it open and never sends a
/// byte: what a hung database looks like from the client. Stopped when dropped.
///
/// ```
/// use std::io::Read;
/// use std::time::Duration;
/// use server_session::store::conformance::SilentServer;
///
/// let server = SilentServer::start();
/// let mut conn = std::net::TcpStream::connect(server.addr())?;
/// conn.set_read_timeout(Some(Duration::from_millis(50)))?;
/// assert!(conn.read(&mut [0; 1]).is_err(), "no byte ever comes");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SilentServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    /// Binds `127.0.0.1` on a free port and starts accepting.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                held.extend(conn.ok());
            }
        });
        Self {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// How many connections it has accepted so far.
    ///
    /// ```
    /// let server = server_session::store::conformance::SilentServer::start();
    /// let _conn = std::net::TcpStream::connect(server.addr())?;
    /// std::thread::sleep(std::time::Duration::from_millis(50));
    /// assert_eq!(server.connections(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _wake = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback address where nothing listens (a port just bound and released), so a connection
/// attempt is refused at once.
///
/// ```
/// let addr = server_session::store::conformance::closed_port();
/// assert!(std::net::TcpStream::connect(addr).is_err());
/// ```
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("the bound address")
}

/// Asserts that building a store (with its start-up check on) against a silent server and
/// against a closed port fails within `limit`, with [`ErrorKind::Unavailable`].
///
/// `build` gets the address to point the store at.
///
/// ```
/// use std::time::Duration;
/// use server_session::{Error, ErrorKind, StoreError};
/// use server_session::store::{conformance, MemoryStore};
///
/// // A "store" whose start-up check connects with a 100 ms timeout.
/// let build = |addr| -> server_session::Result<MemoryStore> {
///     let probe = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100))
///         .and_then(|conn| {
///             conn.set_read_timeout(Some(Duration::from_millis(100)))?;
///             std::io::Read::read(&mut &conn, &mut [0; 1])
///         });
///     match probe {
///         Ok(0) => Err(StoreError::message("x", ErrorKind::Unavailable, "closed").into()),
///         Ok(_) => Ok(MemoryStore::new()),
///         Err(e) => Err(StoreError::new("x", ErrorKind::of_io(&e), e).into()),
///     }
/// };
/// conformance::build_fails_within(build, Duration::from_millis(500));
/// ```
pub fn build_fails_within<S>(build: impl Fn(SocketAddr) -> Result<S>, limit: Duration) {
    let silent = SilentServer::start();
    for (what, addr) in [
        ("silent server", silent.addr()),
        ("closed port", closed_port()),
    ] {
        let start = Instant::now();
        let outcome = build(addr);
        let elapsed = start.elapsed();
        let Err(err) = outcome else {
            panic!("build against a {what} succeeded");
        };
        assert_eq!(
            err.kind(),
            ErrorKind::Unavailable,
            "{what}: {err} ({err:?})"
        );
        assert!(
            elapsed <= limit,
            "build against a {what} took {elapsed:?} (limit {limit:?})"
        );
    }
}

/// Asserts that every [`Store`] operation of a store built without its start-up check fails
/// within `limit`, with [`ErrorKind::Unavailable`], against a silent server and a closed port.
///
/// `build_lazy` gets the address to point the store at and must not touch the network.
///
/// ```
/// use std::time::Duration;
/// use server_session::store::conformance;
/// # use server_session::store::MemoryStore;
/// // For a real store: |addr| RedisStore::builder().url(format!("redis://{addr}"))
/// //     .startup_check(false).build()
/// # let _ = |limit: Duration| conformance::operations_fail_within(|_| Ok(MemoryStore::new()), limit);
/// ```
pub fn operations_fail_within<S: Store>(
    build_lazy: impl Fn(SocketAddr) -> Result<S>,
    limit: Duration,
) {
    let silent = SilentServer::start();
    for (what, addr) in [
        ("silent server", silent.addr()),
        ("closed port", closed_port()),
    ] {
        let store = match build_lazy(addr) {
            Ok(store) => store,
            Err(err) => panic!("a lazy build against a {what} failed: {err}"),
        };
        for (name, op) in operations(&store) {
            let start = Instant::now();
            let outcome = op();
            let elapsed = start.elapsed();
            let Err(err) = outcome else {
                panic!("{name} against a {what} succeeded");
            };
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{name}, {what}: {err}");
            assert!(
                elapsed <= limit,
                "{name} against a {what} took {elapsed:?} (limit {limit:?})"
            );
        }
    }
}

type Operation<'a> = (&'static str, Box<dyn Fn() -> Result<()> + 'a>);

/// Every store operation, as a named closure that drops its result value.
fn operations<S: Store>(store: &S) -> Vec<Operation<'_>> {
    const KEY: &str = "conformance:faults:key";
    let expires = || after(Duration::from_secs(60));
    vec![
        ("load", Box::new(move || store.load(KEY).map(drop))),
        (
            "create",
            Box::new(move || store.create(KEY, b"v", expires()).map(drop)),
        ),
        (
            "save",
            Box::new(move || store.save(KEY, b"v", expires()).map(drop)),
        ),
        (
            "touch",
            Box::new(move || store.touch(KEY, expires()).map(drop)),
        ),
        ("delete", Box::new(move || store.delete(KEY))),
        (
            "load_and_touch",
            Box::new(move || store.load_and_touch(KEY, expires()).map(drop)),
        ),
    ]
}

/// Settings whose three timeouts are all `timeout`, with two connections: what the timing
/// checks point a store at.
///
/// ```
/// use std::time::Duration;
/// let settings = server_session::store::conformance::fault_settings(Duration::from_millis(200));
/// assert_eq!(settings.io_timeout, Duration::from_millis(200));
/// ```
pub fn fault_settings(timeout: Duration) -> ConnectionSettings {
    ConnectionSettings {
        connect_timeout: timeout,
        io_timeout: timeout,
        checkout_timeout: timeout,
        max_connections: 2,
    }
}

/// [`build_fails_within`] `build_limit` and [`operations_fail_within`] `operation_limit` in
/// one: `build(addr, startup_check)` builds the store with its start-up check on or off.
pub fn every_wait_bounded<S: Store>(
    build: impl Fn(SocketAddr, bool) -> Result<S>,
    build_limit: Duration,
    operation_limit: Duration,
) {
    build_fails_within(|addr| build(addr, true), build_limit);
    operations_fail_within(|addr| build(addr, false), operation_limit);
}

/// Asserts that building a store (with its start-up check on) against a silent server fails
/// with `"<store> <addr>: <silent_cause>"`, and against a closed port with
/// `"<store> <addr>: connection refused"`: the server and the cause, in an operator's words.
///
/// ```
/// use server_session::{store::conformance, store::MemoryStore, ErrorKind, StoreError};
///
/// // A "store" whose start-up check connects, then waits 50 ms for a greeting.
/// let build = |addr: std::net::SocketAddr| -> server_session::Result<MemoryStore> {
///     let cause = match std::net::TcpStream::connect(addr) {
///         Ok(_) => "no greeting",
///         Err(_) => "connection refused",
///     };
///     let error = StoreError::message("x", ErrorKind::Unavailable, cause);
///     Err(error.with_target(addr.to_string()).into())
/// };
/// conformance::unreachable_servers_are_named(build, "x", "no greeting");
/// ```
pub fn unreachable_servers_are_named<S>(
    build: impl Fn(SocketAddr) -> Result<S>,
    store: &str,
    silent_cause: &str,
) {
    let silent = SilentServer::start();
    for (addr, cause) in [
        (silent.addr(), silent_cause),
        (closed_port(), "connection refused"),
    ] {
        match build(addr) {
            Ok(_) => panic!("a build against {addr} succeeded"),
            Err(err) => assert_eq!(err.to_string(), format!("{store} {addr}: {cause}")),
        }
    }
}
