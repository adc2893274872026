//! The text of a status: what it mentions, tags and links, how long it is,
//! and the HTML Mastodon clients expect in `content`.
//!
//! Everything rests on one small hand-written scanner over `char`s
//! ([`tokenize`]) that cuts plain text into runs of text, links, mentions and
//! hashtags. The public operations ([`parse`], [`status_length`], [`render`])
//! only walk those tokens, so they always agree with each other. Links are
//! consumed whole, so nothing inside a URL is ever taken for a mention or a
//! hashtag.
//!
//! The rules follow Mastodon's:
//! - mention: `@user` or `@user@domain`, `user` is `[A-Za-z0-9_]{1,30}`, the
//!   `@` not preceded by a word character, `@`, `/` or `.` (so `a@b.com` is
//!   an email address, not a mention);
//! - hashtag: `#name`, `name` made of letters, digits and `_` in any script
//!   and not all digits, the `#` not preceded by a word character, `&`, `/`,
//!   `=` or `)`;
//! - link: `http://` or `https://` up to the next whitespace, without
//!   trailing punctuation (a `)` stays when it closes a `(` of the URL).

/// Maximum length of a status in characters (counted with [`status_length`]).
pub const MAX_STATUS_CHARS: usize = 500;
/// Every URL counts as this many characters, whatever its length (Mastodon rule).
pub const URL_WEIGHT: usize = 23;
/// Longest username a mention may carry.
pub const MENTION_USERNAME_MAX: usize = 30;
/// Longest hashtag name, in characters.
pub const TAG_MAX: usize = 100;

/// How many characters of a link (after its scheme) are shown before "…".
const LINK_DISPLAY_MAX: usize = 30;
/// Characters stripped from the end of a link: they end the sentence, not the URL.
const LINK_TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', '\'', '"'];

/// A mention as written in the text, without the `@`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MentionRef {
    pub username: String,
    pub domain: Option<String>,
}

impl MentionRef {
    /// `user` or `user@domain`, as written.
    pub fn acct(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{}@{domain}", self.username),
            None => self.username.clone(),
        }
    }

    /// Case-insensitive identity, used to de-duplicate.
    fn key(&self) -> (String, Option<String>) {
        (
            self.username.to_lowercase(),
            self.domain.as_deref().map(str::to_lowercase),
        )
    }
}

/// What a status text refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// In order of first appearance, de-duplicated case-insensitively (username+domain).
    pub mentions: Vec<MentionRef>,
    /// Lowercased hashtag names without '#', order of first appearance, de-duplicated.
    pub tags: Vec<String>,
    /// http(s) URLs found, in order.
    pub links: Vec<String>,
}

/// A mention that resolved to a local account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedMention {
    /// The account's username in its canonical case.
    pub username: String,
    /// The account's profile page, like `https://host/@user`.
    pub url: String,
}

/// Finds the mentions, hashtags and links of a status text.
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut mention_keys = Vec::new();
    for token in tokenize(text) {
        match token {
            Token::Text(_) => {}
            Token::Link(url) => parsed.links.push(url),
            Token::Mention { mention, .. } => {
                let key = mention.key();
                if !mention_keys.contains(&key) {
                    mention_keys.push(key);
                    parsed.mentions.push(mention);
                }
            }
            Token::Tag(name) => {
                let name = name.to_lowercase();
                if !parsed.tags.contains(&name) {
                    parsed.tags.push(name);
                }
            }
        }
    }
    parsed
}

/// Length of a status as Mastodon counts it (its `StatusLengthValidator`):
/// grapheme clusters (what a reader sees as one character: an emoji ZWJ
/// sequence, a flag, a letter with its combining marks) of the content
/// warning followed by the text, where in the text every http(s) URL counts
/// as [`URL_WEIGHT`] and a mention `@user@domain` counts only as `@user`.
/// Compared against [`MAX_STATUS_CHARS`].
pub fn status_length(text: &str, spoiler_text: &str) -> usize {
    use unicode_segmentation::UnicodeSegmentation;
    // Mastodon joins the two strings before counting, so a text starting
    // with a combining mark extends the warning's last character.
    let mut combined = String::with_capacity(spoiler_text.len() + text.len());
    combined.push_str(spoiler_text);
    if !text.trim().is_empty() {
        push_countable(&mut combined, text);
    }
    combined.graphemes(true).count()
}

