//! PBKDF2-HMAC-SHA256 password hashes stored as PHC strings:
//! `$pbkdf2-sha256$i=600000,l=32$<salt b64>$<hash b64>` (unpadded standard base64).

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Hash a password with a fresh random salt.
pub fn hash(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).expect("the OS random source is available");
    hash_with_salt(password, &salt, iterations)
}

fn hash_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    format!(
        "$pbkdf2-sha256$i={iterations},l={HASH_LEN}${}${}",
        B64.encode(salt),
        B64.encode(out)
    )
}

/// A parsed PHC string.
struct Phc {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse(phc: &str) -> Option<Phc> {
    let mut parts = phc.split('$');
    if !parts.next()?.is_empty() || parts.next()? != "pbkdf2-sha256" {
        return None;
    }
    let mut iterations = None;
    let mut len = None;
    for kv in parts.next()?.split(',') {
        let (k, v) = kv.split_once('=')?;
        match k {
            "i" => iterations = v.parse::<u32>().ok(),
            "l" => len = v.parse::<usize>().ok(),
            _ => return None,
        }
    }
    let salt = B64.decode(parts.next()?).ok()?;
    let hash = B64.decode(parts.next()?).ok()?;
    if parts.next().is_some() || hash.is_empty() || len.is_some_and(|l| l != hash.len()) {
        return None;
    }
    Some(Phc {
        iterations: iterations.filter(|i| *i > 0)?,
        salt,
        hash,
    })
}

/// Check a password against a stored PHC string in constant time.
pub fn verify(password: &str, phc: &str) -> bool {
    let Some(p) = parse(phc) else {
        return false;
    };
    let mut out = vec![0u8; p.hash.len()];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &p.salt, p.iterations, &mut out);
    out.ct_eq(&p.hash).into()
}

/// Whether a stored hash uses fewer iterations than configured (and should be redone).
pub fn needs_rehash(phc: &str, iterations: u32) -> bool {
    parse(phc).is_none_or(|p| p.iterations < iterations)
}

/// A hash of a random password, verified against for unknown users so that a login for a
/// name that does not exist costs the same time as one for a name that does.
pub fn dummy(iterations: u32) -> String {
    hash_with_salt("not a password", b"hearth-dummy-salt", iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let h = hash("correct horse", 1000);
        assert!(h.starts_with("$pbkdf2-sha256$i=1000,l=32$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("", &h));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash("same", 1000), hash("same", 1000));
    }

    #[test]
    fn known_vector() {
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 test vector: P="passwd", S="salt", c=1, dkLen=64;
        // the first 32 bytes are 55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc.
        let h = hash_with_salt("passwd", b"salt", 1);
        let hash_b64 = h.rsplit('$').next().unwrap();
        let bytes = B64.decode(hash_b64).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn default_iterations_are_at_least_600k() {
        let h = hash("pw", crate::config::DEFAULT_PBKDF2_ITERATIONS);
        assert!(h.contains("i=600000"));
        assert!(!needs_rehash(&h, 600_000));
        assert!(needs_rehash(&h, 700_000));
    }

    #[test]
    fn garbage_never_verifies() {
        for bad in [
            "",
            "$",
            "$pbkdf2-sha256$",
            "$argon2id$v=19$x$y$z",
            "$pbkdf2-sha256$i=0$AA$AA",
        ] {
            assert!(!verify("pw", bad), "{bad}");
            assert!(needs_rehash(bad, 1));
        }
    }
}
