//! API tokens: 256 random bits, shown once, stored as their SHA-256.
//!
//! A plain hash (no salt, no slow KDF) is enough because the secret is
//! random and long: there is no dictionary to attack, and a lookup by hash
//! keeps authentication one indexed read.

use sha2::{Digest, Sha256};

/// Every token starts with this, so a leaked one is recognisable (secret
/// scanners, logs).
pub const TOKEN_PREFIX: &str = "wct_";

/// A new random token secret.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The hash a token is stored and looked up by.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Fills `buf` from the operating system's random source; a failure here
/// is a broken machine.
fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }
}