/// What Mastodon counts of a text: URLs replaced by a placeholder of
/// [`URL_WEIGHT`] characters (a control character then `x`s, so it joins
/// no neighbouring grapheme), remote mentions cut to their local part.
fn push_countable(out: &mut String, text: &str) {
    for token in tokenize(text) {
        match token {
            Token::Text(text) => out.push_str(&text),
            Token::Link(_) => {
                out.push('\u{1}');
                out.extend(std::iter::repeat_n('x', URL_WEIGHT - 1));
            }
            Token::Mention { mention, .. } => {
                out.push('@');
                out.push_str(&mention.username);
            }
            Token::Tag(name) => {
                out.push('#');
                out.push_str(&name);
            }
        }
    }
}

/// Sanitized HTML for `content`. `base_url` is like "https://example.com" (no trailing slash).
/// `resolve` is called for each mention; unresolved mentions stay plain (escaped) text.
///
/// Paragraphs are separated by empty lines and become `<p>…</p>`; single
/// line breaks inside a paragraph become `<br />`. Blank text renders as "".
pub fn render(
    text: &str,
    base_url: &str,
    resolve: &dyn Fn(&MentionRef) -> Option<ResolvedMention>,
) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut html = String::new();
    if text.trim().is_empty() {
        return html;
    }
    let mut paragraph: Vec<&str> = Vec::new();
    // The extra empty line at the end closes the last paragraph.
    for line in text.split('\n').chain(std::iter::once("")) {
        if line.is_empty() {
            render_paragraph(&mut html, &paragraph, base_url, resolve);
            paragraph.clear();
        } else {
            paragraph.push(line);
        }
    }
    html
}

/// Hashtag name validity for URLs like /tags/:name (letters/digits/underscore
/// in any script, not all digits, 1..=100 chars); returns the lowercased name.
pub fn normalize_tag(name: &str) -> Option<String> {
    let len = name.chars().count();
    let valid = (1..=TAG_MAX).contains(&len)
        && name.chars().all(is_word)
        && name.chars().any(|c| c.is_alphabetic() || c == '_');
    valid.then(|| name.to_lowercase())
}

// ---------------------------------------------------------------------------
// Scanner

/// One piece of a status text.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Text(String),
    /// An http(s) URL, trailing punctuation removed.
    Link(String),
    /// `raw` is the mention as written, `@` included.
    Mention {
        mention: MentionRef,
        raw: String,
    },
    /// The name as written, without '#'.
    Tag(String),
}

/// Cuts `text` into tokens; adjacent plain characters form one `Text`.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut plain = String::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let found = match c {
            'h' | 'H' => scan_link(&chars, i, prev),
            '@' => scan_mention(&chars, i, prev),
            '#' => scan_tag(&chars, i, prev),
            _ => None,
        };
        match found {
            Some((token, end)) => {
                if !plain.is_empty() {
                    tokens.push(Token::Text(std::mem::take(&mut plain)));
                }
                tokens.push(token);
                i = end;
            }
            None => {
                plain.push(c);
                i += 1;
            }
        }
    }
    if !plain.is_empty() {
        tokens.push(Token::Text(plain));
    }
    tokens
}

/// A link starting at `start`, and the index just after it.
fn scan_link(chars: &[char], start: usize, prev: Option<char>) -> Option<(Token, usize)> {
    // "xhttp://…" is a word, not a link.
    if prev.is_some_and(char::is_alphanumeric) {
        return None;
    }
    let scheme_len = ["https://", "http://"]
        .iter()
        .find(|scheme| starts_with_ignore_case(chars, start, scheme))?
        .len();
    let body = start + scheme_len;
    let mut end = run(chars, body, |c| !ends_link(c));
    while end > body {
        let last = chars[end - 1];
        if !LINK_TRAILING.contains(&last) {
            break;
        }
        if last == ')' {
            let url = &chars[start..end];
            let opens = url.iter().filter(|&&c| c == '(').count();
            let closes = url.iter().filter(|&&c| c == ')').count();
            if opens >= closes {
                break; // it closes a '(' of the URL, as in Wikipedia links
            }
        }
        end -= 1;
    }
    if end == body {
        return None; // a scheme alone is not a link
    }
    Some((Token::Link(chars[start..end].iter().collect()), end))
}

