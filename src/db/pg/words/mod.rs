//! The words of a message as search sees them on PostgreSQL, made by Hearth rather than by
//! PostgreSQL's text search parser.
//!
//! SQLite's index splits a body with FTS5's `unicode61` tokenizer (`remove_diacritics 2`).
//! This module splits the same way, so both stores find the same messages:
//!
//! - a word is a run of letters and digits (Unicode's alphabetic and numeric characters);
//!   combining marks inside a word belong to it; everything else separates words, so
//!   `bob@example.com` is the three words `bob`, `example`, `com` and `well-known` is two;
//! - each word is folded: letters are lower-cased, and in the alphabets FTS5 folds (below
//!   U+2000: Latin, Greek, Cyrillic…) accents and other combining marks are removed (`Café`
//!   is `cafe`, `Über` is `uber`). Letters that are not a base letter with marks stay as
//!   they are (`ß`, `æ`, `ø`), as in FTS5.
//!
//! A message's words go to PostgreSQL as a `tsvector` literal ([`vector`]), stored in the
//! indexed `search` column; a query's words as a `tsquery` literal ([`query`]), so PostgreSQL
//! never parses a body (which cost 3 µs of its time per message, against 1 µs to read the
//! literal). Excerpts are still cut by PostgreSQL (`ts_headline`), which marks the words its
//! own parser finds equal to the query's.

use std::collections::BTreeMap;
use std::fmt::Write;

#[rustfmt::skip]
mod tables;

/// The longest word PostgreSQL keeps in a `tsvector` (bytes); longer words are not indexed,
/// as PostgreSQL's own parser does.
const MAX_WORD_BYTES: usize = 2047;

/// The highest position PostgreSQL stores; later words share it, as with its own parser.
const MAX_POSITION: usize = 16383;

/// The most positions PostgreSQL keeps for one word.
const MAX_POSITIONS_PER_WORD: usize = 256;

/// Whether `c` starts or continues a word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether `c` is a combining mark (general category M), from [`tables::MARKS`].
fn is_combining_mark(c: char) -> bool {
    let c = u32::from(c);
    if c < 0x300 {
        return false;
    }
    let at = tables::MARKS.partition_point(|&(_, last)| last < c);
    tables::MARKS.get(at).is_some_and(|&(first, _)| first <= c)
}

/// The letter `c` (below U+2000, not a mark) is, without its marks, from [`tables::BASES`].
fn base_of(c: char) -> char {
    let Ok(code) = u16::try_from(u32::from(c)) else {
        return c;
    };
    match tables::BASES.binary_search_by_key(&code, |&(from, _)| from) {
        Ok(at) => char::from_u32(u32::from(tables::BASES[at].1)).unwrap_or(c),
        Err(_) => c,
    }
}

/// The folded words of `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    spans(text).into_iter().map(|(_, word)| word).collect()
}

/// Each word of `text` with where it is (a byte range), in order.
fn spans(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_word_char(c) || (start.is_some() && is_combining_mark(c)) {
            start.get_or_insert(i);
            fold_into(&mut word, c);
        } else if let Some(from) = start.take() {
            out.push((from..i, std::mem::take(&mut word)));
        }
    }
    if let Some(from) = start {
        out.push((from..text.len(), word));
    }
    out.retain(|(_, w)| !w.is_empty());
    out
}

/// Append `c` folded. Below U+2000 (Latin, Greek, Cyrillic and the other alphabets FTS5
/// removes diacritics from): its base letter without combining marks (its canonical
/// decomposition's first character), lower-cased; a mark is dropped. Above, lower-cased only:
/// a syllable or kana keeps its marks (`デ` is not `テ`).
fn fold_into(word: &mut String, c: char) {
    if c.is_ascii() {
        word.push(c.to_ascii_lowercase());
    } else if c < '\u{2000}' {
        if !is_combining_mark(c) {
            word.extend(base_of(c).to_lowercase().filter(|l| !is_combining_mark(*l)));
        }
    } else {
        word.extend(c.to_lowercase());
    }
}

