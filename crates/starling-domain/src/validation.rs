//! Validation errors in the shape Mastodon reports them: one message for
//! people ("Validation failed: Username has already been taken") and per-field
//! machine codes (`ERR_TAKEN`) that clients such as Mastodon.py parse.

/// Mastodon's registration error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Blank,
    Invalid,
    Taken,
    Reserved,
    Accepted,
    TooLong,
    TooShort,
    Inclusion,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Blank => "ERR_BLANK",
            ErrorCode::Invalid => "ERR_INVALID",
            ErrorCode::Taken => "ERR_TAKEN",
            ErrorCode::Reserved => "ERR_RESERVED",
            ErrorCode::Accepted => "ERR_ACCEPTED",
            ErrorCode::TooLong => "ERR_TOO_LONG",
            ErrorCode::TooShort => "ERR_TOO_SHORT",
            ErrorCode::Inclusion => "ERR_INCLUSION",
        }
    }
}

/// One thing wrong with one input field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The parameter name as the client sent it (`username`).
    pub field: &'static str,
    pub code: ErrorCode,
    /// Mastodon's wording, e.g. "has already been taken".
    pub description: String,
}

impl FieldError {
    pub fn new(field: &'static str, code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            field,
            code,
            description: description.into(),
        }
    }

    pub fn blank(field: &'static str) -> Self {
        Self::new(field, ErrorCode::Blank, "can't be blank")
    }

    pub fn too_long(field: &'static str, max: usize) -> Self {
        Self::new(
            field,
            ErrorCode::TooLong,
            format!("is too long (maximum is {max} characters)"),
        )
    }

    pub fn too_short(field: &'static str, min: usize) -> Self {
        Self::new(
            field,
            ErrorCode::TooShort,
            format!("is too short (minimum is {min} characters)"),
        )
    }

    pub fn invalid(field: &'static str) -> Self {
        Self::new(field, ErrorCode::Invalid, "is invalid")
    }

    pub fn taken(field: &'static str) -> Self {
        Self::new(field, ErrorCode::Taken, "has already been taken")
    }
}

/// Everything wrong with one request's input, in field order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Collects the error of a parse into `self`, returning the value if any.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// `Err(self)` if anything was collected.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// "Validation failed: Username has already been taken, Email is invalid"
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{} {}", humanize(e.field), e.description))
            .collect();
        format!("Validation failed: {}", parts.join(", "))
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        Self(vec![e])
    }
}

/// Refuses text carrying a NUL character (U+0000).
///
/// PostgreSQL cannot store NUL in text (it answers with an error, which
/// was a 500), SQLite would store it and truncate it in places: so every
/// domain input that reaches the store passes here, whatever way it came
/// in. The HTTP edge already answers 400 to NUL in parameters; this is the
/// check for inputs that arrive another way (JSON bodies, the admin CLI,
/// other callers of the use cases), answered 422 like any invalid field.
pub fn reject_nul(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        Err(FieldError::new(
            field,
            ErrorCode::Invalid,
            "contains a null character",
        ))
    } else {
        Ok(())
    }
}

/// `display_name` → `Display name`, the way Rails names attributes.
fn humanize(field: &str) -> String {
    let spaced = field
        .split('_')
        .map(|w| if w == "uri" { "URI" } else { w })
        .collect::<Vec<_>>()
        .join(" ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused() {
        assert_eq!(reject_nul("note", "fine"), Ok(()));
        assert_eq!(reject_nul("note", ""), Ok(()));
        let e = reject_nul("note", "a\0b").unwrap_err();
        assert_eq!((e.field, e.code), ("note", ErrorCode::Invalid));
        assert!(reject_nul("note", "\0").is_err());
    }

    #[test]
    fn message_reads_like_mastodon() {
        let mut errs = ValidationErrors::default();
        errs.push(FieldError::taken("username"));
        errs.push(FieldError::too_long("display_name", 30));
        assert_eq!(
            errs.message(),
            "Validation failed: Username has already been taken, Display name is too long (maximum is 30 characters)"
        );
    }
}
