//! Cross-cutting request handling: rate limits, metrics, tracing, panics and
//! the "every error is JSON" rule.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use serde_json::json;
use starling_cache::{Decision, Rule};
use time::macros::format_description;
use time::OffsetDateTime;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::{json_error, ApiError};
use crate::AppState;

/// The client's IP: the peer address, or behind a trusted load balancer the
/// last `X-Forwarded-For` entry (the one our balancer appended).
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.ip())
}

/// The client IP of a request as a rate-limit key part.
pub fn ip_of(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    client_ip(
        headers,
        peer,
        state.settings.rate_limits.trust_forwarded_for,
    )
    .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Counts a hit against `key` under `rule`: the one place limits are
/// counted. `None` when rate limits are disabled; a denial is counted in
/// `rate_limited_total{rule}` (the key's first segment).
pub(crate) async fn hit(state: &AppState, key: &str, rule: Rule) -> Option<Decision> {
    if !state.settings.rate_limits.enabled {
        return None;
    }
    let decision = state.limiter.hit(key, rule).await;
    if !decision.allowed {
        let name = key.split(':').next().unwrap_or("").to_owned();
        metrics::counter!("rate_limited_total", "rule" => name).increment(1);
    }
    Some(decision)
}

/// Per-IP limit for one endpoint (registration, sign-in): 429 when over.
pub async fn enforce_ip(
    state: &AppState,
    bucket: &str,
    ip: &str,
    rule: Rule,
) -> Result<(), ApiError> {
    match hit(state, &format!("{bucket}:ip:{ip}"), rule).await {
        Some(d) if !d.allowed => Err(ApiError::TooManyRequests(d)),
        _ => Ok(()),
    }
}

/// `X-RateLimit-Reset` in Mastodon's format: ISO 8601 with microseconds.
fn reset_header(ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

pub(crate) fn add_rate_headers(headers: &mut HeaderMap, d: &Decision) {
    let pairs = [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", reset_header(d.reset_at_ms)),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// A request body the handler reads through, whose unread rest the
/// middleware can still reach after the handler dropped it.
struct SharedBody(Arc<Mutex<Option<Body>>>);

impl SharedBody {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Body>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut slot = self.slot();
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            *slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.slot().as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.slot()
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

/// How long the rest of an unread body may take to arrive.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what is left of a body, up to `limit` bytes; whether it
/// ended within the limit and [`DRAIN_TIMEOUT`].
async fn drain(mut body: Body, limit: u64) -> bool {
    let read = async {
        let mut seen = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIMEOUT, read)
        .await
        .unwrap_or(false)
}

/// An answer given before the request's body was read (a 401, 404, 405 or
/// 413 to a POST with a body): the rest of the body is read and dropped
/// when it is within the body limit, so the connection stays usable;
/// otherwise the answer says `Connection: close`. Without either, hyper
/// closes the connection with the body unread, and a proxy keeping
/// connections to us open (HAProxy) may send its next request down the
/// closing one, or the client, still sending, sees a broken pipe.
/// Draining costs no more than a body some endpoint would read anyway.
pub async fn close_unread_bodies(State(limit): State<usize>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let shared = Arc::new(Mutex::new(None));
    let req = req.map(|inner| {
        *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(inner);
        Body::new(SharedBody(shared.clone()))
    });
    let mut response = next.run(req).await;
    let rest = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(rest) = rest else {
        return response;
    };
    let limit = limit as u64;
    let drained = declared.is_none_or(|n| n <= limit) && drain(rest, limit).await;
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Request count and latency per route (the route pattern, never the raw
/// path, so ids do not explode the label set).
pub async fn metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        metrics::counter!("http_server_errors_total", &labels[..2]).increment(1);
    }
    response
}

/// Clients `.json()` every response, so error responses made by layers
/// (405, 408, 413...) get a JSON body too (HTML pages keep theirs), and
/// JSON is always labelled `application/json; charset=utf-8` as Mastodon does.
pub async fn ensure_json_errors(mut response: Response) -> Response {
    let status = response.status();
    if response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        == Some(b"application/json")
    {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if status.as_u16() < 400 {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "Record not found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request entity too large",
        StatusCode::REQUEST_TIMEOUT => "Request timed out",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let mut fixed = json_error(status, json!({ "error": message }));
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// A panicking handler becomes a logged 500, not a dropped connection.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(%detail, "handler panicked");
    ApiError::Internal.into_response()
}

/// One span per request with its id, method and path (never the query
/// string: it may carry `access_token`), and one line per response.
pub fn trace_layer(
) -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, impl Fn(&Request) -> tracing::Span + Clone>
{
    TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let request_id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %request_id,
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_header_format() {
        assert_eq!(
            reset_header(1_736_080_500_000),
            "2025-01-05T12:35:00.000000Z"
        );
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.1, 203.0.113.7"),
        );
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(&h, Some(peer), false), Some(peer.ip()));
        assert_eq!(client_ip(&h, Some(peer), true), "203.0.113.7".parse().ok());
    }
}
