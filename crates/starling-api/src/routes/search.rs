//! `GET /api/v2/search` and `GET /api/v1/accounts/search`.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use starling_core::search::SearchKinds;

use crate::auth::{Auth, MaybeAuth};
use crate::entities::{AccountJson, StatusJson, TagJson};
use crate::error::{ApiError, ApiResult};
use crate::params::{de, Params};
use crate::AppState;

#[derive(Deserialize)]
struct SearchParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    q: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string", rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    limit: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    offset: Option<String>,
}

fn number(name: &str, v: Option<&str>, default: usize, max: usize) -> ApiResult<usize> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("Invalid {name}")))?;
            if n < 0 {
                return Err(ApiError::BadRequest(format!("Invalid {name}")));
            }
            Ok((n as usize).min(max))
        }
    }
}

pub async fn v2(
    State(state): State<AppState>,
    MaybeAuth(viewer): MaybeAuth,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let p: SearchParams = Params::from_query(uri.query())?.parse()?;
    let q = p
        .q
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("param is missing or the value is empty: q".into()))?;
    let kinds = match p.kind.as_deref() {
        None | Some("") => SearchKinds {
            accounts: true,
            hashtags: true,
            statuses: true,
        },
        Some("accounts") => SearchKinds {
            accounts: true,
            ..Default::default()
        },
        Some("hashtags") => SearchKinds {
            hashtags: true,
            ..Default::default()
        },
        Some("statuses") => SearchKinds {
            statuses: true,
            ..Default::default()
        },
        Some(_) => return Err(ApiError::BadRequest("Invalid type".into())),
    };
    let limit = number("limit", p.limit.as_deref(), 20, 40)?.max(1);
    let offset = number("offset", p.offset.as_deref(), 0, 10_000)?;
    let viewer = viewer.and_then(|p| p.account_id);
    let r = state.core.search(viewer, &q, kinds, limit, offset).await?;
    Ok(Json(json!({
        "accounts": r.accounts.iter().map(|a| AccountJson::new(a, &state.settings)).collect::<Vec<_>>(),
        "statuses": StatusJson::list(&r.statuses, &state.settings),
        "hashtags": r.hashtags.iter().map(|t| TagJson::new(t, &state.settings)).collect::<Vec<_>>(),
    })))
}

pub async fn accounts(
    State(state): State<AppState>,
    Auth(caller): Auth,
    uri: Uri,
) -> ApiResult<Json<Vec<AccountJson>>> {
    caller.user()?;
    let p: SearchParams = Params::from_query(uri.query())?.parse()?;
    let q = p
        .q
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("param is missing or the value is empty: q".into()))?;
    let limit = number("limit", p.limit.as_deref(), 40, 80)?.max(1);
    let offset = number("offset", p.offset.as_deref(), 0, 10_000)?;
    let found = state.core.search_accounts(&q, limit, offset).await?;
    Ok(Json(
        found
            .iter()
            .map(|a| AccountJson::new(a, &state.settings))
            .collect(),
    ))
}
