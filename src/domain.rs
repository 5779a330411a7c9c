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

/// Order two names ignoring ASCII case (the order lists of users are shown in), without
/// allocating.
pub fn cmp_folded(a: &str, b: &str) -> std::cmp::Ordering {
    let b = b.bytes().map(|c| c.to_ascii_lowercase());
    a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b)
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

/// The characters search snippets use to mark highlighted words (STX, ETX). A body may not
/// contain them, or it could make any words of its own look highlighted.
pub const SNIPPET_MARKERS: [char; 2] = ['\u{2}', '\u{3}'];

/// Drop the snippet markers, trim, and check the length; inner newlines are kept.
pub fn parse_body(raw: &str) -> Result<std::borrow::Cow<'_, str>, BodyProblem> {
    use std::borrow::Cow;
    let body = if raw.contains(SNIPPET_MARKERS) {
        Cow::Owned(raw.replace(SNIPPET_MARKERS, "").trim().to_string())
    } else {
        Cow::Borrowed(raw.trim())
    };
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

/// Most Unicode scalar values in one reaction emoji.
pub const MAX_EMOJI_CHARS: usize = 16;
/// Most distinct emoji on one message.
pub const MAX_REACTIONS: i64 = 20;

/// Check a reaction: 1–[`MAX_EMOJI_CHARS`] Unicode scalar values, none of them whitespace or a
/// control character. (Which sequences are "real" emoji changes with every Unicode release,
/// so that is left to the clients.)
pub fn valid_emoji(emoji: &str) -> bool {
    let n = emoji.chars().count();
    (1..=MAX_EMOJI_CHARS).contains(&n)
        && !emoji
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
}

/// Characters that render as nothing on their own and must not make up a whole reaction;
/// the zero-width joiner and variation selectors stay allowed inside a sequence.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{2060}' | '\u{FEFF}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Longest room name.
pub const MAX_ROOM_NAME: usize = 48;
/// Longest room topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 250;
/// Most participants in a DM, the creator included.
pub const MAX_DM_USERS: usize = 8;

/// A room name as a request names it, in the case rooms are stored in: public rooms' names
/// (see [`parse_room_name`]) and DMs' (`dm:` and case-folded usernames, see [`dm_name`]) are
/// lower-case ASCII, so `General` names the room `general`.
pub fn fold_room_name(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Validate a room name as typed; returns it lowercased. 1–48 characters of `a-z 0-9 - _`,
/// starting with a letter or digit.
pub fn parse_room_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() || name.len() > MAX_ROOM_NAME {
        return Err("Room names are 1 to 48 characters long.");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("Room names start with a letter or a digit.");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err("Room names may contain only letters, digits, '-' and '_'.");
    }
    Ok(name)
}

/// Whether `c` may not appear in a one-line label people read in lists (a room's topic, a
/// display name, a status): control characters (line breaks among them), the bidirectional
/// embeddings, overrides and isolates that reorder what follows them (`pay\u{202E}exe.txt`),
/// and characters that show nothing at all where a name should be. Joiners, and the marks
/// right-to-left text uses, stay allowed.
pub fn spoofs_label(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200B}'
                | '\u{2060}'
                | '\u{FEFF}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

/// Why a topic was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicProblem {
    /// Over [`MAX_TOPIC_CHARS`].
    TooLong,
    /// A line break, control character or one of the other [`spoofs_label`] characters.
    Invalid,
}

/// Trim a topic and check its length and characters.
pub fn parse_topic(raw: &str) -> Result<&str, TopicProblem> {
    let t = raw.trim();
    if t.chars().count() > MAX_TOPIC_CHARS {
        return Err(TopicProblem::TooLong);
    }
    if t.chars().any(spoofs_label) {
        return Err(TopicProblem::Invalid);
    }
    Ok(t)
}

/// The name of the DM between these case-folded usernames: `dm:` + sorted keys joined by `,`.
pub fn dm_name(keys: &[String]) -> String {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    format!("dm:{}", keys.join(","))
}

fn username_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Case-folded usernames `@mentioned` in a body, without repeats. A mention starts the body or
/// follows a character that cannot be part of a username. Trailing `.`/`-` (end of a sentence)
/// are offered as a second candidate: `@bob.` yields `bob.` and `bob`.
pub fn mention_candidates(body: &str) -> Vec<String> {
    let bytes = body.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(pos) = body[i..].find('@') {
        let at = i + pos;
        i = at + 1;
        if at > 0 && username_byte(bytes[at - 1]) {
            continue;
        }
        let len = bytes[at + 1..]
            .iter()
            .take_while(|b| username_byte(**b))
            .count();
        if len == 0 {
            continue;
        }
        let name = body[at + 1..at + 1 + len].to_ascii_lowercase();
        let trimmed = name.trim_end_matches(['.', '-']).to_string();
        for n in [name, trimmed] {
            if !n.is_empty() && n.len() <= Username::MAX_LEN && !out.contains(&n) {
                out.push(n);
            }
        }
        if out.len() >= 32 {
            break;
        }
    }
    out
}

/// Whether a body says `@here` (bounded like a mention: `@here.` counts, `@heres` and
/// `a@here` do not): it mentions every member of the room who is online when it is sent.
pub fn mentions_here(body: &str) -> bool {
    body.contains('@') && mention_candidates(body).iter().any(|n| n == "here")
}

