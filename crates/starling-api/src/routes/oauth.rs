//! OAuth endpoints: app registration, the authorize page, token and revoke.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use starling_core::oauth::{AuthorizeParams, AuthorizeRequest, NewApp, TokenParams};

use crate::auth::Auth;
use crate::entities::{ApplicationJson, CredentialApplicationJson, TokenJson};
use crate::error::{ApiError, ApiResult};
use crate::html::{code_page, denied_page, error_page, ConsentPage};
use crate::middleware::{enforce_ip, ip_of};
use crate::params::{de, Params};
use crate::AppState;

#[derive(Deserialize)]
struct AppParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    client_name: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    redirect_uris: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_space_list")]
    scopes: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    website: Option<String>,
}

pub async fn create_app(
    State(state): State<AppState>,
    params: Params,
) -> ApiResult<Json<CredentialApplicationJson>> {
    let p: AppParams = params.parse()?;
    let (app, secret) = state
        .core
        .create_app(NewApp {
            client_name: p.client_name.unwrap_or_default(),
            redirect_uris: p.redirect_uris,
            scopes: p.scopes,
            website: p.website,
        })
        .await?;
    Ok(Json(CredentialApplicationJson {
        client_id: app.client_id.clone(),
        client_secret: secret.expose().to_owned(),
        client_secret_expires_at: 0,
        app: ApplicationJson::new(&app),
    }))
}

pub async fn verify_app(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Json<ApplicationJson>> {
    let app = state.core.app(principal.app_id).await?;
    Ok(Json(ApplicationJson::new(&app)))
}

#[derive(Deserialize, Default)]
struct AuthorizeForm {
    #[serde(default, deserialize_with = "de::opt_string")]
    response_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    redirect_uri: Option<String>,
    #[serde(default, deserialize_with = "de::opt_space_list")]
    scope: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    state: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    code_challenge: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    code_challenge_method: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    username: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    password: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    decision: Option<String>,
}

impl AuthorizeForm {
    fn oauth(&self) -> AuthorizeParams {
        AuthorizeParams {
            response_type: self.response_type.clone(),
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scope: self.scope.clone(),
            state: self.state.clone(),
            code_challenge: self.code_challenge.clone(),
            code_challenge_method: self.code_challenge_method.clone(),
        }
    }
}

fn consent(
    state: &AppState,
    req: &AuthorizeRequest,
    login: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let domain = state.settings.domain();
    let mut hidden = vec![
        ("response_type", "code".to_owned()),
        ("client_id", req.app.client_id.clone()),
        ("redirect_uri", req.redirect_uri.clone()),
        ("scope", req.scopes.to_string()),
    ];
    if let Some(s) = &req.state {
        hidden.push(("state", s.clone()));
    }
    if let Some(c) = &req.code_challenge {
        hidden.push(("code_challenge", c.clone()));
        hidden.push(("code_challenge_method", "S256".to_owned()));
    }
    ConsentPage {
        instance: &domain,
        app_name: &req.app.name,
        app_website: req.app.website.as_deref(),
        scopes: req.scopes.iter().map(|s| s.as_str()).collect(),
        hidden,
        login,
        error,
    }
    .render(status)
}

/// Checks the request; on failure the HTML error page to show instead.
async fn checked(state: &AppState, form: &AuthorizeForm) -> Result<AuthorizeRequest, Response> {
    match state.core.check_authorize(&form.oauth()).await {
        Ok(Ok(req)) => Ok(req),
        Ok(Err(e)) => Err(error_page(StatusCode::BAD_REQUEST, &e.to_string())),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// `GET /oauth/authorize`: the sign-in and consent page.
pub async fn authorize_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let form: AuthorizeForm = Params::from_query(query.as_deref())
        .and_then(|p| p.parse())
        .unwrap_or_default();
    match checked(&state, &form).await {
        Ok(req) => consent(&state, &req, "", None, StatusCode::OK),
        Err(page) => page,
    }
}

/// `?code=…&state=…` appended to the client's redirect URI, keeping its
/// own query.
fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            // 302, as Doorkeeper answers (axum's `Redirect::to` is a 303).
            match HeaderValue::from_str(url.as_str()) {
                Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI is invalid."),
            }
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI is invalid."),
    }
}

/// `POST /oauth/authorize`: the form's answer.
pub async fn authorize_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let form: AuthorizeForm = params.parse().unwrap_or_default();
    let req = match checked(&state, &form).await {
        Ok(req) => req,
        Err(page) => return page,
    };
    let state_param = req.state.clone().unwrap_or_default();
    let mut back: Vec<(&str, &str)> = vec![];
    if form.decision.as_deref() != Some("approve") {
        if req.is_oob() {
            return denied_page(&req.app.name);
        }
        back.push(("error", "access_denied"));
        if !state_param.is_empty() {
            back.push(("state", &state_param));
        }
        return redirect_with(&req.redirect_uri, &back);
    }
    let ip = ip_of(&state, &headers, Some(peer));
    if let Err(e) = enforce_ip(&state, "sign_in", &ip, state.settings.rate_limits.sign_in).await {
        return e.into_response();
    }
    let login = form.username.clone().unwrap_or_default();
    let account = match state
        .core
        .check_password(&login, form.password.as_deref().unwrap_or(""))
        .await
    {
        Ok(Some(id)) => id,
        Ok(None) => {
            return consent(
                &state,
                &req,
                &login,
                Some("Invalid email or password."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let code = match state.core.approve(&req, account).await {
        Ok(code) => code,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if req.is_oob() {
        return code_page(&req.app.name, code.expose());
    }
    back.push(("code", code.expose()));
    if !state_param.is_empty() {
        back.push(("state", &state_param));
    }
    redirect_with(&req.redirect_uri, &back)
}

/// Client credentials from HTTP Basic (`client_secret_basic`), if present.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default, deserialize_with = "de::opt_string")]
    grant_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    client_secret: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    code: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    redirect_uri: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    code_verifier: Option<String>,
    #[serde(default, deserialize_with = "de::opt_space_list")]
    scope: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    username: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    password: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    token: Option<String>,
}

impl TokenForm {
    fn client(&self, headers: &HeaderMap) -> (Option<String>, Option<String>) {
        match basic_credentials(headers) {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (self.client_id.clone(), self.client_secret.clone()),
        }
    }
}

fn no_store<T: IntoResponse>(body: T) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let ip = ip_of(&state, &headers, Some(peer));
    enforce_ip(&state, "sign_in", &ip, state.settings.rate_limits.sign_in).await?;
    let f: TokenForm = params.parse()?;
    let (client_id, client_secret) = f.client(&headers);
    let issued = state
        .core
        .token(TokenParams {
            grant_type: f.grant_type,
            client_id,
            client_secret,
            code: f.code,
            redirect_uri: f.redirect_uri,
            code_verifier: f.code_verifier,
            scope: f.scope,
            username: f.username,
            password: f.password,
        })
        .await?;
    Ok(no_store(Json(TokenJson::new(&issued))))
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<serde_json::Value>> {
    let f: TokenForm = params.parse()?;
    let (client_id, client_secret) = f.client(&headers);
    state
        .core
        .revoke(
            client_id.as_deref(),
            client_secret.as_deref(),
            f.token.as_deref(),
        )
        .await?;
    if let Some(token) = f.token.as_deref() {
        // With read replicas, a request still bearing the token meets the
        // primary (where it is gone) rather than a replica not told yet.
        state.mark_fresh(token).await;
    }
    Ok(Json(serde_json::json!({})))
}
