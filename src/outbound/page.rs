//! What a link preview reads: the first link of a message, and the title, description, site
//! name and image a page declares in its head (Open Graph, Twitter cards, `<title>`,
//! `<meta name="description">`), read with an HTML tokenizer.

use html5gum::{DefaultEmitter, Token, Tokenizer};
use url::Url;

/// Longest title kept, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description kept, in characters.
pub const MAX_DESCRIPTION: usize = 300;
/// Longest site name kept, in characters.
pub const MAX_SITE_NAME: usize = 80;
/// Longest link previewed, in bytes.
pub const MAX_URL: usize = 2048;

/// Whether `url` (as [`first_link`] writes it) is still the first link of `body`: a page
/// fetched for a message is kept and shown only while its text links to it.
pub fn links_first_to(body: &str, url: &str) -> bool {
    first_link(body).is_some_and(|l| l.as_str() == url)
}

/// The first `http://` or `https://` link in a message body, as a parsed URL, skipping text in
/// backticks (code is not a link). Trailing punctuation that ends a sentence is not part of
/// it, nor is a closing parenthesis without its opening one.
pub fn first_link(body: &str) -> Option<Url> {
    let mut rest = body;
    let mut offset = 0;
    while let Some(at) = find_scheme(rest) {
        let start = offset + at;
        let candidate = &body[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`'))
            .unwrap_or(candidate.len());
        let link = trim_link(&candidate[..end]);
        let in_code = body[..start].matches('`').count() % 2 == 1;
        let boundary = body[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if !in_code && boundary && link.len() <= MAX_URL {
            if let Ok(url) = Url::parse(link) {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Some(url);
                }
            }
        }
        offset = start + end.max(1);
        rest = &body[offset..];
    }
    None
}

/// Where the first `http://` or `https://` (any case) starts, without allocating: this runs
/// for every new message.
fn find_scheme(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| {
        let rest = &b[i..];
        rest.len() >= 7
            && rest[..4].eq_ignore_ascii_case(b"http")
            && (rest[4..7] == *b"://"
                || (rest.len() >= 8
                    && rest[4].eq_ignore_ascii_case(&b's')
                    && rest[5..8] == *b"://"))
    })
}

fn trim_link(mut link: &str) -> &str {
    loop {
        let before = link;
        link = link.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '*', '_', ']']);
        if link.ends_with(')') && link.matches('(').count() < link.matches(')').count() {
            link = &link[..link.len() - 1];
        }
        if link == before {
            return link;
        }
    }
}

/// What a page says about itself.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageMeta {
    /// `og:title`, `twitter:title` or `<title>`.
    pub title: String,
    /// `og:description`, `twitter:description` or `<meta name="description">`.
    pub description: String,
    /// `og:site_name` (empty when the page gives none).
    pub site_name: String,
    /// `og:image`, `twitter:image` (resolved against the page's address; http(s) only).
    pub image: Option<Url>,
}

impl PageMeta {
    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        self.title.is_empty() && self.description.is_empty()
    }
}