/// `word` quoted for a `tsvector` or `tsquery` literal.
fn quote_into(out: &mut String, word: &str) {
    out.push('\'');
    for c in word.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// The `tsvector` literal of a body: each distinct word with its positions (from 1).
pub fn vector(body: &str) -> String {
    let mut positions: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for (i, word) in words(body).into_iter().enumerate() {
        if word.len() > MAX_WORD_BYTES {
            continue;
        }
        let at = (i + 1).min(MAX_POSITION) as u16;
        let list = positions.entry(word).or_default();
        if list.len() < MAX_POSITIONS_PER_WORD && list.last() != Some(&at) {
            list.push(at);
        }
    }
    let mut out = String::with_capacity(body.len() + 4 * positions.len());
    for (word, list) in &positions {
        if !out.is_empty() {
            out.push(' ');
        }
        quote_into(&mut out, word);
        for (j, at) in list.iter().enumerate() {
            out.push(if j == 0 { ':' } else { ',' });
            let _ = write!(out, "{at}");
        }
    }
    out
}

/// The `tsquery` literal that matches a message holding every term (a word or a phrase, as
/// [`crate::db::queries::fts_terms`] gives them) with its words next to each other and in
/// order; `None` when no term has a word.
pub fn query(terms: &[String]) -> Option<String> {
    let mut out = String::new();
    for term in terms {
        let words: Vec<String> = words(term)
            .into_iter()
            .filter(|w| w.len() <= MAX_WORD_BYTES)
            .collect();
        if words.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(" & ");
        }
        out.push('(');
        for (i, word) in words.iter().enumerate() {
            if i > 0 {
                out.push_str(" <-> ");
            }
            quote_into(&mut out, word);
        }
        out.push(')');
    }
    (!out.is_empty()).then_some(out)
}

/// The most words an excerpt shows, as SQLite's `snippet` is asked for.
pub const EXCERPT_WORDS: usize = 24;

