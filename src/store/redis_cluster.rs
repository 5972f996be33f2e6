//! The [`RedisClusterStore`](super::RedisClusterStore) and its builder.

use std::sync::Arc;
use std::time::Duration;

use ::redis::cluster::{ClusterClient, ClusterConnection, Connect};
use ::redis::io::tcp::TcpSettings;
use ::redis::{
    Client, Cmd, Connection, ConnectionLike, FromRedisValue, IntoConnectionInfo, RedisError,
    RedisResult, Value,
};
use r2d2::{ManageConnection, Pool};

use super::ConnectionSettings;
use super::builder::setters;
use super::redact::SecretUrl;
use super::redis::pool::{self, Pooled};
use super::redis::{is_server_reply, store_by_commands, store_error};
use crate::{Error, ErrorKind, Result, StoreError};

/// The store's name in its errors.
const STORE: &str = "redis cluster";

/// The scheme of a cluster URL: the seed nodes after it, separated by commas.
const SCHEME: &str = "redis+cluster://";
/// Bounds of the pause before the `redis` crate retries a `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`
/// or `LOADING` reply, in milliseconds (its own defaults start at 1.28 s).
const RETRY_WAIT_MIN_MS: u64 = 20;
const RETRY_WAIT_MAX_MS: u64 = 200;

/// Configures and builds a [`RedisClusterStore`] with its own pool of cluster connections.
///
/// The settings and defaults are the [`RedisStore`](super::RedisStore)'s, plus the seed nodes
/// and the number of retries. No wait is ever unlimited (see [`connection`](Self::connection)).
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::{ConnectionSettings, RedisClusterStore, Store};
///
/// let store = RedisClusterStore::builder()
///     .url("redis+cluster://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379")
///     .connection(ConnectionSettings {
///         io_timeout: Duration::from_millis(500),
///         max_connections: 32,
///         ..ConnectionSettings::default()
///     })
///     .build()?; // connects and reads the cluster's layout: a wrong URL fails here
/// assert_eq!(store.load("session:missing")?, None);
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisClusterStoreBuilder {
    seeds: Seeds,
    settings: ConnectionSettings,
    retries: u32,
    startup_check: bool,
}

#[derive(Debug, Clone)]
enum Seeds {
    None,
    Url(SecretUrl),
    Nodes(Vec<SecretUrl>),
}

impl Default for RedisClusterStoreBuilder {
    fn default() -> Self {
        Self {
            seeds: Seeds::None,
            settings: ConnectionSettings::default(),
            retries: 1,
            startup_check: true,
        }
    }
}

