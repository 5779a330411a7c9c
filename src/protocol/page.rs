//! A history page written straight from the rows the store read ([`PageRows`]): each field
//! goes from the row's bytes into the body, escaped on the way, with no string or struct of
//! its own. The bytes are exactly those of [`super::history_body`] over each message's
//! [`super::message_json`], which pages from memory are made of; the tests hold the two
//! together.

use crate::model::{PageRow, PageRows};

use super::{page_body, AttachmentView, PreviewView, ReactionView};

/// The body of a history page, `{"messages":[...]}`, written from `page`'s rows. Text that is
/// not UTF-8 (only a damaged database file has any) is written with U+FFFD for its bad bytes.
pub fn history_body_of(page: &PageRows) -> Vec<u8> {
    let mut room = Vec::with_capacity(page.room.len() + 2);
    string(&mut room, page.room.as_bytes());
    page_body(64 + page.rows.len() * 256, &page.rows, |out, row| {
        message(out, page, &room, row)
    })
}

/// One message's object, its fields in [`super::MessageView`]'s order; `room` is the room's
/// name, already a JSON string.
fn message(out: &mut Vec<u8>, page: &PageRows, room: &[u8], r: &PageRow) {
    out.extend_from_slice(b"{\"id\":");
    integer(out, r.id);
    out.extend_from_slice(b",\"room\":");
    out.extend_from_slice(room);
    out.extend_from_slice(b",\"user\":");
    string(out, page.text(r.user));
    out.extend_from_slice(b",\"body\":");
    // A tombstone shows only where the message was and who wrote it.
    string(out, if r.deleted { b"" } else { page.text(r.body) });
    out.extend_from_slice(b",\"ts\":\"");
    rfc3339(out, r.ts_ms);
    out.push(b'"');
    if r.deleted {
        out.extend_from_slice(b",\"deleted\":true");
    } else {
        if let Some(nonce) = r.nonce {
            out.extend_from_slice(b",\"nonce\":");
            string(out, page.text(nonce));
        }
        if let Some(ms) = r.edited_ms {
            out.extend_from_slice(b",\"edited_ts\":\"");
            rfc3339(out, ms);
            out.push(b'"');
        }
    }
    if let Some((id, user, excerpt)) = r.reply_to.filter(|_| !r.deleted) {
        out.extend_from_slice(b",\"reply_to\":{\"id\":");
        integer(out, id);
        out.extend_from_slice(b",\"user\":");
        string(out, page.text(user));
        out.extend_from_slice(b",\"excerpt\":");
        string(out, page.text(excerpt));
        out.push(b'}');
    }
    if !r.deleted {
        // Rare, so written through their views as the frames write them.
        let extras = page.extras.get(&r.id);
        out.extend_from_slice(b",\"reactions\":[");
        for (i, x) in extras.iter().flat_map(|e| &e.reactions).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let view = ReactionView {
                emoji: &x.emoji,
                count: x.users.len(),
                users: &x.users,
            };
            // Serializing these plain structs into a vector cannot fail.
            let _ = serde_json::to_writer(&mut *out, &view);
        }
        out.extend_from_slice(b"],\"attachments\":[");
        for (i, a) in extras.iter().flat_map(|e| &e.attachments).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, &AttachmentView::from(a));
        }
        out.push(b']');
        if let Some(p) = extras.and_then(|e| e.preview.as_ref()) {
            out.extend_from_slice(b",\"preview\":");
            let _ = serde_json::to_writer(&mut *out, &PreviewView::of(r.id, p));
        }
    }
    out.push(b'}');
}

