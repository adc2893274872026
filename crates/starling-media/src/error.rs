//! The one error type of the crate, in the two families callers tell apart:
//! the upload's fault (`Unsupported`, `TooLarge`, `Invalid`: a 422 with the
//! message as it is) and the storage's fault (`Storage`: a 5xx, retried by
//! the worker, its detail logged and never shown to the user).

/// What went wrong with an upload or with the store. `Display` reads as a
/// message for the uploader for every variant but [`MediaError::Storage`],
/// whose text is for the logs.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A format Starling does not take (HEIC, AVIF, audio, HTML, ...).
    #[error("unsupported file type: {0}")]
    Unsupported(String),
    /// Over a size, pixel, duration or frame-rate limit.
    #[error("file is too large: {0}")]
    TooLarge(String),
    /// Not what it claims to be: truncated, corrupt, trailing data, a
    /// decoder error, or too slow to process.
    #[error("invalid file: {0}")]
    Invalid(String),
    /// The object store failed (I/O, network, credentials): retry later.
    #[error("media storage error: {0}")]
    Storage(String),
}

impl MediaError {
    /// Whether the upload itself is at fault (answer 422, do not retry).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Storage(_))
    }
}
