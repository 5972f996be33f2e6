//! Sessions as documents in a MongoDB collection, like Flask-Session's `mongodb` backend: see
//! [`MongoStore`] for the document layout, the indexes and the expiry rules.

use super::builder::setters;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use ::mongodb::IndexModel;
use ::mongodb::bson::spec::BinarySubtype;
use ::mongodb::bson::{Binary, DateTime, Document, doc};
use ::mongodb::error::{ErrorKind, WriteFailure};
use ::mongodb::options::{ClientOptions, IndexOptions};
use ::mongodb::sync::{Client, Collection};

use super::redact::{SecretUrl, redact};
use super::{ConnectionSettings, Replaced, Store, UserIndex};
use crate::{Error, Result, StoreError};

mod users;

/// `SESSION_MONGODB`'s default: a server on the local machine.
const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017";
/// `SESSION_MONGODB_DB`'s default.
const DEFAULT_DATABASE: &str = "flask_session";
/// `SESSION_MONGODB_COLLECT`'s default.
const DEFAULT_COLLECTION: &str = "sessions";
/// The server's error code for a unique-index violation.
const DUPLICATE_KEY: i32 = 11000;
/// The server's error codes for "not authorized" and "authentication failed".
const REFUSED_CODES: [i32; 2] = [13, 18];
/// How often `create` removes an expired document in its way and retries before giving up.
const CREATE_ATTEMPTS: usize = 3;
/// The store's name in error messages.
const STORE: &str = "mongodb";

impl From<::mongodb::error::Error> for Error {
    fn from(e: ::mongodb::error::Error) -> Self {
        let kind = match &*e.kind {
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. } => crate::ErrorKind::Unavailable,
            ErrorKind::Authentication { .. } => crate::ErrorKind::Rejected,
            ErrorKind::Command(c) if REFUSED_CODES.contains(&c.code) => crate::ErrorKind::Rejected,
            _ => crate::ErrorKind::Other,
        };
        let cause = cause(&e);
        Error::Store(StoreError::new(STORE, kind, e).with_cause(cause))
    }
}

/// What went wrong, in the words an operator searches for; never a password.
fn cause(e: &::mongodb::error::Error) -> String {
    let refused = |text: &str| text.contains("Connection refused");
    match &*e.kind {
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        ErrorKind::ServerSelection { message, .. } if refused(message) => {
            "connection refused".to_owned()
        }
        ErrorKind::ServerSelection { .. } => {
            "no usable server within the checkout timeout (server selection)".to_owned()
        }
        ErrorKind::Authentication { message, .. } => {
            format!("authentication failed ({})", redact(message))
        }
        ErrorKind::Command(c) => redact(&format!("{} (code {})", c.message, c.code)),
        _ => redact(&e.to_string()),
    }
}

/// An operation that got no answer within `limit`.
fn timed_out(limit: Duration) -> Error {
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
    let cause = format!("no answer within the checkout and I/O timeouts ({limit:?})");
    Error::Store(StoreError::new(STORE, crate::ErrorKind::Unavailable, io).with_cause(cause))
}

/// The runtime the store awaits the driver's operations on, under a timer, shared by every
/// `MongoStore`: the tasks the driver spawns during an operation run on its workers (one per
/// core, as on the driver's own runtime).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("server-session-mongodb")
            .enable_all()
            .build()
    });
    built.as_ref().map_err(|e| {
        let io = std::io::Error::new(e.kind(), e.to_string());
        Error::Store(StoreError::new(STORE, crate::ErrorKind::Other, io))
    })
}

/// Configures and opens a [`MongoStore`]; every setting has the Flask-Session default.
///
/// No wait is unbounded: see [`connection`](Self::connection).
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::{ConnectionSettings, MongoStore};
///
/// let store = MongoStore::builder()
///     .url("mongodb://127.0.0.1:27017/?directConnection=true")
///     .database("flask_session")
///     .collection("sessions")
///     .connection(ConnectionSettings {
///         io_timeout: Duration::from_millis(500),
///         ..ConnectionSettings::default()
///     })
///     .build()?; // checks the server and creates the indexes: a wrong URL fails here
/// assert_eq!(store.collection(), "sessions");
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Clone)]
pub struct MongoStoreBuilder {
    url: Option<SecretUrl>,
    client: Option<Client>,
    database: String,
    collection: String,
    settings: ConnectionSettings,
    server_selection_timeout: Option<Duration>,
    create_indexes: bool,
    startup_check: bool,
}

