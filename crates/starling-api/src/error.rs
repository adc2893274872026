//! The one place where failures become HTTP responses.
//!
//! Every error a client sees is JSON `{"error": "..."}` (plus
//! `error_description` for OAuth and `details` for validation), with the
//! status codes Mastodon uses. Internal detail is logged once here and never
//! sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use starling_core::{CoreError, OAuthError};
use starling_domain::ValidationErrors;

#[derive(Debug)]
pub enum ApiError {
    /// 400 with a message (bad syntax, missing parameter).
    BadRequest(String),
    /// 401: missing, malformed or unknown token.
    InvalidToken,
    Forbidden(String),
    NotFound,
    /// 422 with a plain message.
    Unprocessable(String),
    Validation(ValidationErrors),
    OAuth(OAuthError),
    PayloadTooLarge,
    /// 429, with the `X-RateLimit-*` headers of the limit that was hit.
    TooManyRequests(starling_cache::Decision),
    Unavailable,
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unprocessable(_) | ApiError::Validation(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::OAuth(e) => match e {
                OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
                OAuthError::UnauthorizedClient => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            },
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        match self {
            ApiError::BadRequest(m) | ApiError::Forbidden(m) | ApiError::Unprocessable(m) => {
                json!({ "error": m })
            }
            ApiError::InvalidToken => json!({ "error": "The access token is invalid" }),
            ApiError::NotFound => json!({ "error": "Record not found" }),
            ApiError::Validation(errors) => {
                let mut details = Map::new();
                for e in &errors.0 {
                    let entry = details
                        .entry(e.field.to_owned())
                        .or_insert_with(|| Value::Array(vec![]));
                    if let Value::Array(list) = entry {
                        list.push(
                            json!({ "error": e.code.as_str(), "description": e.description }),
                        );
                    }
                }
                json!({ "error": errors.message(), "details": details })
            }
            ApiError::OAuth(e) => {
                json!({ "error": e.code(), "error_description": e.description() })
            }
            ApiError::PayloadTooLarge => json!({ "error": "Request entity too large" }),
            ApiError::TooManyRequests(_) => json!({ "error": "Too many requests" }),
            ApiError::Unavailable => {
                json!({ "error": "Service temporarily unavailable, try again shortly" })
            }
            ApiError::Internal => json!({ "error": "Internal server error" }),
        }
    }
}

/// A JSON error body with the right content type, for any status.
pub fn json_error(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_error(self.status(), self.body());
        if let ApiError::TooManyRequests(decision) = &self {
            crate::middleware::add_rate_headers(response.headers_mut(), decision);
        }
        if matches!(self, ApiError::InvalidToken) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Validation(v) => ApiError::Validation(v),
            CoreError::NotFound => ApiError::NotFound,
            CoreError::Unprocessable(m) => ApiError::Unprocessable(m),
            CoreError::Forbidden(m) => ApiError::Forbidden(m.to_owned()),
            CoreError::UserRequired => {
                ApiError::Unprocessable("This method requires an authenticated user".into())
            }
            CoreError::OAuth(e) => ApiError::OAuth(e),
            CoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                ApiError::Unavailable
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::Internal
            }
        }
    }
}
