//! The one stylesheet of the public pages, served from the binary under a
//! name carrying its content hash, so it can be cached for ever.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub const CSS: &str = include_str!("site.css");

static CSS_PATH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(CSS.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("/assets/site-{hex}.css")
});

/// `/assets/site-<hash>.css`.
pub fn css_path() -> &'static str {
    &CSS_PATH
}

/// `GET /assets/:file`: the stylesheet under its current name; anything
/// else (an old hash included) is not found.
pub async fn file(Path(file): Path<String>) -> Response {
    if format!("/assets/{file}") != *CSS_PATH {
        let mut r = (
            StatusCode::NOT_FOUND,
            "<!DOCTYPE html><html lang=\"en\"><title>Not found</title><h1>Not found</h1></html>",
        )
            .into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    let mut r = CSS.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