impl Default for MongoStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            client: None,
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            settings: ConnectionSettings::default(),
            server_selection_timeout: None,
            create_indexes: true,
            startup_check: true,
        }
    }
}

/// Shows the settings, with the URI's password hidden.
impl std::fmt::Debug for MongoStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStoreBuilder")
            .field("url", &self.url)
            .field("client", &self.client.as_ref().map(|_| "Client"))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("settings", &self.settings)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("create_indexes", &self.create_indexes)
            .field("startup_check", &self.startup_check)
            .finish()
    }
}

impl MongoStoreBuilder {
    /// The connection string (`SESSION_MONGODB` as a URI). Default: `mongodb://127.0.0.1:27017`.
    ///
    /// Options in the URI apply (credentials, TLS, `heartbeatFrequencyMS`...), except the
    /// timeouts and the pool size, which come from [`connection`](Self::connection). The Rust
    /// driver rejects `socketTimeoutMS`. Add `directConnection=true` to talk to one server of
    /// a replica set directly. Ignored when a [`client`](Self::client) is given. The password
    /// is never printed: `Debug` and every error show `***` instead.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder()
    ///     .url("mongodb://app:pw@db.internal:27017/?directConnection=true");
    /// assert!(format!("{builder:?}").contains("app:***@db.internal"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(SecretUrl::new(url));
        self
    }

    /// An existing client to share (`SESSION_MONGODB` as a client). Default: none, a client is
    /// made from the [`url`](Self::url).
    ///
    /// The client keeps its own connect timeout, server selection timeout and pool size; the
    /// store still bounds each of its operations by the checkout plus I/O timeouts.
    ///
    /// ```no_run
    /// let client = mongodb::sync::Client::with_uri_str("mongodb://127.0.0.1:27017")?;
    /// let builder = server_session::store::MongoStore::builder().client(client);
    /// assert!(format!("{builder:?}").contains(r#"client: Some("Client")"#));
    /// # Ok::<(), mongodb::error::Error>(())
    /// ```
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The database (`SESSION_MONGODB_DB`). Default: `flask_session`.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder().database("myapp");
    /// assert!(format!("{builder:?}").contains(r#"database: "myapp""#));
    /// ```
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// The collection (`SESSION_MONGODB_COLLECT`). Default: `sessions`.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder().collection("web_sessions");
    /// assert!(format!("{builder:?}").contains(r#"collection: "web_sessions""#));
    /// ```
    pub fn collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    setters! {
        /// How the store connects, waits and pools (see [`ConnectionSettings`]; defaults: connect
        /// 1 s, I/O 2 s, checkout 1 s, 16 connections):
        ///
        /// - `connect_timeout` is the driver's `connectTimeoutMS`: TCP connect and TLS of each
        ///   connection, and the server monitor's checks. A monitor check that times out marks
        ///   the server unknown and clears the pool, interrupting the operations in flight (the
        ///   driver then retries writes once): raise it for a server that is slow to answer;
        /// - `checkout_timeout` is the driver's `serverSelectionTimeoutMS` (unless
        ///   [`server_selection_timeout`](Self::server_selection_timeout) is set): how long an
        ///   operation waits for a reachable server;
        /// - `io_timeout` bounds the rest: the store awaits each driver operation for at most
        ///   the checkout plus the I/O timeout, then fails it (the driver has no socket timeout);
        /// - `max_connections` is the driver's `maxPoolSize`.
        ///
        /// ```
        /// use std::time::Duration;
        /// use server_session::store::{ConnectionSettings, MongoStore};
        /// let builder = MongoStore::builder().connection(ConnectionSettings {
        ///     io_timeout: Duration::from_millis(500),
        ///     ..ConnectionSettings::default()
        /// });
        /// assert!(format!("{builder:?}").contains("io_timeout: 500ms"));
        /// ```
        connection(settings: ConnectionSettings) => settings;
    }

    /// How long an operation waits for a reachable server before it fails with
    /// [`Error::Store`]. Default: the checkout timeout of [`connection`](Self::connection)
    /// (1 second); the driver's own default would be 30 seconds. Must not be zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = server_session::store::MongoStore::builder()
    ///     .server_selection_timeout(Duration::from_secs(5));
    /// assert!(format!("{builder:?}").contains("server_selection_timeout: Some(5s)"));
    /// ```
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout);
        self
    }

    /// Whether the store creates the indexes. Default: `true`.
    ///
    /// With `true`, the store creates (idempotently) a unique index `id_1` on `id` and a TTL
    /// index `expiration_1` on `expiration` with `expireAfterSeconds: 0` (the same TTL index
    /// Flask-Session 0.8 creates), during the start-up check or, without it, before its first
    /// operation; and, on the [`UserIndex`]'s `<collection>_users`, a unique index on
    /// `(user, key)` and a TTL index on `until`. It fails if they exist with other options.
    /// With `false` you manage the indexes yourself: **the unique index on `id` is required**,
    /// without it two concurrent `create`s of one id could both succeed; without the TTL index
    /// on `until`, lapsed user records are never removed.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder().create_indexes(false);
    /// assert!(format!("{builder:?}").contains("create_indexes: false"));
    /// ```
    pub fn create_indexes(mut self, create_indexes: bool) -> Self {
        self.create_indexes = create_indexes;
        self
    }

    setters! {
        /// Whether [`build`](Self::build) checks the server before it returns: it creates the
        /// indexes (see [`create_indexes`](Self::create_indexes)) or, without them, reads from the
        /// collection, so that an unreachable server, failed authentication or a missing
        /// permission fails the build with its cause. Default: `true`. With `false`, `build` does
        /// no I/O; requests fail (within the timeouts) until the server answers.
        ///
        /// ```
        /// // Builds at once, even though nothing listens on port 1.
        /// let store = server_session::store::MongoStore::builder()
        ///     .url("mongodb://127.0.0.1:1/?directConnection=true")
        ///     .startup_check(false)
        ///     .build();
        /// assert!(store.is_ok());
        /// ```
        startup_check(check: bool) => startup_check;
    }

    /// Validates the settings, makes the client (unless one was given) and runs the start-up
    /// check (unless turned off).
    ///
    /// Errors: [`Error::Config`] for an empty or invalid database or collection name, a zero
    /// or absurd timeout or pool size, or an invalid URI (shown without its password);
    /// [`Error::Store`] naming the server and the cause when the check fails
    /// (`mongodb 127.0.0.1:27017: connection refused`, `... authentication failed (...)`, a
    /// conflicting existing index, no permission).
    ///
    /// ```
    /// use server_session::{store::MongoStore, Error};
    /// let err = MongoStore::builder().collection("").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    ///
    /// let err = MongoStore::open("mongodb://app:pw@127.0.0.1:1/?directConnection=true").unwrap_err();
    /// assert_eq!(err.to_string(), "mongodb 127.0.0.1:1: connection refused");
    /// ```
    pub fn build(self) -> Result<MongoStore> {
        self.validate()?;
        let (client, target) = match &self.client {
            Some(client) => (client.clone(), None),
            None => {
                let options = self.client_options()?;
                let target = targets(&options);
                (Client::with_options(options)?, Some(target))
            }
        };
        let database = client.database(&self.database);
        let collection = database.collection::<Document>(&self.collection);
        let users = database.collection::<Document>(&users::users_collection(&self.collection));
        let store = MongoStore {
            client,
            collection,
            users,
            database: self.database,
            target: target.map(Arc::from),
            deadline: self.settings.checkout_timeout + self.settings.io_timeout,
            indexes_pending: Arc::new(AtomicBool::new(self.create_indexes)),
        };
        if self.startup_check {
            store.check()?;
        }
        Ok(store)
    }

    fn validate(&self) -> Result<()> {
        validate_name("database", &self.database, "/\\. \"$\0")?;
        validate_name("collection", &self.collection, "$\0")?;
        let mut settings = self.settings;
        if let Some(timeout) = self.server_selection_timeout {
            settings.checkout_timeout = timeout;
        }
        settings
            .validate("MongoStore")
            .map_err(|e| match (e, self.server_selection_timeout) {
                (Error::Config(msg), Some(_)) => Error::Config(msg.replace(
                    "checkout_timeout",
                    "checkout_timeout (server_selection_timeout)",
                )),
                (e, _) => e,
            })
    }

    fn client_options(&self) -> Result<ClientOptions> {
        let url = match &self.url {
            Some(url) => url.clone(),
            None => {
                log::info!("no MongoDB URL or client given: connecting to {DEFAULT_URL}");
                SecretUrl::new(DEFAULT_URL)
            }
        };
        let mut options = ClientOptions::parse(url.expose()).run().map_err(|e| {
            let why = redact(&e.to_string());
            Error::Config(format!("MongoStore URL {url} is not valid: {why}"))
        })?;
        let selection = self.server_selection_timeout;
        options.server_selection_timeout =
            Some(selection.unwrap_or(self.settings.checkout_timeout));
        options.connect_timeout = Some(self.settings.connect_timeout);
        options.max_pool_size = Some(self.settings.max_connections);
        // A write the driver retries after a lost reply can apply twice on a server without
        // retryable-write bookkeeping, and a conditional replace then merges onto its own first
        // copy. Unless the URL asks for retries, a lost reply is an error, never a double write.
        options.retry_writes.get_or_insert(false);
        Ok(options)
    }
}

