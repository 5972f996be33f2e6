//! The conformance suite and MongoStore-specific behaviour, against a real MongoDB-wire server
//! (SecantusDB in the test script: `bash scripts/mongodb.sh`).
//!
//! The server is found through `SERVER_SESSION_MONGODB_URL`; unset means SKIP, or failure when
//! `SERVER_SESSION_REQUIRE_SERVICES=1`. Every test uses its own collection, dropped at the end.
#![cfg(feature = "mongodb")]

use std::time::{Duration, SystemTime};

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use mongodb::sync::{Client, Collection};
use server_session::store::conformance::{
    self, Guarded, SilentServer, service_unavailable, unique_prefix,
};
use server_session::store::{ConnectionSettings, MongoStore, Store, UserIndex};
use server_session::{
    Config, Error, ErrorKind, SessionManager, conformance_tests, user_index_conformance_tests,
};

const URL_ENV: &str = "SERVER_SESSION_MONGODB_URL";
const DATABASE: &str = "server_session_test";

/// A MongoStore on its own fresh collection, dropped at the end of the test.
type FreshStore = Guarded<MongoStore, DropCollection>;

/// Drops the test's collection and its user index collection.
struct DropCollection(Collection<Document>, Collection<Document>);

impl Drop for DropCollection {
    fn drop(&mut self) {
        let _ = self.0.drop().run();
        let _ = self.1.drop().run();
    }
}

/// The test's collection, for raw driver calls.
fn raw(store: &FreshStore) -> &Collection<Document> {
    &store.guard.0
}

/// A collection name unique to this test run: the test's name (libtest names the thread after
/// the test) made safe for MongoDB, plus the random part of a conformance prefix.
fn collection_name() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let prefix = unique_prefix(test);
    let safe: String = prefix
        .trim_end_matches(':')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    safe.trim_start_matches("conformance_").to_owned()
}

/// A store on a fresh collection, or `None` when no server is configured.
///
/// Its connect and checkout timeouts are 2 seconds, not the default 1: the whole suite in
/// parallel loads the test server enough that a 1-second monitor check times out, which
/// clears the driver's pool mid-operation and makes it retry writes (see the store's docs).
fn fresh() -> Option<FreshStore> {
    let url = std::env::var(URL_ENV).ok()?;
    let store = MongoStore::builder()
        .url(url)
        .database(DATABASE)
        .collection(collection_name())
        .connection(ConnectionSettings {
            connect_timeout: Duration::from_secs(2),
            checkout_timeout: Duration::from_secs(2),
            ..ConnectionSettings::default()
        })
        .build()
        .unwrap_or_else(|e| panic!("MongoStore on {URL_ENV}: {e} ({e:?})"));
    let database = store.client().database(store.database());
    let collection = database.collection(store.collection());
    let users = database.collection(&format!("{}_users", store.collection()));
    Some(Guarded {
        store,
        guard: DropCollection(collection, users),
    })
}

/// Runs `check` on a fresh store, or reports the service as unavailable.
fn with_store(test: &str, check: impl FnOnce(&FreshStore)) {
    match fresh() {
        Some(store) => check(&store),
        None => service_unavailable(test),
    }
}

conformance_tests!(fresh());
user_index_conformance_tests!(fresh());

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

fn raw_document(store: &FreshStore, key: &str) -> Document {
    raw(store)
        .find_one(doc! { "id": key })
        .run()
        .unwrap()
        .unwrap_or_else(|| panic!("no document for {key}"))
}

/// A session written through the manager is stored in Flask-Session 0.8's exact layout.
#[test]
fn document_layout_matches_flask_session() {
    with_store("document_layout_matches_flask_session", |store| {
        let manager = SessionManager::new(store.store.clone(), Config::default()).unwrap();
        let mut session = manager.open(None);
        session.insert("visits", &1u64).unwrap();
        let set_cookie = session.commit().unwrap().set_cookie().unwrap().to_owned();
        let id = set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix("session="))
            .unwrap();
        let document = raw_document(store, &format!("session:{id}"));
        let fields: Vec<&str> = document.keys().map(String::as_str).collect();
        assert_eq!(fields, ["_id", "id", "val", "expiration"]);
        let Some(Bson::Binary(val)) = document.get("val") else {
            panic!("val is not binary: {document}");
        };
        assert_eq!(val.subtype, BinarySubtype::Generic);
        // MessagePack {"_permanent": true, "visits": 1}, as Flask-Session 0.8 writes it.
        assert_eq!(val.bytes, b"\x82\xaa_permanent\xc3\xa6visits\x01");
        let expiration = document
            .get_datetime("expiration")
            .unwrap()
            .to_system_time();
        let lifetime = expiration.duration_since(SystemTime::now()).unwrap();
        let days = lifetime.as_secs_f64() / 86400.0;
        assert!((30.99..=31.0).contains(&days), "expires in {days} days");
    });
}

