//! Accounts and the inputs that create and change them.

use std::fmt;

use crate::id::{Id, ShardId};
use crate::validation::{reject_nul, ErrorCode, FieldError};

pub const USERNAME_MAX: usize = 30;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 72;
pub const DISPLAY_NAME_MAX: usize = 30;
pub const NOTE_MAX: usize = 500;
pub const FIELDS_MAX: usize = 4;
pub const FIELD_TEXT_MAX: usize = 255;
const EMAIL_MAX: usize = 254;

/// Names nobody may register: they look official or collide with paths.
const RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "help",
    "mod",
    "moderator",
    "postmaster",
    "root",
    "starling",
    "support",
    "webmaster",
];

/// A local username: `[A-Za-z0-9_]{1,30}`, unique case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username someone wants to register (reserved names refused).
    pub fn parse_new(s: &str) -> Result<Self, FieldError> {
        let name = Self::parse(s)?;
        if RESERVED.contains(&name.key().as_str()) {
            return Err(FieldError::new(
                "username",
                ErrorCode::Reserved,
                "is reserved",
            ));
        }
        Ok(name)
    }

    /// Parses an existing username (lookups, admin tools).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        reject_nul("username", s)?;
        let s = s.trim();
        if s.is_empty() {
            return Err(FieldError::blank("username"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(FieldError::new(
                "username",
                ErrorCode::Invalid,
                "must contain only letters, numbers and underscores",
            ));
        }
        if s.len() > USERNAME_MAX {
            return Err(FieldError::too_long("username", USERNAME_MAX));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and lookups use.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The logical shard that owns this account.
    pub fn shard(&self) -> ShardId {
        ShardId::for_key(&self.key())
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, kept as given; compared and indexed lowercased.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        reject_nul("email", s)?;
        let s = s.trim();
        if s.is_empty() {
            return Err(FieldError::blank("email"));
        }
        let valid = s.len() <= EMAIL_MAX
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if !valid {
            return Err(FieldError::invalid("email"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The shard of the email directory row.
    pub fn shard(&self) -> ShardId {
        ShardId::for_key(&self.key())
    }
}

impl fmt::Debug for Email {
    /// Personal data: never printed whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email([redacted])")
    }
}

/// A new password, 8 to 72 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        reject_nul("password", s)?;
        let n = s.chars().count();
        if n == 0 {
            return Err(FieldError::blank("password"));
        }
        if n < PASSWORD_MIN {
            return Err(FieldError::too_short("password", PASSWORD_MIN));
        }
        if n > PASSWORD_MAX {
            return Err(FieldError::too_long("password", PASSWORD_MAX));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Default visibility of new posts (`source.privacy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privacy {
    Public,
    Unlisted,
    Private,
    Direct,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Public => "public",
            Privacy::Unlisted => "unlisted",
            Privacy::Private => "private",
            Privacy::Direct => "direct",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Privacy::Public),
            "unlisted" => Some(Privacy::Unlisted),
            "private" => Some(Privacy::Private),
            "direct" => Some(Privacy::Direct),
            _ => None,
        }
    }
}

/// A profile field (`fields_attributes`): plain text name and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileField {
    pub name: String,
    pub value: String,
}

/// A local account as the domain sees it. Text is stored as the user typed
/// it; rendering to HTML happens at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: Id,
    pub username: String,
    pub display_name: String,
    /// Plain-text biography (`source.note`).
    pub note: String,
    pub fields: Vec<ProfileField>,
    pub locked: bool,
    pub bot: bool,
    pub discoverable: bool,
    pub privacy: Privacy,
    pub sensitive: bool,
    pub language: Option<String>,
    pub created_at_ms: i64,
    pub statuses_count: i64,
    pub followers_count: i64,
    pub following_count: i64,
    pub last_status_at_ms: Option<i64>,
    /// Media storage keys of the profile picture and header, once set
    /// (`None`: the default images).
    pub avatar: Option<String>,
    pub header: Option<String>,
}

impl Account {
    /// A new local account with an empty profile and default settings.
    pub fn new(id: Id, username: &str, language: Option<String>, created_at_ms: i64) -> Self {
        Self {
            id,
            username: username.to_owned(),
            display_name: String::new(),
            note: String::new(),
            fields: vec![],
            locked: false,
            bot: false,
            discoverable: true,
            privacy: Privacy::Public,
            sensitive: false,
            language,
            created_at_ms,
            statuses_count: 0,
            followers_count: 0,
            following_count: 0,
            last_status_at_ms: None,
            avatar: None,
            header: None,
        }
    }
}

/// A validated change to a profile; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub note: Option<String>,
    pub locked: Option<bool>,
    pub bot: Option<bool>,
    pub discoverable: Option<bool>,
    pub privacy: Option<Privacy>,
    pub sensitive: Option<bool>,
    pub language: Option<Option<String>>,
    pub fields: Option<Vec<ProfileField>>,
    /// New storage keys of the profile picture and header (the files are
    /// stored before the profile points at them).
    pub avatar: Option<String>,
    pub header: Option<String>,
}

impl ProfileUpdate {
    pub fn is_empty(&self) -> bool {
        *self == ProfileUpdate::default()
    }

    pub fn apply(&self, account: &mut Account) {
        if let Some(key) = &self.avatar {
            account.avatar = Some(key.clone());
        }
        if let Some(key) = &self.header {
            account.header = Some(key.clone());
        }
        if let Some(v) = &self.display_name {
            account.display_name.clone_from(v);
        }
        if let Some(v) = &self.note {
            account.note.clone_from(v);
        }
        if let Some(v) = self.locked {
            account.locked = v;
        }
        if let Some(v) = self.bot {
            account.bot = v;
        }
        if let Some(v) = self.discoverable {
            account.discoverable = v;
        }
        if let Some(v) = self.privacy {
            account.privacy = v;
        }
        if let Some(v) = self.sensitive {
            account.sensitive = v;
        }
        if let Some(v) = &self.language {
            account.language.clone_from(v);
        }
        if let Some(v) = &self.fields {
            account.fields.clone_from(v);
        }
    }
}

/// Checks a display name's length (characters, not bytes).
pub fn parse_display_name(s: &str) -> Result<String, FieldError> {
    reject_nul("display_name", s)?;
    let s = s.trim();
    if s.chars().count() > DISPLAY_NAME_MAX {
        return Err(FieldError::too_long("display_name", DISPLAY_NAME_MAX));
    }
    Ok(s.to_owned())
}

pub fn parse_note(s: &str) -> Result<String, FieldError> {
    reject_nul("note", s)?;
    if s.chars().count() > NOTE_MAX {
        return Err(FieldError::too_long("note", NOTE_MAX));
    }
    Ok(s.trim_end().to_owned())
}

pub fn parse_fields(fields: Vec<ProfileField>) -> Result<Vec<ProfileField>, FieldError> {
    if fields.len() > FIELDS_MAX {
        return Err(FieldError::too_long("fields", FIELDS_MAX));
    }
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        reject_nul("fields", &f.name)?;
        reject_nul("fields", &f.value)?;
        if f.name.chars().count() > FIELD_TEXT_MAX || f.value.chars().count() > FIELD_TEXT_MAX {
            return Err(FieldError::too_long("fields", FIELD_TEXT_MAX));
        }
        if f.name.trim().is_empty() && f.value.trim().is_empty() {
            continue;
        }
        out.push(ProfileField {
            name: f.name.trim().to_owned(),
            value: f.value.trim().to_owned(),
        });
    }
    Ok(out)
}

/// Language tags as clients send them (`en`, `pt-BR`): 2-3 letters, an
/// optional region.
pub fn parse_language(s: &str) -> Result<Option<String>, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (lang, region) = match s.split_once(['-', '_']) {
        Some((l, r)) => (l, Some(r)),
        None => (s, None),
    };
    let lang_ok = (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_alphabetic());
    let region_ok = region
        .map(|r| (2..=4).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or(true);
    if !lang_ok || !region_ok {
        return Err(FieldError::new(
            "locale",
            ErrorCode::Inclusion,
            "is not included in the list",
        ));
    }
    Ok(Some(match region {
        Some(r) => format!("{}-{}", lang.to_ascii_lowercase(), r),
        None => lang.to_ascii_lowercase(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse(" Alice_1 ").unwrap().as_str(), "Alice_1");
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
        assert_eq!(Username::parse("").unwrap_err().code, ErrorCode::Blank);
        assert_eq!(Username::parse("a b").unwrap_err().code, ErrorCode::Invalid);
        assert_eq!(Username::parse("a-b").unwrap_err().code, ErrorCode::Invalid);
        assert_eq!(
            Username::parse(&"a".repeat(31)).unwrap_err().code,
            ErrorCode::TooLong
        );
        assert!(Username::parse(&"a".repeat(30)).is_ok());
        assert_eq!(
            Username::parse_new("Admin").unwrap_err().code,
            ErrorCode::Reserved
        );
        assert_eq!(
            Username::parse("Alice").unwrap().shard(),
            Username::parse("alice").unwrap().shard()
        );
    }

    #[test]
    fn emails() {
        assert!(Email::parse("a@example.com").is_ok());
        assert_eq!(
            Email::parse("A@Example.com").unwrap().key(),
            "a@example.com"
        );
        for bad in ["a", "a@b", "@b.c", "a@b..c", "a b@c.d", "a@b@c.d", "a@.b"] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code,
                ErrorCode::Invalid,
                "{bad}"
            );
        }
        assert_eq!(Email::parse(" ").unwrap_err().code, ErrorCode::Blank);
    }

    #[test]
    fn passwords() {
        assert_eq!(
            Password::parse("short").unwrap_err().code,
            ErrorCode::TooShort
        );
        assert_eq!(
            Password::parse(&"x".repeat(73)).unwrap_err().code,
            ErrorCode::TooLong
        );
        assert!(Password::parse("long enough").is_ok());
        assert!(!format!("{:?}", Password::parse("long enough").unwrap()).contains("long"));
    }

    #[test]
    fn nul_is_refused_everywhere() {
        let invalid = |r: Result<(), FieldError>, field: &str| {
            let e = r.expect_err(field);
            assert_eq!((e.field, e.code), (field, ErrorCode::Invalid));
        };
        invalid(Username::parse("ali\0ce").map(drop), "username");
        invalid(Username::parse_new("\0").map(drop), "username");
        invalid(Email::parse("a\0@example.com").map(drop), "email");
        invalid(Password::parse("long enough\0").map(drop), "password");
        invalid(parse_display_name("Al\0").map(drop), "display_name");
        invalid(parse_note("hi\0").map(drop), "note");
        for (name, value) in [("a\0", "b"), ("a", "\0b"), ("\0", "")] {
            let field = ProfileField {
                name: name.into(),
                value: value.into(),
            };
            invalid(parse_fields(vec![field]).map(drop), "fields");
        }
    }

    #[test]
    fn languages() {
        assert_eq!(parse_language("EN").unwrap(), Some("en".into()));
        assert_eq!(parse_language("pt-BR").unwrap(), Some("pt-BR".into()));
        assert_eq!(parse_language("").unwrap(), None);
        assert!(parse_language("english!").is_err());
    }
}