impl RedisClusterStoreBuilder {
    /// The seed nodes, as `redis+cluster://[user:password@]host:port[,host:port...]`: the
    /// store asks the first one that answers for the cluster's layout, then talks to every
    /// node directly. List several (all masters, or all nodes) so that one dead node never
    /// stops new connections. No default: a cluster has to be named. The password is never
    /// printed: `Debug` and every error show `***` instead.
    ///
    /// ```
    /// let builder = server_session::store::RedisClusterStore::builder()
    ///     .url("redis+cluster://:secret@10.0.0.1:6379,10.0.0.2:6379");
    /// assert!(!format!("{builder:?}").contains("secret"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.seeds = Seeds::Url(SecretUrl::new(url));
        self
    }

    /// The seed nodes as `redis://` URLs, one per node (replaces [`url`](Self::url)); use
    /// this form for `rediss://` (TLS, with one of the `redis` crate's TLS features). They
    /// must all have the same credentials.
    ///
    /// ```
    /// let builder = server_session::store::RedisClusterStore::builder()
    ///     .nodes(["redis://:hunter2@10.0.0.1:6379", "redis://:hunter2@10.0.0.2:6379"]);
    /// let shown = format!("{builder:?}");
    /// assert!(shown.contains("10.0.0.2:6379") && !shown.contains("hunter2"), "{shown}");
    /// ```
    pub fn nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.seeds = Seeds::Nodes(nodes.into_iter().map(SecretUrl::new).collect());
        self
    }

    setters! {
        /// How the store connects, waits and pools: see [`ConnectionSettings`] for the meaning
        /// and the defaults (connect 1 s, I/O 2 s, checkout 1 s, 16 connections).
        ///
        /// - `connect_timeout` bounds opening a socket to one node, including its handshake and
        ///   the `PING` the cluster client sends on it;
        /// - `io_timeout` bounds sending each command and each attempt's wait for its reply. The
        ///   `redis` crate retries a timed-out command (see [`retries`](Self::retries)), so a node
        ///   that stops answering fails an operation after `(retries + 1) × io_timeout`;
        /// - `max_connections` is the most cluster connections the pool holds (it keeps them open
        ///   once made); each holds one socket per node;
        /// - `checkout_timeout` is how long an operation waits for a pooled connection (all busy,
        ///   or no seed node reachable) before failing with [`Error::Store`] of kind
        ///   [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable).
        ///
        /// ```
        /// use std::time::Duration;
        /// use server_session::store::{ConnectionSettings, RedisClusterStore};
        /// let builder = RedisClusterStore::builder().connection(ConnectionSettings {
        ///     connect_timeout: Duration::from_millis(250),
        ///     ..ConnectionSettings::default()
        /// });
        /// assert!(format!("{builder:?}").contains("connect_timeout: 250ms"));
        /// ```
        connection(settings: ConnectionSettings) => settings;
    }

    setters! {
        /// Whether [`build`](Self::build) opens one cluster connection before it returns: it asks
        /// the seed nodes for the cluster's layout and connects to its nodes, so that unreachable
        /// seeds or a wrong password fail the build with the cause instead of every request later.
        /// Default: `true`. Turn it off to start while the cluster is still coming up; requests
        /// then fail until it answers.
        ///
        /// ```
        /// // Builds at once, even though nothing listens on port 1.
        /// let store = server_session::store::RedisClusterStore::builder()
        ///     .url("redis+cluster://127.0.0.1:1")
        ///     .startup_check(false)
        ///     .build();
        /// assert!(store.is_ok());
        /// ```
        startup_check(check: bool) => startup_check;
    }

    setters! {
        /// How many times the `redis` crate retries a command after a redirect (`MOVED`, `ASK`),
        /// a `TRYAGAIN`/`CLUSTERDOWN` reply (after a pause of 20 to 200 ms), a lost connection or
        /// a timeout. Default: 1, enough to follow a slot that moved after a failover; 0 turns
        /// retries off. Each retry may cost another I/O timeout.
        ///
        /// ```
        /// let builder = server_session::store::RedisClusterStore::builder().retries(2);
        /// assert!(format!("{builder:?}").contains("retries: 2"));
        /// ```
        retries(retries: u32) => retries;
    }

    /// Validates the settings, runs the start-up check (unless turned off) and starts the
    /// pool, which opens its other connections in the background.
    ///
    /// Errors: [`Error::Config`] for no seed node, a malformed `redis+cluster://` URL (shown
    /// without its password), or a zero or absurd timeout or connection count;
    /// [`Error::Store`] for a node URL the `redis` crate rejects, and, naming the seeds and
    /// the cause, when the start-up check fails (`redis cluster 127.0.0.1:1: connection
    /// refused`), within the connect timeout (twice, plus the I/O timeout, for a seed that
    /// accepts connections and never answers) per seed node.
    ///
    /// ```
    /// use server_session::{store::RedisClusterStore, Error};
    ///
    /// let err = RedisClusterStore::builder().build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// let err = RedisClusterStore::builder().url("redis://127.0.0.1:7000").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    ///
    /// let err = RedisClusterStore::open("redis+cluster://:pw@127.0.0.1:1").unwrap_err();
    /// assert_eq!(err.to_string(), "redis cluster 127.0.0.1:1: connection refused");
    /// ```
    pub fn build(self) -> Result<RedisClusterStore> {
        self.settings.validate("RedisClusterStore")?;
        let seeds = match &self.seeds {
            Seeds::None => return Err(config("no seed node given (url or nodes)")),
            Seeds::Url(url) => parse_url(url)?,
            Seeds::Nodes(nodes) => nodes.iter().map(|n| n.expose().to_owned()).collect(),
        };
        let target: Arc<str> = addresses(&seeds).into();
        let client = ClusterClient::builder(seeds)
            .connection_timeout(self.settings.connect_timeout)
            .response_timeout(self.settings.io_timeout)
            .retries(self.retries)
            .min_retry_wait(RETRY_WAIT_MIN_MS)
            .max_retry_wait(RETRY_WAIT_MAX_MS)
            .retry_wait_formula(RETRY_WAIT_MIN_MS, 2)
            .tcp_settings(TcpSettings::default().set_nodelay(true))
            .build()
            .map_err(cluster_error)?;
        let connector = Arc::new(Connector {
            client,
            io_timeout: self.settings.io_timeout,
        });
        if self.startup_check {
            connector
                .connect()
                .map_err(|e| cluster_error(e).at(|| target.to_string()))?;
        }
        Ok(RedisClusterStore {
            pool: pool::pool(&self.settings, Connector::clone(&connector)),
            connector,
            target,
        })
    }
}