/// `build` creates a unique index on `id` and a TTL index on `expiration`, idempotently.
#[test]
fn indexes_exist_with_the_right_options() {
    with_store("indexes_exist_with_the_right_options", |store| {
        let again = MongoStore::builder()
            .client(store.store.client().clone())
            .database(DATABASE)
            .collection(store.store.collection());
        again
            .build()
            .expect("creating the indexes twice is a no-op");
        let indexes: Vec<_> = raw(store).list_indexes().run().unwrap().collect();
        let indexes: Vec<_> = indexes.into_iter().map(Result::unwrap).collect();
        let find = |field: &str| {
            let index = indexes.iter().find(|i| i.keys.contains_key(field));
            index.unwrap_or_else(|| panic!("no index on {field}: {indexes:?}"))
        };
        let id = find("id").options.as_ref().unwrap();
        assert_eq!(id.unique, Some(true), "index on id: {id:?}");
        let expiration = find("expiration").options.as_ref().unwrap();
        assert_eq!(expiration.expire_after, Some(Duration::ZERO));
        assert_eq!(indexes.len(), 3, "_id, id and expiration: {indexes:?}");
    });
}

/// A document inserted by raw driver calls in Flask-Session's layout (as pymongo writes it)
/// is read, saved and touched by the store.
#[test]
fn reads_a_document_written_in_flask_session_layout() {
    with_store(
        "reads_a_document_written_in_flask_session_layout",
        |store| {
            let payload = b"\x81\xa6visits\x05".to_vec();
            let document = doc! {
                "id": "session:from-flask",
                "val": Binary { subtype: BinarySubtype::Generic, bytes: payload.clone() },
                "expiration": DateTime::from_system_time(in_an_hour()),
            };
            raw(store).insert_one(document).run().unwrap();
            let key = "session:from-flask";
            assert_eq!(store.load(key).unwrap(), Some(payload.clone()));
            assert!(!store.create(key, b"other", in_an_hour()).unwrap());
            assert!(store.touch(key, in_an_hour()).unwrap());
            assert_eq!(
                store.load_and_touch(key, in_an_hour()).unwrap(),
                Some(payload)
            );
        },
    );
}

/// An expired document the TTL monitor has not removed yet reads as gone, and `create` over
/// it succeeds.
#[test]
fn expired_document_not_yet_removed_reads_as_none() {
    with_store("expired_document_not_yet_removed_reads_as_none", |store| {
        let key = "session:expired";
        let document = doc! {
            "id": key,
            "val": Binary { subtype: BinarySubtype::Generic, bytes: b"stale".to_vec() },
            "expiration": DateTime::from_system_time(SystemTime::now() - Duration::from_secs(5)),
        };
        raw(store).insert_one(document).run().unwrap();
        assert!(
            raw(store)
                .find_one(doc! { "id": key })
                .run()
                .unwrap()
                .is_some()
        );
        assert_eq!(store.load(key).unwrap(), None);
        assert_eq!(store.load_and_touch(key, in_an_hour()).unwrap(), None);
        assert!(!store.save(key, b"late", in_an_hour()).unwrap());
        assert!(store.create(key, b"fresh", in_an_hour()).unwrap());
        assert_eq!(store.load(key).unwrap(), Some(b"fresh".to_vec()));
    });
}

/// Expiries a few milliseconds ahead or behind behave per contract despite BSON's millisecond
/// precision: never an expired value, a live one until it expires.
#[test]
fn millisecond_precision_expiry() {
    with_store("millisecond_precision_expiry", |store| {
        let past = SystemTime::now() - Duration::from_millis(1);
        assert!(store.create("session:past", b"x", past).unwrap());
        assert_eq!(store.load("session:past").unwrap(), None);
        let soon = SystemTime::now() + Duration::from_millis(400);
        assert!(store.create("session:soon", b"x", soon).unwrap());
        assert_eq!(store.load("session:soon").unwrap(), Some(b"x".to_vec()));
        std::thread::sleep(soon.duration_since(SystemTime::now()).unwrap_or_default());
        assert_eq!(store.load("session:soon").unwrap(), None);
        assert!(!store.touch("session:soon", in_an_hour()).unwrap());
    });
}

/// A `val` that is not generic binary data is a typed decode error, not a panic.
#[test]
fn non_binary_val_is_a_decode_error() {
    with_store("non_binary_val_is_a_decode_error", |store| {
        let document = doc! {
            "id": "session:text",
            "val": "not bytes",
            "expiration": DateTime::from_system_time(in_an_hour()),
        };
        raw(store).insert_one(document).run().unwrap();
        let err = store.load("session:text").unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err:?}");
    });
}