/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Different words or phrases used from one query; the rest are ignored.
pub const MAX_QUERY_TERMS: usize = 8;

/// Turn what a user typed into a safe FTS5 query: every word and every `"quoted phrase"`
/// becomes a quoted string (so no FTS5 operator or syntax error can come from input), all of
/// which must match. Repeats are dropped and at most [`MAX_QUERY_TERMS`] are kept. `None`
/// when nothing searchable is left.
pub fn fts_query(raw: &str) -> Option<String> {
    // FTS5 reads a query as a C string: a NUL inside a quoted term would end it early and
    // leave an unterminated string (a syntax error). Control characters never match anyway.
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut terms: Vec<String> = Vec::new();
    let mut rest = cleaned.trim();
    while !rest.is_empty() {
        let (term, next) = if let Some(after) = rest.strip_prefix('"') {
            match after.find('"') {
                Some(end) => (&after[..end], &after[end + 1..]),
                None => (after, ""),
            }
        } else {
            match rest.find(char::is_whitespace) {
                Some(end) => (&rest[..end], &rest[end..]),
                None => (rest, ""),
            }
        };
        // Only words made of something the tokenizer indexes can match anything.
        let quoted = format!("\"{}\"", term.replace('"', "\"\""));
        if term.chars().any(char::is_alphanumeric) && !terms.contains(&quoted) {
            terms.push(quoted);
            if terms.len() == MAX_QUERY_TERMS {
                break;
            }
        }
        rest = next.trim_start();
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ordered_without_regard_to_case() {
        let mut names = vec!["bob", "Alice", "carol", "alice2", "Bob_"];
        names.sort_unstable_by(|a, b| cmp_folded(a, b));
        assert_eq!(names, ["Alice", "alice2", "bob", "Bob_", "carol"]);
        assert_eq!(cmp_folded("ABC", "abc"), std::cmp::Ordering::Equal);
    }

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
        assert_eq!(parse_body("  hi\nthere \n").as_deref(), Ok("hi\nthere"));
        assert_eq!(parse_body(" \n\t "), Err(BodyProblem::Empty));
        assert_eq!(
            parse_body(&"é".repeat(4000)).as_deref(),
            Ok("é".repeat(4000).as_str())
        );
        assert_eq!(
            parse_body(" \u{2}fake\u{3} highlight ").as_deref(),
            Ok("fake highlight")
        );
        assert_eq!(parse_body("\u{2}\u{3} "), Err(BodyProblem::Empty));
        assert_eq!(parse_body(&"é".repeat(4001)), Err(BodyProblem::TooLong));
        assert_eq!(parse_body(&"a".repeat(4001)), Err(BodyProblem::TooLong));
    }

    #[test]
    fn nonces() {
        assert!(valid_nonce(&"n".repeat(64)));
        assert!(!valid_nonce(&"n".repeat(65)));
    }

    #[test]
    fn emoji() {
        for ok in ["👍", "❤️", "👨‍👩‍👧", "🇫🇷", "+1", "ok"] {
            assert!(valid_emoji(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "👍 ",
            "a\nb",
            "\u{7}",
            "\u{200B}",
            "\u{202E}x",
            &"x".repeat(17),
        ] {
            assert!(!valid_emoji(bad), "{bad:?}");
        }
        assert!(valid_emoji(&"x".repeat(16)));
    }

    #[test]
    fn room_names() {
        assert_eq!(parse_room_name(" Dev-Ops_2 "), Ok("dev-ops_2".to_string()));
        for bad in ["", "-x", "_x", "a b", "dm:alice", "émile", &"a".repeat(49)] {
            assert!(parse_room_name(bad).is_err(), "{bad}");
        }
        assert_eq!(dm_name(&["bob".into(), "alice".into()]), "dm:alice,bob");
    }

    #[test]
    fn mentions() {
        assert_eq!(
            mention_candidates("hi @Bob and @carol."),
            ["bob", "carol.", "carol"]
        );
        assert!(mention_candidates("mail me at a@b.org").is_empty());
        assert_eq!(mention_candidates("@a @a @"), ["a"]);
        assert_eq!(mention_candidates("(@x_y)"), ["x_y"]);
        assert!(mentions_here("@here look") && mentions_here("all (@HERE)."));
        assert!(!mentions_here("@heres") && !mentions_here("a@here") && !mentions_here("here"));
    }

    #[test]
    fn fts_queries() {
        assert_eq!(
            fts_query("hello world").as_deref(),
            Some("\"hello\" \"world\"")
        );
        assert_eq!(
            fts_query("\"red fox\" jumps").as_deref(),
            Some("\"red fox\" \"jumps\"")
        );
        assert_eq!(fts_query("a\"b").as_deref(), Some("\"a\"\"b\""));
        assert_eq!(
            fts_query("NEAR( OR AND *").as_deref(),
            Some("\"NEAR(\" \"OR\" \"AND\"")
        );
        assert_eq!(fts_query("  !!! "), None);
        assert_eq!(fts_query("a\0b").as_deref(), Some("\"a\" \"b\""));
        assert_eq!(fts_query("\"x\0y\"").as_deref(), Some("\"x y\""));
        assert_eq!(fts_query(""), None);
    }
}
