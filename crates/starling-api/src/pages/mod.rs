//! Public pages: server-rendered HTML (and RSS) for anonymous readers.
//!
//! Another renderer at the edge: each handler calls the same use cases as
//! the JSON API with no viewer (`account_timeline`, `status`, `context`,
//! `tag_timeline`, `public_timeline`, `lookup`), so the pages show exactly
//! what an anonymous API client would see (public and unlisted statuses;
//! never private or direct ones). The markup is in [`view`], the feeds in
//! [`feed`], the stylesheet in [`assets`].
//!
//! Every page answer goes through [`respond`]: a weak ETag over the body
//! (304 on `If-None-Match`), `Cache-Control: public, max-age=60`, `Vary:
//! Accept`, and the security headers (a CSP allowing no inline script or
//! style, no framing, `nosniff`, a referrer policy). A missing account or
//! status is an HTML 404; `Accept: application/activity+json` is a JSON
//! 406 until federation exists.

pub mod assets;
pub mod feed;
pub mod view;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use starling_core::timelines::AccountTimelineOptions;
use starling_core::views::StatusView;
use starling_core::CoreError;
use starling_domain::{Account, Id, Page};

use crate::error::{ApiError, ApiResult};
use crate::settings::ApiSettings;
use crate::AppState;

use view::{a, t, Head};

/// Statuses per page (Mastodon's public pages show 20).
const PAGE_SIZE: usize = 20;
/// How long a shared cache or a browser may keep a page without asking.
const MAX_AGE: &str = "public, max-age=60";
const HTML: &str = "text/html; charset=utf-8";
const RSS: &str = "application/rss+xml; charset=utf-8";

/// Why a page could not be shown.
enum PageError {
    NotFound,
    BadRequest(&'static str),
    NotAcceptable,
    Api(ApiError),
}

impl From<CoreError> for PageError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => PageError::NotFound,
            other => PageError::Api(ApiError::from(other)),
        }
    }
}

type PageResult = Result<Response, PageError>;

