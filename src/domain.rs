//! Validated values: usernames, passwords, message bodies, nonces. Pure, no I/O.

/// A username: 1–32 characters of `A-Z a-z 0-9 _ . -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Longest username accepted.
    pub const MAX_LEN: usize = 32;

    /// Validate a username as typed.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err("Usernames are 1 to 32 characters long.");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err("Usernames may contain only letters, digits, '_', '.' and '-'.");
        }
        Ok(Self(raw.to_string()))
    }

    /// The name as the user chose it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key that makes names unique ignoring case.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Fewer than 8 bytes.
    TooShort,
    /// More than 1024 bytes.
    TooLong,
}

/// Check a new password's length (8–1024 bytes).
pub fn check_password(pw: &str) -> Result<(), PasswordProblem> {
    match pw.len() {
        0..=7 => Err(PasswordProblem::TooShort),
        8..=1024 => Ok(()),
        _ => Err(PasswordProblem::TooLong),
    }
}

/// Why a message body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    /// Nothing left after trimming.
    Empty,
    /// More than [`MAX_BODY_CHARS`] characters after trimming.
    TooLong,
}

/// Longest message body, in Unicode scalar values after trimming.
pub const MAX_BODY_CHARS: usize = 4000;

/// Trim a body and check its length; inner newlines are kept.
pub fn parse_body(raw: &str) -> Result<&str, BodyProblem> {
    let body = raw.trim();
    if body.is_empty() {
        return Err(BodyProblem::Empty);
    }
    // Cheap upper bound first: a string of at most MAX bytes has at most MAX chars.
    if body.len() > MAX_BODY_CHARS && body.chars().count() > MAX_BODY_CHARS {
        return Err(BodyProblem::TooLong);
    }
    Ok(body)
}

/// Longest client nonce, in characters.
pub const MAX_NONCE_CHARS: usize = 64;

/// Check a client nonce (≤ 64 characters).
pub fn valid_nonce(nonce: &str) -> bool {
    nonce.chars().count() <= MAX_NONCE_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["a", "Alice", "bob_1", "x.y-z", &"a".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "with space",
            "émile",
            "a/b",
            "<script>",
            &"a".repeat(33),
            "ü",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Username::parse("AliCe").unwrap().key(), "alice");
    }

    #[test]
    fn passwords() {
        assert_eq!(check_password("1234567"), Err(PasswordProblem::TooShort));
        assert_eq!(check_password("12345678"), Ok(()));
        assert_eq!(check_password(&"x".repeat(1024)), Ok(()));
        assert_eq!(
            check_password(&"x".repeat(1025)),
            Err(PasswordProblem::TooLong)
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body("  hi\nthere \n"), Ok("hi\nthere"));
        assert_eq!(parse_body(" \n\t "), Err(BodyProblem::Empty));
        assert_eq!(parse_body(&"é".repeat(4000)), Ok("é".repeat(4000).as_str()));
        assert_eq!(parse_body(&"é".repeat(4001)), Err(BodyProblem::TooLong));
        assert_eq!(parse_body(&"a".repeat(4001)), Err(BodyProblem::TooLong));
    }

    #[test]
    fn nonces() {
        assert!(valid_nonce(&"n".repeat(64)));
        assert!(!valid_nonce(&"n".repeat(65)));
    }
}