/// `host:port` of every server in `options`, comma-separated.
fn targets(options: &ClientOptions) -> String {
    let hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
    hosts.join(",")
}

fn validate_name(what: &str, name: &str, forbidden: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Config(format!("MongoStore {what} name is empty")));
    }
    match name.chars().find(|c| forbidden.contains(*c)) {
        Some(c) => Err(Error::Config(format!(
            "MongoStore {what} name {name:?} contains the forbidden character {c:?}"
        ))),
        None => Ok(()),
    }
}

/// The unique index on `id` and the TTL index on `expiration`.
fn index_models() -> [IndexModel; 2] {
    unique_and_ttl(doc! { "id": 1 }, "expiration")
}

/// A unique index on `unique` and a TTL index (expireAfterSeconds 0) on the date field `ttl`.
fn unique_and_ttl(unique: Document, ttl: &str) -> [IndexModel; 2] {
    let unique = IndexModel::builder()
        .keys(unique)
        .options(IndexOptions::builder().unique(true).build())
        .build();
    let ttl = IndexModel::builder()
        .keys(doc! { ttl: 1 })
        .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
        .build();
    [unique, ttl]
}

/// Sessions as documents in a MongoDB collection, in Flask-Session 0.8's layout.
///
/// Each session is one document, so a Flask app and a Rust app can share the collection:
///
/// | field        | BSON type                | content                                       |
/// |--------------|--------------------------|-----------------------------------------------|
/// | `id`         | string                   | the store key (`SESSION_KEY_PREFIX` + the id) |
/// | `val`        | binary, generic subtype  | the codec's bytes                             |
/// | `expiration` | date (UTC, milliseconds) | when the session expires                      |
///
/// A unique index on `id` makes `create` an atomic insert-if-absent, and a TTL index on
/// `expiration` (expireAfterSeconds 0) lets the server remove expired documents (see
/// [`MongoStoreBuilder::create_indexes`]). The TTL monitor runs only about once a minute, so
/// every operation also filters on `expiration > now`, and `create` replaces an expired
/// document that is still there.
///
/// Its [`UserIndex`] ("log out everywhere") lives in a side collection next to the sessions,
/// `<collection>_users` (`sessions_users` by default), of one document per record:
/// `{user, key, until}` (strings and a date), with a unique index on `(user, key)` and a TTL
/// index on `until`, so the server removes lapsed records itself. `link_user` is one upsert,
/// `user_keys` one `find` of `until > now` projected on `key`, `unlink_user` one `delete_many`.
/// The `sessions` collection and its documents are unchanged.
///
/// BSON dates have millisecond precision: expiries are truncated to the millisecond below, and
/// so is "now" in the filters, so an expired session is never returned (one with less than a
/// millisecond left may count as expired).
///
/// Built on the driver's synchronous API (`mongodb::sync`); the client's connection pool is
/// shared by every clone of the client, so one store serves all threads. A `val` that is not
/// generic binary data reads as [`Error::Decode`].
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use server_session::store::{MongoStore, Store};
///
/// let store = MongoStore::open("mongodb://127.0.0.1:27017/?directConnection=true")?;
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// assert!(store.create("session:a", b"data", expires)?);
/// assert_eq!(store.load("session:a")?, Some(b"data".to_vec()));
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    collection: Collection<Document>,
    /// The [`UserIndex`]'s side collection, `<collection>_users`.
    users: Collection<Document>,
    database: String,
    /// `host:port` of the servers, for error messages; unknown for a given client.
    target: Option<Arc<str>>,
    /// The longest the store awaits one driver operation: checkout plus I/O timeout.
    deadline: Duration,
    /// Whether the indexes are still to be created before the next operation.
    indexes_pending: Arc<AtomicBool>,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("target", &self.target)
            .field("database", &self.database)
            .field("collection", &self.collection.name())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl MongoStore {
    /// A store on the server at `url` (a `mongodb://` or `mongodb+srv://` URI), with every
    /// other setting at its default: database `flask_session`, collection `sessions`, indexes
    /// created, 2-second timeouts.
    ///
    /// Errors as [`MongoStoreBuilder::build`].
    ///
    /// ```no_run
    /// let store = server_session::store::MongoStore::open("mongodb://127.0.0.1:27017")?;
    /// assert_eq!((store.database(), store.collection()), ("flask_session", "sessions"));
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self> {
        Self::builder().url(url).build()
    }

    /// A store on `mongodb://127.0.0.1:27017` (Flask-Session's development default), with a
    /// `log` info line saying so, and every other setting at its default.
    ///
    /// ```no_run
    /// let store = server_session::store::MongoStore::default_local()?;
    /// assert_eq!((store.database(), store.collection()), ("flask_session", "sessions"));
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn default_local() -> Result<Self> {
        Self::builder().build()
    }

    /// A store using an existing client, with every other setting at its default.
    ///
    /// Errors as [`MongoStoreBuilder::build`].
    ///
    /// ```no_run
    /// let client = mongodb::sync::Client::with_uri_str("mongodb://127.0.0.1:27017")?;
    /// let store = server_session::store::MongoStore::from_client(client)?;
    /// assert_eq!(store.database(), "flask_session");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_client(client: Client) -> Result<Self> {
        Self::builder().client(client).build()
    }

    /// A builder with every setting at its default.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder();
    /// assert!(format!("{builder:?}").contains(r#"database: "flask_session""#));
    /// ```
    pub fn builder() -> MongoStoreBuilder {
        MongoStoreBuilder::default()
    }

    /// The client this store uses, to share its connection pool or run other commands.
    ///
    /// ```no_run
    /// let store = server_session::store::MongoStore::open("mongodb://127.0.0.1:27017")?;
    /// let names = store.client().list_database_names().run()?;
    /// assert!(names.iter().any(|name| name == store.database()), "its indexes are made");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The name of the database holding the sessions.
    ///
    /// ```no_run
    /// let store = server_session::store::MongoStore::open("mongodb://127.0.0.1:27017")?;
    /// assert_eq!(store.database(), "flask_session");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The name of the collection holding the sessions.
    ///
    /// ```no_run
    /// let store = server_session::store::MongoStore::open("mongodb://127.0.0.1:27017")?;
    /// assert_eq!(store.collection(), "sessions");
    /// # Ok::<(), server_session::Error>(())
    /// ```
    pub fn collection(&self) -> &str {
        self.collection.name()
    }

    /// Removes the document of `key` if it has expired; whether one was removed.
    fn remove_expired(&self, key: &str) -> Result<bool> {
        let filter = doc! { "id": key, "expiration": { "$lte": now() } };
        Ok(self.run(self.collection.delete_one(filter))?.deleted_count > 0)
    }

    /// Awaits the driver operation `op` (after the indexes, if still pending) for at most the
    /// deadline; errors name the server.
    fn run<R>(&self, op: impl IntoFuture<Output = ::mongodb::error::Result<R>>) -> Result<R> {
        self.ensure_indexes()?;
        self.bounded(op)
    }

    fn bounded<R>(&self, op: impl IntoFuture<Output = ::mongodb::error::Result<R>>) -> Result<R> {
        let limit = self.deadline;
        let waited =
            runtime()?.block_on(async move { tokio::time::timeout(limit, op.into_future()).await });
        let result = match waited {
            Ok(done) => done.map_err(Error::from),
            Err(_) => Err(timed_out(limit)),
        };
        match &self.target {
            Some(target) => result.map_err(|e| e.at(|| target.to_string())),
            None => result,
        }
    }

    /// Creates the indexes (the sessions', then the user index's) once, when they are to be
    /// created and have not been yet.
    fn ensure_indexes(&self) -> Result<()> {
        if self.indexes_pending.load(Ordering::Acquire) {
            self.bounded(self.collection.create_indexes(index_models()))?;
            self.bounded(self.users.create_indexes(users::user_index_models()))?;
            self.indexes_pending.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// The start-up check: the indexes created, or else one read from the collection.
    fn check(&self) -> Result<()> {
        if self.indexes_pending.load(Ordering::Acquire) {
            return self.ensure_indexes();
        }
        let probe = self
            .collection
            .find_one(doc! { "id": "" })
            .projection(value_only());
        self.bounded(probe).map(drop)
    }
}

/// The current time as a BSON date (truncated to the millisecond).
fn now() -> DateTime {
    DateTime::from_system_time(SystemTime::now())
}

/// Matches the live document of `key`.
fn live(key: &str) -> Document {
    doc! { "id": key, "expiration": { "$gt": now() } }
}

/// Returns only the value.
fn value_only() -> Document {
    doc! { "val": 1, "_id": 0 }
}

fn binary(value: &[u8]) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: value.to_vec(),
    }
}

