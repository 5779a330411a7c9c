//! Session and bot tokens: 256 random bits, shown to the client once, stored as SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A fresh token and the hash to store.
pub fn generate() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    let token = B64URL.encode(raw);
    let hash = digest(&token);
    (token, hash)
}

/// The stored form of a token. Lookups are by this hash, so a database leak reveals no
/// usable token and the comparison happens inside the index, not byte by byte in Rust.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a presented string could be one of our tokens (43 base64url characters).
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_well_formed() {
        let (a, ha) = generate();
        let (b, hb) = generate();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(well_formed(&a) && well_formed(&b));
        assert_eq!(digest(&a), ha);
        assert!(!well_formed("short"));
        assert!(!well_formed(&"a".repeat(42).replace('a', "%")));
    }
}
