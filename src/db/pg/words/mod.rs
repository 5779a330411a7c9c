//! The words of a message as search sees them on PostgreSQL, made by Hearth rather than by
//! PostgreSQL's text search parser.
//!
//! SQLite's index splits a body with FTS5's `unicode61` tokenizer (`remove_diacritics 2`).
//! This module splits and folds the same way, from tables of what that tokenizer does with
//! each character ([`tables`], read off SQLite's own FTS5 by the unit test that writes them),
//! so both stores find the same messages:
//!
//! - a word starts with a letter, a digit or a private-use character (Unicode categories L,
//!   N and Co, and the code points FTS5's Unicode data does not know, such as emoji newer
//!   than it) and goes on through those and the combining accents FTS5 lets continue a word;
//!   everything else separates words, so `bob@example.com` is the three words `bob`,
//!   `example`, `com`, and `well-known` is two;
//! - each character of a word is folded as FTS5 folds it: case folded (`Σ` and `ς` are `σ`)
//!   and, in the ranges FTS5 knows, accents removed (`Café` is `cafe`, `Über` is `uber`).
//!
//! A message's words go to PostgreSQL as a `tsvector` literal ([`vector`]), stored in the
//! indexed `search` column, and a query's as a `tsquery` literal ([`query`]), so PostgreSQL
//! never parses a body. The excerpt of a hit is cut here too ([`excerpt`]), with the query's
//! words and phrases marked as FTS5's `snippet` marks them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;

#[rustfmt::skip]
mod tables;

/// The longest word PostgreSQL keeps in a `tsvector` (bytes); longer words are not indexed,
/// as PostgreSQL's own parser does.
const MAX_WORD_BYTES: usize = 2047;

/// The highest position PostgreSQL stores; later words share it, as with its own parser.
const MAX_POSITION: usize = 16383;

/// The most positions PostgreSQL keeps for one word.
const MAX_POSITIONS_PER_WORD: usize = 256;

/// Whether code point `c` is in one of `ranges` (sorted, inclusive, disjoint).
fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    let at = ranges.partition_point(|&(_, last)| last < c);
    ranges.get(at).is_some_and(|&(first, _)| first <= c)
}

/// Whether `c` starts or continues a word.
fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        in_ranges(tables::WORD, c)
    }
}

/// Whether `c`, not a word character, continues a word it follows (an accent).
fn joins(c: char) -> bool {
    !c.is_ascii() && in_ranges(tables::JOIN, c)
}

/// Append `c` folded, as FTS5 folds it ([`tables::FOLD`]; 0 there: dropped).
fn fold_into(word: &mut String, c: char) {
    if c.is_ascii() {
        word.push(c.to_ascii_lowercase());
        return;
    }
    match tables::FOLD.binary_search_by_key(&u32::from(c), |&(from, _)| from) {
        Ok(at) => word.extend(char::from_u32(tables::FOLD[at].1).filter(|f| *f != '\0')),
        Err(_) => word.push(c),
    }
}

/// The folded words of `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    spans(text).into_iter().map(|(_, word)| word).collect()
}

/// Each word of `text` with where it is (a byte range), in order.
fn spans(text: &str) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_word_char(c) || (start.is_some() && joins(c)) {
            start.get_or_insert(i);
            fold_into(&mut word, c);
        } else if let Some(from) = start.take() {
            out.push((from..i, std::mem::take(&mut word)));
        }
    }
    if let Some(from) = start {
        out.push((from..text.len(), word));
    }
    out
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

/// Whether PostgreSQL can hold `word` in a `tsvector` or `tsquery`.
fn indexable(word: &str) -> bool {
    !word.is_empty() && word.len() <= MAX_WORD_BYTES
}

