//! Sessions as documents in a MongoDB collection, like Flask-Session's `mongodb` backend: see
//! [`MongoStore`] for the document layout, the indexes and the expiry rules.

use std::time::{Duration, SystemTime};

use ::mongodb::bson::spec::BinarySubtype;
use ::mongodb::bson::{doc, Binary, DateTime, Document};
use ::mongodb::error::{ErrorKind, WriteFailure};
use ::mongodb::options::{ClientOptions, IndexOptions};
use ::mongodb::sync::{Client, Collection};
use ::mongodb::IndexModel;

use super::{Replaced, Store};
use crate::{Error, Result, StoreError};

/// `SESSION_MONGODB`'s default: a server on the local machine.
const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017";
/// `SESSION_MONGODB_DB`'s default.
const DEFAULT_DATABASE: &str = "flask_session";
/// `SESSION_MONGODB_COLLECT`'s default.
const DEFAULT_COLLECTION: &str = "sessions";
/// How long an operation waits for a usable server before failing (the driver's default: 30 s).
const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long opening a TCP connection may take (the driver's default: 10 s).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The server's error code for a unique-index violation.
const DUPLICATE_KEY: i32 = 11000;
/// How often `create` removes an expired document in its way and retries before giving up.
const CREATE_ATTEMPTS: usize = 3;

impl From<::mongodb::error::Error> for Error {
    fn from(e: ::mongodb::error::Error) -> Self {
        let kind = match *e.kind {
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. } => crate::ErrorKind::Unavailable,
            ErrorKind::Authentication { .. } => crate::ErrorKind::Rejected,
            _ => crate::ErrorKind::Other,
        };
        Error::Store(StoreError::new("mongodb", kind, e))
    }
}

/// Configures and opens a [`MongoStore`]; every setting has the Flask-Session default.
///
/// ```no_run
/// use std::time::Duration;
/// use server_session::store::MongoStore;
///
/// let store = MongoStore::builder()
///     .url("mongodb://127.0.0.1:27017/?directConnection=true")
///     .database("flask_session")
///     .collection("sessions")
///     .server_selection_timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(store.collection(), "sessions");
/// # Ok::<(), server_session::Error>(())
/// ```
#[derive(Clone)]
pub struct MongoStoreBuilder {
    url: Option<String>,
    client: Option<Client>,
    database: String,
    collection: String,
    server_selection_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    create_indexes: bool,
}

impl Default for MongoStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            client: None,
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            server_selection_timeout: None,
            connect_timeout: None,
            create_indexes: true,
        }
    }
}

/// Shows the settings, with any credentials in the URI hidden.
impl std::fmt::Debug for MongoStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStoreBuilder")
            .field("url", &self.url.as_deref().map(redact_credentials))
            .field("client", &self.client)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("create_indexes", &self.create_indexes)
            .finish()
    }
}

/// `scheme://user:password@hosts/...` becomes `scheme://***@hosts/...`.
fn redact_credentials(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => uri.to_owned(),
    }
}

