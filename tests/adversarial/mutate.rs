//! Generated inputs: byte-level mutations of valid requests and frames, seeded so that a
//! failure can be replayed.

use crate::common::Rng;

/// Snippets that tend to break JSON parsers and validators.
const NASTY: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "-0",
    "1e999999",
    "-1e-999999",
    "123456789012345678901234567890",
    "18446744073709551616",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\\"",
    "\\",
    "\"",
    ",",
    ":",
    "{\"type\":",
    "[[[[[[[[[[[[[[[[[[[[",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "é",
    "💬",
    "NaN",
    "Infinity",
    "/*",
    "\"general\"",
    "\"send\"",
    "\"typing\"",
];

/// Bytes with a meaning to JSON or HTTP, or invalid in UTF-8.
const SIGNIFICANT: &[u8] = &[
    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', 0x00, 0xff, 0xc3, 0x80, b'\n', b' ', b'0',
];

/// Byte-level mutations of a valid input: truncation, flips, insertions, deletions,
/// duplication and splicing of nasty snippets.
pub fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.index(4) {
        let len = v.len();
        let at = rng.index(len + 1);
        match rng.index(8) {
            0 => v.truncate(at),
            1 if len > 0 => v[at.min(len - 1)] = rng.next() as u8,
            2 => v.insert(at, *rng.pick(SIGNIFICANT)),
            3 if at < len => {
                v.remove(at);
            }
            4 if len > 0 => {
                let end = (at + 1 + rng.index(16)).min(len);
                let start = at.min(end);
                let chunk = v[start..end].to_vec();
                let to = rng.index(v.len() + 1);
                v.splice(to..to, chunk);
            }
            5 => {
                let snippet = rng.pick(NASTY).as_bytes();
                v.splice(at..at, snippet.iter().copied());
            }
            6 => v = replace_quoted(rng, v),
            _ => {
                let n = 1 + rng.index(8);
                for _ in 0..n {
                    v.push(rng.next() as u8);
                }
            }
        }
    }
    v
}

/// Replace a whole quoted value with a nasty snippet (unchanged when there is none).
fn replace_quoted(rng: &mut Rng, v: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&v).into_owned();
    let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
    if quotes.len() < 2 {
        return v;
    }
    let i = rng.index(quotes.len() - 1);
    let (a, b) = (quotes[i], quotes[i + 1] + 1);
    let mut t = text;
    let snippet = *rng.pick(NASTY);
    t.replace_range(a..b, snippet);
    t.into_bytes()
}
