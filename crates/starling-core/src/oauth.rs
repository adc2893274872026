//! OAuth 2: applications, the authorization-code flow (with PKCE), the
//! password and client-credentials grants, revocation, and resolving a bearer
//! token into a [`Principal`].

use starling_domain::oauth::{
    parse_redirect_uris, pkce_s256_matches, AccessToken, App, AuthCode, CODE_TTL_SECS, OOB,
};
use starling_domain::validation::{reject_nul, ErrorCode};
use starling_domain::{
    Email, FieldError, Id, Scope, ScopeSet, Secret, SecretHash, ShardId, ValidationErrors,
};

use crate::{Core, CoreError, CoreResult, OAuthError};

/// Who is calling: the resolved bearer token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token_hash: SecretHash,
    pub token_shard: ShardId,
    pub app_id: Id,
    /// `None` for application tokens.
    pub account_id: Option<Id>,
    pub scopes: ScopeSet,
}

impl Principal {
    /// 403 unless the token holds one of `scopes`.
    pub fn require_scope(&self, scopes: &[Scope]) -> CoreResult<()> {
        if self.scopes.grants_any(scopes) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(
                "This action is outside the authorized scopes",
            ))
        }
    }

    /// The account behind a user token; 422 for application tokens.
    pub fn user(&self) -> CoreResult<Id> {
        self.account_id.ok_or(CoreError::UserRequired)
    }
}

/// `POST /api/v1/apps` input, as received.
#[derive(Clone, Debug, Default)]
pub struct NewApp {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Option<String>,
    pub website: Option<String>,
}

/// A token handed out: the secret is shown to the client once.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Secret,
    pub scopes: ScopeSet,
    pub created_at_ms: i64,
}

/// The parameters of an authorization request, as received.
#[derive(Clone, Debug, Default)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// A checked authorization request: safe to show to the user.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    pub app: App,
    pub redirect_uri: String,
    pub scopes: ScopeSet,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
}

impl AuthorizeRequest {
    pub fn is_oob(&self) -> bool {
        self.redirect_uri == OOB
    }
}

/// Why an authorization request cannot even be shown. These are rendered as
/// an error page, never redirected (the redirect URI is not trusted yet).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    #[error("The client is unknown.")]
    UnknownClient,
    #[error("The redirect URI is not registered for this application.")]
    BadRedirectUri,
    #[error("Only response_type=code is supported.")]
    UnsupportedResponseType,
    #[error("The requested scope is invalid, unknown, or not allowed for this application.")]
    InvalidScope,
    #[error("Only the S256 code challenge method is supported.")]
    UnsupportedChallengeMethod,
}

/// `POST /oauth/token` input, as received.
#[derive(Clone, Debug, Default)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub scope: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

fn default_scopes() -> ScopeSet {
    ScopeSet::of(&[Scope::Read])
}

/// Requested scopes, defaulting to `read`, that the app may grant.
fn requested_scopes(requested: Option<&str>, app: &App) -> Result<ScopeSet, OAuthError> {
    let scopes = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(list) => ScopeSet::parse(list).map_err(|_| OAuthError::InvalidScope)?,
        None => default_scopes(),
    };
    if scopes.is_empty() || !app.scopes.grants_all(scopes) {
        return Err(OAuthError::InvalidScope);
    }
    Ok(scopes)
}