/// What a byte of a string becomes in JSON: 0 itself, [`NOT_ASCII`] for a byte beyond ASCII,
/// else the letter of its escape (`u` for `\u00XX`), as serde_json escapes.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    let mut i = 0x80;
    while i < 0x100 {
        t[i] = NOT_ASCII;
        i += 1;
    }
    t
};
const NOT_ASCII: u8 = 1;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// `s` as a JSON string. ASCII text (most of it) is escaped in one pass over its bytes;
/// anything else is checked as UTF-8 first.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mark = out.len();
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let e = ESCAPE[b as usize];
        if e == 0 {
            continue;
        }
        if e == NOT_ASCII {
            out.truncate(mark);
            return not_ascii(out, s);
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// `s`, which has bytes beyond ASCII, as a JSON string: bad UTF-8 becomes U+FFFD.
fn not_ascii(out: &mut Vec<u8>, s: &[u8]) {
    let text = String::from_utf8_lossy(s);
    // Writing a string into a vector cannot fail.
    let _ = serde_json::to_writer(out, &*text);
}

/// `v` in decimal.
fn integer(out: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = v.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Milliseconds since the epoch as `2026-11-25T22:11:14.123Z`, as [`super::rfc3339`] writes
/// them (before 1970 is 1970, after the year 9999 is its last millisecond).
fn rfc3339(out: &mut Vec<u8>, ms: i64) {
    let ms = ms.clamp(0, super::LAST_MS);
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, second) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil(days);
    let pad = |out: &mut Vec<u8>, n: i64, width: usize| {
        let mut digits = [b'0'; 4];
        let mut n = n;
        for d in digits[..width].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&digits[..width]);
    };
    pad(out, year, 4);
    out.push(b'-');
    pad(out, month, 2);
    out.push(b'-');
    pad(out, day, 2);
    out.push(b'T');
    pad(out, second / 3600, 2);
    out.push(b':');
    pad(out, second / 60 % 60, 2);
    out.push(b':');
    pad(out, second % 60, 2);
    out.push(b'.');
    pad(out, milli, 3);
    out.push(b'Z');
}

/// The date `days` after 1970-01-01 in the proleptic Gregorian calendar: year, month, day
/// (the days-to-civil algorithm of Howard Hinnant's date library, for days ≥ 0).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_json(s: &[u8]) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for b in 0u8..0x80 {
            let s = [b'a', b, b'z'];
            let text = std::str::from_utf8(&s).unwrap();
            assert_eq!(
                as_json(&s),
                serde_json::to_string(text).unwrap(),
                "byte {b}"
            );
        }
        let samples = [
            "",
            "plain words",
            "\"quoted\" and \\ back\\slashed\\",
            "tab\there\nnew line\r\u{0}\u{1f}\u{7f}",
            "café, naïve, 日本語, 😀 and 👍🏽",
            "</script><b>not html</b> & 'single'",
            "\u{2028}\u{2029}",
        ];
        for text in samples {
            assert_eq!(
                as_json(text.as_bytes()),
                serde_json::to_string(text).unwrap()
            );
        }
        // A spread of mixed strings from a fixed seed.
        let alphabet: Vec<char> = "ab \"\\\n\t\u{1}\u{7f}é😀/<".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2_000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 24) {
                text.push(alphabet[((seed >> (k % 40)) % alphabet.len() as u64) as usize]);
            }
            assert_eq!(
                as_json(text.as_bytes()),
                serde_json::to_string(&text).unwrap()
            );
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let written = as_json(b"ok \xff\xfe then \xe2\x82");
        let back: String = serde_json::from_str(&written).expect("valid JSON");
        assert_eq!(back, "ok \u{fffd}\u{fffd} then \u{fffd}");
    }

    #[test]
    fn integers_and_times_match_the_formatters_of_the_frames() {
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            123_456_789,
            i64::MAX,
            -1,
            -10,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            integer(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        let mut times = vec![
            0,
            999,
            951_782_400_000,   // 2000-02-29
            4_107_542_400_000, // 2100-03-01
            94_694_399_999,    // 1972-12-31T23:59:59.999
            1_764_000_000_123,
            super::super::LAST_MS,
            super::super::LAST_MS + 1,
            i64::MAX,
            -5,
        ];
        let mut t = 1_000_003_i64;
        while t < super::super::LAST_MS {
            times.push(t);
            t = t * 3 / 2 + 7_919;
        }
        for ms in times {
            let mut out = Vec::new();
            rfc3339(&mut out, ms);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                super::super::rfc3339(ms),
                "{ms}"
            );
        }
    }
}