/// `e` as a store error. The cluster client reports a failure to reach the seed nodes as one
/// error listing each node's: its cause in words is then a timeout if any seed timed out, else
/// "connection refused" if one refused.
fn cluster_error(e: RedisError) -> Error {
    let text = e.to_string();
    let cause = if text.contains("Resource temporarily unavailable") || text.contains("timed out") {
        Some("no answer within the timeout")
    } else if text.contains("Connection refused") {
        Some("connection refused")
    } else {
        None
    };
    match (store_error(STORE, e), cause) {
        (Error::Store(error), Some(cause)) => Error::Store(error.with_cause(cause)),
        (other, _) => other,
    }
}

/// The `host:port` of each seed URL, comma-separated, without credentials.
fn addresses(seeds: &[String]) -> String {
    let address = |seed: &String| match seed.as_str().into_connection_info() {
        Ok(info) => info.addr().to_string(),
        Err(_) => SecretUrl::new(seed.as_str()).to_string(),
    };
    let all: Vec<String> = seeds.iter().map(address).collect();
    all.join(",")
}

fn config(why: &str) -> Error {
    Error::Config(format!("RedisClusterStore {why}"))
}

/// `redis+cluster://u:p@a:1,b:2/` -> `["redis://u:p@a:1", "redis://u:p@b:2"]`.
fn parse_url(url: &SecretUrl) -> Result<Vec<String>> {
    let invalid = |why: &str| config(&format!("URL {url:?}: {why}"));
    let rest = url.expose().strip_prefix(SCHEME).ok_or_else(|| {
        invalid("expected redis+cluster://[user:password@]host:port[,host:port...]")
    })?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    if hosts.contains(['/', '?', '#']) {
        return Err(invalid("only nodes are supported (no database, no query)"));
    }
    let node = |host: &str| {
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid("empty or malformed node"));
        }
        Ok(format!("redis://{credentials}{host}"))
    };
    hosts.split(',').map(str::trim).map(node).collect()
}

/// Sessions in a Redis Cluster, with the [`RedisStore`](super::RedisStore)'s commands and key
/// layout: each session is one key, `prefix + id`, in the hash slot its name maps to, so
/// sessions spread over every master. The operations are the `RedisStore`'s (`GET`,
/// `SET NX/XX PXAT`, `PEXPIREAT`, `DEL`, `GETEX PXAT`; Redis 6.2 or later), each sent to the
/// master that owns the key's slot, in one round trip when the client's map of the cluster is
/// current. Reads never go to replicas, so a session is never read older than it was written.
///
/// Its [`UserIndex`](super::UserIndex) is the `RedisStore`'s too: one sorted set per user, in
/// the user name's own slot, touched by single-key commands (and a single-key script) only, so
/// the session keys a set names may live on any other master.
///
/// The pool holds `redis` crate [`ClusterConnection`]s, each with its own map of the cluster
/// and one socket per node. The crate follows `MOVED`/`ASK` redirects and refreshes its map on
/// them. When a node's process dies, its sockets are refused or reset: the store then drops
/// that pooled connection and retries the operation once on a fresh one, built from the
/// current layout, so the first request after a replica's promotion already succeeds.
/// Timeouts are not retried a second time this way.
///
/// While a master is down and not yet replaced, operations on sessions in its slots fail with
/// [`Error::Store`] of kind [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable), usually at
/// once (the port refuses connections); sessions in other slots keep working when the cluster
/// runs with `cluster-require-full-coverage no`. Redis replicates asynchronously: a write the old
/// master acknowledged but had not yet sent to its replica is lost in the failover.
///
/// Cloning is cheap and shares the pool.
///
/// ```no_run
/// use server_session::{store::RedisClusterStore, Config, SessionManager};
///
/// let store = RedisClusterStore::open("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002")?;
/// let manager = SessionManager::new(store, Config::default())?;
/// let mut session = manager.open(None);
/// session.insert("user", &"ada")?;
/// assert!(session.commit()?.set_cookie().is_some(), "stored on the slot's master");
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisClusterStore {
    pool: Pool<Connector>,
    /// The pool's connector, to build a connection outside the pool after a node failed.
    connector: Arc<Connector>,
    /// The seed nodes' `host:port`, for error messages.
    target: Arc<str>,
}

