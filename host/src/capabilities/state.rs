//! The `state` capability: a small key-value store private to one connector.
//!
//! The store is behind a trait so the service can back it with its database;
//! [`MemoryStateStore`] serves the CLI and tests.

use std::collections::HashMap;
use std::sync::Mutex;

use thiserror::Error;

use super::ConnectorId;

/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest total of keys and values per connector, in bytes.
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StateError {
    #[error("state limit exceeded: {0}")]
    TooLarge(String),
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// Per-connector key-value storage. Implementations must keep connectors
/// apart: a key of one `ConnectorId` is never visible under another.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    fn get(&self, owner: &ConnectorId, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    fn set(&self, owner: &ConnectorId, key: &str, value: &[u8]) -> Result<(), StateError>;
    fn delete(&self, owner: &ConnectorId, key: &str) -> Result<(), StateError>;
}

/// Checks the per-key limits every store enforces.
pub fn check_entry(key: &str, value: &[u8]) -> Result<(), StateError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StateError::TooLarge(format!(
            "key of {} bytes, limit {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(StateError::TooLarge(format!(
            "value of {} bytes, limit {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// An in-process store; lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    entries: Mutex<HashMap<ConnectorId, HashMap<String, Vec<u8>>>>,
}

impl StateStore for MemoryStateStore {
    fn get(&self, owner: &ConnectorId, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let entries = self.entries.lock().expect("state lock poisoned");
        Ok(entries.get(owner).and_then(|m| m.get(key)).cloned())
    }

    fn set(&self, owner: &ConnectorId, key: &str, value: &[u8]) -> Result<(), StateError> {
        check_entry(key, value)?;
        let mut entries = self.entries.lock().expect("state lock poisoned");
        let map = entries.entry(owner.clone()).or_default();
        let current: usize = map
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if current + key.len() + value.len() > MAX_TOTAL_BYTES {
            return Err(StateError::TooLarge(format!(
                "connector state would exceed {MAX_TOTAL_BYTES} bytes"
            )));
        }
        map.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, owner: &ConnectorId, key: &str) -> Result<(), StateError> {
        let mut entries = self.entries.lock().expect("state lock poisoned");
        if let Some(map) = entries.get_mut(owner) {
            map.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: &str) -> ConnectorId {
        ConnectorId {
            brand: b.into(),
            connector: "x".into(),
        }
    }

    #[test]
    fn connectors_do_not_see_each_other() {
        let s = MemoryStateStore::default();
        s.set(&id("a"), "token", b"A").unwrap();
        assert_eq!(s.get(&id("a"), "token").unwrap(), Some(b"A".to_vec()));
        assert_eq!(s.get(&id("b"), "token").unwrap(), None);
        s.delete(&id("a"), "token").unwrap();
        assert_eq!(s.get(&id("a"), "token").unwrap(), None);
    }

    #[test]
    fn limits_are_enforced() {
        let s = MemoryStateStore::default();
        let big_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(s.set(&id("a"), &big_key, b"").is_err());
        assert!(s.set(&id("a"), "k", &vec![0; MAX_VALUE_BYTES + 1]).is_err());
        for i in 0..16 {
            s.set(&id("a"), &format!("k{i}"), &vec![0; MAX_VALUE_BYTES - 8])
                .unwrap();
        }
        let e = s.set(&id("a"), "one-more", &vec![0; MAX_VALUE_BYTES - 8]);
        assert!(matches!(e, Err(StateError::TooLarge(_))));
        // Replacing an existing key does not count it twice.
        s.set(&id("a"), "k0", &vec![1; MAX_VALUE_BYTES - 8])
            .unwrap();
    }
}
