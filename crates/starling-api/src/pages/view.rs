//! The markup of the public pages: hand-written `format!` with every
//! interpolated value passed through [`t`] (text) or [`a`] (attribute),
//! except status content, which is the sanitised HTML the domain rendered
//! at write time (`starling_domain::text::render`), and bios, which go
//! through [`text_to_html`] (escaped).

use html_escape::{encode_double_quoted_attribute, encode_text};
use starling_core::views::StatusView;
use starling_domain::media::MediaType;
use starling_domain::Account;

use crate::entities::{datetime, text_to_html};
use crate::settings::ApiSettings;

use super::assets;

/// Escaped for an element's text.
pub fn t(s: &str) -> std::borrow::Cow<'_, str> {
    encode_text(s)
}

/// Escaped for a double-quoted attribute.
pub fn a(s: &str) -> std::borrow::Cow<'_, str> {
    encode_double_quoted_attribute(s)
}

/// What a page says about itself in `<head>`: OpenGraph, Twitter card,
/// canonical and alternate links.
pub struct Head {
    pub title: String,
    pub description: String,
    /// Absolute canonical URL.
    pub url: String,
    pub og_type: &'static str,
    pub image: Option<String>,
    /// `(type, absolute href)`.
    pub alternates: Vec<(&'static str, String)>,
    pub lang: String,
}

impl Head {
    pub fn new(title: String, description: String, url: String) -> Self {
        Self {
            title,
            description,
            url,
            og_type: "website",
            image: None,
            alternates: vec![],
            lang: "en".into(),
        }
    }
}

/// The whole document around `main`.
pub fn document(s: &ApiSettings, head: &Head, main: &str) -> String {
    let description = head
        .description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let description = excerpt(&description, 300);
    let mut meta = format!(
        "<meta name=\"description\" content=\"{d}\">\
         <link rel=\"canonical\" href=\"{u}\">\
         <meta property=\"og:site_name\" content=\"{site}\">\
         <meta property=\"og:type\" content=\"{ty}\">\
         <meta property=\"og:title\" content=\"{ti}\">\
         <meta property=\"og:description\" content=\"{d}\">\
         <meta property=\"og:url\" content=\"{u}\">\
         <meta name=\"twitter:card\" content=\"summary\">\
         <meta name=\"twitter:title\" content=\"{ti}\">\
         <meta name=\"twitter:description\" content=\"{d}\">",
        d = a(&description),
        u = a(&head.url),
        site = a(&s.title),
        ty = head.og_type,
        ti = a(&head.title),
    );
    if let Some(image) = &head.image {
        meta.push_str(&format!(
            "<meta property=\"og:image\" content=\"{i}\"><meta name=\"twitter:image\" content=\"{i}\">",
            i = a(image)
        ));
    }
    for (ty, href) in &head.alternates {
        meta.push_str(&format!(
            "<link rel=\"alternate\" type=\"{ty}\" href=\"{}\">",
            a(href)
        ));
    }
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"{css}\">{meta}</head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"site\"><a class=\"home\" href=\"/\">{site}</a>\
         <nav aria-label=\"Site\"><a href=\"/public/local\">Local timeline</a><a href=\"/about\">About</a></nav></header>\
         <main id=\"main\">{main}</main>\
         <footer class=\"foot\"><p>Powered by Starling. Sign in with any Mastodon app at <code>{domain}</code>.</p></footer>\
         </body></html>",
        lang = a(&head.lang),
        title = t(&head.title),
        css = assets::css_path(),
        site = t(&s.title),
        domain = t(&s.domain()),
    )
}

/// The error page (404 and friends) of the public pages.
pub fn error_document(s: &ApiSettings, heading: &str, message: &str) -> String {
    let head = Head::new(heading.to_owned(), message.to_owned(), s.url("/"));
    document(
        s,
        &head,
        &format!("<h1>{}</h1><p>{}</p>", t(heading), t(message)),
    )
}

/// The name shown for an account: its display name, or its username.
pub fn display_name(account: &Account) -> &str {
    if account.display_name.trim().is_empty() {
        &account.username
    } else {
        &account.display_name
    }
}

