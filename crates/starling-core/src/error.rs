//! What a use case can answer instead of a result.

use starling_domain::{FieldError, ValidationErrors};
use starling_store::StoreError;

/// OAuth 2 error codes (RFC 6749 §5.2) with Doorkeeper's descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthError {
    InvalidClient,
    InvalidGrant,
    InvalidScope,
    UnsupportedGrantType,
    UnauthorizedClient,
    InvalidRequest(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant => "invalid_grant",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::InvalidRequest(_) => "invalid_request",
        }
    }

    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidClient => "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.".into(),
            OAuthError::InvalidGrant => "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.".into(),
            OAuthError::InvalidScope => "The requested scope is invalid, unknown, or malformed.".into(),
            OAuthError::UnsupportedGrantType => "The authorization grant type is not supported by the authorization server.".into(),
            OAuthError::UnauthorizedClient => "You are not authorized to revoke this token".into(),
            OAuthError::InvalidRequest(what) => format!("The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed: {what}."),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input broke a rule; 422 with per-field details.
    #[error("{}", .0.message())]
    Validation(ValidationErrors),
    /// A rule broken that is not one field's (Mastodon's
    /// `Mastodon::ValidationError`); 422 with this message.
    #[error("{0}")]
    Unprocessable(String),
    /// Absent, or not visible to the caller; 404.
    #[error("Record not found")]
    NotFound,
    /// Not allowed for this caller; 403.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The endpoint needs a user, the token has none; 422.
    #[error("This method requires an authenticated user")]
    UserRequired,
    #[error("{}", .0.code())]
    OAuth(OAuthError),
    /// A dependency is down or too slow; 503.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug; 500, logged with detail, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(field) => CoreError::Validation(FieldError::taken(field).into()),
            StoreError::Unavailable(m) => CoreError::Unavailable(m),
            StoreError::Internal(m) => CoreError::Internal(m),
        }
    }
}

impl From<ValidationErrors> for CoreError {
    fn from(e: ValidationErrors) -> Self {
        CoreError::Validation(e)
    }
}

impl From<FieldError> for CoreError {
    fn from(e: FieldError) -> Self {
        CoreError::Validation(e.into())
    }
}

impl From<OAuthError> for CoreError {
    fn from(e: OAuthError) -> Self {
        CoreError::OAuth(e)
    }
}
