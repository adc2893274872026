//! Who is calling, how much they may call, and whether they may call this:
//! one layer in front of every handler.
//!
//! For each routed request, [`gate`]:
//!
//! 1. resolves the bearer token, if one is sent, once (handlers get the
//!    result through [`crate::auth::Auth`] and [`crate::auth::MaybeAuth`]
//!    without a second lookup);
//! 2. counts the request against the API rate limit (`/api/` paths): per
//!    account for a user's token, as Mastodon counts, and per client IP for
//!    everything else, including tokens that do not resolve, so made-up
//!    tokens buy no fresh budget;
//! 3. checks the route's [`Access`] from the one route table
//!    ([`crate::routes::ENDPOINTS`]): 401 without a valid token where one is
//!    needed, 403 when the token lacks the route's scopes (also on routes
//!    readable without a token: a token that is sent must hold them), 422
//!    when an application token calls a user's endpoint.
//!
//! It runs inside the read-your-writes layer ([`crate::middleware_fresh`]),
//! so a request whose token just wrote or was revoked resolves it on the
//! primary.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use starling_core::Principal;

use crate::auth::bearer_of;
use crate::error::ApiError;
use crate::middleware::{add_rate_headers, hit, ip_of};
use crate::routes::{endpoint, Access};
use crate::AppState;

/// The resolved caller of a request: `None` when no token was sent or the
/// token did not resolve (expired, revoked, made up).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<Principal>);

/// The layer described in the module docs.
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| endpoint(req.method().as_str(), p.as_str()));
    let sent_token = bearer_of(req.headers(), req.uri());
    let public = matches!(route.map(|e| e.access), Some(Access::Public));
    let api = req.uri().path().starts_with("/api/");
    // Public routes ignore tokens: no lookup (the OAuth endpoints and the
    // instance documents stay answerable whatever a client sends).
    let principal = match &sent_token {
        Some(token) if !public || api => match state.core.authenticate(token).await {
            Ok(principal) => principal,
            Err(e) => return ApiError::from(e).into_response(),
        },
        _ => None,
    };

    let decision = if api {
        let key = match principal.as_ref().and_then(|p| p.account_id) {
            Some(account) => format!("api:account:{account}"),
            None => {
                let peer = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0);
                format!("api:ip:{}", ip_of(&state, req.headers(), peer))
            }
        };
        hit(&state, &key, state.settings.rate_limits.api).await
    } else {
        None
    };
    let with_headers = |mut response: Response| {
        if let Some(d) = &decision {
            // A 429 of a tighter limit inside (registration) keeps its own.
            if !response.headers().contains_key("x-ratelimit-limit") {
                add_rate_headers(response.headers_mut(), d);
            }
        }
        response
    };
    if let Some(d) = decision.filter(|d| !d.allowed) {
        return ApiError::TooManyRequests(d).into_response();
    }

    if let Some(route) = route {
        if let Err(e) = check(route.access, principal.as_ref()) {
            return with_headers(e.into_response());
        }
    }
    req.extensions_mut().insert(Caller(principal));
    with_headers(next.run(req).await)
}

/// Whether a caller may use a route of `access`.
pub fn check(access: Access, principal: Option<&Principal>) -> Result<(), ApiError> {
    let scoped = |p: &Principal, scopes: &[starling_domain::Scope]| {
        if scopes.is_empty() || p.scopes.grants_any(scopes) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "This action is outside the authorized scopes".into(),
            ))
        }
    };
    match access {
        Access::Public => Ok(()),
        // A token that did not resolve is no token here, as before (and as
        // Mastodon's `authorize_if_got_token!` treats an unknown one).
        Access::Optional(scopes) => match principal {
            Some(p) => scoped(p, scopes),
            None => Ok(()),
        },
        Access::Token(scopes) => scoped(principal.ok_or(ApiError::InvalidToken)?, scopes),
        Access::User(scopes) => {
            let p = principal.ok_or(ApiError::InvalidToken)?;
            scoped(p, scopes)?;
            if p.account_id.is_none() {
                return Err(ApiError::Unprocessable(
                    "This method requires an authenticated user".into(),
                ));
            }
            Ok(())
        }
    }
}