/// The excerpt of a search hit: at most [`EXCERPT_WORDS`] words of `body` around the words
/// of `terms`, each word of the query between `\x02` and `\x03`, `…` where the body goes on,
/// as SQLite's `snippet` gives it. The window holds the most distinct query words (the
/// earliest such), starting two words before a match.
pub fn excerpt(body: &str, terms: &[String]) -> String {
    let wanted: std::collections::HashSet<String> = terms.iter().flat_map(|t| words(t)).collect();
    let spans = spans(body);
    let hit: Vec<bool> = spans.iter().map(|(_, w)| wanted.contains(w)).collect();
    let n = spans.len();
    let mut from = 0;
    if n > EXCERPT_WORDS {
        let last_start = n - EXCERPT_WORDS;
        let mut best = 0;
        for (m, _) in hit.iter().enumerate().filter(|(_, h)| **h) {
            let s = m.saturating_sub(2).min(last_start);
            let distinct: std::collections::HashSet<&str> = (s..s + EXCERPT_WORDS)
                .filter(|&i| hit[i])
                .map(|i| spans[i].1.as_str())
                .collect();
            if distinct.len() > best {
                best = distinct.len();
                from = s;
            }
        }
    }
    let to = n.min(from + EXCERPT_WORDS);
    let mut out = String::with_capacity(body.len().min(400) + 16);
    if from > 0 {
        out.push('…');
    }
    let mut at = if from == 0 { 0 } else { spans[from].0.start };
    for i in from..to {
        let range = &spans[i].0;
        out.push_str(&body[at..range.start]);
        if hit[i] {
            out.push('\u{2}');
            out.push_str(&body[range.clone()]);
            out.push('\u{3}');
        } else {
            out.push_str(&body[range.clone()]);
        }
        at = range.end;
    }
    if to < n {
        out.push('…');
    } else {
        out.push_str(&body[at..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_fold_as_sqlites_index_does() {
        assert_eq!(words("Hello, World!"), ["hello", "world"]);
        assert_eq!(words("Café ÜBER naïve"), ["cafe", "uber", "naive"]);
        // Decomposed input folds the same as composed input.
        assert_eq!(words("Cafe\u{301}"), ["cafe"]);
        assert_eq!(
            words("bob@example.com well-known 3.14"),
            ["bob", "example", "com", "well", "known", "3", "14"]
        );
        assert_eq!(words("Straße Æther Øre"), ["straße", "æther", "øre"]);
        assert_eq!(words("İstanbul"), ["istanbul"]);
        assert_eq!(
            words("日本語 デスト 한국어"),
            ["日本語", "デスト", "한국어"]
        );
        assert_eq!(words("ΚΑΦΈ Привет"), ["καφε", "привет"]);
        assert_eq!(words("  ... -- !!! "), Vec::<String>::new());
        // A mark with no letter before it is a separator.
        assert_eq!(words("\u{301}a"), ["a"]);
    }

    #[test]
    fn a_vector_lists_each_word_once_with_its_positions() {
        assert_eq!(
            vector("the fox and the dog"),
            "'and':3 'dog':5 'fox':2 'the':1,4"
        );
        assert_eq!(vector(""), "");
        assert_eq!(vector("it's a \\ back"), "'a':3 'back':4 'it':1 's':2");
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        assert_eq!(vector(&format!("{long} y")), "'y':2");
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let mut out = String::new();
        quote_into(&mut out, "o'k\\");
        assert_eq!(out, "'o''k\\\\'");
    }

    #[test]
    fn positions_stop_at_postgresqls_limits() {
        let body = "w ".repeat(MAX_POSITION + 10);
        let v = vector(&body);
        assert_eq!(v.matches(',').count() + 1, MAX_POSITIONS_PER_WORD);
        let body = format!("{}end end", "a ".repeat(MAX_POSITION + 5));
        assert!(vector(&body).contains(&format!("'end':{MAX_POSITION}")));
        assert!(!vector(&body).contains(&format!("'end':{MAX_POSITION},")));
    }

    #[test]
    fn an_excerpt_marks_the_query_words_around_the_best_window() {
        let terms = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            excerpt("Mail bob@Example.com, now!", &terms(&["example"])),
            "Mail bob@\u{2}Example\u{3}.com, now!"
        );
        assert_eq!(
            excerpt("Un café, s'il vous plaît", &terms(&["CAFE", "plait"])),
            "Un \u{2}café\u{3}, s'il vous \u{2}plaît\u{3}"
        );
        // A long body: the window with both words, from two words before the first.
        let mut body: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        body[10] = "fox".into();
        body[60] = "fox".into();
        body[70] = "dog".into();
        let text = body.join(" ");
        let got = excerpt(&text, &terms(&["fox", "dog"]));
        assert!(got.starts_with("…w58 w59 \u{2}fox\u{3} w61"), "{got}");
        assert!(got.contains("\u{2}dog\u{3}"), "{got}");
        assert!(got.ends_with("w81…"), "{got}");
        assert_eq!(got.split(' ').count(), EXCERPT_WORDS);
        // Near the start: no leading ellipsis.
        let got = excerpt(&text, &terms(&["w1"]));
        assert!(got.starts_with("w0 \u{2}w1\u{3} w2"), "{got}");
        // Near the end: the last words, and what follows them.
        let got = excerpt(&format!("{text}!"), &terms(&["w99"]));
        assert!(
            got.starts_with("…w76 ") && got.ends_with("\u{2}w99\u{3}!"),
            "{got}"
        );
    }

    /// The source of `tables.rs`, made from the Unicode data of the `unicode-normalization`
    /// crate (the one PostgreSQL's client uses).
    fn tables_source() -> String {
        use unicode_normalization::char::{decompose_canonical, is_combining_mark as mark};
        let mut marks: Vec<(u32, u32)> = Vec::new();
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| mark(*c))
        {
            let c = u32::from(c);
            match marks.last_mut() {
                Some((_, last)) if *last + 1 == c => *last = c,
                _ => marks.push((c, c)),
            }
        }
        let mut bases = Vec::new();
        for c in (0x80..0x2000)
            .filter_map(char::from_u32)
            .filter(|c| !mark(*c))
        {
            let mut letters = Vec::new();
            decompose_canonical(c, |d| {
                if !mark(d) {
                    letters.push(d)
                }
            });
            assert_eq!(letters.len(), 1, "{c:?} decomposes to one letter and marks");
            if letters[0] != c {
                bases.push((c as u32, letters[0] as u32));
            }
        }
        let mut out = String::from(
            "//! Unicode data for [`super`], written by its test `the_tables_are_unicodes` \
             (run it\n//! with `HEARTH_WRITE_TABLES=1` to write them again).\n\n\
             /// Every combining mark (general category M), as ranges of code points.\n\
             pub const MARKS: &[(u32, u32)] = &[\n",
        );
        for (first, last) in marks {
            out.push_str(&format!("    (0x{first:04X}, 0x{last:04X}),\n"));
        }
        out.push_str(
            "];\n\n/// Each letter below U+2000 whose canonical decomposition is another \
             letter and marks,\n/// with that letter.\n\
             pub const BASES: &[(u16, u16)] = &[\n",
        );
        for (from, to) in bases {
            out.push_str(&format!("    (0x{from:04X}, 0x{to:04X}),\n"));
        }
        out.push_str("];\n");
        out
    }

    #[test]
    fn the_tables_are_unicodes() {
        let made = tables_source();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/pg/words/tables.rs");
        if std::env::var_os("HEARTH_WRITE_TABLES").is_some() {
            std::fs::write(path, &made).unwrap();
        }
        let kept = std::fs::read_to_string(path).unwrap();
        assert!(
            kept == made,
            "src/db/pg/words/tables.rs is not the Unicode data: run this test with \
             HEARTH_WRITE_TABLES=1"
        );
    }

    #[test]
    fn a_query_needs_every_term_with_its_words_in_order() {
        let terms = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            query(&terms(&["Café", "brown fox"])).as_deref(),
            Some("('cafe') & ('brown' <-> 'fox')")
        );
        assert_eq!(query(&terms(&["o'k"])).as_deref(), Some("('o' <-> 'k')"));
        assert_eq!(query(&terms(&["!!!", "x"])).as_deref(), Some("('x')"));
        assert_eq!(query(&terms(&["!!!"])), None);
        assert_eq!(query(&[]), None);
    }
}
