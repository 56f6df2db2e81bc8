//! A small key-value store private to this connector of this brand, kept by
//! the host across calls and restarts: refreshed tokens, ids seen, ETags.
//! Keys up to 256 bytes, values up to 64 KiB, 1 MiB in all. Messages do not
//! belong here; return them in batches.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::webcare::connector::state as host;
use crate::{Error, Result};

/// The value under `key`, or `None`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    host::get(key).map_err(|error| state_error(key, error))
}

/// Stores `value` under `key`, replacing any value.
pub fn set(key: &str, value: &[u8]) -> Result<()> {
    host::set(key, value).map_err(|error| state_error(key, error))
}

/// Removes `key`; removing a missing key is not an error.
pub fn delete(key: &str) -> Result<()> {
    host::delete(key).map_err(|error| state_error(key, error))
}

/// The value under `key` parsed as JSON, or `None`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    get(key)?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|error| {
                Error::invalid_input(format!("state `{key}` is not the expected JSON: {error}"))
            })
        })
        .transpose()
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|error| {
        Error::invalid_input(format!("state `{key}` cannot be written as JSON: {error}"))
    })?;
    set(key, &bytes)
}

/// Maps a store failure: a limit is invalid input, an unavailable store is
/// transient.
fn state_error(key: &str, error: host::StateError) -> Error {
    match error {
        host::StateError::TooLarge(limit) => {
            Error::invalid_input(format!("state `{key}` exceeds a limit: {limit}"))
        }
        host::StateError::Unavailable(reason) => {
            Error::transient(format!("state store unavailable for `{key}`: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_map_by_kind() {
        let error = state_error("k", host::StateError::TooLarge("value over 64 KiB".into()));
        assert!(matches!(error, Error::InvalidInput(detail) if detail.contains("64 KiB")));
        let error = state_error("k", host::StateError::Unavailable("disk".into()));
        assert!(matches!(error, Error::Transient(_)));
    }
}
