//! The social graph: follow, unfollow, relationships, followers and
//! following, blocks, mutes and follow requests.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use starling_core::graph::FollowInput;
use starling_domain::Id;

use crate::auth::Auth;
use crate::entities::RelationshipJson;
use crate::error::ApiResult;
use crate::pagination::{PageRequest, ACCOUNTS};
use crate::params::{de, Params};
use crate::routes::statuses::{account_list, path_id};
use crate::AppState;

type Rel = ApiResult<Json<RelationshipJson>>;

#[derive(Deserialize)]
struct FollowParams {
    #[serde(default, deserialize_with = "de::opt_bool")]
    reblogs: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    notify: Option<bool>,
}

pub async fn follow(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    params: Params,
) -> Rel {
    let p: FollowParams = params.parse()?;
    let rel = state
        .core
        .follow(
            &caller,
            path_id(&id)?,
            FollowInput {
                reblogs: p.reblogs,
                notify: p.notify,
            },
        )
        .await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

pub async fn unfollow(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Rel {
    let rel = state.core.unfollow(&caller, path_id(&id)?).await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

#[derive(Deserialize)]
struct RelationshipsParams {
    #[serde(default, deserialize_with = "de::string_list")]
    id: Vec<String>,
}

pub async fn relationships(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Json<Vec<RelationshipJson>>> {
    let p: RelationshipsParams = Params::from_query(uri.query())?.parse()?;
    // Ids that are not ids name no account: omitted, like unknown ones.
    let ids: Vec<Id> = p.id.iter().filter_map(|s| s.parse().ok()).collect();
    let rels = state.core.relationships(&caller, &ids).await?;
    Ok(Json(rels.iter().map(RelationshipJson::new).collect()))
}

pub async fn followers(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let rows = state.core.followers(path_id(&id)?, &page).await?;
    Ok(account_list(&state, &uri, rows))
}

pub async fn following(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let rows = state.core.following(path_id(&id)?, &page).await?;
    Ok(account_list(&state, &uri, rows))
}

pub async fn block(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Rel {
    let rel = state.core.block(&caller, path_id(&id)?).await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

pub async fn unblock(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Rel {
    let rel = state.core.unblock(&caller, path_id(&id)?).await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

#[derive(Deserialize)]
struct MuteParams {
    #[serde(default, deserialize_with = "de::opt_bool")]
    notifications: Option<bool>,
}

pub async fn mute(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    params: Params,
) -> Rel {
    let p: MuteParams = params.parse()?;
    let rel = state
        .core
        .mute(&caller, path_id(&id)?, p.notifications.unwrap_or(true))
        .await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

pub async fn unmute(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Rel {
    let rel = state.core.unmute(&caller, path_id(&id)?).await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

pub async fn blocks(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let rows = state.core.blocks(&caller, &page).await?;
    Ok(account_list(&state, &uri, rows))
}

pub async fn mutes(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let rows = state.core.mutes(&caller, &page).await?;
    Ok(account_list(&state, &uri, rows))
}

pub async fn follow_requests(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), ACCOUNTS)?.page();
    let rows = state.core.follow_requests(&caller, &page).await?;
    Ok(account_list(&state, &uri, rows))
}

pub async fn authorize_follow_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Rel {
    let rel = state
        .core
        .authorize_follow_request(&caller, path_id(&id)?)
        .await?;
    Ok(Json(RelationshipJson::new(&rel)))
}

pub async fn reject_follow_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Rel {
    let rel = state
        .core
        .reject_follow_request(&caller, path_id(&id)?)
        .await?;
    Ok(Json(RelationshipJson::new(&rel)))
}
