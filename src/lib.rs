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
mod id;
mod lifetime;
mod manager;
mod merge;
mod session;
mod signer;
pub mod store;
mod users;

pub use commit::Commit;
pub use config::{Config, ConfigBuilder, SameSite, DEFAULT_MAX_SESSION_BYTES};
pub use error::{BoxError, Error, ErrorKind, Result, StoreError};
pub use id::{SessionId, MAX_ID_BYTES, MIN_ID_BYTES};
pub use lifetime::MAX_SESSION_LIFETIME;
pub use manager::SessionManager;
pub use session::Session;
pub use signer::Signer;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
