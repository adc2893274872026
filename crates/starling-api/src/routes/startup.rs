//! What web clients (Phanpy, Elk) fetch at start-up (mastodon-api.md §7):
//! preferences, custom emojis, and the lists of features Starling does not
//! have yet, which are empty rather than errors.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub async fn preferences(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> ApiResult<Json<Value>> {
    let me = state.core.own_account(&caller).await?;
    Ok(Json(json!({
        "posting:default:visibility": me.privacy.as_str(),
        "posting:default:sensitive": me.sensitive,
        "posting:default:language": me.language,
        "reading:expand:media": "default",
        "reading:expand:spoilers": false,
    })))
}

/// An empty JSON array: features that do not exist yet.
pub async fn empty_list() -> Json<Value> {
    Json(json!([]))
}

/// Same, for endpoints that need a user token.
pub async fn empty_user_list(Auth(_caller): Auth) -> Json<Value> {
    Json(json!([]))
}

/// No Web Push subscription exists (Elk reads 404 as "none").
pub async fn push_subscription(Auth(_caller): Auth) -> ApiError {
    ApiError::NotFound
}
