//! Bearer-token extractors.
//!
//! [`Auth`] requires a valid token (401 otherwise); [`MaybeAuth`] is for
//! public endpoints that show more to a signed-in caller and, like Mastodon,
//! treats a bad token as no token. Which routes need a token, which scopes
//! and whether a user's token are stated once, in the route table
//! ([`crate::routes::ENDPOINTS`]), and checked by [`crate::access::gate`]
//! before the handler runs.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use starling_core::Principal;

use crate::access::Caller;
use crate::error::ApiError;
use crate::AppState;

pub struct Auth(pub Principal);

pub struct MaybeAuth(pub Option<Principal>);

/// The bearer token of a request: `Authorization: Bearer …`, the
/// `access_token` query parameter (streaming clients, some scripts), or, on
/// a WebSocket handshake, the offered `Sec-WebSocket-Protocol` (how
/// browsers' masto.js sends it: a browser cannot set headers there).
pub fn bearer_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    let from_query = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    from_query.or_else(|| {
        let upgrade = headers.get(UPGRADE).and_then(|v| v.to_str().ok())?;
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return None;
        }
        headers
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
            .map(str::to_owned)
    })
}

/// The caller [`crate::access::gate`] resolved; resolved here only for a
/// router built without the gate.
async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<Principal>, ApiError> {
    if let Some(Caller(principal)) = parts.extensions.get::<Caller>() {
        return Ok(principal.clone());
    }
    match bearer_of(&parts.headers, &parts.uri) {
        Some(token) => Ok(state.core.authenticate(&token).await?),
        None => Ok(None),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        resolve(parts, state)
            .await?
            .map(Auth)
            .ok_or(ApiError::InvalidToken)
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeAuth(resolve(parts, state).await?))
    }
}