impl Core {
    pub async fn create_app(&self, input: NewApp) -> CoreResult<(App, Secret)> {
        let mut errors = ValidationErrors::default();
        let name = input.client_name.trim().to_owned();
        if let Err(e) = reject_nul("name", &name) {
            errors.push(e);
        } else if name.is_empty() {
            errors.push(FieldError::blank("name"));
        } else if name.chars().count() > 60 {
            errors.push(FieldError::too_long("name", 60));
        }
        let uris = if input.redirect_uris.is_empty() {
            Ok(vec![OOB.to_owned()])
        } else {
            parse_redirect_uris(&input.redirect_uris)
        };
        let uris = errors.check(uris);
        let scopes = match input
            .scopes
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Ok(default_scopes()),
            Some(list) => ScopeSet::parse(list)
                .map_err(|_| FieldError::new("scopes", ErrorCode::Invalid, "are invalid")),
        };
        let scopes = errors.check(scopes);
        let website = input
            .website
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty());
        if let Some(w) = &website {
            if w.contains('\0') || url::Url::parse(w).is_err() || w.len() > 2048 {
                errors.push(FieldError::new("website", ErrorCode::Invalid, "is invalid"));
            }
        }
        errors.into_result()?;
        let (Some(uris), Some(scopes)) = (uris, scopes) else {
            return Err(CoreError::Internal("validated fields missing".into()));
        };
        let client_id = Secret::generate(ShardId::random());
        let client_secret = Secret::generate(client_id.shard());
        let app = App {
            id: self.ids.next(client_id.shard()),
            client_id: client_id.expose().to_owned(),
            client_secret_hash: client_secret.hash(),
            name,
            website,
            redirect_uris: uris,
            scopes,
            created_at_ms: self.clock.now_ms(),
        };
        self.write_app(&app).await?;
        tracing::info!(app_id = %app.id, "application registered");
        Ok((app, client_secret))
    }

    async fn app_by_client_id(&self, client_id: &str) -> CoreResult<Option<App>> {
        let Some(parsed) = Secret::parse(client_id) else {
            return Ok(None);
        };
        Ok(self
            .store
            .app_by_client_id(parsed.shard(), client_id)
            .await?)
    }

    /// Client authentication: the app whose id and secret these are.
    async fn authenticate_client(&self, id: Option<&str>, secret: Option<&str>) -> CoreResult<App> {
        let (Some(id), Some(secret)) = (id, secret) else {
            return Err(OAuthError::InvalidClient.into());
        };
        let app = self
            .app_by_client_id(id)
            .await?
            .ok_or(OAuthError::InvalidClient)?;
        if !app.client_secret_hash.matches(&SecretHash::of(secret)) {
            return Err(OAuthError::InvalidClient.into());
        }
        Ok(app)
    }

    pub async fn app(&self, id: Id) -> CoreResult<App> {
        self.store.app(id).await?.ok_or(CoreError::NotFound)
    }

    /// Resolves a bearer token; `None` if it is not a live token of ours.
    pub async fn authenticate(&self, bearer: &str) -> CoreResult<Option<Principal>> {
        let Some(secret) = Secret::parse(bearer) else {
            return Ok(None);
        };
        let hash = secret.hash();
        let Some(token) = self
            .objects
            .token(&*self.store, secret.shard(), &hash)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Principal {
            token_hash: hash,
            token_shard: secret.shard(),
            app_id: token.app_id,
            account_id: token.account_id,
            scopes: token.scopes,
        }))
    }

    pub(crate) async fn issue_token(
        &self,
        app: &App,
        account: Option<Id>,
        scopes: ScopeSet,
    ) -> CoreResult<IssuedToken> {
        let shard = account.map_or(app.id.shard(), Id::shard);
        let token = Secret::generate(shard);
        let now = self.clock.now_ms();
        self.write_token(
            shard,
            &AccessToken {
                token_hash: token.hash(),
                app_id: app.id,
                account_id: account,
                scopes,
                created_at_ms: now,
            },
        )
        .await?;
        Ok(IssuedToken {
            token,
            scopes,
            created_at_ms: now,
        })
    }

    /// Checks an authorization request before showing the consent page.
    pub async fn check_authorize(
        &self,
        p: &AuthorizeParams,
    ) -> CoreResult<Result<AuthorizeRequest, AuthorizeError>> {
        let Some(app) = self
            .app_by_client_id(p.client_id.as_deref().unwrap_or(""))
            .await?
        else {
            return Ok(Err(AuthorizeError::UnknownClient));
        };
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(uri) if app.allows_redirect(uri) => uri.to_owned(),
            // One registered URI: it may be left out (RFC 6749 §3.1.2.3).
            None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
            _ => return Ok(Err(AuthorizeError::BadRedirectUri)),
        };
        if p.response_type.as_deref() != Some("code") {
            return Ok(Err(AuthorizeError::UnsupportedResponseType));
        }
        let Ok(scopes) = requested_scopes(p.scope.as_deref(), &app) else {
            return Ok(Err(AuthorizeError::InvalidScope));
        };
        let code_challenge = p.code_challenge.clone().filter(|c| !c.is_empty());
        if code_challenge.is_some()
            && p.code_challenge_method.as_deref().unwrap_or("plain") != "S256"
        {
            return Ok(Err(AuthorizeError::UnsupportedChallengeMethod));
        }
        Ok(Ok(AuthorizeRequest {
            app,
            redirect_uri,
            scopes,
            state: p.state.clone().filter(|s| !s.is_empty()),
            code_challenge,
        }))
    }

    /// Checks a sign-in (email or username, and password).
    pub async fn check_password(&self, login: &str, password: &str) -> CoreResult<Option<Id>> {
        // No account has NUL in its username, email or password: a sign-in
        // with one fails like any wrong one (and never reaches the store).
        if reject_nul("username", login).is_err() || reject_nul("password", password).is_err() {
            let _ = self.passwords.verify(password.to_owned(), None).await?;
            return Ok(None);
        }
        let login = login.trim();
        let record = if login.contains('@') {
            match Email::parse(login) {
                Ok(email) => self.store.login_by_email(&email.key()).await?,
                Err(_) => None,
            }
        } else {
            self.store
                .login_by_username(&login.to_ascii_lowercase())
                .await?
        };
        let (id, hash) = match record {
            Some(r) => (Some(r.account_id), Some(r.password_hash)),
            None => (None, None),
        };
        let ok = self.passwords.verify(password.to_owned(), hash).await?;
        Ok(id.filter(|_| ok))
    }

    /// The user approved: a single-use code for the client.
    pub async fn approve(&self, request: &AuthorizeRequest, account: Id) -> CoreResult<Secret> {
        let code = Secret::generate(account.shard());
        self.write_auth_code(
            code.shard(),
            &AuthCode {
                code_hash: code.hash(),
                app_id: request.app.id,
                account_id: account,
                redirect_uri: request.redirect_uri.clone(),
                scopes: request.scopes,
                code_challenge: request.code_challenge.clone(),
                expires_at_ms: self.clock.now_ms() + CODE_TTL_SECS * 1000,
            },
        )
        .await?;
        tracing::info!(app_id = %request.app.id, account_id = %account, "authorization granted");
        Ok(code)
    }

    /// `POST /oauth/token`.
    pub async fn token(&self, p: TokenParams) -> CoreResult<IssuedToken> {
        let grant = p.grant_type.as_deref().unwrap_or("");
        if !matches!(
            grant,
            "authorization_code" | "client_credentials" | "password"
        ) {
            return Err(if grant.is_empty() {
                OAuthError::InvalidRequest("grant_type".into())
            } else {
                OAuthError::UnsupportedGrantType
            }
            .into());
        }
        let app = self
            .authenticate_client(p.client_id.as_deref(), p.client_secret.as_deref())
            .await?;
        match grant {
            "authorization_code" => {
                let code = p
                    .code
                    .as_deref()
                    .ok_or(OAuthError::InvalidRequest("code".into()))?;
                let code = Secret::parse(code).ok_or(OAuthError::InvalidGrant)?;
                let record = self
                    .write_take_auth_code(code.shard(), &code.hash())
                    .await?
                    .ok_or(OAuthError::InvalidGrant)?;
                let redirect_ok = match p.redirect_uri.as_deref() {
                    Some(uri) => uri == record.redirect_uri,
                    None => app.redirect_uris.len() == 1,
                };
                let pkce_ok = match (&record.code_challenge, p.code_verifier.as_deref()) {
                    (Some(challenge), Some(verifier)) => pkce_s256_matches(verifier, challenge),
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                if record.app_id != app.id
                    || record.expires_at_ms <= self.clock.now_ms()
                    || !redirect_ok
                    || !pkce_ok
                {
                    return Err(OAuthError::InvalidGrant.into());
                }
                self.issue_token(&app, Some(record.account_id), record.scopes)
                    .await
            }
            "password" => {
                let scopes = requested_scopes(p.scope.as_deref(), &app)?;
                let (Some(login), Some(password)) = (p.username.as_deref(), p.password.as_deref())
                else {
                    return Err(OAuthError::InvalidRequest("username and password".into()).into());
                };
                let account = self
                    .check_password(login, password)
                    .await?
                    .ok_or(OAuthError::InvalidGrant)?;
                self.issue_token(&app, Some(account), scopes).await
            }
            _ => {
                let scopes = requested_scopes(p.scope.as_deref(), &app)?;
                self.issue_token(&app, None, scopes).await
            }
        }
    }

    /// `POST /oauth/revoke`: idempotent; a token of another client is refused.
    pub async fn revoke(
        &self,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        token: Option<&str>,
    ) -> CoreResult<()> {
        let app = self.authenticate_client(client_id, client_secret).await?;
        let token = token.ok_or(OAuthError::InvalidRequest("token".into()))?;
        let Some(secret) = Secret::parse(token) else {
            return Ok(());
        };
        let hash = secret.hash();
        match self.store.token(secret.shard(), &hash).await? {
            Some(t) if t.app_id != app.id => Err(OAuthError::UnauthorizedClient.into()),
            Some(_) => {
                self.write_revoke_token(secret.shard(), &hash).await?;
                Ok(())
            }
            None => Ok(()),
        }
    }
}