/// A mention starting at the `@` at `at`, and the index just after it.
fn scan_mention(chars: &[char], at: usize, prev: Option<char>) -> Option<(Token, usize)> {
    // Not inside a word, an email address, a path or a domain.
    if prev.is_some_and(|c| is_word(c) || matches!(c, '@' | '/' | '.')) {
        return None;
    }
    let user_start = at + 1;
    let user_end = run(chars, user_start, |c| c.is_ascii_alphanumeric() || c == '_');
    if !(1..=MENTION_USERNAME_MAX).contains(&(user_end - user_start)) {
        return None;
    }
    let mut end = user_end;
    let mut domain = None;
    if chars.get(end) == Some(&'@') {
        let domain_start = end + 1;
        let mut domain_end = run(chars, domain_start, |c| {
            c.is_ascii_alphanumeric() || c == '.' || c == '-'
        });
        // "@bob@example.com." ends a sentence.
        while domain_end > domain_start && matches!(chars[domain_end - 1], '.' | '-') {
            domain_end -= 1;
        }
        let name: String = chars[domain_start..domain_end].iter().collect();
        if !is_domain(&name) {
            return None; // "@bob@foo" names nobody we could find
        }
        domain = Some(name);
        end = domain_end;
    }
    // "@bobé" is not a mention of bob.
    if chars.get(end).copied().is_some_and(is_word) {
        return None;
    }
    let mention = MentionRef {
        username: chars[user_start..user_end].iter().collect(),
        domain,
    };
    let raw = chars[at..end].iter().collect();
    Some((Token::Mention { mention, raw }, end))
}

/// A hashtag starting at the `#` at `hash`, and the index just after it.
fn scan_tag(chars: &[char], hash: usize, prev: Option<char>) -> Option<(Token, usize)> {
    // Not inside a word, an HTML entity ("&#39;"), a path or a query.
    if prev.is_some_and(|c| is_word(c) || matches!(c, '&' | '/' | '=' | ')')) {
        return None;
    }
    let end = run(chars, hash + 1, is_word);
    let name: String = chars[hash + 1..end].iter().collect();
    normalize_tag(&name)?;
    Some((Token::Tag(name), end))
}

/// The index of the first char from `start` on that does not satisfy `keep`.
fn run(chars: &[char], start: usize, keep: impl Fn(char) -> bool) -> usize {
    let len = chars
        .get(start..)
        .map_or(0, |rest| rest.iter().take_while(|&&c| keep(c)).count());
    start + len
}

fn starts_with_ignore_case(chars: &[char], start: usize, prefix: &str) -> bool {
    let mut rest = chars.get(start..).unwrap_or_default().iter();
    prefix
        .chars()
        .all(|p| rest.next().is_some_and(|c| c.eq_ignore_ascii_case(&p)))
}

/// Characters that end a link: whitespace, controls, and `<` `>` which no URL
/// holds unescaped (so `<https://example.com>` links without the `>`).
fn ends_link(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == '<' || c == '>'
}

/// A word character: a letter or digit in any script, `_`, or a combining
/// mark (so a decomposed "café" stays one word).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_combining_mark(c)
}

/// The Unicode "Combining Diacritical Marks" blocks.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// `[A-Za-z0-9.-]+` with at least one dot and no empty label.
fn is_domain(name: &str) -> bool {
    name.contains('.') && name.split('.').all(|label| !label.is_empty())
}

// ---------------------------------------------------------------------------
// Rendering

fn render_paragraph(
    html: &mut String,
    lines: &[&str],
    base_url: &str,
    resolve: &dyn Fn(&MentionRef) -> Option<ResolvedMention>,
) {
    if lines.iter().all(|line| line.trim().is_empty()) {
        return;
    }
    html.push_str("<p>");
    for (n, line) in lines.iter().enumerate() {
        if n > 0 {
            html.push_str("<br />");
        }
        for token in tokenize(line) {
            render_token(html, &token, base_url, resolve);
        }
    }
    html.push_str("</p>");
}