pub fn avatar_url(s: &ApiSettings, account: &Account) -> String {
    account.avatar.as_deref().map_or_else(
        || s.url("/avatars/original/missing.png"),
        |key| s.media_url(key),
    )
}

pub fn header_url(s: &ApiSettings, account: &Account) -> String {
    account.header.as_deref().map_or_else(
        || s.url("/headers/original/missing.png"),
        |key| s.media_url(key),
    )
}

pub fn profile_path(account: &Account) -> String {
    format!("/@{}", account.username)
}

pub fn status_path(view: &StatusView) -> String {
    format!("/@{}/{}", view.account.username, view.status.id)
}

/// The profile's card: header, picture, names, bio, fields, counts.
pub fn profile_card(s: &ApiSettings, account: &Account) -> String {
    let fields: String = account
        .fields
        .iter()
        .map(|f| format!("<dt>{}</dt><dd>{}</dd>", t(&f.name), t(&f.value)))
        .collect();
    let fields = if fields.is_empty() {
        String::new()
    } else {
        format!("<dl class=\"fields\">{fields}</dl>")
    };
    format!(
        "<section class=\"profile\" aria-labelledby=\"profile-name\">\
         <img class=\"banner\" src=\"{header}\" alt=\"\">\
         <img class=\"avatar\" src=\"{avatar}\" alt=\"Profile picture of {name_attr}\" width=\"80\" height=\"80\">\
         <h1 id=\"profile-name\">{name}</h1><p class=\"handle\">@{user}@{domain}</p>\
         <div class=\"bio\">{bio}</div>{fields}\
         <ul class=\"counts\"><li><strong>{posts}</strong> posts</li>\
         <li><strong>{following}</strong> following</li><li><strong>{followers}</strong> followers</li></ul>\
         </section>",
        header = a(&header_url(s, account)),
        avatar = a(&avatar_url(s, account)),
        name_attr = a(display_name(account)),
        name = t(display_name(account)),
        user = t(&account.username),
        domain = t(&s.domain()),
        bio = text_to_html(&account.note),
        posts = account.statuses_count,
        following = account.following_count,
        followers = account.followers_count,
    )
}

/// One status as an `<article>`; a boost shows who boosted and the
/// boosted status. `focus` marks the status a status page is about.
pub fn status(s: &ApiSettings, view: &StatusView, focus: bool) -> String {
    if let Some(inner) = &view.reblog {
        return format!(
            "<div class=\"boost\"><p class=\"boosted\"><a href=\"{}\">{}</a> boosted</p>{}</div>",
            a(&profile_path(&view.account)),
            t(display_name(&view.account)),
            status(s, inner, false)
        );
    }
    let st = &view.status;
    let content = if st.spoiler_text.is_empty() {
        format!(
            "<div class=\"content\">{}</div>{}",
            st.content,
            media(s, view)
        )
    } else {
        format!(
            "<details><summary>{}</summary><div class=\"content\">{}</div>{}</details>",
            t(&st.spoiler_text),
            st.content,
            media(s, view)
        )
    };
    let lang = st
        .language
        .as_deref()
        .map(|l| format!(" lang=\"{}\"", a(l)))
        .unwrap_or_default();
    let iso = datetime(st.created_at_ms);
    let reply = if st.in_reply_to_id.is_some() && !focus {
        "<span>Reply</span>"
    } else {
        ""
    };
    format!(
        "<article class=\"status{cls}\" id=\"s{id}\"{lang}>\
         <header><img src=\"{avatar}\" alt=\"\" width=\"44\" height=\"44\">\
         <span class=\"who\"><a href=\"{profile}\"><strong>{name}</strong> <span class=\"handle\">@{user}</span></a></span>\
         <a class=\"meta\" href=\"{permalink}\"><time datetime=\"{iso}\">{shown}</time></a></header>\
         {content}\
         <footer>{reply}<span>{replies} replies</span><span>{boosts} boosts</span><span>{favs} favourites</span></footer>\
         </article>",
        cls = if focus { " focus" } else { "" },
        id = st.id,
        avatar = a(&avatar_url(s, &view.account)),
        profile = a(&profile_path(&view.account)),
        name = t(display_name(&view.account)),
        user = t(&view.account.username),
        permalink = a(&status_path(view)),
        shown = t(&iso.get(..16).unwrap_or(&iso).replace('T', " ")),
        replies = st.replies_count,
        boosts = st.reblogs_count,
        favs = st.favourites_count,
    )
}

