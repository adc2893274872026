//! Liveness, readiness, metrics, static defaults and the front page.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::html::page;
use crate::AppState;

/// The process is up (no dependency checked: restarting would not help).
pub async fn livez() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to take traffic: the store answers within a second. Load balancers
/// route on this.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(1), state.core.store().ping()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ok" }))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: store ping failed");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("not ready: store ping timed out");
            Err(ApiError::Unavailable)
        }
    }
}

pub async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

static MISSING_PNG: &[u8] = include_bytes!("../../assets/missing.png");

/// The default avatar and header (clients need a URL that loads).
pub async fn missing_image() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        MISSING_PNG,
    )
        .into_response()
}

pub async fn front_page(State(state): State<AppState>) -> Response {
    let s = &state.settings;
    page(
        StatusCode::OK,
        &s.title,
        &format!(
            "<h1>{}</h1><p>{}</p><p>This server speaks the Mastodon client API: sign in with any \
             Mastodon app using the server address <code>{}</code>.</p>",
            html_escape::encode_text(&s.title),
            html_escape::encode_text(&s.description),
            html_escape::encode_text(&s.base()),
        ),
    )
}