/// Read the head of `html` (fetched from `base`). Reading stops at `<body>` or the first
/// element that only a body holds; scripts, styles and comments are skipped.
pub fn parse_head(html: &str, base: &Url) -> PageMeta {
    let mut og = Fields::default();
    let mut tw = Fields::default();
    let mut plain = Fields::default();
    let mut in_title = false;
    // Titles, scripts and styles switch the tokenizer to their text states, so what a script
    // says is not read as tags.
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    for token in Tokenizer::new_with_emitter(html, emitter) {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                match name.as_str() {
                    "title" => in_title = true,
                    "meta" => {
                        let attr = |key: &str| {
                            tag.attributes
                                .get(key.as_bytes())
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                        };
                        let key = attr("property")
                            .or_else(|| attr("name"))
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        let content = attr("content").unwrap_or_default();
                        match key.as_str() {
                            "og:title" => og.title.get_or_insert(content),
                            "og:description" => og.description.get_or_insert(content),
                            "og:site_name" => og.site_name.get_or_insert(content),
                            "og:image" | "og:image:url" | "og:image:secure_url" => {
                                og.image.get_or_insert(content)
                            }
                            "twitter:title" => tw.title.get_or_insert(content),
                            "twitter:description" => tw.description.get_or_insert(content),
                            "twitter:image" | "twitter:image:src" => {
                                tw.image.get_or_insert(content)
                            }
                            "description" => plain.description.get_or_insert(content),
                            _ => continue,
                        };
                    }
                    "body" | "main" | "article" | "div" | "p" | "h1" | "section" => break,
                    _ => {}
                }
            }
            Token::String(text) if in_title => {
                plain
                    .title
                    .get_or_insert_with(String::new)
                    .push_str(&String::from_utf8_lossy(&text));
            }
            Token::EndTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                match name.as_str() {
                    "title" => in_title = false,
                    "head" => break,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let pick = |a: Option<String>, b: Option<String>, c: Option<String>, max: usize| {
        [a, b, c]
            .into_iter()
            .flatten()
            .map(|s| clean_text(&s, max))
            .find(|s| !s.is_empty())
            .unwrap_or_default()
    };
    let image = [og.image, tw.image]
        .into_iter()
        .flatten()
        .filter_map(|s| base.join(s.trim()).ok())
        .find(|u| matches!(u.scheme(), "http" | "https") && u.as_str().len() <= MAX_URL);
    PageMeta {
        title: pick(og.title, tw.title, plain.title, MAX_TITLE),
        description: pick(
            og.description,
            tw.description,
            plain.description,
            MAX_DESCRIPTION,
        ),
        site_name: pick(og.site_name, None, None, MAX_SITE_NAME),
        image,
    }
}

#[derive(Default)]
struct Fields {
    title: Option<String>,
    description: Option<String>,
    site_name: Option<String>,
    image: Option<String>,
}

/// Whitespace collapsed, control characters dropped, at most `max` characters (an ellipsis
/// marks a cut).
fn clean_text(s: &str, max: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let joined: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(s: &str) -> Option<String> {
        first_link(s).map(|u| u.to_string())
    }

    #[test]
    fn the_first_link_of_a_body() {
        assert_eq!(
            link("see https://example.com/a."),
            Some("https://example.com/a".into())
        );
        assert_eq!(
            link("(https://en.wikipedia.org/wiki/Rust_(programming_language))"),
            Some("https://en.wikipedia.org/wiki/Rust_(programming_language)".into())
        );
        assert_eq!(
            link("at http://example.com/x), and"),
            Some("http://example.com/x".into())
        );
        assert_eq!(
            link("two: http://a.example/1 and https://b.example/2"),
            Some("http://a.example/1".into())
        );
        assert_eq!(
            link("`https://code.example/` then https://real.example/"),
            Some("https://real.example/".into())
        );
        assert_eq!(
            link("[text](https://md.example/p)"),
            Some("https://md.example/p".into())
        );
        assert_eq!(
            link("HTTPS://UPPER.example/Path"),
            Some("https://upper.example/Path".into())
        );
        assert_eq!(link("nohttps://example.com"), None);
        assert_eq!(link("ftp://example.com and mailto:a@b.c"), None);
        assert_eq!(link("http:// nothing"), None);
        assert_eq!(link("no links here"), None);
        assert_eq!(
            link("héllo wörld https://ex.example/ü"),
            Some("https://ex.example/%C3%BC".into())
        );
    }

    #[test]
    fn open_graph_wins_over_twitter_over_plain() {
        let base = Url::parse("https://site.example/post/1").unwrap();
        let html = r#"<!doctype html><html><head>
            <title>Plain &amp; simple</title>
            <meta name="description" content="plain description">
            <meta name="twitter:title" content="Twitter title">
            <meta property="og:title" content="  OG
               title ">
            <meta property="og:description" content="OG description">
            <meta property="og:site_name" content="Site">
            <meta property="og:image" content="/img/a.png">
            </head><body><meta property="og:title" content="in the body"></body></html>"#;
        let meta = parse_head(html, &base);
        assert_eq!(meta.title, "OG title");
        assert_eq!(meta.description, "OG description");
        assert_eq!(meta.site_name, "Site");
        assert_eq!(
            meta.image.unwrap().as_str(),
            "https://site.example/img/a.png"
        );
    }

    #[test]
    fn title_and_description_from_plain_html() {
        let base = Url::parse("http://x.example/").unwrap();
        let html = "<html><head><script>var t = '<title>not this</title>';</script>\
            <style>title{}</style><!-- <title>nor this</title> -->\
            <title>A &lt;b&gt; page</title><meta name=description content='Words'></head>";
        let meta = parse_head(html, &base);
        assert_eq!(meta.title, "A <b> page");
        assert_eq!(meta.description, "Words");
        assert_eq!(meta.site_name, "");
        assert_eq!(meta.image, None);
    }

    #[test]
    fn images_must_be_web_addresses_and_text_is_bounded() {
        let base = Url::parse("https://x.example/").unwrap();
        let long = "word ".repeat(200);
        let html = format!(
            "<meta property=og:image content='javascript:alert(1)'>\
             <meta name=twitter:image content='data:image/png;base64,AAAA'>\
             <meta property=og:title content='{long}'><title>\u{7}bell</title>"
        );
        let meta = parse_head(&html, &base);
        assert_eq!(meta.image, None);
        assert!(meta.title.chars().count() <= MAX_TITLE);
        assert!(meta.title.ends_with('…'));
        let meta = parse_head("<title>\u{7}bell</title>", &base);
        assert_eq!(meta.title, "bell");
        assert!(parse_head("<p>body only<title>late</title>", &base).is_empty());
    }
}