impl MongoStoreBuilder {
    /// The connection string (`SESSION_MONGODB` as a URI). Default: `mongodb://127.0.0.1:27017`.
    ///
    /// Options in the URI apply (`serverSelectionTimeoutMS`, `connectTimeoutMS`, credentials,
    /// TLS...), except that a timeout set on this builder wins over the URI's. The Rust driver
    /// rejects `socketTimeoutMS`. Add `directConnection=true` to talk to one server of a replica
    /// set directly. Ignored when a [`client`](Self::client) is given.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder()
    ///     .url("mongodb://db.internal:27017/?directConnection=true");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// An existing client to share (`SESSION_MONGODB` as a client). Default: none, a client is
    /// made from the [`url`](Self::url).
    ///
    /// The client keeps its own options: the timeouts of this builder do not apply to it.
    ///
    /// ```no_run
    /// let client = mongodb::sync::Client::with_uri_str("mongodb://127.0.0.1:27017")?;
    /// let builder = server_session::store::MongoStore::builder().client(client);
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
    /// ```
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// The collection (`SESSION_MONGODB_COLLECT`). Default: `sessions`.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder().collection("web_sessions");
    /// ```
    pub fn collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// How long an operation waits for a reachable server before it fails with
    /// [`Error::Store`]. Default: 2 seconds (the URI's `serverSelectionTimeoutMS` if it has
    /// one); the driver's own default would be 30 seconds. Must not be zero.
    ///
    /// This is what bounds an operation while the server is down or unreachable.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = server_session::store::MongoStore::builder()
    ///     .server_selection_timeout(Duration::from_secs(5));
    /// ```
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout);
        self
    }

    /// How long opening a connection (TCP connect, TLS and handshake of the server monitor) may
    /// take. Default: 2 seconds (the URI's `connectTimeoutMS` if it has one); the driver's own
    /// default would be 10 seconds. Must not be zero.
    ///
    /// There is no socket (read) timeout: the Rust driver does not support one. A server that
    /// stops answering is detected by the driver's monitor, whose checks are bounded by this
    /// timeout; it then interrupts the operations in flight (about 9 s after a server froze,
    /// with the defaults and the monitor's 10-second heartbeat; `heartbeatFrequencyMS` in the
    /// URI shortens that), and later operations fail after the server selection timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = server_session::store::MongoStore::builder()
    ///     .connect_timeout(Duration::from_millis(500));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Whether [`build`](Self::build) creates the indexes. Default: `true`.
    ///
    /// With `true`, `build` creates (idempotently) a unique index `id_1` on `id` and a TTL index
    /// `expiration_1` on `expiration` with `expireAfterSeconds: 0` (the same TTL index
    /// Flask-Session 0.8 creates), and fails if they exist with other options. With `false`,
    /// `build` does no I/O and you manage the indexes yourself: **the unique index on `id` is
    /// required**, without it two concurrent `create`s of one id could both succeed.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder().create_indexes(false);
    /// ```
    pub fn create_indexes(mut self, create_indexes: bool) -> Self {
        self.create_indexes = create_indexes;
        self
    }

    /// Validates the settings, makes the client (unless one was given) and creates the indexes
    /// (unless turned off).
    ///
    /// Errors: [`Error::Config`] for an empty or invalid database or collection name, or a zero
    /// timeout; [`Error::Store`] for an invalid URI, or when the indexes cannot be created
    /// (server unreachable within the timeouts, conflicting existing index, no permission).
    ///
    /// ```
    /// use server_session::{store::MongoStore, Error};
    /// let err = MongoStore::builder().collection("").build().unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// ```
    pub fn build(self) -> Result<MongoStore> {
        self.validate()?;
        let client = match &self.client {
            Some(client) => client.clone(),
            None => Client::with_options(self.client_options()?)?,
        };
        let collection = client
            .database(&self.database)
            .collection::<Document>(&self.collection);
        if self.create_indexes {
            create_indexes(&collection)?;
        }
        Ok(MongoStore {
            client,
            collection,
            database: self.database,
        })
    }

    fn validate(&self) -> Result<()> {
        validate_name("database", &self.database, "/\\. \"$\0")?;
        validate_name("collection", &self.collection, "$\0")?;
        let timeouts = [
            ("server_selection_timeout", self.server_selection_timeout),
            ("connect_timeout", self.connect_timeout),
        ];
        match timeouts.iter().find(|(_, t)| *t == Some(Duration::ZERO)) {
            Some((name, _)) => Err(Error::Config(format!("MongoStore {name} must not be zero"))),
            None => Ok(()),
        }
    }

    fn client_options(&self) -> Result<ClientOptions> {
        let url = self.url.as_deref().unwrap_or_else(|| {
            log::info!("no MongoDB URL or client given: connecting to {DEFAULT_URL}");
            DEFAULT_URL
        });
        let mut options = ClientOptions::parse(url).run()?;
        options.server_selection_timeout = self
            .server_selection_timeout
            .or(options.server_selection_timeout)
            .or(Some(DEFAULT_SERVER_SELECTION_TIMEOUT));
        options.connect_timeout = self
            .connect_timeout
            .or(options.connect_timeout)
            .or(Some(DEFAULT_CONNECT_TIMEOUT));
        Ok(options)
    }
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

/// The unique index on `id` and the TTL index on `expiration`; a no-op when both exist.
fn create_indexes(collection: &Collection<Document>) -> Result<()> {
    let unique = IndexModel::builder()
        .keys(doc! { "id": 1 })
        .options(IndexOptions::builder().unique(true).build())
        .build();
    let ttl = IndexModel::builder()
        .keys(doc! { "expiration": 1 })
        .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
        .build();
    collection.create_indexes([unique, ttl]).run()?;
    Ok(())
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
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    collection: Collection<Document>,
    database: String,
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
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_client(client: Client) -> Result<Self> {
        Self::builder().client(client).build()
    }

    /// A builder with every setting at its default.
    ///
    /// ```
    /// let builder = server_session::store::MongoStore::builder();
    /// ```
    pub fn builder() -> MongoStoreBuilder {
        MongoStoreBuilder::default()
    }

    /// The client this store uses, to share its connection pool or run other commands.
    ///
    /// ```no_run
    /// let store = server_session::store::MongoStore::open("mongodb://127.0.0.1:27017")?;
    /// let names = store.client().list_database_names().run()?;
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
        Ok(self.collection.delete_one(filter).run()?.deleted_count > 0)
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

fn is_duplicate_key(error: &::mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

impl Store for MongoStore {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let found = self
            .collection
            .find_one(live(key))
            .projection(value_only())
            .run()?;
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
            match self.collection.insert_one(&document).run() {
                Ok(_) => return Ok(true),
                Err(e) if is_duplicate_key(&e) => {
                    if !self.remove_expired(key)? {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    fn save(&self, key: &str, value: &[u8], expires: SystemTime) -> Result<bool> {
        let update = doc! { "$set": {
            "val": binary(value),
            "expiration": DateTime::from_system_time(expires),
        } };
        let result = self.collection.update_one(live(key), update).run()?;
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
            .collection
            .update_one(filter, update)
            .run()?
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
        let result = self.collection.update_one(live(key), update).run()?;
        Ok(result.matched_count > 0)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.collection.delete_one(doc! { "id": key }).run()?;
        Ok(())
    }

    fn load_and_touch(&self, key: &str, expires: SystemTime) -> Result<Option<Vec<u8>>> {
        let update = doc! { "$set": { "expiration": DateTime::from_system_time(expires) } };
        let found = self
            .collection
            .find_one_and_update(live(key), update)
            .projection(value_only())
            .run()?;
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
            shown.contains("mongodb://***@db:27017/?authSource=x"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            redact_credentials("mongodb://db/?a=b@c"),
            "mongodb://db/?a=b@c"
        );
        assert_eq!(redact_credentials("not a uri"), "not a uri");
    }

    #[test]
    fn expiry_is_truncated_to_the_millisecond() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_999);
        assert_eq!(DateTime::from_system_time(at).timestamp_millis(), 1_500);
    }
}