/// The `tsvector` literal of a body: each distinct word with its positions (from 1).
pub fn vector(body: &str) -> String {
    let mut positions: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for (i, word) in words(body).into_iter().enumerate() {
        if !indexable(&word) {
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
/// [`crate::db::queries::fts_terms`] gives them) with its words in order, each right after
/// the one before; `None` when nothing can match. A term without words is left out, as FTS5
/// leaves out an empty phrase. A word too long for PostgreSQL (never stored) keeps its place
/// in its phrase (the words around it must be that far apart), and a term made only of such
/// words matches nothing.
pub fn query(terms: &[String]) -> Option<String> {
    let mut out = String::new();
    for term in terms {
        let words = words(term);
        if words.is_empty() {
            continue;
        }
        if !words.iter().any(|w| indexable(w)) {
            return None;
        }
        if !out.is_empty() {
            out.push_str(" & ");
        }
        out.push('(');
        let mut gap = 0;
        let mut first = true;
        for word in &words {
            gap += 1;
            if !indexable(word) {
                continue;
            }
            if !first {
                if gap == 1 {
                    out.push_str(" <-> ");
                } else {
                    let _ = write!(out, " <{gap}> ");
                }
            }
            first = false;
            gap = 0;
            quote_into(&mut out, word);
        }
        out.push(')');
    }
    (!out.is_empty()).then_some(out)
}

/// The most words an excerpt shows, as SQLite's `snippet` is asked for.
pub const EXCERPT_WORDS: usize = 24;

/// A query's terms as an excerpt looks for them: each term's words, folded once per query
/// rather than once per hit. Terms that fold to the same words occur together, so one of
/// them is kept; queries hold at most `MAX_QUERY_TERMS` terms, so a window's distinct terms
/// fit a bit set.
pub struct Phrases(Vec<Vec<String>>);

impl Phrases {
    pub fn new(terms: &[String]) -> Phrases {
        let mut phrases: Vec<Vec<String>> = Vec::new();
        for phrase in terms.iter().map(|t| words(t)) {
            if !phrase.is_empty() && !phrases.contains(&phrase) && phrases.len() < 64 {
                phrases.push(phrase);
            }
        }
        Phrases(phrases)
    }
}

/// The excerpt of a search hit: at most [`EXCERPT_WORDS`] words of `body`, each occurrence of
/// a term of the query (a word, or a phrase's words in a row; the part inside the window) between
/// `\x02` and `\x03`, and `…` where the body goes on, as SQLite's `snippet` gives it. The
/// window holds the most distinct terms (the earliest such), from two words before a match;
/// FTS5 weighs its windows a little differently, so a long body's excerpt may start elsewhere.
pub fn excerpt(body: &str, Phrases(phrases): &Phrases) -> String {
    let spans = spans(body);
    let n = spans.len();
    // Where each term occurs: (first word, words, term), by first word.
    let mut found: Vec<(usize, usize, usize)> = Vec::new();
    for (t, phrase) in phrases.iter().enumerate() {
        let k = phrase.len();
        for i in 0..n.saturating_sub(k - 1) {
            if spans[i..i + k].iter().zip(phrase).all(|((_, w), p)| w == p) {
                found.push((i, k, t));
            }
        }
    }
    found.sort_unstable();
    let mut from = 0;
    if n > EXCERPT_WORDS {
        let last_start = n - EXCERPT_WORDS;
        let (mut best, mut tried) = (0, None);
        for &(i, _, _) in &found {
            let start = i.saturating_sub(2).min(last_start);
            if tried == Some(start) {
                continue;
            }
            tried = Some(start);
            let end = start + EXCERPT_WORDS;
            let first = found.partition_point(|f| f.0 < start);
            let seen = found[first..]
                .iter()
                .take_while(|f| f.0 < end)
                .filter(|f| f.0 + f.1 <= end)
                .fold(0u64, |seen, f| seen | 1 << f.2);
            if seen.count_ones() > best {
                best = seen.count_ones();
                from = start;
            }
        }
    }
    let to = n.min(from + EXCERPT_WORDS);
    // The marked byte ranges inside the window, overlapping occurrences merged.
    let mut marks: Vec<Range<usize>> = Vec::new();
    for &(i, k, _) in &found {
        if i >= to || i + k <= from {
            continue;
        }
        let range = spans[i.max(from)].0.start..spans[(i + k).min(to) - 1].0.end;
        match marks.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => marks.push(range),
        }
    }
    let begin = if from == 0 { 0 } else { spans[from].0.start };
    let end = if to == n {
        body.len()
    } else {
        spans[to - 1].0.end
    };
    let mut out = String::with_capacity(end - begin + 4 * marks.len() + 8);
    if from > 0 {
        out.push('…');
    }
    let mut at = begin;
    for mark in marks {
        out.push_str(&body[at..mark.start]);
        out.push('\u{2}');
        out.push_str(&body[mark.clone()]);
        out.push('\u{3}');
        at = mark.end;
    }
    out.push_str(&body[at..end]);
    if to < n {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    fn excerpt_of(body: &str, terms: &[String]) -> String {
        excerpt(body, &Phrases::new(terms))
    }

    #[test]
    fn words_split_and_fold_as_sqlites_index_does() {
        assert_eq!(words("Hello, World!"), ["hello", "world"]);
        assert_eq!(words("Café ÜBER naïve"), ["cafe", "uber", "naive"]);
        // Decomposed input folds the same as composed input.
        assert_eq!(words("Cafe\u{301}"), ["cafe"]);
        assert_eq!(
            words("bob@example.com well-known 3.14 snake_case"),
            ["bob", "example", "com", "well", "known", "3", "14", "snake", "case"]
        );
        assert_eq!(words("Straße Æther"), ["straße", "æther"]);
        // Case folding, not lower-casing: a final sigma is a sigma.
        assert_eq!(words("ΛΌΓΟΣ λόγος"), words("λόγοσ ΛΌΓΟΣ"));
        assert_eq!(words("日本語 한국어"), ["日本語", "한국어"]);
        assert_eq!(words("  ... -- !!! "), Vec::<String>::new());
        // An accent with no letter before it is a separator.
        assert_eq!(words("\u{301}a"), ["a"]);
    }

    /// The words of each text, straight from SQLite's FTS5 index (`unicode61`,
    /// `remove_diacritics 2`), in order.
    fn fts5_words(texts: &[&str]) -> Vec<Vec<String>> {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(b, tokenize = 'unicode61 remove_diacritics 2');
             CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');",
        )
        .unwrap();
        db.execute_batch("BEGIN").unwrap();
        let mut insert = db
            .prepare("INSERT INTO t (rowid, b) VALUES (?1, ?2)")
            .unwrap();
        for (i, text) in texts.iter().enumerate() {
            insert.execute((i as i64, text)).unwrap();
        }
        drop(insert);
        db.execute_batch("COMMIT").unwrap();
        let mut out = vec![Vec::new(); texts.len()];
        let mut stmt = db
            .prepare("SELECT doc, term FROM v ORDER BY doc, \"offset\"")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        for row in rows {
            let (doc, term) = row.unwrap();
            out[doc as usize].push(term);
        }
        out
    }

    #[test]
    fn texts_in_many_scripts_split_into_the_words_fts5_finds() {
        let texts = [
            "Ça va? Straße, ŒUVRE, Ærø, İstanbul, ǅemal, ﬁne",
            "ΚΑΦΈ καφέ ΛΌΓΟΣ λόγος µ μ ſ",
            "Привет, мой ёж! Їжак ўсё",
            "كتاب آخر إلى مُحَمَّد",
            "काम कम नमस्ते",
            "ภาษาไทย สวัสดี",
            "日本語のテキスト、デスクとテスト。한국어 문장",
            "1️⃣ 👍🏽 a\u{301}b e\u{20DD}f \u{E000}private",
            "x\u{0345}y Ǆ ǆ ꭰ Ꭰ 𐐀𐐨 ok🤔 ok😀",
            " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        ];
        let ours: Vec<Vec<String>> = texts.iter().map(|t| words(t)).collect();
        assert_eq!(ours, fts5_words(&texts));
    }

    /// The source of `tables.rs`, read off SQLite's FTS5: for every character `c`, the words
    /// FTS5 makes of `a{c}a {c}a {c}` tell whether `c` separates words (`a`, `a`, `a`),
    /// continues one (`a{f}a`, `a`) or is a word character (`a{f}a`, `{f}a`, `{f}`), and what
    /// it folds to (`f`).
    fn tables_source() -> String {
        let chars: Vec<char> = (0x80..=0x10FFFF).filter_map(char::from_u32).collect();
        let texts: Vec<String> = chars.iter().map(|c| format!("a{c}a {c}a {c}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let found = fts5_words(&refs);
        let mut word: Vec<(u32, u32)> = Vec::new();
        let mut join: Vec<(u32, u32)> = Vec::new();
        let mut fold: Vec<(u32, u32)> = Vec::new();
        let push = |ranges: &mut Vec<(u32, u32)>, c: u32| match ranges.last_mut() {
            Some((_, last)) if *last + 1 == c => *last = c,
            _ => ranges.push((c, c)),
        };
        for (c, words) in chars.iter().zip(&found) {
            let code = u32::from(*c);
            let folded = match &words[..] {
                [a, b, d] if a == "a" && b == "a" && d == "a" => continue,
                [w, a] if a == "a" => {
                    // FTS5 lets only accents continue a word (`sqlite3Fts5UnicodeIsdiacritic`);
                    // a word character folding to nothing would look the same here.
                    assert!((0x300..0x370).contains(&code), "{c:?} continues a word");
                    push(&mut join, code);
                    w.strip_prefix('a').and_then(|w| w.strip_suffix('a'))
                }
                [w, _, f] => {
                    push(&mut word, code);
                    assert!(!f.is_empty(), "{c:?} is a word character that folds away");
                    assert_eq!(w, &format!("a{f}a"), "{c:?}");
                    Some(f.as_str())
                }
                other => panic!("FTS5 made {other:?} of {c:?}"),
            };
            let folded = folded.unwrap_or_else(|| panic!("{c:?}: {words:?}"));
            let mut it = folded.chars();
            let to = match (it.next(), it.next()) {
                (None, _) => 0,
                (Some(f), None) => u32::from(f),
                _ => panic!("{c:?} folds to more than one character: {folded:?}"),
            };
            if to != code {
                fold.push((code, to));
            }
        }
        let mut out = String::from(
            "//! What SQLite's FTS5 tokenizer (`unicode61`, `remove_diacritics 2`) does with each\n\
             //! character outside ASCII, read off FTS5 itself by the test `the_tables_are_fts5s`\n\
             //! (run it with `HEARTH_WRITE_TABLES=1` to write them again).\n",
        );
        let mut list = |name: &str, doc: &str, kind: &str, rows: &[(u32, u32)]| {
            out.push_str(&format!(
                "\n/// {doc}\npub const {name}: &[({kind}, {kind})] = &[\n"
            ));
            for (a, b) in rows {
                out.push_str(&format!("    (0x{a:04X}, 0x{b:04X}),\n"));
            }
            out.push_str("];\n");
        };
        list(
            "WORD",
            "Characters that start or continue a word, as ranges.",
            "u32",
            &word,
        );
        list(
            "JOIN",
            "Characters that continue a word they follow (accents), as ranges.",
            "u32",
            &join,
        );
        list(
            "FOLD",
            "Each character of a word that is folded, with what it becomes (0: nothing).",
            "u32",
            &fold,
        );
        out
    }

    #[test]
    fn the_tables_are_fts5s() {
        let made = tables_source();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/pg/words/tables.rs");
        if std::env::var_os("HEARTH_WRITE_TABLES").is_some() {
            std::fs::write(path, &made).unwrap();
        }
        let kept = std::fs::read_to_string(path).unwrap();
        assert!(
            kept == made,
            "src/db/pg/words/tables.rs is not what FTS5 does: run this test with \
             HEARTH_WRITE_TABLES=1"
        );
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
    fn a_query_needs_every_term_with_its_words_in_order() {
        assert_eq!(
            query(&terms(&["Café", "brown fox"])).as_deref(),
            Some("('cafe') & ('brown' <-> 'fox')")
        );
        assert_eq!(query(&terms(&["o'k"])).as_deref(), Some("('o' <-> 'k')"));
        assert_eq!(query(&terms(&["!!!", "x"])).as_deref(), Some("('x')"));
        assert_eq!(query(&terms(&["!!!"])), None);
        assert_eq!(query(&[]), None);
        // A word PostgreSQL cannot hold keeps its place; alone, it matches nothing.
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        assert_eq!(
            query(&[format!("a {long} {long} b")]).as_deref(),
            Some("('a' <3> 'b')")
        );
        assert_eq!(query(&[format!("{long} b")]).as_deref(), Some("('b')"));
        assert_eq!(query(&[long.clone(), "b".into()]), None);
    }

    #[test]
    fn an_excerpt_marks_the_query_words_around_the_best_window() {
        assert_eq!(
            excerpt_of("Mail bob@Example.com, now!", &terms(&["example"])),
            "Mail bob@\u{2}Example\u{3}.com, now!"
        );
        assert_eq!(
            excerpt_of("Un café, s'il vous plaît", &terms(&["CAFE", "plait"])),
            "Un \u{2}café\u{3}, s'il vous \u{2}plaît\u{3}"
        );
        // A phrase is marked where its words stand together, as one span.
        assert_eq!(
            excerpt_of("the fox, the brown fox", &terms(&["brown fox"])),
            "the fox, the \u{2}brown fox\u{3}"
        );
        assert_eq!(
            excerpt_of("Ça va, ça va", &terms(&["ca", "va"])),
            "\u{2}Ça\u{3} \u{2}va\u{3}, \u{2}ça\u{3} \u{2}va\u{3}"
        );
        // A long body: the window with both terms, from two words before the first.
        let mut body: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        body[10] = "fox".into();
        body[60] = "fox".into();
        body[70] = "dog".into();
        let text = body.join(" ");
        let got = excerpt_of(&text, &terms(&["fox", "dog"]));
        assert!(got.starts_with("…w58 w59 \u{2}fox\u{3} w61"), "{got}");
        assert!(got.contains("\u{2}dog\u{3}"), "{got}");
        assert!(got.ends_with("w81…"), "{got}");
        assert_eq!(got.split(' ').count(), EXCERPT_WORDS);
        // Near the start: no leading ellipsis.
        let got = excerpt_of(&text, &terms(&["w1"]));
        assert!(got.starts_with("w0 \u{2}w1\u{3} w2"), "{got}");
        // Near the end: the last words, and what follows them.
        let got = excerpt_of(&format!("{text}!"), &terms(&["w99"]));
        assert!(
            got.starts_with("…w76 ") && got.ends_with("\u{2}w99\u{3}!"),
            "{got}"
        );
        // A phrase across the window's edge: its part inside is marked.
        let got = excerpt_of(&text, &terms(&["w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 fox w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23 w24 w25"]));
        assert!(
            got.starts_with("\u{2}w0 w1") && got.ends_with("w23\u{3}…"),
            "{got}"
        );
        // Terms that fold alike, against a body of nothing else: as cheap as one.
        let same = terms(&["a", "A", "á", "à", "â", "ä", "ã", "å"]);
        let got = excerpt_of(&"a ".repeat(2000), &same);
        assert_eq!(got.matches('\u{2}').count(), EXCERPT_WORDS);
        // Nothing of the query in it: the first words.
        let got = excerpt_of(&text, &terms(&["cat"]));
        assert!(got.starts_with("w0 w1 ") && got.ends_with("w23…"), "{got}");
    }
}
