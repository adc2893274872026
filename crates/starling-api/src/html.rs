//! Server-rendered pages: the OAuth sign-in and consent page, the
//! out-of-band code page, error pages and the front page.
//!
//! Every value is escaped; pages forbid framing (clickjacking) and caching.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
.buttons{margin-top:1.2rem;display:flex;gap:.6rem}button{padding:.5rem 1rem}.error{color:#a00}code{font-size:1.1rem;word-break:break-all;background:#f3f3f3;padding:.4rem;display:block}\
ul{padding-left:1.2rem}";

/// Wraps `body` in a page with the security headers every page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        text(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Authorization error",
        &format!(
            "<h1>Something is wrong with this request</h1><p class=\"error\">{}</p>",
            text(message)
        ),
    )
}

/// The sign-in and consent form. `hidden` are the OAuth parameters carried
/// through the POST.
pub struct ConsentPage<'a> {
    pub instance: &'a str,
    pub app_name: &'a str,
    pub app_website: Option<&'a str>,
    pub scopes: Vec<&'a str>,
    pub hidden: Vec<(&'a str, String)>,
    pub login: &'a str,
    pub error: Option<&'a str>,
}

impl ConsentPage<'_> {
    pub fn render(&self, status: StatusCode) -> Response {
        let hidden: String = self
            .hidden
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    attr(k),
                    attr(v)
                )
            })
            .collect();
        let scopes: String = self
            .scopes
            .iter()
            .map(|s| {
                format!(
                    "<li><code style=\"display:inline;padding:0\">{}</code></li>",
                    text(s)
                )
            })
            .collect();
        let website = self
            .app_website
            .map(|w| format!(" (<span class=\"website\">{}</span>)", text(w)))
            .unwrap_or_default();
        let error = self
            .error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", text(e)))
            .unwrap_or_default();
        let body = format!(
            "<h1>Sign in to {instance}</h1>\
             <p><strong>{app}</strong>{website} asks for access to your account:</p><ul>{scopes}</ul>{error}\
             <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
             <label for=\"username\">Email or username</label>\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{login}\" required>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\
             <div class=\"buttons\"><button type=\"submit\" name=\"decision\" value=\"approve\">Authorize</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></div></form>",
            instance = text(self.instance),
            app = text(self.app_name),
            login = attr(self.login),
        );
        page(status, "Authorize application", &body)
    }
}

/// Shown for the out-of-band redirect URI: the user copies the code.
pub fn code_page(app_name: &str, code: &str) -> Response {
    page(
        StatusCode::OK,
        "Authorization code",
        &format!(
            "<h1>Authorization code</h1><p>Copy this code and paste it into <strong>{}</strong>:</p>\
             <code id=\"authorization-code\">{}</code>",
            text(app_name),
            text(code)
        ),
    )
}

pub fn denied_page(app_name: &str) -> Response {
    page(
        StatusCode::OK,
        "Authorization denied",
        &format!(
            "<h1>Access denied</h1><p><strong>{}</strong> was not given access.</p>",
            text(app_name)
        ),
    )
}
