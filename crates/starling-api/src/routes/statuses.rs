//! Status endpoints: post, read, delete, thread, boost, favourite, and who
//! boosted or favourited.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use starling_core::statuses::PostInput;
use starling_domain::Id;

use crate::auth::{Auth, MaybeAuth};
use crate::entities::{AccountJson, StatusJson};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{paged_accounts, paged_json, PageRequest, ACCOUNTS, STATUSES};
use crate::params::{de, strict_bool, Params};
use crate::render::statuses_array;
use crate::AppState;

/// An id from a path: anything that is not one is simply not found.
pub fn path_id(raw: &str) -> ApiResult<Id> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

#[derive(Deserialize)]
struct PostParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    in_reply_to_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    visibility: Option<String>,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    sensitive: bool,
    #[serde(default, deserialize_with = "de::opt_string")]
    spoiler_text: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    language: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    media_ids: Vec<String>,
    #[serde(default)]
    poll: Option<Value>,
    #[serde(default, deserialize_with = "de::opt_string")]
    scheduled_at: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<StatusJson>> {
    let p: PostParams = params.parse()?;
    if p.poll.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::Unprocessable("Polls are not supported".into()));
    }
    if p.scheduled_at.is_some() {
        return Err(ApiError::Unprocessable(
            "Scheduled statuses are not supported".into(),
        ));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let view = state
        .core
        .post_status(
            &caller,
            PostInput {
                text: p.status,
                in_reply_to_id: p.in_reply_to_id,
                visibility: p.visibility,
                sensitive: p.sensitive,
                spoiler_text: p.spoiler_text,
                language: p.language,
                media_ids: p.media_ids,
                idempotency_key,
            },
        )
        .await?;
    Ok(Json(StatusJson::new(&view, &state.settings)))
}

pub async fn show(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusJson>> {
    let viewer = viewer.and_then(|p| p.account_id);
    let view = state.core.status(viewer, path_id(&id)?).await?;
    Ok(Json(StatusJson::new(&view, &state.settings)))
}

/// `DELETE /api/v1/statuses/:id`: the deleted status with its source text
/// (delete and redraft). With `delete_media` (Mastodon 4.4) its uploads go
/// at once rather than being kept for a redraft; a value that is not a
/// boolean is refused rather than taken for yes.
pub async fn delete(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<StatusJson>> {
    let delete_media = strict_bool("delete_media", params.0.get("delete_media"))?;
    let view = state
        .core
        .delete_status(&caller, path_id(&id)?, delete_media)
        .await?;
    Ok(Json(StatusJson::with_text(
        &view,
        &state.settings,
        &view.status.text,
    )))
}

pub async fn context(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let viewer = viewer.and_then(|p| p.account_id);
    let (ancestors, descendants) = state.core.context(viewer, path_id(&id)?).await?;
    Ok(Json(json!({
        "ancestors": StatusJson::list(&ancestors, &state.settings),
        "descendants": StatusJson::list(&descendants, &state.settings),
    })))
}

#[derive(Deserialize)]
struct ReblogParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    visibility: Option<String>,
}

pub async fn reblog(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<StatusJson>> {
    let p: ReblogParams = params.parse()?;
    let view = state
        .core
        .reblog(&caller, path_id(&id)?, p.visibility.as_deref())
        .await?;
    Ok(Json(StatusJson::new(&view, &state.settings)))
}

pub async fn unreblog(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusJson>> {
    let view = state.core.unreblog(&caller, path_id(&id)?).await?;
    Ok(Json(StatusJson::new(&view, &state.settings)))
}

pub async fn favourite(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusJson>> {
    let view = state.core.favourite(&caller, path_id(&id)?).await?;
    Ok(Json(StatusJson::new(&view, &state.settings)))
}

pub async fn unfavourite(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusJson>> {
    let view = state.core.unfavourite(&caller, path_id(&id)?).await?;
    Ok(Json(StatusJson::new(&view, &state.settings)))
}

pub async fn reblogged_by(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let viewer = viewer.and_then(|p| p.account_id);
    let rows = state
        .core
        .reblogged_by(viewer, path_id(&id)?, &page)
        .await?;
    Ok(account_list(&state, &uri, rows))
}

pub async fn favourited_by(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let viewer = viewer.and_then(|p| p.account_id);
    let rows = state
        .core
        .favourited_by(viewer, path_id(&id)?, &page)
        .await?;
    Ok(account_list(&state, &uri, rows))
}

/// A page of accounts with the Link header on their row cursors.
pub fn account_list(
    state: &AppState,
    uri: &Uri,
    rows: starling_core::statuses::AccountPage,
) -> Response {
    let cursors: Vec<Id> = rows.iter().map(|(c, _)| *c).collect();
    let items: Vec<AccountJson> = rows
        .iter()
        .map(|(_, a)| AccountJson::new(a, &state.settings))
        .collect();
    // The handler parsed the same query already: this cannot fail there.
    let limit = PageRequest::parse(uri.query(), ACCOUNTS).map_or(usize::MAX, |p| p.limit);
    paged_accounts(&state.settings, uri, items, &cursors, limit)
}

/// `GET /api/v1/favourites`: paged by favourite id.
pub async fn favourites(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), STATUSES)?.page();
    let rows = state.core.favourites(&caller, &page).await?;
    let cursors: Vec<Id> = rows.iter().map(|(c, _)| *c).collect();
    let body = statuses_array(rows.iter().map(|(_, v)| v), &state.settings, &state.render);
    Ok(paged_json(&state.settings, &uri, body, &cursors))
}
