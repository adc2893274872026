//! The ceiling probe for benchmarks: `GET /api/v1/_bench/ceiling?bytes=N`.
//!
//! `starling-bench` states every result as a fraction of what this HTTP
//! stack can serve at all: the same listener, router and layers (request
//! id, tracing, CORS, JSON errors, timeout, body limit, metrics, API rate
//! limit) answering with a pre-rendered JSON body of the size of a home
//! page, with no store, cache or hydration behind it. The body is a slice
//! of one buffer built on first use (a small JSON document padded with
//! whitespace, which JSON allows), so serving it costs no rendering.
//!
//! It answers only when `bench_probe` is set (off by default): otherwise
//! it is "not found", like any unknown path.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// Largest body served (a home page of 40 large statuses is well below).
const MAX_BYTES: usize = 1024 * 1024;
/// Served when `bytes` is missing: about a home page of 20 statuses.
const DEFAULT_BYTES: usize = 16 * 1024;
/// The document every body starts with; the rest is whitespace.
const HEAD: &[u8] = br#"[{"id":"0","content":"<p>ceiling probe</p>"}]"#;

fn padded() -> &'static Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| {
        let mut body = vec![b' '; MAX_BYTES];
        body[..HEAD.len()].copy_from_slice(HEAD);
        Bytes::from(body)
    })
}

/// A pre-rendered JSON body of `bytes` bytes (clamped to what it can be).
pub async fn ceiling(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    if !state.settings.bench_probe {
        return Err(ApiError::NotFound);
    }
    let wanted = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "bytes")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_BYTES);
    let len = wanted.clamp(HEAD.len(), MAX_BYTES);
    Ok((
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        padded().slice(..len),
    )
        .into_response())
}