/// Attachments: images with their descriptions as alt text, videos with
/// controls (no autoplay).
fn media(s: &ApiSettings, view: &StatusView) -> String {
    let items: String = view
        .status
        .media
        .iter()
        .filter_map(|m| {
            let original = m.original.as_ref()?;
            let url = s.media_url(&original.key);
            let preview = m.small.as_ref().map(|f| s.media_url(&f.key));
            let alt = m.description.as_deref().unwrap_or("");
            Some(match m.kind {
                MediaType::Video | MediaType::Gifv => format!(
                    "<video src=\"{}\" controls preload=\"none\"{} aria-label=\"{}\"></video>",
                    a(&url),
                    preview
                        .map(|p| format!(" poster=\"{}\"", a(&p)))
                        .unwrap_or_default(),
                    a(alt)
                ),
                MediaType::Audio => format!(
                    "<audio src=\"{}\" controls preload=\"none\" aria-label=\"{}\"></audio>",
                    a(&url),
                    a(alt)
                ),
                _ => format!(
                    "<a href=\"{}\"><img src=\"{}\" alt=\"{}\" loading=\"lazy\"></a>",
                    a(&url),
                    a(preview.as_deref().unwrap_or(&url)),
                    a(alt)
                ),
            })
        })
        .collect();
    if items.is_empty() {
        String::new()
    } else {
        format!("<div class=\"media\">{items}</div>")
    }
}

/// A list of statuses, or a line saying there are none.
pub fn status_list(s: &ApiSettings, views: &[StatusView]) -> String {
    if views.is_empty() {
        return "<p class=\"empty\">Nothing here yet.</p>".into();
    }
    views.iter().map(|v| status(s, v, false)).collect()
}

/// "Older posts" when the page was full.
pub fn pager(path: &str, views: &[StatusView], limit: usize) -> String {
    match views.last() {
        Some(last) if views.len() >= limit => format!(
            "<nav class=\"pager\" aria-label=\"Pages\"><a rel=\"next\" href=\"{}?max_id={}\">Older posts</a></nav>",
            a(path),
            last.status.id
        ),
        _ => String::new(),
    }
}

/// Plain text from sanitised HTML (for descriptions and feeds' titles):
/// tags dropped, paragraphs become spaces, entities decoded.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(name), '>') => {
                // Paragraphs and line breaks separate words; inline tags
                // (links, spans) do not.
                let name = name.trim_start_matches('/');
                if name.starts_with('p') || name.starts_with("br") {
                    out.push(' ');
                }
                tag = None;
            }
            (Some(name), c) => name.push(c),
            (None, c) => out.push(c),
        }
    }
    let decoded = html_escape::decode_html_entities(&out);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// What a status says, for a description: its warning if it has one.
pub fn status_summary(view: &StatusView) -> String {
    let st = &view.status;
    if !st.spoiler_text.is_empty() {
        return format!("Content warning: {}", st.spoiler_text);
    }
    let text = plain_text(&st.content);
    let media = st.media.len();
    match (text.is_empty(), media) {
        (true, 0) => String::new(),
        (true, n) => format!("{n} attachment(s)"),
        (false, 0) => text,
        (false, n) => format!("{text} ({n} attachment(s))"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_drops_tags_and_decodes() {
        assert_eq!(
            plain_text("<p>a &amp; <a href=\"x\">#<span>b</span></a></p><p>c&lt;d<br>e</p>"),
            "a & #b c<d e"
        );
    }

    #[test]
    fn excerpt_cuts_on_characters() {
        assert_eq!(excerpt("héllo", 10), "héllo");
        assert_eq!(excerpt("héllo", 3), "hé…");
    }
}
