//! Timelines: home, public, hashtag, and an account's statuses.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use starling_core::timelines::AccountTimelineOptions;
use starling_core::views::StatusView;
use starling_domain::Id;

use crate::auth::{Auth, MaybeAuth};
use crate::error::ApiResult;
use crate::pagination::{paged_json, PageRequest, STATUSES};
use crate::params::{de, Params};
use crate::render::statuses_array;
use crate::routes::statuses::path_id;
use crate::AppState;

/// A page of statuses, cut on their own ids.
pub fn status_list(state: &AppState, uri: &Uri, views: &[StatusView]) -> Response {
    let cursors: Vec<Id> = views.iter().map(|v| v.status.id).collect();
    let body = statuses_array(views.iter(), &state.settings, &state.render);
    paged_json(&state.settings, uri, body, &cursors)
}

pub async fn home(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Response> {
    let page = PageRequest::parse(uri.query(), STATUSES)?.page();
    let views = state.core.home_timeline(&caller, &page).await?;
    Ok(status_list(&state, &uri, &views))
}

#[derive(Deserialize)]
struct PublicParams {
    #[serde(default, deserialize_with = "de::bool_or_false")]
    remote: bool,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    only_media: bool,
}

pub async fn public(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    uri: Uri,
) -> ApiResult<Response> {
    let p: PublicParams = Params::from_query(uri.query())?.parse()?;
    let page = PageRequest::parse(uri.query(), STATUSES)?.page();
    let viewer = viewer.and_then(|p| p.account_id);
    let views = state
        .core
        .public_timeline(viewer, p.remote, p.only_media, &page)
        .await?;
    Ok(status_list(&state, &uri, &views))
}

pub async fn tag(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(tag): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let p: PublicParams = Params::from_query(uri.query())?.parse()?;
    let page = PageRequest::parse(uri.query(), STATUSES)?.page();
    let viewer = viewer.and_then(|p| p.account_id);
    let views = state
        .core
        .tag_timeline(viewer, &tag, p.remote, p.only_media, &page)
        .await?;
    Ok(status_list(&state, &uri, &views))
}

#[derive(Deserialize)]
struct AccountStatusesParams {
    #[serde(default, deserialize_with = "de::bool_or_false")]
    exclude_replies: bool,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    exclude_reblogs: bool,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    only_media: bool,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    pinned: bool,
    #[serde(default, deserialize_with = "de::opt_string")]
    tagged: Option<String>,
}

pub async fn account_statuses(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let p: AccountStatusesParams = Params::from_query(uri.query())?.parse()?;
    let page = PageRequest::parse(uri.query(), STATUSES)?.page();
    let viewer = viewer.and_then(|p| p.account_id);
    let views = state
        .core
        .account_timeline(
            viewer,
            path_id(&id)?,
            AccountTimelineOptions {
                exclude_replies: p.exclude_replies,
                exclude_reblogs: p.exclude_reblogs,
                only_media: p.only_media,
                pinned: p.pinned,
                tagged: p.tagged,
            },
            &page,
        )
        .await?;
    Ok(status_list(&state, &uri, &views))
}
