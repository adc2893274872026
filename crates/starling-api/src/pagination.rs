//! Mastodon pagination: `max_id`, `since_id`, `min_id`, `limit`, and the
//! `Link` header clients follow.
//!
//! The rules clients depend on (mastodon-api.md §1.9): absolute URLs, `next`
//! first, the literal `max_id=` / `min_id=`, the request's other filters
//! carried over, and no header at all on an empty page.

use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use starling_domain::{Id, Page};
use url::Url;

use crate::error::ApiError;
use crate::settings::ApiSettings;

/// A page request, parsed and clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub max_id: Option<Id>,
    pub since_id: Option<Id>,
    pub min_id: Option<Id>,
    pub limit: usize,
}

/// Default and maximum page sizes of one kind of list.
#[derive(Clone, Copy, Debug)]
pub struct PageSize {
    pub default: usize,
    pub max: usize,
}

pub const STATUSES: PageSize = PageSize {
    default: 20,
    max: 40,
};
pub const ACCOUNTS: PageSize = PageSize {
    default: 40,
    max: 80,
};
pub const NOTIFICATIONS: PageSize = PageSize {
    default: 40,
    max: 80,
};

fn parse_id(name: &str, v: Option<&str>) -> Result<Option<Id>, ApiError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("Invalid {name}"))),
    }
}

impl PageRequest {
    /// Parses the pagination parameters of a query string.
    pub fn parse(query: Option<&str>, size: PageSize) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let limit = match get("limit").map(str::trim).filter(|s| !s.is_empty()) {
            None => size.default,
            Some(s) => {
                let n: i64 = s
                    .parse()
                    .map_err(|_| ApiError::BadRequest("Invalid limit".into()))?;
                if n < 0 {
                    return Err(ApiError::BadRequest(
                        "Pagination values for `offset` and `limit` must be positive".into(),
                    ));
                }
                (n as usize).clamp(1, size.max)
            }
        };
        Ok(Self {
            max_id: parse_id("max_id", get("max_id"))?,
            since_id: parse_id("since_id", get("since_id"))?,
            min_id: parse_id("min_id", get("min_id"))?,
            limit,
        })
    }
}

impl PageRequest {
    /// The store's view of this request.
    pub fn page(&self) -> Page {
        Page {
            max_id: self.max_id,
            since_id: self.since_id,
            min_id: self.min_id,
            limit: self.limit,
        }
    }
}

/// A JSON list with its `Link` header. `cursors` are the row ids the page
/// was cut on, in the order of `items` (newest first).
pub fn paged<T: Serialize>(
    settings: &ApiSettings,
    uri: &Uri,
    items: Vec<T>,
    cursors: &[Id],
) -> Response {
    with_link(settings, uri, cursors, Json(items).into_response())
}

/// As [`paged`], for a list already serialized as a JSON array.
pub fn paged_json(settings: &ApiSettings, uri: &Uri, body: Vec<u8>, cursors: &[Id]) -> Response {
    let response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    with_link(settings, uri, cursors, response)
}

/// As [`paged`], for lists of accounts: as Mastodon's account lists do,
/// `next` only when the page is full (megalodon's `get_all` follows `next`
/// and fails on an empty last page without a Link header).
pub fn paged_accounts<T: Serialize>(
    settings: &ApiSettings,
    uri: &Uri,
    items: Vec<T>,
    cursors: &[Id],
    limit: usize,
) -> Response {
    let full = cursors.len() >= limit;
    link_response(settings, uri, cursors, full, Json(items).into_response())
}

fn with_link(settings: &ApiSettings, uri: &Uri, cursors: &[Id], response: Response) -> Response {
    link_response(settings, uri, cursors, true, response)
}

fn link_response(
    settings: &ApiSettings,
    uri: &Uri,
    cursors: &[Id],
    with_next: bool,
    mut response: Response,
) -> Response {
    let mut base = settings.public_url.clone();
    base.set_path(uri.path());
    let link = link_header(
        &base,
        uri.query(),
        cursors.first().copied(),
        cursors.last().copied(),
    )
    .map(|link| {
        if with_next {
            link
        } else {
            // Keep `prev` only.
            link.split_once(", ")
                .map_or(link.clone(), |(_, prev)| prev.to_owned())
        }
    });
    if let Some(value) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// Builds the `Link` header for a page whose items have cursors
/// `newest..=oldest` (newest first). `None` for an empty page.
///
/// `base` is the public URL of the endpoint; `query` the request's query
/// string, whose parameters other than the cursors are carried over.
pub fn link_header(
    base: &Url,
    query: Option<&str>,
    newest: Option<Id>,
    oldest: Option<Id>,
) -> Option<String> {
    let (newest, oldest) = (newest?, oldest?);
    let carried: Vec<(String, String)> = query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "max_id" | "since_id" | "min_id" | "access_token"
            )
        })
        .collect();
    let url_with = |cursor: &str, id: Id| {
        let mut url = base.clone();
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            for (k, v) in &carried {
                q.append_pair(k, v);
            }
            q.append_pair(cursor, &id.to_string());
        }
        // `,` and `;` would break clients' header splitting.
        url.to_string().replace(',', "%2C").replace(';', "%3B")
    };
    Some(format!(
        "<{}>; rel=\"next\", <{}>; rel=\"prev\"",
        url_with("max_id", oldest),
        url_with("min_id", newest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clamps() {
        let p =
            PageRequest::parse(Some("limit=500&max_id=10&since_id=&min_id=3"), STATUSES).unwrap();
        assert_eq!(p.limit, 40);
        assert_eq!(p.max_id, Some(Id::from_i64(10)));
        assert_eq!(p.since_id, None);
        assert_eq!(p.min_id, Some(Id::from_i64(3)));
        assert_eq!(PageRequest::parse(None, ACCOUNTS).unwrap().limit, 40);
        assert_eq!(
            PageRequest::parse(Some("limit=0"), ACCOUNTS).unwrap().limit,
            1
        );
        assert!(matches!(
            PageRequest::parse(Some("limit=-1"), STATUSES),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            PageRequest::parse(Some("max_id=abc"), STATUSES),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn link_header_shape() {
        let base = Url::parse("https://example.com/api/v1/timelines/tag/rust").unwrap();
        let link = link_header(
            &base,
            Some("limit=2&types[]=mention&max_id=99&access_token=secret"),
            Some(Id::from_i64(50)),
            Some(Id::from_i64(40)),
        )
        .unwrap();
        assert_eq!(
            link,
            "<https://example.com/api/v1/timelines/tag/rust?limit=2&types%5B%5D=mention&max_id=40>; rel=\"next\", \
             <https://example.com/api/v1/timelines/tag/rust?limit=2&types%5B%5D=mention&min_id=50>; rel=\"prev\""
        );
        assert!(!link.contains("secret"));
        assert!(link_header(&base, None, None, None).is_none());
        // megalodon splits on ',' then ';': each link has exactly one ';'.
        for part in link.split(", ") {
            assert_eq!(part.matches(';').count(), 1);
        }
    }
}
