//! The stores and the matching Flask-Session settings, one function per backend, each in a
//! namespace of its own.

use serde_json::{Value as Json, json};

/// A fresh store for one test, the same backend's settings for the Flask app, and what removes
/// the test's table or collection at the end (without panicking).
pub(crate) struct Backend<S> {
    pub(crate) store: S,
    pub(crate) python: Json,
    pub(crate) cleanup: Option<Box<dyn FnOnce()>>,
}

/// Names unique to one test.
pub(crate) struct Namespace {
    /// `SESSION_KEY_PREFIX` / `key_prefix`.
    pub(crate) prefix: String,
    /// A table or collection name (unused when only key-value backends are compiled in).
    #[allow(dead_code)]
    pub(crate) table: String,
}

impl Namespace {
    pub(crate) fn new(test: &str) -> Self {
        let random = getrandom::u64().expect("the system random number generator");
        Self {
            prefix: format!("interop:{test}:{random:016x}:"),
            table: format!("interop_{random:016x}"),
        }
    }
}

#[allow(dead_code)] // unused when only the SQLite backend is compiled in
fn env_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|u| !u.is_empty())
}

/// `SESSION_TYPE = "filesystem"` with `SESSION_FILE_DIR` a fresh directory: a `FileStore` in
/// cachelib's layout there, both apps with Flask-Session's default threshold, 500.
pub(crate) fn filesystem_backend(
    _: &Namespace,
) -> Option<Backend<server_session::store::FileStore>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = server_session::store::FileStore::builder()
        .directory(dir.path())
        .layout(server_session::store::FileLayout::Cachelib)
        .build()
        .expect("FileStore");
    Some(Backend {
        store,
        python: json!({"backend": "filesystem", "dir": dir.path()}),
        cleanup: Some(Box::new(move || drop(dir))),
    })
}

/// `SESSION_TYPE = "redis"`, `SESSION_REDIS = redis.Redis.from_url(url)`.
#[cfg(feature = "redis")]
pub(crate) fn redis_backend(_: &Namespace) -> Option<Backend<server_session::store::RedisStore>> {
    let url = env_url("SERVER_SESSION_REDIS_URL")?;
    Some(Backend {
        store: server_session::store::RedisStore::open(&url).expect("RedisStore"),
        python: json!({"backend": "redis", "url": url}),
        cleanup: None,
    })
}

/// `SESSION_TYPE = "redis"` with a redis-py `RedisCluster` on the same seed nodes as
/// `SESSION_REDIS` (see `flask_app.py` for how Flask-Session 0.8 is made to use it). The store
/// holds the clusters' lock shared, so that no failover test kills a node under the test.
#[cfg(feature = "redis-cluster")]
pub(crate) fn redis_cluster_backend(
    _: &Namespace,
) -> Option<Backend<crate::cluster_support::Steady<server_session::store::RedisClusterStore>>> {
    let url = env_url("SERVER_SESSION_REDIS_CLUSTER_URL")?;
    let store = server_session::store::RedisClusterStore::open(&url).expect("RedisClusterStore");
    let python = json!({
        "backend": "redis-cluster",
        "nodes": crate::cluster_support::nodes(&url),
    });
    Some(Backend {
        store: crate::cluster_support::steady(store),
        python,
        cleanup: None,
    })
}

/// `SESSION_TYPE = "memcached"` with a pymemcache client on the one server.
#[cfg(feature = "memcached")]
pub(crate) fn memcached_backend(
    _: &Namespace,
) -> Option<Backend<server_session::store::MemcachedStore>> {
    let url = env_url("SERVER_SESSION_MEMCACHED_URL")?;
    let store = server_session::store::MemcachedStore::open(&url).expect("MemcachedStore");
    let servers: Vec<&str> = store.servers().collect();
    let [server] = servers[..] else {
        panic!("sharing sessions with Flask-Session needs a single memcached server: {url}");
    };
    let python = json!({"backend": "memcached", "server": server});
    Some(Backend {
        store,
        python,
        cleanup: None,
    })
}

/// `SESSION_TYPE = "sqlalchemy"` on a fresh SQLite file (no server needed).
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_backend(
    ns: &Namespace,
) -> Option<Backend<server_session::store::SqliteStore>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sessions.db");
    let store = server_session::store::SqliteStore::builder()
        .path(&path)
        .table(ns.table.as_str())
        .build()
        .expect("SqliteStore");
    let url = format!("sqlite:///{}", path.display());
    Some(Backend {
        store,
        python: json!({"backend": "sqlalchemy", "url": url, "table": ns.table}),
        cleanup: Some(Box::new(move || drop(dir))),
    })
}

/// `SESSION_TYPE = "sqlalchemy"` on PostgreSQL (psycopg2), in a table of its own.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_backend(
    ns: &Namespace,
) -> Option<Backend<server_session::store::PostgresStore>> {
    let url = env_url("SERVER_SESSION_POSTGRES_URL")?;
    let store = server_session::store::PostgresStore::builder()
        .url(url.as_str())
        .table(ns.table.as_str())
        .build()
        .expect("PostgresStore");
    let (_, rest) = url.split_once("://").expect("a postgres:// URL");
    let python = json!({
        "backend": "sqlalchemy",
        "url": format!("postgresql+psycopg2://{rest}"),
        "table": ns.table,
    });
    let table = ns.table.clone();
    let cleanup = move || {
        let drop_table =
            format!("DROP TABLE IF EXISTS \"{table}\"; DROP TABLE IF EXISTS \"{table}_users\"");
        let dropped = ::postgres::Client::connect(&url, ::postgres::NoTls)
            .and_then(|mut client| client.batch_execute(&drop_table));
        if let Err(e) = dropped {
            eprintln!("interop: could not drop the table {table}: {e}");
        }
    };
    Some(Backend {
        store,
        python,
        cleanup: Some(Box::new(cleanup)),
    })
}

/// `SESSION_TYPE = "mongodb"`, in a collection of its own.
#[cfg(feature = "mongodb")]
pub(crate) fn mongodb_backend(
    ns: &Namespace,
) -> Option<Backend<server_session::store::MongoStore>> {
    const DATABASE: &str = "server_session_interop";
    let url = env_url("SERVER_SESSION_MONGODB_URL")?;
    let store = server_session::store::MongoStore::builder()
        .url(url.as_str())
        .database(DATABASE)
        .collection(ns.table.as_str())
        .build()
        .expect("MongoStore");
    let python = json!({
        "backend": "mongodb",
        "url": url,
        "database": DATABASE,
        "collection": ns.table,
    });
    let database = store.client().database(DATABASE);
    let collections = [ns.table.clone(), format!("{}_users", ns.table)]
        .map(|name| database.collection::<::mongodb::bson::Document>(&name));
    let cleanup = move || {
        for collection in &collections {
            if let Err(e) = collection.drop().run() {
                eprintln!("interop: could not drop the collection: {e}");
            }
        }
    };
    Some(Backend {
        store,
        python,
        cleanup: Some(Box::new(cleanup)),
    })
}
