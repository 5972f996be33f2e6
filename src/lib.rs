//! Server-side sessions for synchronous Rust web servers, compatible with Flask-Session.
//!
//! (crate docs: see README; written once the API settles)
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
mod commit;
mod config;
pub mod cookie;
mod error;
mod id;
mod manager;
mod session;
mod signer;
pub mod store;

pub use commit::Commit;
pub use config::{Config, ConfigBuilder, SameSite};
pub use error::{BoxError, Error, Result};
pub use id::{SessionId, MAX_ID_BYTES, MIN_ID_BYTES};
pub use manager::SessionManager;
pub use session::Session;
pub use signer::Signer;