fn fail(s: &ApiSettings, e: PageError) -> Response {
    let (status, heading, message) = match e {
        PageError::NotFound => (
            StatusCode::NOT_FOUND,
            "Not found",
            "This page does not exist, or is not public.",
        ),
        PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
        PageError::NotAcceptable => {
            let mut r = (
                StatusCode::NOT_ACCEPTABLE,
                Json(json!({
                    "error": "ActivityPub representations are not served yet (no federation); ask for text/html or use the Mastodon API"
                })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            return r;
        }
        PageError::Api(e) => return e.into_response(),
    };
    let body = view::error_document(s, heading, message);
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(HTML));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    security_headers(s, h);
    r
}

/// Runs a page handler and turns its failure into the error page.
fn finish(s: &ApiSettings, result: PageResult) -> Response {
    result.unwrap_or_else(|e| fail(s, e))
}

/// The Content-Security-Policy of every page: nothing inline, nothing
/// framed; images and media from here and from the media CDN, if any.
fn csp(s: &ApiSettings) -> String {
    let media = s
        .media_base_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'{media}; \
         media-src 'self'{media}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

fn security_headers(s: &ApiSettings, h: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&csp(s)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110
/// asks for GET).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == bare)
}

/// A 200 (or 304) with the caching and security headers.
fn respond(
    s: &ApiSettings,
    headers: &HeaderMap,
    content_type: &'static str,
    body: String,
) -> Response {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("W/\"{hex}\"");
    let mut r = if matches_etag(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    security_headers(s, h);
    r
}

/// `Accept: application/activity+json` (or ld+json) is for federation,
/// which does not exist yet: 406.
fn negotiate(headers: &HeaderMap) -> Result<(), PageError> {
    let wants_ap = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/activity+json") || v.contains("application/ld+json"));
    if wants_ap {
        Err(PageError::NotAcceptable)
    } else {
        Ok(())
    }
}

/// `?max_id=` of a page (the only parameter pages take).
fn page_of(uri: &Uri) -> Result<Page, PageError> {
    let mut max_id = None;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "max_id" && !v.trim().is_empty() {
            max_id = Some(
                v.parse::<Id>()
                    .map_err(|_| PageError::BadRequest("max_id must be a status id."))?,
            );
        }
    }
    Ok(Page {
        max_id,
        since_id: None,
        min_id: None,
        limit: PAGE_SIZE,
    })
}

async fn account(state: &AppState, username: &str) -> Result<Account, PageError> {
    let domain = state.settings.domain();
    Ok(state.core.lookup(username, &domain).await?)
}

/// `GET /@:username` (and `/@:username.rss`).
pub async fn profile(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let s = &state.settings;
    let result = match raw.strip_suffix(".rss") {
        Some(username) => account_feed(&state, username, &headers).await,
        None => profile_page(&state, &raw, &headers, &uri).await,
    };
    finish(s, result)
}

async fn profile_page(
    state: &AppState,
    username: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> PageResult {
    negotiate(headers)?;
    let page = page_of(uri)?;
    let account = account(state, username).await?;
    let views = state
        .core
        .account_timeline(
            None,
            account.id,
            AccountTimelineOptions {
                exclude_replies: true,
                ..AccountTimelineOptions::default()
            },
            &page,
        )
        .await?;
    let s = &state.settings;
    let path = view::profile_path(&account);
    let mut head = Head::new(
        format!(
            "{} (@{}@{})",
            view::display_name(&account),
            account.username,
            s.domain()
        ),
        account.note.clone(),
        s.url(&path),
    );
    head.og_type = "profile";
    head.image = Some(view::avatar_url(s, &account));
    head.alternates = vec![
        ("application/rss+xml", s.url(&format!("{path}.rss"))),
        (
            "application/json",
            s.url(&format!("/api/v1/accounts/{}", account.id)),
        ),
    ];
    head.lang = account.language.clone().unwrap_or_else(|| "en".into());
    let main = format!(
        "{}<section aria-labelledby=\"posts\"><h2 id=\"posts\">Posts</h2>{}{}</section>",
        view::profile_card(s, &account),
        view::status_list(s, &views),
        view::pager(&path, &views, PAGE_SIZE),
    );
    Ok(respond(s, headers, HTML, view::document(s, &head, &main)))
}

async fn account_feed(state: &AppState, username: &str, headers: &HeaderMap) -> PageResult {
    let account = account(state, username).await?;
    let page = Page {
        max_id: None,
        since_id: None,
        min_id: None,
        limit: PAGE_SIZE,
    };
    // As Mastodon's account feed: no replies, no boosts.
    let views = state
        .core
        .account_timeline(
            None,
            account.id,
            AccountTimelineOptions {
                exclude_replies: true,
                exclude_reblogs: true,
                ..AccountTimelineOptions::default()
            },
            &page,
        )
        .await?;
    let s = &state.settings;
    let body = feed::rss(
        s,
        &feed::account_title(&account),
        &account.note,
        &s.url(&view::profile_path(&account)),
        Some(&view::avatar_url(s, &account)),
        &views,
    );
    Ok(respond(s, headers, RSS, body))
}

/// `GET /@:username/:id`: a status and its public thread.
pub async fn status(
    State(state): State<AppState>,
    Path((username, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = &state.settings;
    let result = status_page(&state, &username, &id, &headers).await;
    finish(s, result)
}

async fn status_page(
    state: &AppState,
    username: &str,
    id: &str,
    headers: &HeaderMap,
) -> PageResult {
    negotiate(headers)?;
    let id: Id = id.parse().map_err(|_| PageError::NotFound)?;
    let author = account(state, username).await?;
    let view = state.core.status(None, id).await?;
    if view.status.account_id != author.id {
        return Err(PageError::NotFound);
    }
    let s = &state.settings;
    // A boost's page is the boosted status's (as Mastodon redirects).
    if let Some(inner) = &view.reblog {
        return Ok(Redirect::to(&view::status_path(inner)).into_response());
    }
    let (ancestors, descendants) = state.core.context(None, id).await?;
    let path = view::status_path(&view);
    let name = view::display_name(&view.account);
    let mut head = Head::new(
        format!(
            "{name}: \"{}\"",
            view::excerpt(&view::status_summary(&view), 60)
        ),
        view::status_summary(&view),
        s.url(&path),
    );
    head.og_type = "article";
    head.image = view
        .status
        .media
        .iter()
        .find_map(|m| m.small.as_ref().or(m.original.as_ref()))
        .map(|f| s.media_url(&f.key))
        .or_else(|| Some(view::avatar_url(s, &view.account)));
    head.alternates = vec![
        (
            "application/json+oembed",
            s.url(&format!(
                "/api/oembed?url={}",
                form_urlencoded::byte_serialize(s.url(&path).as_bytes()).collect::<String>()
            )),
        ),
        (
            "application/json",
            s.url(&format!("/api/v1/statuses/{}", view.status.id)),
        ),
    ];
    if let Some(lang) = &view.status.language {
        head.lang = lang.clone();
    }
    let ancestors: String = ancestors
        .iter()
        .map(|v| view::status(s, v, false))
        .collect();
    let descendants: String = descendants
        .iter()
        .map(|v| view::status(s, v, false))
        .collect();
    let replies = if descendants.is_empty() {
        String::new()
    } else {
        format!("<section aria-labelledby=\"replies\"><h2 id=\"replies\">Replies</h2>{descendants}</section>")
    };
    let main = format!(
        "<h1 class=\"skip\">Post by {}</h1>{ancestors}{}{replies}",
        t(name),
        view::status(s, &view, true),
    );
    Ok(respond(s, headers, HTML, view::document(s, &head, &main)))
}

/// `GET /tags/:tag` (and `/tags/:tag.rss`).
pub async fn tag(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let s = &state.settings;
    let result = tag_page(&state, &raw, &headers, &uri).await;
    finish(s, result)
}

async fn tag_page(state: &AppState, raw: &str, headers: &HeaderMap, uri: &Uri) -> PageResult {
    let (name, rss) = match raw.strip_suffix(".rss") {
        Some(name) => (name, true),
        None => (raw, false),
    };
    if !rss {
        negotiate(headers)?;
    }
    let Some(tag) = starling_domain::text::normalize_tag(name.trim_start_matches('#')) else {
        return Err(PageError::NotFound);
    };
    let page = if rss {
        page_of(&Uri::from_static("/"))?
    } else {
        page_of(uri)?
    };
    let views = state
        .core
        .tag_timeline(None, &tag, false, false, &page)
        .await?;
    let s = &state.settings;
    let encoded: String = url::form_urlencoded::byte_serialize(tag.as_bytes()).collect();
    let path = format!("/tags/{encoded}");
    let title = format!("#{tag}");
    let description = format!("Public posts tagged #{tag} on {}", s.title);
    if rss {
        let body = feed::rss(s, &title, &description, &s.url(&path), None, &views);
        return Ok(respond(s, headers, RSS, body));
    }
    let mut head = Head::new(title.clone(), description, s.url(&path));
    head.alternates = vec![
        ("application/rss+xml", s.url(&format!("{path}.rss"))),
        (
            "application/json",
            s.url(&format!("/api/v1/timelines/tag/{encoded}")),
        ),
    ];
    let main = format!(
        "<h1>{}</h1>{}{}",
        t(&title),
        view::status_list(s, &views),
        view::pager(&path, &views, PAGE_SIZE)
    );
    Ok(respond(s, headers, HTML, view::document(s, &head, &main)))
}

/// `GET /public/local`: the local public timeline.
pub async fn local(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let s = &state.settings;
    let result = local_page(&state, &headers, &uri).await;
    finish(s, result)
}

async fn local_page(state: &AppState, headers: &HeaderMap, uri: &Uri) -> PageResult {
    negotiate(headers)?;
    let page = page_of(uri)?;
    let views = state
        .core
        .public_timeline(None, false, false, &page)
        .await?;
    let s = &state.settings;
    let mut head = Head::new(
        format!("Local timeline — {}", s.title),
        format!("Public posts from {}", s.title),
        s.url("/public/local"),
    );
    head.alternates = vec![(
        "application/json",
        s.url("/api/v1/timelines/public?local=true"),
    )];
    let main = format!(
        "<h1>Local timeline</h1>{}{}",
        view::status_list(s, &views),
        view::pager("/public/local", &views, PAGE_SIZE)
    );
    Ok(respond(s, headers, HTML, view::document(s, &head, &main)))
}

/// `GET /about`: what this server is, who runs it, how big it is.
pub async fn about(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = &state.settings;
    let result = about_page(&state, &headers).await;
    finish(s, result)
}

async fn about_page(state: &AppState, headers: &HeaderMap) -> PageResult {
    negotiate(headers)?;
    let users = crate::routes::instance::user_count(state)
        .await
        .map_err(PageError::Api)?;
    let s = &state.settings;
    let mut head = Head::new(
        format!("About {}", s.title),
        s.description.clone(),
        s.url("/about"),
    );
    head.alternates = vec![("application/json", s.url("/api/v2/instance"))];
    let main = format!(
        "<h1>About {title}</h1><p>{description}</p>\
         <h2>Contact</h2><p><a href=\"mailto:{mail_attr}\">{mail}</a></p>\
         <h2>Statistics</h2><dl class=\"fields\"><dt>Users</dt><dd>{users}</dd></dl>\
         <h2>Using this server</h2><p>Sign in with any Mastodon app using the address \
         <code>{domain}</code>. Read the <a href=\"/public/local\">local timeline</a>.</p>",
        title = t(&s.title),
        description = t(&s.description),
        mail_attr = a(&s.contact_email),
        mail = t(&s.contact_email),
        domain = t(&s.domain()),
    );
    Ok(respond(s, headers, HTML, view::document(s, &head, &main)))
}

/// `GET /users/:username`: the account's `uri`; its page for a browser
/// (its ActivityPub actor later).
pub async fn user_uri(
    State(state): State<AppState>,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = &state.settings;
    let result = async {
        negotiate(&headers)?;
        let account = account(&state, &username).await?;
        Ok(Redirect::to(&view::profile_path(&account)).into_response())
    }
    .await;
    finish(s, result)
}

/// `GET /users/:username/statuses/:id`: a status's `uri`; its page.
pub async fn status_uri(
    State(state): State<AppState>,
    Path((username, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = &state.settings;
    let result = async {
        negotiate(&headers)?;
        let id: Id = id.parse().map_err(|_| PageError::NotFound)?;
        let author = account(&state, &username).await?;
        let view = state.core.status(None, id).await?;
        if view.status.account_id != author.id {
            return Err(PageError::NotFound);
        }
        Ok(Redirect::to(&view::status_path(&view)).into_response())
    }
    .await;
    finish(s, result)
}

/// The status a URL of this server names (`/@user/id` or
/// `/users/user/statuses/id`), if it is one.
fn status_ref(s: &ApiSettings, raw: &str) -> Option<(String, Id)> {
    let url = url::Url::parse(raw).ok()?;
    if url.host_str() != s.public_url.host_str() || url.port() != s.public_url.port() {
        return None;
    }
    let parts: Vec<&str> = url.path_segments()?.collect();
    match parts.as_slice() {
        [user, id] if user.starts_with('@') => Some((user[1..].to_owned(), id.parse().ok()?)),
        ["users", user, "statuses", id] => Some(((*user).to_owned(), id.parse().ok()?)),
        _ => None,
    }
}

/// `GET /api/oembed?url=`: an embed of a public status (JSON, oEmbed 1.0
/// "rich"). The HTML is a blockquote of the sanitised content (pages
/// refuse framing, so no iframe).
pub async fn oembed(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let s = &state.settings;
    let target = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "url")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::BadRequest("url is missing".into()))?;
    let (username, id) = status_ref(s, &target).ok_or(ApiError::NotFound)?;
    let author = state
        .core
        .lookup(&username, &s.domain())
        .await
        .map_err(ApiError::from)?;
    let view: StatusView = state.core.status(None, id).await?;
    if view.status.account_id != author.id || view.reblog.is_some() {
        return Err(ApiError::NotFound);
    }
    let url = s.url(&view::status_path(&view));
    let name = view::display_name(&view.account);
    let html = format!(
        "<blockquote class=\"starling-embed\" cite=\"{u}\">{content}<p>&mdash; {n} (@{user}@{domain}) <a href=\"{u}\">{date}</a></p></blockquote>",
        u = a(&url),
        content = view.status.content,
        n = t(name),
        user = t(&view.account.username),
        domain = t(&s.domain()),
        date = t(crate::entities::date(view.status.created_at_ms).as_str()),
    );
    let mut r = Json(json!({
        "type": "rich",
        "version": "1.0",
        "title": format!("Post by {name}"),
        "author_name": name,
        "author_url": s.url(&view::profile_path(&view.account)),
        "provider_name": s.title,
        "provider_url": s.url("/"),
        "cache_age": 86400,
        "html": html,
        "width": 400,
        "height": null
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
    Ok(r)
}
