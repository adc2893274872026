//! Mastodon wire types (mastodon-api.md §5), built from domain types.
//!
//! Field order and presence follow Mastodon: nullable fields are present as
//! `null`, arrays are present, ids are strings, datetimes are RFC 3339 with
//! milliseconds and `Z`.

use serde::Serialize;
use starling_core::notifications::NotificationView;
use starling_core::views::StatusView;
use starling_domain::account::ProfileField;
use starling_domain::oauth::App;
use starling_domain::{Account, Relationship};
use starling_store::Marker;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::settings::ApiSettings;

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2025-01-05T12:34:56.789Z`
pub fn datetime(ms: i64) -> String {
    let f =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at(ms).format(&f).unwrap_or_default()
}

/// `2025-01-05`
pub fn date(ms: i64) -> String {
    let f = format_description!("[year]-[month]-[day]");
    at(ms).format(&f).unwrap_or_default()
}

/// Plain text as Mastodon renders a bio: paragraphs on blank lines, `<br />`
/// for single newlines, everything escaped.
pub fn text_to_html(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let lines: Vec<String> = p
                .trim()
                .lines()
                .map(|l| html_escape::encode_text(l).into_owned())
                .collect();
            format!("<p>{}</p>", lines.join("<br />"))
        })
        .collect()
}

#[derive(Serialize)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub verified_at: Option<String>,
}

#[derive(Serialize)]
pub struct SourceField {
    pub name: String,
    pub value: String,
}

#[derive(Serialize)]
pub struct AccountJson {
    pub id: String,
    pub username: String,
    pub acct: String,
    pub display_name: String,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: Option<bool>,
    pub indexable: bool,
    pub group: bool,
    pub hide_collections: Option<bool>,
    pub noindex: Option<bool>,
    pub created_at: String,
    pub note: String,
    pub url: String,
    pub uri: String,
    pub avatar: String,
    pub avatar_static: String,
    pub header: String,
    pub header_static: String,
    pub followers_count: i64,
    pub following_count: i64,
    pub statuses_count: i64,
    pub last_status_at: Option<String>,
    pub emojis: Vec<serde_json::Value>,
    pub fields: Vec<Field>,
    pub roles: Vec<serde_json::Value>,
}

impl AccountJson {
    pub fn new(a: &Account, s: &ApiSettings) -> Self {
        let avatar = a.avatar.as_deref().map_or_else(
            || s.url("/avatars/original/missing.png"),
            |key| s.media_url(key),
        );
        let header = a.header.as_deref().map_or_else(
            || s.url("/headers/original/missing.png"),
            |key| s.media_url(key),
        );
        Self {
            id: a.id.to_string(),
            username: a.username.clone(),
            acct: a.username.clone(),
            display_name: a.display_name.clone(),
            locked: a.locked,
            bot: a.bot,
            discoverable: Some(a.discoverable),
            indexable: false,
            group: false,
            hide_collections: Some(false),
            noindex: Some(false),
            // Mastodon clamps account creation to midnight (privacy).
            created_at: format!("{}T00:00:00.000Z", date(a.created_at_ms)),
            note: text_to_html(&a.note),
            url: s.url(&format!("/@{}", a.username)),
            uri: s.url(&format!("/users/{}", a.username)),
            avatar_static: avatar.clone(),
            avatar,
            header_static: header.clone(),
            header,
            followers_count: a.followers_count,
            following_count: a.following_count,
            statuses_count: a.statuses_count,
            last_status_at: a.last_status_at_ms.map(date),
            emojis: vec![],
            fields: a
                .fields
                .iter()
                .map(|f: &ProfileField| Field {
                    // Mastodon: the name is plain text, the value HTML.
                    name: f.name.clone(),
                    value: html_escape::encode_text(&f.value).into_owned(),
                    verified_at: None,
                })
                .collect(),
            roles: vec![],
        }
    }
}

#[derive(Serialize)]
pub struct Source {
    pub privacy: &'static str,
    pub sensitive: bool,
    pub language: String,
    pub note: String,
    pub fields: Vec<SourceField>,
    pub follow_requests_count: i64,
    pub hide_collections: bool,
    pub discoverable: bool,
    pub indexable: bool,
    pub attribution_domains: Vec<String>,
    pub quote_policy: &'static str,
}

#[derive(Serialize)]
pub struct Role {
    pub id: &'static str,
    pub name: &'static str,
    pub permissions: &'static str,
    pub color: &'static str,
    pub highlighted: bool,
}

/// The caller's own account: Account plus `source` and `role`.
#[derive(Serialize)]
pub struct CredentialAccountJson {
    #[serde(flatten)]
    pub account: AccountJson,
    pub source: Source,
    pub role: Role,
}

impl CredentialAccountJson {
    /// The owner's view of their account; `follow_requests` is how many
    /// follow requests wait for their answer.
    pub fn new(a: &Account, follow_requests: u64, s: &ApiSettings) -> Self {
        Self {
            account: AccountJson::new(a, s),
            source: Source {
                privacy: a.privacy.as_str(),
                sensitive: a.sensitive,
                language: a.language.clone().unwrap_or_default(),
                note: a.note.clone(),
                fields: a
                    .fields
                    .iter()
                    .map(|f| SourceField {
                        name: f.name.clone(),
                        value: f.value.clone(),
                    })
                    .collect(),
                follow_requests_count: follow_requests as i64,
                hide_collections: false,
                discoverable: a.discoverable,
                indexable: false,
                attribution_domains: vec![],
                quote_policy: "public",
            },
            role: Role {
                id: "-99",
                name: "",
                permissions: "65536",
                color: "",
                highlighted: false,
            },
        }
    }
}

/// An application as anyone holding its token may see it.
#[derive(Serialize)]
pub struct ApplicationJson {
    pub id: String,
    pub name: String,
    pub website: Option<String>,
    pub scopes: Vec<&'static str>,
    pub redirect_uri: String,
    pub redirect_uris: Vec<String>,
    pub vapid_key: &'static str,
}

impl ApplicationJson {
    pub fn new(app: &App) -> Self {
        Self {
            id: app.id.to_string(),
            name: app.name.clone(),
            website: app.website.clone(),
            scopes: app.scopes.iter().map(|s| s.as_str()).collect(),
            redirect_uri: app.redirect_uris.join("\n"),
            redirect_uris: app.redirect_uris.clone(),
            vapid_key: "",
        }
    }
}

/// What `POST /api/v1/apps` answers: the only time the secret is shown.
#[derive(Serialize)]
pub struct CredentialApplicationJson {
    #[serde(flatten)]
    pub app: ApplicationJson,
    pub client_id: String,
    pub client_secret: String,
    pub client_secret_expires_at: i64,
}

#[derive(Serialize)]
pub struct TokenJson {
    pub access_token: String,
    pub token_type: &'static str,
    pub scope: String,
    pub created_at: i64,
}

impl TokenJson {
    pub fn new(t: &starling_core::oauth::IssuedToken) -> Self {
        Self {
            access_token: t.token.expose().to_owned(),
            token_type: "Bearer",
            scope: t.scopes.to_string(),
            created_at: t.created_at_ms / 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(datetime(1_736_080_496_789), "2025-01-05T12:34:56.789Z");
        assert_eq!(date(1_736_080_496_789), "2025-01-05");
    }

    #[test]
    fn bios() {
        assert_eq!(text_to_html(""), "");
        assert_eq!(text_to_html("a\nb\n\nc"), "<p>a<br />b</p><p>c</p>");
        assert_eq!(text_to_html("<script>"), "<p>&lt;script&gt;</p>");
    }

    #[test]
    fn field_names_are_plain_text_and_values_html() {
        let mut a = Account::new(starling_domain::Id::from_i64(1 << 20), "alice", None, 0);
        a.fields = vec![ProfileField {
            name: "Q&A <b>".into(),
            value: "<script>&".into(),
        }];
        let settings = ApiSettings::new(url::Url::parse("https://starling.test").expect("url"));
        let json = AccountJson::new(&a, &settings);
        assert_eq!(json.fields[0].name, "Q&A <b>");
        assert_eq!(json.fields[0].value, "&lt;script&gt;&amp;");
    }
}

// ---- the social core ------------------------------------------------------

#[derive(Serialize)]
pub struct MentionJson {
    pub id: String,
    pub username: String,
    pub url: String,
    pub acct: String,
}

#[derive(Serialize)]
pub struct StatusTagJson {
    pub name: String,
    pub url: String,
}

/// The part of a status's JSON that depends on the status alone (and its
/// author's username, which never changes): everything but the author,
/// the mentions, the viewer's flags and the boosted status. Rendered once
/// per version of a status and reused ([`crate::render`]).
#[derive(Serialize)]
pub struct StatusCoreJson {
    pub id: String,
    pub created_at: String,
    pub in_reply_to_id: Option<String>,
    pub in_reply_to_account_id: Option<String>,
    pub sensitive: bool,
    pub spoiler_text: String,
    pub visibility: &'static str,
    pub language: Option<String>,
    pub uri: String,
    pub url: Option<String>,
    pub replies_count: i64,
    pub reblogs_count: i64,
    pub favourites_count: i64,
    pub quotes_count: i64,
    pub edited_at: Option<String>,
    pub content: String,
    pub filtered: Vec<serde_json::Value>,
    pub application: Option<serde_json::Value>,
    pub media_attachments: Vec<crate::media::MediaJson>,
    pub tags: Vec<StatusTagJson>,
    pub emojis: Vec<serde_json::Value>,
    pub card: Option<serde_json::Value>,
    pub poll: Option<serde_json::Value>,
    pub quote: Option<serde_json::Value>,
    pub quote_approval: QuoteApprovalJson,
}

#[derive(Serialize)]
pub struct QuoteApprovalJson {
    pub automatic: [&'static str; 0],
    pub manual: [&'static str; 0],
    pub current_user: &'static str,
}

/// `/tags/<name>` with the name percent-encoded.
fn tag_url(s: &ApiSettings, name: &str) -> String {
    let mut url = s.public_url.clone();
    url.set_path("/tags/");
    url.path_segments_mut()
        .map(|mut p| {
            p.pop_if_empty().push(name);
        })
        .ok();
    url.to_string()
}

impl StatusCoreJson {
    pub fn new(v: &StatusView, s: &ApiSettings) -> Self {
        let st = &v.status;
        let permalink = s.url(&format!("/@{}/{}", v.account.username, st.id));
        let uri = s.url(&format!("/users/{}/statuses/{}", v.account.username, st.id));
        Self {
            id: st.id.to_string(),
            created_at: datetime(st.created_at_ms),
            in_reply_to_id: st.in_reply_to_id.map(|i| i.to_string()),
            in_reply_to_account_id: st.in_reply_to_account_id.map(|i| i.to_string()),
            sensitive: st.sensitive,
            spoiler_text: st.spoiler_text.clone(),
            visibility: st.visibility.as_str(),
            language: st.language.clone(),
            url: Some(permalink),
            uri,
            replies_count: st.replies_count,
            reblogs_count: st.reblogs_count,
            favourites_count: st.favourites_count,
            quotes_count: 0,
            edited_at: None,
            content: st.content.clone(),
            filtered: vec![],
            application: None,
            media_attachments: st
                .media
                .iter()
                .map(|m| crate::media::MediaJson::new(m, s))
                .collect(),
            tags: st
                .tags
                .iter()
                .map(|t| StatusTagJson {
                    name: t.clone(),
                    url: tag_url(s, t),
                })
                .collect(),
            emojis: vec![],
            card: None,
            poll: None,
            quote: None,
            quote_approval: QuoteApprovalJson {
                automatic: [],
                manual: [],
                current_user: "denied",
            },
        }
    }
}

/// A status as Mastodon renders it, already serialized
/// ([`crate::render::write_status`] is the one place that writes it).
pub struct StatusJson(Box<serde_json::value::RawValue>);

impl StatusJson {
    pub fn new(v: &StatusView, s: &ApiSettings) -> Self {
        Self::render(v, s, None)
    }

    /// As [`StatusJson::new`], with the source `text` (only on the answer
    /// to DELETE: delete and redraft).
    pub fn with_text(v: &StatusView, s: &ApiSettings, text: &str) -> Self {
        Self::render(v, s, Some(text))
    }

    fn render(v: &StatusView, s: &ApiSettings, text: Option<&str>) -> Self {
        let mut out = Vec::with_capacity(2048);
        crate::render::write_status(&mut out, v, s, None, text);
        // The renderer writes JSON only through serde_json; parsing it back
        // cannot fail, but never panic on a request path.
        let raw = String::from_utf8(out)
            .ok()
            .and_then(|json| serde_json::value::RawValue::from_string(json).ok())
            .unwrap_or_else(|| serde_json::value::RawValue::NULL.to_owned());
        Self(raw)
    }

    pub fn list(views: &[StatusView], s: &ApiSettings) -> Vec<Self> {
        views.iter().map(|v| Self::new(v, s)).collect()
    }
}

impl Serialize for StatusJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[derive(Serialize)]
pub struct RelationshipJson {
    pub id: String,
    pub following: bool,
    pub showing_reblogs: bool,
    pub notifying: bool,
    pub languages: Option<Vec<String>>,
    pub followed_by: bool,
    pub blocking: bool,
    pub blocked_by: bool,
    pub muting: bool,
    pub muting_notifications: bool,
    pub requested: bool,
    pub requested_by: bool,
    pub domain_blocking: bool,
    pub endorsed: bool,
    pub note: String,
}

impl RelationshipJson {
    pub fn new(r: &Relationship) -> Self {
        Self {
            id: r.id.to_string(),
            following: r.following,
            showing_reblogs: r.showing_reblogs,
            notifying: r.notifying,
            languages: None,
            followed_by: r.followed_by,
            blocking: r.blocking,
            blocked_by: r.blocked_by,
            muting: r.muting,
            muting_notifications: r.muting_notifications,
            requested: r.requested,
            requested_by: r.requested_by,
            domain_blocking: false,
            endorsed: false,
            note: String::new(),
        }
    }
}

#[derive(Serialize)]
pub struct NotificationJson {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub group_key: String,
    pub created_at: String,
    pub account: AccountJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusJson>,
}

impl NotificationJson {
    pub fn new(n: &NotificationView, s: &ApiSettings) -> Self {
        Self {
            id: n.notification.id.to_string(),
            kind: n.notification.kind.as_str(),
            group_key: format!("ungrouped-{}", n.notification.id),
            created_at: datetime(n.notification.created_at_ms),
            account: AccountJson::new(&n.account, s),
            status: n.status.as_ref().map(|v| StatusJson::new(v, s)),
        }
    }
}

#[derive(Serialize)]
pub struct TagJson {
    pub name: String,
    pub url: String,
    pub history: Vec<serde_json::Value>,
    pub id: String,
    pub following: bool,
}

impl TagJson {
    pub fn new(name: &str, s: &ApiSettings) -> Self {
        Self {
            name: name.to_owned(),
            url: tag_url(s, name),
            history: vec![],
            id: name.to_owned(),
            following: false,
        }
    }
}

#[derive(Serialize)]
pub struct MarkerJson {
    pub last_read_id: String,
    pub version: i64,
    pub updated_at: String,
}

impl MarkerJson {
    pub fn new(m: &Marker) -> Self {
        Self {
            last_read_id: m.last_read_id.to_string(),
            version: m.version,
            updated_at: datetime(m.updated_at_ms),
        }
    }
}