/// Takes the bytes out of `val`; [`Error::Decode`] when it is not generic binary data.
fn value_of(mut document: Document) -> Result<Vec<u8>> {
    document
        .get_binary_generic_mut("val")
        .map(std::mem::take)
        .map_err(|e| Error::Decode(Box::new(e)))
}

fn is_duplicate_key(error: &Error) -> bool {
    let Some(error) = error.store_source::<::mongodb::error::Error>() else {
        return false;
    };
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

impl Store for MongoStore {
    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }

    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let found = self.run(self.collection.find_one(live(key)).projection(value_only()))?;
        found.map(value_of).transpose()
    }

    /// `insert_one`; on a duplicate key, removes the document if it has expired and retries.
    fn create(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let document = doc! {
            "id": key,
            "val": binary(value),
            "expiration": DateTime::from_system_time(expires),
        };
        for _ in 0..CREATE_ATTEMPTS {
            match self.run(self.collection.insert_one(&document)) {
                Ok(_) => return Ok(true),
                Err(e) if is_duplicate_key(&e) => {
                    if !self.remove_expired(key)? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let update = doc! { "$set": {
            "val": binary(value),
            "expiration": DateTime::from_system_time(expires),
        } };
        let result = self.run(self.collection.update_one(live(key), update))?;
        Ok(result.matched_count > 0)
    }

    /// One `update_one` filtered on the expected `val`; only when it matched nothing, a
    /// `find_one` of what is there now.
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        expires: SystemTime,
    ) -> Result<Replaced> {
        let mut filter = live(key);
        filter.insert("val", binary(expected));
        let update = doc! { "$set": {
            "val": binary(value),
            "expiration": DateTime::from_system_time(expires),
        } };
        if self
            .run(self.collection.update_one(filter, update))?
            .matched_count
            > 0
        {
            return Ok(Replaced::Done);
        }
        Ok(match self.load(key)? {
            Some(current) => Replaced::Changed(current),
            None => Replaced::Gone,
        })
    }

    fn touch(&self, key: &str, expires: SystemTime) -> Result<bool> {
        let update = doc! { "$set": { "expiration": DateTime::from_system_time(expires) } };
        let result = self.run(self.collection.update_one(live(key), update))?;
        Ok(result.matched_count > 0)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.run(self.collection.delete_one(doc! { "id": key }))?;
        Ok(())
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let update = doc! { "$set": { "expiration": DateTime::from_system_time(expires) } };
        let op = self.collection.find_one_and_update(live(key), update);
        let found = self.run(op.projection(value_only()))?;
        found.map(value_of).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let builder = MongoStore::builder().url("mongodb://app:s3cret@db:27017/?authSource=x");
        let shown = format!("{builder:?}");
        assert!(
            shown.contains("mongodb://app:***@db:27017/?authSource=x"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn invalid_uris_are_config_errors_without_the_password() {
        let err = MongoStore::open("mongodb://app:s3cret@db:notaport/").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn expiry_is_truncated_to_the_millisecond() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_999);
        assert_eq!(DateTime::from_system_time(at).timestamp_millis(), 1_500);
    }
}