fn render_token(
    html: &mut String,
    token: &Token,
    base_url: &str,
    resolve: &dyn Fn(&MentionRef) -> Option<ResolvedMention>,
) {
    match token {
        Token::Text(text) => html.push_str(&escape(text)),
        Token::Link(url) => render_link(html, url),
        Token::Mention { mention, raw } => match resolve(mention) {
            Some(account) => html.push_str(&format!(
                "<span class=\"h-card\" translate=\"no\"><a href=\"{}\" class=\"u-url mention\">@<span>{}</span></a></span>",
                escape(&account.url),
                escape(&account.username),
            )),
            None => html.push_str(&escape(raw)),
        },
        Token::Tag(name) => html.push_str(&format!(
            "<a href=\"{}/tags/{}\" class=\"mention hashtag\" rel=\"tag\">#<span>{}</span></a>",
            escape(base_url),
            percent_encode(&name.to_lowercase()),
            escape(name),
        )),
    }
}

/// Mastodon's shortened link: the scheme hidden, the first 30 characters
/// shown (with an ellipsis when there is more), the rest hidden.
fn render_link(html: &mut String, url: &str) {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = url.split_at(scheme_end);
    let shown: String = rest.chars().take(LINK_DISPLAY_MAX).collect();
    let hidden: String = rest.chars().skip(LINK_DISPLAY_MAX).collect();
    let class = if hidden.is_empty() { "" } else { "ellipsis" };
    html.push_str(&format!(
        "<a href=\"{}\" target=\"_blank\" rel=\"nofollow noopener noreferrer\" translate=\"no\">\
         <span class=\"invisible\">{}</span><span class=\"{class}\">{}</span>\
         <span class=\"invisible\">{}</span></a>",
        escape(url),
        escape(scheme),
        escape(&shown),
        escape(&hidden),
    ));
}

