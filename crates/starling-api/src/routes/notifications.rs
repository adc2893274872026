//! Notifications and markers.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use starling_core::notifications::parse_types;
use starling_domain::Id;
use starling_store::NotificationFilter;

use crate::auth::Auth;
use crate::entities::{MarkerJson, NotificationJson};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{paged, PageRequest, NOTIFICATIONS};
use crate::params::{de, Params};
use crate::routes::statuses::path_id;
use crate::AppState;

#[derive(Deserialize)]
struct ListParams {
    #[serde(default, deserialize_with = "de::string_list")]
    types: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    exclude_types: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    account_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let p: ListParams = Params::from_query(uri.query())?.parse()?;
    let page = PageRequest::parse(uri.query(), NOTIFICATIONS)?.page();
    let types = parse_types(&p.types);
    if !p.types.is_empty() && types.is_empty() {
        // Only unknown kinds asked for: nothing matches.
        return Ok(paged(&state.settings, &uri, Vec::<Value>::new(), &[]));
    }
    let from_account = match p.account_id.as_deref() {
        Some(raw) => Some(raw.parse::<Id>().map_err(|_| ApiError::NotFound)?),
        None => None,
    };
    let filter = NotificationFilter {
        types,
        exclude_types: parse_types(&p.exclude_types),
        from_account,
    };
    let list = state.core.notifications(&caller, &filter, &page).await?;
    let cursors: Vec<Id> = list.iter().map(|n| n.notification.id).collect();
    let items: Vec<NotificationJson> = list
        .iter()
        .map(|n| NotificationJson::new(n, &state.settings))
        .collect();
    Ok(paged(&state.settings, &uri, items, &cursors))
}

pub async fn show(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationJson>> {
    let n = state.core.notification(&caller, path_id(&id)?).await?;
    Ok(Json(NotificationJson::new(&n, &state.settings)))
}

pub async fn dismiss(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .core
        .dismiss_notification(&caller, path_id(&id)?)
        .await?;
    Ok(Json(json!({})))
}

pub async fn clear(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<Value>> {
    state.core.clear_notifications(&caller).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct UnreadParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    limit: Option<String>,
}

pub async fn unread_count(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let p: UnreadParams = Params::from_query(uri.query())?.parse()?;
    let limit = match p.limit {
        Some(l) => l
            .trim()
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest("Invalid limit".into()))?,
        None => 100,
    };
    let count = state.core.unread_notifications(&caller, limit).await?;
    Ok(Json(json!({ "count": count })))
}

#[derive(Deserialize)]
struct MarkerQuery {
    #[serde(default, deserialize_with = "de::string_list")]
    timeline: Vec<String>,
}

fn markers_json(markers: &[starling_store::Marker]) -> Value {
    let mut out = Map::new();
    for m in markers {
        out.insert(m.timeline.clone(), json!(MarkerJson::new(m)));
    }
    Value::Object(out)
}

pub async fn markers(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let p: MarkerQuery = Params::from_query(uri.query())?.parse()?;
    let markers = state.core.markers(&caller, &p.timeline).await?;
    Ok(Json(markers_json(&markers)))
}

/// `POST /api/v1/markers` with `home[last_read_id]` and/or
/// `notifications[last_read_id]`.
pub async fn save_markers(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> ApiResult<Json<Value>> {
    let mut positions = Vec::new();
    for timeline in starling_core::notifications::MARKER_TIMELINES {
        let Some(v) = params.0.get(timeline) else {
            continue;
        };
        let raw = match &v["last_read_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "param is missing or the value is empty: {timeline}[last_read_id]"
                )))
            }
        };
        let id: Id = raw
            .trim()
            .parse()
            .map_err(|_| ApiError::BadRequest("Invalid last_read_id".into()))?;
        positions.push((timeline.to_owned(), id));
    }
    if positions.is_empty() {
        return Err(ApiError::BadRequest(
            "param is missing or the value is empty: home or notifications".into(),
        ));
    }
    let markers = state.core.set_markers(&caller, &positions).await?;
    Ok(Json(markers_json(&markers)))
}
