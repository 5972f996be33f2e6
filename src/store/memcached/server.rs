//! One memcached server of a [`MemcachedStore`](super::MemcachedStore): its pool of buffered
//! text-protocol connections, its health, and the commands' wire format.

use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::health::Health;
use super::{exptime, MemcachedError, MemcachedStoreBuilder, KEEP_BUFFER, MAX_ITEM, MAX_LINE};
use crate::Error;

/// Why one command on one connection failed; the connection is closed either way.
pub(super) enum Failure {
    /// A socket error.
    Io(io::Error),
    /// An error reply, or a reply that is not memcached's protocol.
    Reply(String),
    /// `SERVER_ERROR object too large for cache`.
    TooLarge(usize),
}

pub(super) type Exchange<T> = std::result::Result<T, Failure>;

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl Failure {
    /// Whether a reused connection was found closed or reset by the peer (a server restart):
    /// the command is then retried once on a fresh connection.
    fn is_stale(&self) -> bool {
        matches!(self, Failure::Io(e) if matches!(e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof | ErrorKind::NotConnected))
    }

    fn into_error(self, server: &str) -> Error {
        let server = server.to_owned();
        Error::from(match self {
            Failure::Io(source) => MemcachedError::Io { server, source },
            Failure::Reply(reply) => MemcachedError::Server { server, reply },
            Failure::TooLarge(len) => MemcachedError::ValueTooLarge { len },
        })
    }
}

/// One server: its address, timeouts and idle connections.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) addr: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
    pool_size: usize,
    idle: Mutex<Vec<Conn>>,
    pub(super) health: Health,
}

/// A failed exchange with one server, and whether the server looks unreachable: no connection
/// could be opened, or a freshly opened one failed with an I/O error.
pub(super) struct Failed {
    pub(super) error: Error,
    pub(super) unreachable: bool,
}

impl Server {
    pub(super) fn new(addr: String, settings: &MemcachedStoreBuilder) -> Self {
        Self {
            addr,
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
            write_timeout: settings.write_timeout,
            pool_size: settings.pool_size,
            idle: Mutex::new(Vec::new()),
            health: Health::new(),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        // The Vec is only pushed to and popped from: a panic cannot leave it inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `command` on an idle connection (or a new one) and returns the connection to the
    /// pool if it succeeded. A stale pooled connection is replaced and the command retried once.
    /// A success puts a server that was left out back in use.
    pub(super) fn exchange<T>(
        &self,
        command: impl Fn(&mut Conn) -> Exchange<T>,
    ) -> std::result::Result<T, Failed> {
        let pooled = self.idle().pop();
        let mut fresh = pooled.is_none();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.dial()?,
        };
        let mut result = command(&mut conn);
        if !fresh && result.as_ref().err().is_some_and(Failure::is_stale) {
            (conn, fresh) = (self.dial()?, true);
            result = command(&mut conn);
        }
        match result {
            Ok(value) => {
                self.put_back(conn);
                if self.health.mark_up() {
                    log::info!("memcached server {} answers again: back in use", self.addr);
                }
                Ok(value)
            }
            Err(failure) => Err(Failed {
                unreachable: fresh && matches!(failure, Failure::Io(_)),
                error: failure.into_error(&self.addr),
            }),
        }
    }

    /// Leaves this server out for `backoff` after `error`.
    pub(super) fn leave_out(&self, backoff: Duration, error: &Error) {
        if self.health.mark_down(backoff) {
            log::warn!(
                "memcached server {} unreachable ({error}): its keys go to other servers for {backoff:?}",
                self.addr
            );
        }
    }

    fn put_back(&self, mut conn: Conn) {
        conn.out.clear();
        conn.out.shrink_to(KEEP_BUFFER);
        let mut idle = self.idle();
        if idle.len() < self.pool_size {
            idle.push(conn);
        }
    }

    fn dial(&self) -> std::result::Result<Conn, Failed> {
        self.try_dial().map_err(|source| Failed {
            error: Failure::Io(source).into_error(&self.addr),
            unreachable: true,
        })
    }

    fn try_dial(&self) -> io::Result<Conn> {
        let mut last = io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
        for addr in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => return self.configure(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn configure(&self, stream: TcpStream) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.read_timeout))?;
        stream.set_write_timeout(Some(self.write_timeout))?;
        Ok(Conn {
            reader: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(512),
            line: Vec::with_capacity(128),
        })
    }
}

/// A connection: the buffered socket, the request being built and the last reply line.
#[derive(Debug)]
pub(super) struct Conn {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

/// The reply to a `cas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cas {
    /// Written.
    Stored,
    /// Written by someone else since the `gets`: nothing was written.
    Exists,
    /// Gone since the `gets`.
    NotFound,
}

