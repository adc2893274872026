//! OAuth 2 applications, authorization codes and access tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::id::Id;
use crate::scope::ScopeSet;
use crate::secret::SecretHash;
use crate::validation::{reject_nul, ErrorCode, FieldError};

/// The out-of-band redirect URI: show the code instead of redirecting.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

/// How long an authorization code stays usable (Doorkeeper's default).
pub const CODE_TTL_SECS: i64 = 600;

/// A registered client application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: Id,
    /// Public identifier; a [`crate::Secret`]'s text (it carries the shard).
    pub client_id: String,
    pub client_secret_hash: SecretHash,
    pub name: String,
    pub website: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: ScopeSet,
    pub created_at_ms: i64,
}

impl App {
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }
}

/// Schemes a redirect URI may never have: following one runs script or
/// opens local data in the user's browser with the code in it.
const FORBIDDEN_REDIRECT_SCHEMES: &[&str] = &["javascript", "vbscript", "data", "file"];

/// Parses `redirect_uris`: one or more absolute URIs (or the OOB URN),
/// separated by newlines or whitespace. Refused: relative URIs, fragments
/// (RFC 6749 §3.1.2), script and local schemes ([`FORBIDDEN_REDIRECT_SCHEMES`],
/// in any case) and control characters anywhere. Custom schemes of native
/// apps (`com.example.app://cb`) are fine.
pub fn parse_redirect_uris(list: &[String]) -> Result<Vec<String>, FieldError> {
    let invalid = || {
        FieldError::new(
            "redirect_uri",
            ErrorCode::Invalid,
            "must be an absolute URI.",
        )
    };
    for s in list {
        reject_nul("redirect_uri", s)?;
        // Whitespace separates URIs; any other control character (and the
        // C1 range, which some browsers drop) has no place in one.
        if s.chars()
            .any(|c| c.is_control() && !matches!(c, ' ' | '\t' | '\n' | '\r'))
        {
            return Err(invalid());
        }
    }
    let uris: Vec<String> = list
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    if uris.is_empty() {
        return Err(FieldError::blank("redirect_uri"));
    }
    for uri in &uris {
        if uri == OOB {
            continue;
        }
        // Checked on the text itself as well as on the parsed URL, so no
        // spelling the parser normalizes slips past.
        let scheme = uri
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if FORBIDDEN_REDIRECT_SCHEMES.contains(&scheme.as_str()) {
            return Err(invalid());
        }
        let ok = match url::Url::parse(uri) {
            Ok(u) => u.fragment().is_none() && !FORBIDDEN_REDIRECT_SCHEMES.contains(&u.scheme()),
            Err(_) => false,
        };
        if !ok {
            return Err(invalid());
        }
    }
    Ok(uris)
}

/// A single-use authorization code, bound to everything the token request
/// must repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: SecretHash,
    pub app_id: Id,
    pub account_id: Id,
    pub redirect_uri: String,
    pub scopes: ScopeSet,
    /// PKCE S256 challenge, if the client sent one.
    pub code_challenge: Option<String>,
    pub expires_at_ms: i64,
}

/// A stored access token (only its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    pub token_hash: SecretHash,
    pub app_id: Id,
    /// `None` for application tokens (client_credentials).
    pub account_id: Option<Id>,
    pub scopes: ScopeSet,
    pub created_at_ms: i64,
}

/// RFC 7636 S256: `BASE64URL(SHA256(verifier)) == challenge`.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    // RFC 7636 §4.1: 43 to 128 characters.
    if !(43..=128).contains(&verifier.len()) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    SecretHash::of(&computed).matches(&SecretHash::of(challenge))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc_example() {
        // RFC 7636 appendix B.
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn redirect_uris() {
        assert_eq!(parse_redirect_uris(&[OOB.into()]).unwrap(), vec![OOB]);
        assert_eq!(
            parse_redirect_uris(&["https://a.example/cb\nhttp://localhost:3000/x".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(parse_redirect_uris(&["not a uri".into()]).is_err());
        assert!(parse_redirect_uris(&["/relative".into()]).is_err());
        assert!(parse_redirect_uris(&["https://a.example/cb#frag".into()]).is_err());
        assert!(parse_redirect_uris(&[]).is_err());
        // Native apps register custom schemes.
        assert!(parse_redirect_uris(&["com.example.app:/oauth".into()]).is_ok());
        assert!(parse_redirect_uris(&["com.example.app://cb".into()]).is_ok());
        assert!(parse_redirect_uris(&[format!(" {OOB}\n")]).is_ok());
    }

    #[test]
    fn script_and_local_redirect_uris_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1) ",
            "\tJAVASCRIPT://x/%0aalert(1)",
            "vbscript:msgbox(1)",
            "VBScript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "DATA:text/html;base64,PHNjcmlwdD4=",
            "file:///etc/passwd",
            "FILE://host/share",
            "https://ok.example/cb\njavascript:alert(1)",
        ] {
            let e = parse_redirect_uris(&[bad.into()]).expect_err(bad);
            assert_eq!(
                (e.field, e.code),
                ("redirect_uri", ErrorCode::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn redirect_uris_with_control_characters_are_refused() {
        for bad in [
            "https://a.example/c\u{0}b",
            "https://a.example/c\u{7}b",
            "https://a.example/c\u{1b}b",
            "https://a.example/c\u{7f}b",
            "https://a.example/c\u{85}b",
            "java\u{0}script:alert(1)",
            "com.example.app://c\u{8}b",
        ] {
            assert!(parse_redirect_uris(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