/// Escapes the five characters that matter in HTML text and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes every byte that is not an ASCII letter, digit or `_`
/// (all a tag name may hold besides non-ASCII letters).
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://starling.test";

    /// Resolves `alice` and `bob` (any case, local or `@starling.test`).
    fn local(m: &MentionRef) -> Option<ResolvedMention> {
        if m.domain.as_deref().is_some_and(|d| d != "starling.test") {
            return None;
        }
        let username = match m.username.to_lowercase().as_str() {
            "alice" => "alice",
            "bob" => "Bob",
            _ => return None,
        };
        Some(ResolvedMention {
            username: username.to_string(),
            url: format!("{BASE}/@{username}"),
        })
    }

    fn html(text: &str) -> String {
        render(text, BASE, &local)
    }

    fn mention(username: &str, domain: Option<&str>) -> MentionRef {
        MentionRef {
            username: username.to_string(),
            domain: domain.map(str::to_string),
        }
    }

    fn h_card(username: &str) -> String {
        format!(
            "<span class=\"h-card\" translate=\"no\"><a href=\"{BASE}/@{username}\" class=\"u-url mention\">@<span>{username}</span></a></span>"
        )
    }

    fn tag_link(slug: &str, written: &str) -> String {
        format!(
            "<a href=\"{BASE}/tags/{slug}\" class=\"mention hashtag\" rel=\"tag\">#<span>{written}</span></a>"
        )
    }

    fn link(url: &str, scheme: &str, shown: &str, hidden: &str) -> String {
        let class = if hidden.is_empty() { "" } else { "ellipsis" };
        format!(
            "<a href=\"{url}\" target=\"_blank\" rel=\"nofollow noopener noreferrer\" translate=\"no\"><span class=\"invisible\">{scheme}</span><span class=\"{class}\">{shown}</span><span class=\"invisible\">{hidden}</span></a>"
        )
    }

    // --- rendering plain text -------------------------------------------

    #[test]
    fn plain_text() {
        assert_eq!(html("Hello world"), "<p>Hello world</p>");
        assert_eq!(html("  spaced  "), "<p>  spaced  </p>");
    }

    #[test]
    fn blank_text_renders_nothing() {
        assert_eq!(html(""), "");
        assert_eq!(html("   "), "");
        assert_eq!(html("\n\r\n \t\n"), "");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            html("<script>alert('x & \"y\"')</script>"),
            "<p>&lt;script&gt;alert(&#39;x &amp; &quot;y&quot;&#39;)&lt;/script&gt;</p>"
        );
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn paragraphs_and_line_breaks() {
        assert_eq!(html("one\ntwo"), "<p>one<br />two</p>");
        assert_eq!(html("one\n\ntwo"), "<p>one</p><p>two</p>");
        assert_eq!(
            html("one\n\n\n\ntwo\nthree"),
            "<p>one</p><p>two<br />three</p>"
        );
        assert_eq!(
            html("one\r\ntwo\r\n\r\nthree"),
            "<p>one<br />two</p><p>three</p>"
        );
        assert_eq!(html("\n\none\n\n"), "<p>one</p>");
        assert_eq!(html("one\n"), "<p>one</p>");
        // A whitespace-only line is not empty: it stays inside the paragraph.
        assert_eq!(html("one\n \ntwo"), "<p>one<br /> <br />two</p>");
        // A paragraph of whitespace alone is dropped.
        assert_eq!(html("one\n\n  \n\ntwo"), "<p>one</p><p>two</p>");
    }

    // --- mentions -----------------------------------------------------------

    #[test]
    fn local_mention_renders_canonical_username() {
        assert_eq!(html("hi @alice"), format!("<p>hi {}</p>", h_card("alice")));
        assert_eq!(html("@BOB!"), format!("<p>{}!</p>", h_card("Bob")));
        // Written with this server's domain: rendered as the short form.
        assert_eq!(
            html("cc @bob@starling.test."),
            format!("<p>cc {}.</p>", h_card("Bob"))
        );
    }

    #[test]
    fn remote_mention_resolved_by_the_caller() {
        let remote = |m: &MentionRef| {
            (m.domain.as_deref() == Some("example.com")).then(|| ResolvedMention {
                username: m.username.clone(),
                url: "https://example.com/@carol".to_string(),
            })
        };
        assert_eq!(
            render("@carol@example.com hi", BASE, &remote),
            "<p><span class=\"h-card\" translate=\"no\"><a href=\"https://example.com/@carol\" class=\"u-url mention\">@<span>carol</span></a></span> hi</p>"
        );
    }

    #[test]
    fn unresolved_mentions_stay_text() {
        assert_eq!(html("hi @nobody"), "<p>hi @nobody</p>");
        assert_eq!(
            html("hi @carol@example.com"),
            "<p>hi @carol@example.com</p>"
        );
    }

    #[test]
    fn resolved_values_are_escaped() {
        let evil = |_: &MentionRef| {
            Some(ResolvedMention {
                username: "<b>".to_string(),
                url: "https://x.test/\"".to_string(),
            })
        };
        assert_eq!(
            render("@x", BASE, &evil),
            "<p><span class=\"h-card\" translate=\"no\"><a href=\"https://x.test/&quot;\" class=\"u-url mention\">@<span>&lt;b&gt;</span></a></span></p>"
        );
    }

    #[test]
    fn mention_positions() {
        assert_eq!(parse("@alice hi").mentions, [mention("alice", None)]);
        assert_eq!(parse("(@alice)").mentions, [mention("alice", None)]);
        assert_eq!(parse("hi,@alice").mentions, [mention("alice", None)]);
        assert_eq!(parse("hi\n@alice").mentions, [mention("alice", None)]);
        assert_eq!(
            parse("hey @carol@mastodon.example.org, hi").mentions,
            [mention("carol", Some("mastodon.example.org"))]
        );
        assert_eq!(
            parse("@carol@sub-domain.example.com! and @dan@x.org?").mentions,
            [
                mention("carol", Some("sub-domain.example.com")),
                mention("dan", Some("x.org"))
            ]
        );
    }

    #[test]
    fn not_mentions() {
        for text in [
            "mail alice@example.com",
            "user@alice",
            "a.@alice",
            "path/@alice",
            "@@alice",
            "@",
            "@ alice",
            "@alicé",
            "@bob@localhost",
            "@bob@foo",
            "@bob@",
            "@bob@.com",
            "@bob@a..com",
            "@abcdefghijabcdefghijabcdefghijk",
            "https://example.com/@alice",
        ] {
            assert_eq!(parse(text).mentions, [], "{text}");
        }
        // A mention may be 30 characters long.
        let thirty = "abcdefghijabcdefghijabcdefghij";
        assert_eq!(
            parse(&format!("@{thirty}")).mentions,
            [mention(thirty, None)]
        );
        // The email address renders as text.
        assert_eq!(html("alice@example.com"), "<p>alice@example.com</p>");
    }

    #[test]
    fn mentions_are_deduplicated() {
        let parsed = parse("@alice @Alice @ALICE@Example.com @alice@example.com @bob @alice");
        assert_eq!(
            parsed.mentions,
            [
                mention("alice", None),
                mention("ALICE", Some("Example.com")),
                mention("bob", None)
            ]
        );
        assert_eq!(mention("bob", Some("x.org")).acct(), "bob@x.org");
        assert_eq!(mention("bob", None).acct(), "bob");
    }

    // --- hashtags -----------------------------------------------------------

    #[test]
    fn hashtags_render() {
        assert_eq!(
            html("I love #Rust!"),
            format!("<p>I love {}!</p>", tag_link("rust", "Rust"))
        );
        assert_eq!(
            html("#café"),
            format!("<p>{}</p>", tag_link("caf%C3%A9", "café"))
        );
        assert_eq!(
            html("#Ünïcode_2"),
            format!("<p>{}</p>", tag_link("%C3%BCn%C3%AFcode_2", "Ünïcode_2"))
        );
    }

    #[test]
    fn hashtags_parse() {
        assert_eq!(parse("#Rust and #rust and #RUST").tags, ["rust"]);
        assert_eq!(parse("#café #Café #日本語").tags, ["café", "日本語"]);
        assert_eq!(
            parse("(#one),#two.#three #4four").tags,
            ["one", "two", "three", "4four"]
        );
        assert_eq!(parse("#a_b #_").tags, ["a_b", "_"]);
        // Decomposed "café" (e + U+0301) is one tag.
        assert_eq!(parse("#cafe\u{301}").tags, ["cafe\u{301}"]);
    }

    #[test]
    fn not_hashtags() {
        for text in [
            "#123",
            "#",
            "# tag",
            "issue#5a",
            "&#39;",
            "x.com/#anchor",
            "https://example.com/#anchor",
            "https://example.com/page#anchor",
            "?a=#b",
            "(x)#y",
        ] {
            assert_eq!(parse(text).tags, Vec::<String>::new(), "{text}");
        }
        assert_eq!(html("#123"), "<p>#123</p>");
        let long = "a".repeat(TAG_MAX + 1);
        assert_eq!(parse(&format!("#{long}")).tags, Vec::<String>::new());
        let longest = "a".repeat(TAG_MAX);
        assert_eq!(parse(&format!("#{longest}")).tags, [longest]);
    }

    // --- links --------------------------------------------------------------

    #[test]
    fn short_link() {
        assert_eq!(
            html("see https://example.com/a?b=1&c=2."),
            format!(
                "<p>see {}.</p>",
                link(
                    "https://example.com/a?b=1&amp;c=2",
                    "https://",
                    "example.com/a?b=1&amp;c=2",
                    ""
                )
            )
        );
    }

    #[test]
    fn long_link_ellipsis() {
        let url = "http://example.com/a/very/long/path/that/goes/on";
        assert_eq!(
            html(url),
            format!(
                "<p>{}</p>",
                link(
                    url,
                    "http://",
                    "example.com/a/very/long/path/t",
                    "hat/goes/on"
                )
            )
        );
        // Exactly 30 characters after the scheme: no ellipsis.
        let url = "https://abcdefghijabcdefghij.com/abcde";
        assert_eq!(
            html(url),
            format!(
                "<p>{}</p>",
                link(url, "https://", "abcdefghijabcdefghij.com/abcde", "")
            )
        );
    }

    #[test]
    fn link_trailing_punctuation() {
        let cases = [
            ("https://example.com.", "https://example.com"),
            ("https://example.com/x,", "https://example.com/x"),
            ("https://example.com/?!", "https://example.com/"),
            ("(https://example.com/x)", "https://example.com/x"),
            ("\"https://example.com/x\";", "https://example.com/x"),
            ("'https://example.com/x'", "https://example.com/x"),
            ("<https://example.com/x>", "https://example.com/x"),
            (
                "https://en.wikipedia.org/wiki/Rust_(programming_language)",
                "https://en.wikipedia.org/wiki/Rust_(programming_language)",
            ),
            (
                "(https://en.wikipedia.org/wiki/Rust_(lang)).",
                "https://en.wikipedia.org/wiki/Rust_(lang)",
            ),
            ("HTTPS://Example.com/A", "HTTPS://Example.com/A"),
        ];
        for (text, url) in cases {
            assert_eq!(parse(text).links, [url], "{text}");
        }
    }

    #[test]
    fn links_in_order_and_not_links() {
        assert_eq!(
            parse("a http://a.test b https://b.test a http://a.test").links,
            ["http://a.test", "https://b.test", "http://a.test"]
        );
        for text in [
            "https://",
            "https://.",
            "ftp://example.com",
            "xhttps://example.com",
            "http:/x",
        ] {
            assert_eq!(parse(text).links, Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn nothing_is_parsed_inside_a_link() {
        let parsed = parse("https://example.com/@alice/#tag?u=@bob#x");
        assert_eq!(parsed.mentions, []);
        assert_eq!(parsed.tags, Vec::<String>::new());
        assert_eq!(parsed.links, ["https://example.com/@alice/#tag?u=@bob#x"]);
    }

    #[test]
    fn everything_together() {
        let text =
            "Hi @alice and @carol@example.com!\nRead https://example.com (#News)\n\n#rust <3";
        let parsed = parse(text);
        assert_eq!(
            parsed.mentions,
            [
                mention("alice", None),
                mention("carol", Some("example.com"))
            ]
        );
        assert_eq!(parsed.tags, ["news", "rust"]);
        assert_eq!(parsed.links, ["https://example.com"]);
        assert_eq!(
            html(text),
            format!(
                "<p>Hi {} and @carol@example.com!<br />Read {} ({})</p><p>{} &lt;3</p>",
                h_card("alice"),
                link("https://example.com", "https://", "example.com", ""),
                tag_link("news", "News"),
                tag_link("rust", "rust"),
            )
        );
    }

    // --- counting -----------------------------------------------------------

    /// Length of a text without a content warning.
    fn len(text: &str) -> usize {
        status_length(text, "")
    }

    #[test]
    fn length_rules() {
        assert_eq!(len(""), 0);
        assert_eq!(len("   "), 0);
        assert_eq!(len("hello"), 5);
        // Multibyte characters count one each.
        assert_eq!(len("café 日本語 🐦"), 10);
        // Any URL counts URL_WEIGHT.
        let url = format!("https://example.com/{}", "a".repeat(80));
        assert_eq!(url.chars().count(), 100);
        assert_eq!(len(&url), URL_WEIGHT);
        assert_eq!(len(&format!("see {url}.")), 4 + URL_WEIGHT + 1);
        assert_eq!(len("http://a.b"), URL_WEIGHT);
        // A remote mention counts only its username.
        assert_eq!(len("@bob@example.com"), 4);
        assert_eq!(len("@bob"), 4);
        assert_eq!(len("hi @bob@example.com!"), 8);
        // Email addresses and hashtags count as written.
        assert_eq!(len("bob@example.com"), 15);
        assert_eq!(len("#café"), 5);
    }

    #[test]
    fn length_counts_grapheme_clusters() {
        // An emoji ZWJ sequence (family: 7 code points) is one character.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        assert_eq!(family.chars().count(), 7);
        assert_eq!(len(family), 1);
        // Skin tone modifiers and variation selectors join their emoji.
        assert_eq!(len("\u{1F44D}\u{1F3FD}"), 1);
        assert_eq!(len("\u{2764}\u{FE0F}"), 1);
        // A flag is a pair of regional indicators: one character each flag.
        let flags = "\u{1F1EB}\u{1F1F7}\u{1F1EF}\u{1F1F5}";
        assert_eq!(flags.chars().count(), 4);
        assert_eq!(len(flags), 2);
        // Combining marks belong to their letter ("e" + acute, Zalgo text).
        assert_eq!(len("e\u{301}"), 1);
        assert_eq!(len("cafe\u{301}"), 4);
        assert_eq!(len(&format!("a{}", "\u{301}".repeat(50))), 1);
        // Hangul syllables written as jamo are one character.
        assert_eq!(len("\u{1100}\u{1161}\u{11A8}"), 1);
        // CR LF is one.
        assert_eq!(len("a\r\nb"), 3);
        // 500 family emoji fit; 501 do not.
        assert_eq!(len(&family.repeat(MAX_STATUS_CHARS)), MAX_STATUS_CHARS);
        assert!(len(&family.repeat(MAX_STATUS_CHARS + 1)) > MAX_STATUS_CHARS);
    }

    #[test]
    fn length_of_long_urls_and_remote_mentions() {
        let url = format!("https://example.com/{}", "x".repeat(2000));
        assert_eq!(len(&url), URL_WEIGHT);
        // A URL ending in a combining mark still counts URL_WEIGHT and does
        // not swallow the next character.
        assert_eq!(len(&format!("{url} e\u{301}")), URL_WEIGHT + 2);
        assert_eq!(len(&format!("{url}\u{301} x")), URL_WEIGHT + 2);
        // Remote mentions count by local part, however long the domain.
        let domain = format!("{}.example", "d".repeat(200));
        assert_eq!(len(&format!("@bob@{domain}")), 4);
        assert_eq!(
            len(&format!("@bob@{domain} @carol@{domain} hi")),
            4 + 1 + 6 + 3
        );
        // A text of 477 characters and a long URL is 500.
        let text = format!("{} {url}", "a".repeat(MAX_STATUS_CHARS - URL_WEIGHT - 1));
        assert_eq!(len(&text), MAX_STATUS_CHARS);
    }

    #[test]
    fn length_includes_the_content_warning() {
        assert_eq!(status_length("hello", "cw"), 7);
        assert_eq!(status_length("", "warning"), 7);
        assert_eq!(status_length("   ", "warning"), 7);
        // The warning counts graphemes too, and URLs in it are not shortened.
        assert_eq!(status_length("x", "\u{1F1EB}\u{1F1F7}"), 2);
        assert_eq!(status_length("", "http://a.b"), 10);
        // Joined before counting: a text opening with a combining mark
        // extends the warning's last character (as Mastodon counts).
        assert_eq!(status_length("\u{301}x", "e"), 2);
        let text = "a".repeat(MAX_STATUS_CHARS - 3);
        assert_eq!(status_length(&text, "abc"), MAX_STATUS_CHARS);
        assert!(status_length(&text, "abcd") > MAX_STATUS_CHARS);
    }

    #[test]
    fn max_status_length() {
        assert!(len(&"a".repeat(MAX_STATUS_CHARS)) <= MAX_STATUS_CHARS);
        assert!(len(&"é".repeat(MAX_STATUS_CHARS + 1)) > MAX_STATUS_CHARS);
        // Many long links still fit.
        let urls = vec![format!("https://example.com/{}", "x".repeat(200)); 20].join(" ");
        assert_eq!(len(&urls), 20 * URL_WEIGHT + 19);
    }

    // --- normalize_tag ------------------------------------------------------

    #[test]
    fn normalize_tag_rules() {
        assert_eq!(normalize_tag("Rust"), Some("rust".to_string()));
        assert_eq!(normalize_tag("Café"), Some("café".to_string()));
        assert_eq!(normalize_tag("日本語"), Some("日本語".to_string()));
        assert_eq!(normalize_tag("2024_Goals"), Some("2024_goals".to_string()));
        assert_eq!(normalize_tag("a"), Some("a".to_string()));
        assert_eq!(
            normalize_tag(&"A".repeat(TAG_MAX)),
            Some("a".repeat(TAG_MAX))
        );
        for bad in ["", "123", "#rust", "foo-bar", "foo bar", "a.b", "emoji🐦"] {
            assert_eq!(normalize_tag(bad), None, "{bad}");
        }
        assert_eq!(normalize_tag(&"a".repeat(TAG_MAX + 1)), None);
    }

    // --- scanner ------------------------------------------------------------

    #[test]
    fn tokens() {
        assert_eq!(
            tokenize("a @b #c http://d.e f"),
            [
                Token::Text("a ".to_string()),
                Token::Mention {
                    mention: mention("b", None),
                    raw: "@b".to_string()
                },
                Token::Text(" ".to_string()),
                Token::Tag("c".to_string()),
                Token::Text(" ".to_string()),
                Token::Link("http://d.e".to_string()),
                Token::Text(" f".to_string()),
            ]
        );
    }
}