/// Builds against a silent server and a closed port fail within the checkout timeout (server
/// selection), and so does every operation of a store built without the start-up check, each
/// with `ErrorKind::Unavailable`.
#[test]
fn silent_or_absent_servers_fail_within_the_timeouts() {
    let timeout = Duration::from_millis(200);
    let build = |addr, check| {
        MongoStore::builder()
            .url(format!(
                "mongodb://app:hunter2@{addr}/?directConnection=true"
            ))
            .connection(conformance::fault_settings(timeout))
            .startup_check(check)
            .build()
    };
    let limit = timeout + Duration::from_millis(150);
    conformance::every_wait_bounded(build, limit, limit);
}

/// The errors of a silent server and a closed port name the server and the cause.
#[test]
fn unreachable_servers_are_named_with_the_cause() {
    let silent = SilentServer::start();
    let build = |addr: std::net::SocketAddr| {
        MongoStore::builder()
            .url(format!("mongodb://{addr}/?directConnection=true"))
            .connection(ConnectionSettings {
                checkout_timeout: Duration::from_millis(100),
                ..ConnectionSettings::default()
            })
            .build()
            .unwrap_err()
    };
    let err = build(silent.addr());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let prefix = format!("mongodb {}: ", silent.addr());
    assert!(err.to_string().starts_with(&prefix), "{err}");
    let closed = conformance::closed_port();
    assert_eq!(
        build(closed).to_string(),
        format!("mongodb {closed}: connection refused")
    );
}

/// The password of the URL is in neither the builder's `Debug` nor the error of a build the
/// server refuses.
#[test]
fn the_password_is_never_printed() {
    let Ok(url) = std::env::var(URL_ENV) else {
        return service_unavailable("the_password_is_never_printed");
    };
    let secret = url.replacen("mongodb://", "mongodb://no_such_user:hunter2@", 1);
    let builder = MongoStore::builder()
        .url(&secret)
        .database(DATABASE)
        .collection(collection_name());
    let shown = format!("{builder:?}");
    assert!(shown.contains("no_such_user:***@"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    match builder.build() {
        Err(err) => {
            let message = err.to_string();
            assert!(message.starts_with("mongodb "), "{message}");
            assert_eq!(err.kind(), ErrorKind::Rejected, "{message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
        Ok(store) => panic!("a server without authentication accepted {store:?}"),
    }
}

/// A shared client works, and invalid settings are configuration errors.
#[test]
fn from_client_and_invalid_settings() {
    let err = MongoStore::builder().database("a.b").build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = MongoStore::builder()
        .connection(ConnectionSettings {
            connect_timeout: Duration::ZERO,
            ..ConnectionSettings::default()
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = MongoStore::open("not-a-uri").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = MongoStore::builder()
        .server_selection_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("server_selection_timeout"),
        "{err}"
    );
    let err = MongoStore::builder()
        .connection(ConnectionSettings {
            max_connections: 0,
            ..ConnectionSettings::default()
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let Ok(url) = std::env::var(URL_ENV) else {
        return service_unavailable("from_client_and_invalid_settings");
    };
    let client = Client::with_uri_str(url).unwrap();
    let store = MongoStore::from_client(client).unwrap();
    assert_eq!(
        (store.database(), store.collection()),
        ("flask_session", "sessions")
    );
}

/// The user index lives in `<collection>_users`: one `{user, key, until}` document per record,
/// a unique index on `(user, key)` and a TTL index on `until` (so the server removes lapsed
/// records), and the sessions collection gains nothing.
#[test]
fn user_index_collection_has_unique_and_ttl_indexes() {
    with_store(
        "user_index_collection_has_unique_and_ttl_indexes",
        |store| {
            let until = in_an_hour();
            for _ in 0..2 {
                store
                    .store
                    .link_user("session:user:ada", "session:a", until)
                    .unwrap();
            }
            let users = &store.guard.1;
            let records: Vec<Document> = users
                .find(doc! {})
                .run()
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(
                records.len(),
                1,
                "one record however often linked: {records:?}"
            );
            let record = &records[0];
            assert_eq!(record.get_str("user").unwrap(), "session:user:ada");
            assert_eq!(record.get_str("key").unwrap(), "session:a");
            let at = record.get_datetime("until").unwrap();
            assert_eq!(*at, DateTime::from_system_time(until));
            let indexes: Vec<_> = users
                .list_indexes()
                .run()
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let find = |keys: Document| {
                let index = indexes.iter().find(|i| i.keys == keys);
                let index = index.unwrap_or_else(|| panic!("no index on {keys}: {indexes:?}"));
                index.options.clone().unwrap_or_default()
            };
            assert_eq!(find(doc! { "user": 1, "key": 1 }).unique, Some(true));
            assert_eq!(find(doc! { "until": 1 }).expire_after, Some(Duration::ZERO));
            assert_eq!(
                raw(store).count_documents(doc! {}).run().unwrap(),
                0,
                "no session written"
            );
        },
    );
}
