//! The HTTP edge of Starling: the Mastodon client API, the OAuth pages,
//! discovery documents, health checks and metrics.
//!
//! Only this crate knows HTTP and JSON. Handlers parse their input once
//! ([`params::Params`], [`auth::Auth`]), call one use case on
//! [`starling_core::Core`], and render a wire type from [`entities`]. Errors
//! become responses in one place ([`error::ApiError`]).
//!
//! Cross-cutting rules live in [`middleware`] and are applied in
//! [`router`]: trailing slashes, CORS, request ids, rate limits and their
//! headers, metrics, body limits, timeouts, panics, and "every response is
//! JSON"; with read replicas, read-your-writes ([`middleware_fresh`]).

pub mod access;
pub mod auth;
pub mod entities;
pub mod error;
pub mod html;
pub mod media;
pub mod middleware;
pub mod middleware_fresh;
pub mod pages;
pub mod pagination;
pub mod params;
pub mod render;
pub mod routes;
pub mod settings;
pub mod streaming;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, Method};
use axum::Router;
use axum::ServiceExt;
use starling_cache::{Freshness, RateLimiter};
use starling_core::Core;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

pub use settings::{ApiSettings, RateLimitSettings};

/// Everything a handler can reach. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub limiter: Arc<dyn RateLimiter>,
    pub settings: Arc<ApiSettings>,
    stats: Arc<routes::instance::StatsCache>,
    /// Rendered JSON of recently shown statuses and accounts.
    pub render: Arc<render::RenderCache>,
    /// Read-your-writes marks, when the store has read replicas
    /// ([`middleware_fresh`]).
    fresh: Option<Arc<dyn Freshness>>,
}

impl AppState {
    pub fn new(core: Core, limiter: Arc<dyn RateLimiter>, settings: ApiSettings) -> Self {
        Self {
            core,
            limiter,
            settings: Arc::new(settings),
            stats: Arc::new(routes::instance::StatsCache::default()),
            render: Arc::new(render::RenderCache::default()),
            fresh: None,
        }
    }

    /// Turns read-your-writes on (for a store with read replicas): writers'
    /// reads go to the primary for the window `fresh` keeps marks for.
    pub fn with_read_your_writes(mut self, fresh: Arc<dyn Freshness>) -> Self {
        self.fresh = Some(fresh);
        self
    }

    /// Marks a bearer token as having just written (its next reads go to
    /// the primary), when read-your-writes is on.
    pub async fn mark_fresh(&self, token: &str) {
        if let Some(fresh) = &self.fresh {
            fresh.wrote(&middleware_fresh::writer_key(token)).await;
        }
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application as one router, layers included (except trailing
/// slash normalisation, which must run before routing: see [`serve`]).
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .expose_headers([
            header::LINK,
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            REQUEST_ID.clone(),
        ])
        .max_age(Duration::from_secs(86_400));

    let timeout = state.settings.request_timeout;
    let body_limit = state.settings.max_body_bytes;
    // Innermost first: the gate (token, rate limit, access) around the
    // handler; read-your-writes around it, so a token that just wrote is
    // resolved on the primary.
    let routes = routes::all().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        access::gate,
    ));
    let routes = match &state.fresh {
        Some(fresh) => routes.layer(axum::middleware::from_fn_with_state(
            middleware_fresh::ReadYourWrites(fresh.clone()),
            middleware_fresh::read_your_writes,
        )),
        None => routes,
    };
    routes
        .layer(axum::middleware::from_fn(middleware::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::map_response(
            middleware::ensure_json_errors,
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            middleware::close_unread_bodies,
        ))
        .layer(middleware::trace_layer())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.core.live().clone();
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    let service = ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Streams never finish by themselves: end them (SSE responses
            // end, sockets get "going away"), so clients reconnect to
            // another process and the drain does not wait for them.
            hub.close_all();
        })
        .await
}
