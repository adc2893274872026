//! Read-your-writes over read replicas.
//!
//! With replicas, the store answers reads that tolerate staleness from a
//! replica, which may lag the primary by a moment. A client that just wrote
//! (posted, followed, edited its profile) and reads right after must see
//! its write, on whichever `api` process its next request reaches. So:
//!
//! - a request that may write (POST, PUT, PATCH, DELETE) runs with every
//!   store read on the primary ([`with_primary_reads`]): what it reads
//!   feeds its write or is rendered from it (the relationship after a
//!   follow, the status after a favourite);
//! - after such a request succeeds (2xx), its bearer token is marked fresh
//!   for the window ([`Freshness::wrote`]: in Redis, so every process
//!   knows);
//! - a read (GET, HEAD) whose token wrote within the window also runs on
//!   the primary; other reads go where the store sends them.
//!
//! The key is the SHA-256 of the bearer token, so no store lookup is
//! needed. It is per token, not per account: two apps of one user (or two
//! devices) do not see each other's writes at once, only within the
//! replicas' lag (at most `store.max_replica_lag_ms` while a replica stays
//! in rotation). Anonymous requests have no key and read where the store
//! sends them. Revoking a token marks the revoked token fresh, so a request
//! still bearing it meets the primary, where it is already gone.
//!
//! The layer is installed only when the store has replicas: otherwise every
//! read is on the primary anyway, and no request pays a Redis round trip.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use starling_cache::{Freshness, WriterKey};
use starling_domain::SecretHash;
use starling_store::with_primary_reads;

use crate::auth::bearer_of;

/// The freshness marks the layer reads and writes.
#[derive(Clone)]
pub struct ReadYourWrites(pub Arc<dyn Freshness>);

/// The writer key of a bearer token.
pub fn writer_key(token: &str) -> WriterKey {
    SecretHash::of(token).0
}

fn may_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Runs writes, and reads by a token that wrote within the window, with
/// every store read on the primary; marks a token fresh after it wrote.
pub async fn read_your_writes(
    State(ryw): State<ReadYourWrites>,
    req: Request,
    next: Next,
) -> Response {
    let key = bearer_of(req.headers(), req.uri()).map(|t| writer_key(&t));
    let writes = may_write(req.method());
    let primary = writes
        || match &key {
            Some(key) => ryw.0.wrote_recently(key).await,
            None => false,
        };
    if !primary {
        return next.run(req).await;
    }
    let response = with_primary_reads(next.run(req)).await;
    if writes && response.status().is_success() {
        if let Some(key) = &key {
            ryw.0.wrote(key).await;
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use starling_cache::MemoryFreshness;
    use starling_domain::ManualClock;
    use tower::ServiceExt;

    use super::*;

    /// A router whose handlers answer whether their reads were pinned to
    /// the primary (`POST /fail` fails, writing nothing).
    fn app(clock: Arc<ManualClock>) -> Router {
        let fresh = ReadYourWrites(Arc::new(MemoryFreshness::new(
            Duration::from_secs(5),
            clock,
            1000,
        )));
        let pinned = || async { starling_store::primary_reads_forced().to_string() };
        Router::new()
            .route("/read", get(pinned).post(pinned))
            .route(
                "/fail",
                axum::routing::post(|| async { StatusCode::UNPROCESSABLE_ENTITY }),
            )
            .layer(axum::middleware::from_fn_with_state(
                fresh,
                read_your_writes,
            ))
    }

    async fn send(app: &Router, method: &str, path: &str, token: Option<&str>) -> String {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let bytes = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_writer_reads_the_primary_for_the_window() {
        let clock = Arc::new(ManualClock::new());
        let app = app(clock.clone());
        assert_eq!(send(&app, "GET", "/read", Some("alice")).await, "false");
        assert_eq!(send(&app, "POST", "/read", Some("alice")).await, "true");
        assert_eq!(send(&app, "GET", "/read", Some("alice")).await, "true");
        // Another token (another app of the same user, or someone else).
        assert_eq!(send(&app, "GET", "/read", Some("bob")).await, "false");
        assert_eq!(send(&app, "GET", "/read", None).await, "false");
        clock.advance(Duration::from_secs(5));
        assert_eq!(send(&app, "GET", "/read", Some("alice")).await, "false");
    }

    #[tokio::test]
    async fn a_failed_write_marks_nothing() {
        let app = app(Arc::new(ManualClock::new()));
        send(&app, "POST", "/fail", Some("carol")).await;
        assert_eq!(send(&app, "GET", "/read", Some("carol")).await, "false");
        // An anonymous write runs on the primary too.
        assert_eq!(send(&app, "POST", "/read", None).await, "true");
    }
}
