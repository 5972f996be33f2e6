//! One memcached server of a [`MemcachedStore`](super::MemcachedStore): its pool of buffered
//! text-protocol connections, its health, and the commands' wire format.

use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime};

use super::health::Health;
use super::pool::Pool;
use super::{KEEP_BUFFER, MAX_ITEM, MAX_LINE, MemcachedError, exptime};
use crate::Error;
use crate::store::ConnectionSettings;

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
}

/// One server: its address, timeouts and connections.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) addr: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    pool: Pool,
    pub(super) health: Health,
}

/// A failed exchange with one server, and whether the server looks unreachable: no connection
/// could be opened, or a freshly opened one failed with an I/O error.
pub(super) struct Failed {
    pub(super) error: Error,
    pub(super) unreachable: bool,
}

impl Server {
    pub(super) fn new(addr: String, settings: &ConnectionSettings) -> Self {
        let max = usize::try_from(settings.max_connections).unwrap_or(usize::MAX);
        Self {
            addr,
            connect_timeout: settings.connect_timeout,
            io_timeout: settings.io_timeout,
            pool: Pool::new(max, settings.checkout_timeout),
            health: Health::new(),
        }
    }

    /// Runs `command` on a pooled connection (an idle one, or a new one while fewer than
    /// `max_connections` are open, waiting at most the checkout timeout for either) and keeps
    /// the connection if the command succeeded. A stale pooled connection is replaced and the
    /// command retried once. A success puts a server that was left out back in use.
    pub(super) fn exchange<T>(
        &self,
        command: impl Fn(&mut Conn) -> Exchange<T>,
    ) -> std::result::Result<T, Failed> {
        let mut lease = self.pool.checkout().ok_or_else(|| self.busy())?;
        let mut fresh = lease.conn.is_none();
        let conn = match &mut lease.conn {
            Some(conn) => conn,
            None => lease.conn.insert(self.dial()?),
        };
        let mut result = command(conn);
        if !fresh && result.as_ref().err().is_some_and(Failure::is_stale) {
            (*conn, fresh) = (self.dial()?, true);
            result = command(conn);
        }
        let failure = match result {
            Ok(value) => {
                conn.out.clear();
                conn.out.shrink_to(KEEP_BUFFER);
                lease.keep();
                if self.health.mark_up() {
                    log::info!("memcached server {} answers again: back in use", self.addr);
                }
                return Ok(value);
            }
            Err(failure) => failure,
        };
        Err(Failed {
            unreachable: fresh && matches!(failure, Failure::Io(_)),
            error: self.error(failure),
        })
    }

    /// The start-up check: `version` on a pooled connection.
    pub(super) fn check(&self) -> crate::Result<()> {
        self.exchange(|conn| {
            conn.send(format_args!("version\r\n"), None)?;
            conn.version()
        })
        .map_err(|failed| failed.error)
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

    /// The error of a failed command; a read or write that timed out says which timeout.
    fn error(&self, failure: Failure) -> Error {
        let server = self.addr.clone();
        Error::from(match failure {
            Failure::Io(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let why = format!("no answer within the I/O timeout ({:?})", self.io_timeout);
                let source = io::Error::new(ErrorKind::TimedOut, why);
                MemcachedError::Io { server, source }
            }
            Failure::Io(source) => MemcachedError::Io { server, source },
            Failure::Reply(reply) => MemcachedError::Server { server, reply },
            Failure::TooLarge(len) => MemcachedError::ValueTooLarge { len },
        })
    }

    /// No connection within the checkout timeout: all `max_connections` stayed busy.
    fn busy(&self) -> Failed {
        let (max, timeout) = self.pool.limits();
        let server = self.addr.clone();
        Failed {
            error: MemcachedError::PoolTimeout {
                server,
                max,
                timeout,
            }
            .into(),
            unreachable: false,
        }
    }

    fn dial(&self) -> std::result::Result<Conn, Failed> {
        self.try_dial().map_err(|source| Failed {
            error: MemcachedError::Io {
                server: self.addr.clone(),
                source,
            }
            .into(),
            unreachable: true,
        })
    }

    fn try_dial(&self) -> io::Result<Conn> {
        let mut last = io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
        for addr in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => return self.configure(stream),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let why = format!(
                        "no answer within the connect timeout ({:?})",
                        self.connect_timeout
                    );
                    last = io::Error::new(ErrorKind::TimedOut, why);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn configure(&self, stream: TcpStream) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.io_timeout))?;
        stream.set_write_timeout(Some(self.io_timeout))?;
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

    /// The reply to `version`: `VERSION <version>`.
    pub(super) fn version(&mut self) -> Exchange<()> {
        match self.read_line()?.starts_with(b"VERSION ") {
            true => Ok(()),
            false => Err(self.unexpected()),
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