impl Conn {
    /// Sends one command line, followed by a data block and its `\r\n` when given, in one write.
    pub(super) fn send(&mut self, line: fmt::Arguments<'_>, data: Option<&[u8]>) -> Exchange<()> {
        self.out.clear();
        self.out.write_fmt(line)?;
        if let Some(data) = data {
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&self.out)?;
        Ok(())
    }

    /// `add` / `replace`: true when `STORED`, false when `NOT_STORED`.
    pub(super) fn store(
        &mut self,
        verb: &str,
        key: &str,
        value: &[u8],
        expires: SystemTime,
    ) -> Exchange<bool> {
        let exptime = exptime(expires, SystemTime::now());
        let len = value.len();
        self.send_value(format_args!("{verb} {key} 0 {exptime} {len}\r\n"), value)?;
        self.parse_status(&[("STORED", true), ("NOT_STORED", false)])
    }

    /// `cas` with the unique a `gets` returned: what the server did.
    pub(super) fn cas(
        &mut self,
        key: &str,
        value: &[u8],
        expires: SystemTime,
        unique: u64,
    ) -> Exchange<Cas> {
        let exptime = exptime(expires, SystemTime::now());
        let len = value.len();
        self.send_value(
            format_args!("cas {key} 0 {exptime} {len} {unique}\r\n"),
            value,
        )?;
        self.parse_status(&[
            ("STORED", Cas::Stored),
            ("EXISTS", Cas::Exists),
            ("NOT_FOUND", Cas::NotFound),
        ])
    }

    /// Sends a storage command with its data block and reads the reply line.
    fn send_value(&mut self, line: fmt::Arguments<'_>, value: &[u8]) -> Exchange<()> {
        self.send(line, Some(value))?;
        match self.read_line()? {
            b"SERVER_ERROR object too large for cache" => Err(Failure::TooLarge(value.len())),
            _ => Ok(()),
        }
    }

    /// Reads a one-line reply that must be one of `expected`.
    pub(super) fn status<T: Copy>(&mut self, expected: &[(&str, T)]) -> Exchange<T> {
        self.read_line()?;
        self.parse_status(expected)
    }

    fn parse_status<T: Copy>(&self, expected: &[(&str, T)]) -> Exchange<T> {
        expected
            .iter()
            .find(|(line, _)| line.as_bytes() == self.line.as_slice())
            .map(|&(_, value)| value)
            .ok_or_else(|| self.unexpected())
    }

    /// The reply to `get`/`gat` for one key: `VALUE <key> <flags> <bytes>`, the data, `END`;
    /// or just `END` on a miss.
    pub(super) fn retrieval(&mut self) -> Exchange<Option<Vec<u8>>> {
        Ok(self.retrieval_with_cas()?.map(|(value, _)| value))
    }

    /// The reply to `gets` for one key: the value and its cas unique (0 when the reply to a
    /// `get` has none); `None` on a miss.
    pub(super) fn retrieval_with_cas(&mut self) -> Exchange<Option<(Vec<u8>, u64)>> {
        if self.read_line()? == b"END" {
            return Ok(None);
        }
        let (len, unique) = self.value_header().ok_or_else(|| self.unexpected())?;
        let mut value = vec![0; len + 2];
        self.reader.read_exact(&mut value)?;
        if !value.ends_with(b"\r\n") {
            return Err(Failure::Reply("data block not followed by CRLF".into()));
        }
        value.truncate(len);
        match self.read_line()? {
            b"END" => Ok(Some((value, unique))),
            _ => Err(self.unexpected()),
        }
    }

    /// The `<bytes>` and `[<cas unique>]` of a `VALUE <key> <flags> <bytes> [<cas unique>]`
    /// line.
    fn value_header(&self) -> Option<(usize, u64)> {
        let line = std::str::from_utf8(&self.line).ok()?;
        let mut fields = line.strip_prefix("VALUE ")?.split(' ');
        let (_key, _flags, len) = (fields.next()?, fields.next()?, fields.next()?);
        let len = len.parse().ok().filter(|&len| len <= MAX_ITEM)?;
        let unique = match fields.next() {
            Some(unique) => unique.parse().ok()?,
            None => 0,
        };
        Some((len, unique))
    }

    /// Reads one reply line into `self.line`, without its `\r\n`.
    fn read_line(&mut self) -> Exchange<&[u8]> {
        self.line.clear();
        (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)?;
        if self.line.is_empty() {
            return Err(io::Error::from(ErrorKind::UnexpectedEof).into());
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(Failure::Reply("reply line too long or cut short".into()));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(&self.line)
    }

    fn unexpected(&self) -> Failure {
        Failure::Reply(String::from_utf8_lossy(&self.line).into_owned())
    }
}
