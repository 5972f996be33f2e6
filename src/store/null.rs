//! Flask-Session's `null` session type: sessions disabled.

use std::time::SystemTime;

use super::Store;
use crate::{Error, Result};

/// A store that holds nothing: every session reads as empty, and committing a modified
/// session fails with [`Error::SessionsDisabled`]. Mirrors Flask-Session's `SESSION_TYPE = null`.
///
/// ```
/// use std::time::SystemTime;
/// use server_session::store::{NullStore, Store};
/// use server_session::Error;
///
/// assert_eq!(NullStore.load("session:a")?, None);
/// let err = NullStore.create("session:a", b"x", SystemTime::now()).unwrap_err();
/// assert!(matches!(err, Error::SessionsDisabled));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl Store for NullStore {
    fn load(&self, _key: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn create(&self, _key: &str, _value: &[u8], _expires: SystemTime) -> Result<bool> {
        Err(Error::SessionsDisabled)
    }

    fn save(&self, _key: &str, _value: &[u8], _expires: SystemTime) -> Result<bool> {
        Err(Error::SessionsDisabled)
    }

    fn touch(&self, _key: &str, _expires: SystemTime) -> Result<bool> {
        Ok(false)
    }

    fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }
}
