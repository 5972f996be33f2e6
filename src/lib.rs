//! Server-side sessions for synchronous Rust web servers, compatible with Flask-Session.
//!
//! A [`SessionManager`] is built once from a [`Store`](store::Store), a
//! [`Codec`](codec::Codec) and a validated [`Config`]. Each request opens a [`Session`] from
//! its `Cookie` header, reads and writes typed values, and ends with [`Session::commit`], which
//! saves only what changed and returns the `Set-Cookie` / `Vary` headers to send.
//!
//! ```
//! use server_session::{store::MemoryStore, Config, SessionManager};
//!
//! let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
//! let mut session = manager.open(Some("session=not-a-valid-id"));
//! let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
//! session.insert("visits", &visits)?;
//! let commit = session.commit()?;
//! assert!(commit.set_cookie().unwrap().starts_with("session="));
//! assert!(commit.vary_cookie());
//! # Ok::<(), server_session::Error>(())
//! ```
//!
//! # Features
//!
//! The core (manager, codecs, [`MemoryStore`](store::MemoryStore),
//! [`FileStore`](store::FileStore), [`NullStore`](store::NullStore)) is always built, the
//! [`Pickle`](codec::Pickle) codec included (it has no dependency and never runs what a
//! pickle names; legacy pickled sessions are upgraded through it); each server store and
//! adapter is a cargo feature of the same name:
//!
//! | feature | adds |
//! |---|---|
//! | `tiny_http` (default) | [`adapter::tiny_http`] |
//! | `rouille` | [`adapter::rouille`] |
//! | `redis` | [`RedisStore`](store::RedisStore) |
//! | `redis-cluster` | [`RedisClusterStore`](store::RedisClusterStore) (implies `redis`) |
//! | `memcached` | [`MemcachedStore`](store::MemcachedStore) (no client dependency: the store speaks the protocol) |
//! | `sqlite` | [`SqliteStore`](store::SqliteStore), the [`SqlStore`](store::SqlStore) on SQLite (bundled, no system library) |
//! | `postgres` | [`PostgresStore`](store::PostgresStore), the [`SqlStore`](store::SqlStore) on PostgreSQL |
//! | `mongodb` | [`MongoStore`](store::MongoStore) |
//! | `test-util` | [`conformance`](store::conformance): the store conformance suite, for third-party stores |
//!
//! On docs.rs every item that needs a feature is labelled with it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(feature = "tiny_http", feature = "rouille"))]
pub mod adapter;
mod civil;
pub mod codec;
mod commit;
mod commit_locks;
mod config;
pub mod cookie;
mod error;
mod events;
mod id;
mod lifetime;
mod manager;
mod merge;
mod scratch;
mod session;
mod signer;
pub mod store;
mod store_key;
mod users;

pub use commit::Commit;
pub use config::{Config, ConfigBuilder, DEFAULT_MAX_SESSION_BYTES, SameSite};
pub use error::{BoxError, Error, ErrorKind, Result, StoreError};
pub use events::{SessionEvent, SessionEvents, SessionMetrics};
pub use id::{MAX_ID_BYTES, MIN_ID_BYTES, SessionId};
pub use lifetime::MAX_SESSION_LIFETIME;
pub use manager::SessionManager;
pub use session::Session;
pub use signer::Signer;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