impl RedisClusterStore {
    /// A builder with every setting at its default.
    ///
    /// ```
    /// let builder = server_session::store::RedisClusterStore::builder();
    /// assert!(format!("{builder:?}").contains("retries: 1"));
    /// ```
    pub fn builder() -> RedisClusterStoreBuilder {
        RedisClusterStoreBuilder::default()
    }

    /// A store on the cluster whose seed nodes `url` lists
    /// (`redis+cluster://[user:password@]host:port[,host:port...]`), with the default pool and
    /// timeouts.
    ///
    /// ```no_run
    /// let store = server_session::store::RedisClusterStore::open(
    ///     "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
    /// )?;
    /// assert_eq!(server_session::store::Store::load(&store, "session:missing")?, None);
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// Runs one command on a pooled cluster connection and converts its reply.
    ///
    /// An error that is not a server's reply marks the connection broken, so the pool drops it
    /// and its stale map of the cluster. Unless it was a timeout, the command is then retried
    /// once on a fresh connection, which learns the current layout from the seed nodes.
    fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.try_query(cmd)
            .map_err(|e| e.at(|| self.target.to_string()))
    }

    fn try_query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let mut pooled = self
            .pool
            .get()
            .map_err(|e| Error::Store(StoreError::new(STORE, ErrorKind::Unavailable, e)))?;
        let error = match cmd.query(&mut pooled.connection) {
            Ok(reply) => return Ok(reply),
            Err(e) => e,
        };
        if is_server_reply(&error) {
            return Err(cluster_error(error));
        }
        pooled.broken = true;
        drop(pooled);
        if error.is_timeout() {
            return Err(cluster_error(error));
        }
        log::debug!("Redis Cluster node failed ({error}); retrying on a fresh connection");
        let retried = self
            .connector
            .connect()
            .and_then(|mut fresh| cmd.query(&mut fresh.connection));
        retried.map_err(cluster_error)
    }
}

store_by_commands!(RedisClusterStore);

/// Makes the pool's cluster connections: bounded timeouts on every node socket, `TCP_NODELAY`.
#[derive(Debug, Clone)]
struct Connector {
    client: ClusterClient,
    io_timeout: Duration,
}

impl ManageConnection for Connector {
    type Connection = Pooled<ClusterConnection<Node>>;
    type Error = RedisError;

    fn connect(&self) -> RedisResult<Pooled<ClusterConnection<Node>>> {
        // The generic form is the only way to give the cluster client node connections whose
        // first `PING` has a timeout (see `Node`).
        let connection = self.client.get_generic_connection::<Node>()?;
        connection.set_write_timeout(Some(self.io_timeout))?;
        Ok(Pooled::new(connection))
    }

    /// Only called if someone turns `test_on_check_out` back on; our pool never does.
    fn is_valid(&self, conn: &mut Pooled<ClusterConnection<Node>>) -> RedisResult<()> {
        match conn.connection.check_connection() {
            true => Ok(()),
            false => Err(RedisError::from((
                ::redis::ErrorKind::Io,
                "a cluster node did not answer PING",
            ))),
        }
    }

    fn has_broken(&self, conn: &mut Pooled<ClusterConnection<Node>>) -> bool {
        conn.has_broken()
    }
}

/// One node socket of a cluster connection.
///
/// The `redis` crate's own node connection drops its connect timeout after the handshake and
/// sends the cluster client's `PING` with no timeout at all, so a node that accepts connections
/// but never answers (a stopped process) would hang it forever. This one keeps the connect
/// timeout on the socket until the cluster client sets its read and write timeouts, and never
/// accepts "no timeout".
struct Node(Connection);

