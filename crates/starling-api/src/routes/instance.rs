//! Discovery: instance documents, NodeInfo and OAuth server metadata.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use starling_domain::Scope;

use crate::error::ApiResult;
use crate::AppState;

/// The version clients parse: Mastodon 4.2.0 compatible (see
/// mastodon-api.md §2.2 for why exactly this).
pub fn version() -> String {
    format!("4.2.0 (compatible; Starling {})", env!("CARGO_PKG_VERSION"))
}

/// Instance statistics, recomputed at most once a minute: counting users is
/// not free on a large store, and every client login asks.
#[derive(Default)]
pub struct StatsCache {
    users: Mutex<Option<(Instant, u64)>>,
}

const STATS_TTL: Duration = Duration::from_secs(60);

pub(crate) async fn user_count(state: &AppState) -> ApiResult<u64> {
    if let Ok(guard) = state.stats.users.lock() {
        if let Some((at, n)) = *guard {
            if at.elapsed() < STATS_TTL {
                return Ok(n);
            }
        }
    }
    let n = state.core.count_accounts().await?;
    if let Ok(mut guard) = state.stats.users.lock() {
        *guard = Some((Instant::now(), n));
    }
    Ok(n)
}

fn media_configuration(with_description_limit: bool) -> Value {
    let mut v = json!({
        "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4"],
        "image_size_limit": 16_777_216,
        "image_matrix_limit": 33_177_600,
        "video_size_limit": 103_809_024,
        "video_frame_rate_limit": 120,
        "video_matrix_limit": 8_294_400
    });
    if with_description_limit {
        v["description_limit"] = json!(1500);
    }
    v
}

fn statuses_configuration() -> Value {
    json!({"max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23})
}

fn polls_configuration() -> Value {
    json!({"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2_629_746})
}

pub async fn v1(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let s = &state.settings;
    let users = user_count(&state).await?;
    Ok(Json(json!({
        "uri": s.domain(),
        "title": s.title,
        "short_description": s.description,
        "description": s.description,
        "email": s.contact_email,
        "version": version(),
        "urls": {"streaming_api": s.streaming_url()},
        "stats": {"user_count": users, "status_count": 0, "domain_count": 0},
        "thumbnail": null,
        "languages": ["en"],
        "registrations": state.core.settings().registrations_open,
        "approval_required": false,
        "invites_enabled": false,
        "configuration": {
            "accounts": {"max_featured_tags": 10},
            "statuses": statuses_configuration(),
            "media_attachments": media_configuration(false),
            "polls": polls_configuration()
        },
        "contact_account": null,
        "rules": []
    })))
}

pub async fn v2(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let s = &state.settings;
    let users = user_count(&state).await?;
    Ok(Json(json!({
        "domain": s.domain(),
        "title": s.title,
        "version": version(),
        "source_url": s.url("/"),
        "description": s.description,
        "usage": {"users": {"active_month": users}},
        "thumbnail": {"url": s.url("/headers/original/missing.png")},
        "icon": [],
        "languages": ["en"],
        "configuration": {
            "urls": {
                "streaming": s.streaming_url(),
                "status": null,
                "about": s.url("/"),
                "privacy_policy": null,
                "terms_of_service": null
            },
            "vapid": {"public_key": ""},
            "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
            "statuses": statuses_configuration(),
            "media_attachments": media_configuration(true),
            "polls": polls_configuration(),
            "translation": {"enabled": false},
            "timelines_access": {
                "live_feeds": {"local": "public", "remote": "public"},
                "hashtag_feeds": {"local": "public", "remote": "public"},
                "trending_link_feeds": {"local": "public", "remote": "public"}
            },
            "limited_federation": false
        },
        "registrations": {
            "enabled": state.core.settings().registrations_open,
            "approval_required": false,
            "reason_required": false,
            "message": null,
            "min_age": null,
            "url": null
        },
        "api_versions": {"mastodon": 1},
        "contact": {"email": s.contact_email, "account": null},
        "rules": []
    })))
}

pub async fn nodeinfo_links(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "links": [{
            "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
            "href": state.settings.url("/nodeinfo/2.0")
        }]
    }))
}

pub async fn nodeinfo(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let users = user_count(&state).await?;
    Ok(Json(json!({
        "version": "2.0",
        "software": {"name": "starling", "version": env!("CARGO_PKG_VERSION")},
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": state.core.settings().registrations_open,
        "usage": {"users": {"total": users, "activeMonth": users, "activeHalfyear": users}, "localPosts": 0},
        "metadata": {"upstream": {"name": "mastodon"}, "nodeName": state.settings.title}
    })))
}

pub async fn oauth_metadata(State(state): State<AppState>) -> Json<Value> {
    let s = &state.settings;
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    Json(json!({
        "issuer": s.url("/"),
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": s.url("/oauth/authorize"),
        "token_endpoint": s.url("/oauth/token"),
        "app_registration_endpoint": s.url("/api/v1/apps"),
        "revocation_endpoint": s.url("/oauth/revoke"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "client_credentials", "password"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]
    }))
}
