//! RSS 2.0 feeds of an account's and a hashtag's public posts.

use starling_core::views::StatusView;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::settings::ApiSettings;

use super::view::{display_name, excerpt, plain_text, status_path};

/// Text for XML: escaped, and without the control characters XML 1.0
/// cannot carry at all.
pub fn x(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect();
    html_escape::encode_text(&clean).into_owned()
}

fn rfc2822(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_default()
}

/// A channel: its title, description, page link and items (statuses,
/// boosts left out by the callers).
pub fn rss(
    s: &ApiSettings,
    title: &str,
    description: &str,
    link: &str,
    image: Option<&str>,
    views: &[StatusView],
) -> String {
    let items: String = views
        .iter()
        .map(|v| {
            let url = s.url(&status_path(v));
            let st = &v.status;
            let title = if st.spoiler_text.is_empty() {
                excerpt(&plain_text(&st.content), 80)
            } else {
                format!("CW: {}", st.spoiler_text)
            };
            let media: String = st
                .media
                .iter()
                .filter_map(|m| {
                    let f = m.original.as_ref()?;
                    Some(format!(
                        "<enclosure url=\"{}\" type=\"{}\" length=\"{}\"/>",
                        x(&s.media_url(&f.key)),
                        x(&f.content_type),
                        f.size
                    ))
                })
                .collect();
            format!(
                "<item><guid isPermaLink=\"true\">{url}</guid><link>{url}</link>\
                 <title>{title}</title><pubDate>{date}</pubDate>\
                 <description>{content}</description>{media}</item>",
                url = x(&url),
                title = x(&title),
                date = rfc2822(st.created_at_ms),
                content = x(&st.content),
            )
        })
        .collect();
    let image = image
        .map(|i| {
            format!(
                "<image><url>{}</url><title>{}</title><link>{}</link></image>",
                x(i),
                x(title),
                x(link)
            )
        })
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <rss version=\"2.0\"><channel><title>{}</title><description>{}</description>\
         <link>{}</link><generator>Starling</generator>{image}{items}</channel></rss>\n",
        x(title),
        x(description),
        x(link),
    )
}

/// The channel title of an account's feed.
pub fn account_title(account: &starling_domain::Account) -> String {
    format!("{} (@{})", display_name(account), account.username)
}
