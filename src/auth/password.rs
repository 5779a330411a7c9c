//! PBKDF2-HMAC-SHA256 password hashes stored as PHC strings:
//! `$pbkdf2-sha256$i=600000,l=32$<salt b64>$<hash b64>` (unpadded standard base64), written
//! and read by the `password-hash` implementation that comes with `pbkdf2`.

use pbkdf2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use pbkdf2::{Algorithm, Params, Pbkdf2};

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Hash a password with a fresh random salt.
pub fn hash(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).expect("the OS random source is available");
    hash_with_salt(password, &salt, iterations)
}

fn hash_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let salt = SaltString::encode_b64(salt).expect("salts are 4 to 48 bytes");
    let params = Params {
        rounds: iterations,
        output_length: HASH_LEN,
    };
    let alg = Some(Algorithm::Pbkdf2Sha256.ident());
    Pbkdf2
        .hash_password_customized(password.as_bytes(), alg, None, params, &salt)
        .expect("PBKDF2 with these parameters cannot fail")
        .to_string()
}

/// The PHC string, if it is a PBKDF2-SHA256 hash this module can check.
fn parse(phc: &str) -> Option<(PasswordHash<'_>, Params)> {
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm != Algorithm::Pbkdf2Sha256.ident() || parsed.hash.is_none() {
        return None;
    }
    // Without `i` the crate would assume its default; a stored hash always names it.
    parsed.params.get("i")?;
    let params = Params::try_from(&parsed).ok().filter(|p| p.rounds > 0)?;
    Some((parsed, params))
}

/// Check a password against a stored PHC string (the hashes are compared in constant time).
pub fn verify(password: &str, phc: &str) -> bool {
    parse(phc)
        .is_some_and(|(parsed, _)| Pbkdf2.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Whether a stored hash uses fewer iterations than configured (and should be redone).
pub fn needs_rehash(phc: &str, iterations: u32) -> bool {
    parse(phc).is_none_or(|(_, p)| p.rounds < iterations)
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
    fn hashes_written_before_the_crate_still_verify() {
        // The layout Hearth has always stored, computed independently (hashlib.pbkdf2_hmac).
        let old = "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHRzYWx0c2FsdA$T7epWfxBHiKQQGlNJ3+9CM17dQuKVeWu++anuIAf6vg";
        let fresh = hash_with_salt("pw", b"saltsaltsaltsalt", 1000);
        assert_eq!(fresh, old);
        assert!(verify("pw", &fresh));
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
        let parsed = PasswordHash::new(&h).unwrap();
        let bytes = parsed.hash.unwrap().as_bytes().to_vec();
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
