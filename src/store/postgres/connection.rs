//! Pooled PostgreSQL connections that keep their prepared statements.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::{Client, NoTls, Socket, Statement};
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;

/// A TLS connector the store can use: [`NoTls`], or a `MakeTlsConnect` from
/// `postgres-native-tls` or `postgres-openssl`. Implemented for every type that qualifies.
///
/// ```
/// fn accepts<T: server_session::store::PostgresTls>() {}
/// accepts::<postgres::NoTls>();
/// ```
pub trait PostgresTls:
    MakeTlsConnect<Socket, TlsConnect: Send + TlsConnect<Socket, Future: Send>, Stream: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> PostgresTls for T where
    T: MakeTlsConnect<Socket, TlsConnect: Send + TlsConnect<Socket, Future: Send>, Stream: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// An r2d2 connection manager whose connections keep their prepared statements.
///
/// Wraps `r2d2_postgres`' manager; each connection sets the statement timeout once and then
/// prepares each statement the first time it runs it, so a request costs one round trip per
/// statement. Build your own pool with it to share connections with the rest of the app.
///
/// ```no_run
/// use server_session::store::{PostgresManager, PostgresStore};
///
/// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
/// let pool = r2d2::Pool::builder()
///     .max_size(20)
///     .test_on_check_out(false)
///     .build(PostgresManager::new(config, postgres::NoTls))?;
/// let store = PostgresStore::builder().pool(pool).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PostgresManager<T = NoTls> {
    inner: PostgresConnectionManager<T>,
    statement_timeout: Option<Duration>,
}

impl<T: PostgresTls> PostgresManager<T> {
    /// A manager connecting with `config` and `tls`, with a 5-second statement timeout.
    ///
    /// ```
    /// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
    /// let manager = server_session::store::PostgresManager::new(config, postgres::NoTls);
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn new(config: postgres::Config, tls: T) -> Self {
        Self {
            inner: PostgresConnectionManager::new(config, tls),
            statement_timeout: Some(Duration::from_secs(5)),
        }
    }

    /// The longest a statement may run before the server cancels it (`SET statement_timeout`
    /// on each new connection); `None` leaves the server's setting. Default: 5 seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = "postgres://app@localhost/app".parse::<postgres::Config>()?;
    /// let manager = server_session::store::PostgresManager::new(config, postgres::NoTls)
    ///     .statement_timeout(Some(Duration::from_secs(2)));
    /// # Ok::<(), postgres::Error>(())
    /// ```
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }
}

impl<T: PostgresTls> ManageConnection for PostgresManager<T> {
    type Connection = PostgresConnection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PostgresConnection, postgres::Error> {
        let mut client = self.inner.connect()?;
        if let Some(timeout) = self.statement_timeout {
            let millis = timeout.as_millis().max(1);
            client.batch_execute(&format!("SET statement_timeout = {millis}"))?;
        }
        Ok(PostgresConnection {
            client,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PostgresConnection) -> Result<(), postgres::Error> {
        self.inner.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PostgresConnection) -> bool {
        conn.client.is_closed()
    }
}

/// A pooled PostgreSQL connection with its cache of prepared statements.
///
/// ```no_run
/// use server_session::store::PostgresStore;
/// let store = PostgresStore::open("postgres://postgres@127.0.0.1:5432/test")?;
/// let mut conn = store.pool().get()?;
/// let row = conn.client_mut().query_one("SELECT count(*) FROM sessions", &[])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresConnection {
    pub(super) client: Client,
    /// Prepared statements by SQL text.
    statements: HashMap<String, Statement>,
}

impl PostgresConnection {
    /// The client, to run other statements on this connection.
    ///
    /// ```no_run
    /// let store = server_session::store::PostgresStore::open("postgres://postgres@localhost/test")?;
    /// store.pool().get()?.client_mut().batch_execute("VACUUM sessions")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `sql` prepared on this connection, from the cache after the first time.
    pub(super) fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl fmt::Debug for PostgresConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnection")
            .field("closed", &self.client.is_closed())
            .field("prepared_statements", &self.statements.len())
            .finish()
    }
}
