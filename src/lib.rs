//! server-session (crate docs are written with the manager)
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
mod error;
pub mod store;

pub use error::{BoxError, Error, Result};
