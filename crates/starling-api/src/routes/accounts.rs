//! Account endpoints: registration, the caller's own account, profiles.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use starling_core::accounts::{ProfileInput, Registration};
use starling_domain::account::ProfileField;
use starling_domain::Id;

use crate::auth::{Auth, MaybeAuth};
use crate::entities::{AccountJson, CredentialAccountJson, TokenJson};
use crate::error::{ApiError, ApiResult};
use crate::middleware::{enforce_ip, ip_of};
use crate::params::{de, Params, ParamsWithFiles};
use crate::AppState;

#[derive(Deserialize)]
struct RegisterParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    username: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    email: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    password: Option<String>,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    agreement: bool,
    #[serde(default, deserialize_with = "de::opt_string")]
    locale: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    reason: Option<String>,
}

/// `POST /api/v1/accounts`: sign up through an app token.
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Auth(caller): Auth,
    params: Params,
) -> ApiResult<Json<TokenJson>> {
    let ip = ip_of(&state, &headers, Some(peer));
    enforce_ip(
        &state,
        "register",
        &ip,
        state.settings.rate_limits.registrations,
    )
    .await?;
    let p: RegisterParams = params.parse()?;
    let token = state
        .core
        .register(
            &caller,
            Registration {
                username: p.username,
                email: p.email,
                password: p.password,
                agreement: p.agreement,
                locale: p.locale,
                reason: p.reason,
            },
        )
        .await?;
    Ok(Json(TokenJson::new(&token)))
}

pub async fn verify_credentials(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> ApiResult<Json<CredentialAccountJson>> {
    let account = state.core.own_account(&caller).await?;
    let requests = state.core.follow_requests_count(&caller).await?;
    Ok(Json(CredentialAccountJson::new(
        &account,
        requests,
        &state.settings,
    )))
}

#[derive(Deserialize, Default)]
struct SourceParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    privacy: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    sensitive: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_string")]
    language: Option<String>,
}

#[derive(Deserialize)]
struct UpdateParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    note: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    locked: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    bot: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    discoverable: Option<bool>,
    #[serde(default)]
    source: Option<SourceParams>,
    #[serde(default)]
    fields_attributes: Option<Value>,
}

/// `fields_attributes` as an array, or an object keyed by index (JSON
/// clients send both).
fn parse_fields(v: Value) -> Result<Vec<ProfileField>, ApiError> {
    let items: Vec<Value> = match v {
        Value::Array(items) => items,
        Value::Object(map) => {
            let mut entries: Vec<(u32, Value)> = map
                .into_iter()
                .map(|(k, v)| k.parse().map(|i| (i, v)))
                .collect::<Result<_, _>>()
                .map_err(|_| ApiError::Unprocessable("Invalid fields_attributes".into()))?;
            entries.sort_by_key(|(i, _)| *i);
            entries.into_iter().map(|(_, v)| v).collect()
        }
        Value::Null => vec![],
        _ => return Err(ApiError::Unprocessable("Invalid fields_attributes".into())),
    };
    let text = |v: &Value, k: &str| match &v[k] {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ApiError::Unprocessable("Invalid fields_attributes".into())),
    };
    items
        .iter()
        .map(|item| {
            Ok(ProfileField {
                name: text(item, "name")?,
                value: text(item, "value")?,
            })
        })
        .collect()
}

pub async fn update_credentials(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ParamsWithFiles(params, files): ParamsWithFiles,
) -> ApiResult<Json<CredentialAccountJson>> {
    let p: UpdateParams = params.parse()?;
    let file = |name: &str| {
        files
            .iter()
            .rev()
            .find(|f| f.name == name && !f.bytes.is_empty())
            .map(|f| f.bytes.clone())
    };
    let source = p.source.unwrap_or_default();
    let account = state
        .core
        .update_profile(
            &caller,
            ProfileInput {
                display_name: p.display_name,
                note: p.note,
                locked: p.locked,
                bot: p.bot,
                discoverable: p.discoverable,
                privacy: source.privacy,
                sensitive: source.sensitive,
                language: source.language,
                fields: p.fields_attributes.map(parse_fields).transpose()?,
                avatar: file("avatar"),
                header: file("header"),
            },
        )
        .await?;
    let requests = state.core.follow_requests_count(&caller).await?;
    Ok(Json(CredentialAccountJson::new(
        &account,
        requests,
        &state.settings,
    )))
}

pub async fn show(
    State(state): State<AppState>,
    _viewer: MaybeAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountJson>> {
    let id: Id = id.parse().map_err(|_| ApiError::NotFound)?;
    let account = state.core.account(id).await?;
    Ok(Json(AccountJson::new(&account, &state.settings)))
}

#[derive(Deserialize)]
pub struct LookupQuery {
    acct: Option<String>,
}

pub async fn lookup(State(state): State<AppState>, uri: Uri) -> ApiResult<Json<AccountJson>> {
    let q: LookupQuery = Params::from_query(uri.query())?.parse()?;
    let acct = q.acct.filter(|a| !a.trim().is_empty()).ok_or_else(|| {
        ApiError::BadRequest("param is missing or the value is empty: acct".into())
    })?;
    let account = state.core.lookup(&acct, &state.settings.domain()).await?;
    Ok(Json(AccountJson::new(&account, &state.settings)))
}