impl Connect for Node {
    fn connect<T: IntoConnectionInfo>(info: T, timeout: Option<Duration>) -> RedisResult<Self> {
        let client = Client::open(info.into_connection_info()?)?;
        let timeout = timeout.unwrap_or(Duration::from_secs(1));
        let connection = client.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        connection.set_write_timeout(Some(timeout))?;
        Ok(Node(connection))
    }

    fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.0.send_packed_command(cmd)
    }

    /// `None` ("no timeout") keeps the current timeout.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> RedisResult<()> {
        match timeout {
            Some(_) => self.0.set_write_timeout(timeout),
            None => Ok(()),
        }
    }

    /// `None` ("no timeout") keeps the current timeout.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> RedisResult<()> {
        match timeout {
            Some(_) => self.0.set_read_timeout(timeout),
            None => Ok(()),
        }
    }

    fn recv_response(&mut self) -> RedisResult<Value> {
        self.0.recv_response()
    }
}

impl ConnectionLike for Node {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.0.req_packed_commands(cmd, offset, count)
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        self.0.req_command(cmd)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.0.check_connection()
    }

    fn is_open(&self) -> bool {
        self.0.is_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let parse = |url: &str| parse_url(&SecretUrl::new(url)).ok();
        assert_eq!(
            parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"),
            Some(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ])
        );
        assert_eq!(
            parse("redis+cluster://user:p%40ss@a:1, b:2"),
            Some(vec![
                "redis://user:p%40ss@a:1".into(),
                "redis://user:p%40ss@b:2".into()
            ])
        );
        assert_eq!(
            parse("redis+cluster://[::1]:7000"),
            Some(vec!["redis://[::1]:7000".into()])
        );
        for bad in [
            "redis://a:1",
            "redis+cluster://",
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1/0",
            "redis+cluster://a:1?protocol=resp3",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    /// A fake node that answers the connection handshake (`CLIENT SETINFO`) and then nothing.
    fn node_that_stalls_after_the_handshake() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("redis://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || answer_client_commands_only(stream));
            }
        });
        addr
    }

    fn answer_client_commands_only(stream: std::net::TcpStream) {
        use std::io::{BufRead, Write};
        let mut writer = stream.try_clone().unwrap();
        let mut lines = std::io::BufReader::new(stream)
            .lines()
            .map_while(|l| l.ok());
        while let Some(header) = lines.next() {
            let args: usize = header.trim_start_matches('*').parse().unwrap_or(0);
            let words: Vec<String> = (0..args).filter_map(|_| lines.nth(1)).collect();
            if words
                .first()
                .is_some_and(|w| w.eq_ignore_ascii_case("CLIENT"))
            {
                let _ = writer.write_all(b"+OK\r\n");
            }
        }
    }

    /// The cluster client's `PING` right after connecting is bounded by the connect timeout,
    /// and "no timeout" never replaces a timeout.
    #[test]
    fn node_sockets_never_wait_forever() {
        let timeout = Duration::from_millis(200);
        let mut node =
            Node::connect(node_that_stalls_after_the_handshake(), Some(timeout)).unwrap();
        node.set_read_timeout(None).unwrap();
        node.set_write_timeout(None).unwrap();
        let start = std::time::Instant::now();
        let err = node.req_command(&::redis::cmd("PING")).unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_millis(600),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn settings_are_validated() {
        let seeded = || {
            RedisClusterStore::builder()
                .url("redis+cluster://127.0.0.1:7000")
                .startup_check(false)
        };
        assert!(seeded().build().is_ok());
        let zero = Duration::ZERO;
        for settings in [
            ConnectionSettings {
                connect_timeout: zero,
                ..ConnectionSettings::default()
            },
            ConnectionSettings {
                io_timeout: zero,
                ..ConnectionSettings::default()
            },
            ConnectionSettings {
                max_connections: 0,
                ..ConnectionSettings::default()
            },
        ] {
            let built = seeded().connection(settings).build();
            assert!(matches!(built, Err(Error::Config(_))), "{settings:?}");
        }
        let mixed = RedisClusterStore::builder()
            .nodes(["redis://:a@h:1", "redis://:b@h:2"])
            .startup_check(false);
        assert!(matches!(mixed.build(), Err(Error::Store(_))));
    }
}
