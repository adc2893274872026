//! [`MediaStore`]: uploads and their processing state.
//!
//! An upload's row lives on its uploader's shard; the attachment itself is
//! kept as one JSON document (`data`) beside the few columns queries need
//! (owner, status, state, age), identically on both adapters.
//!
//! The `state` column is the document's state, or `discarded` for an
//! upload being removed at once ([`MediaStore::discard_media`]): such a row
//! is gone for everyone (no read finds it, no status attaches it, no update
//! changes it) but the sweeper, which finds it among the stale ones.

use async_trait::async_trait;
use starling_domain::{Id, MediaAttachment};

use crate::StoreResult;

#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Keeps a new upload. With `process_later`, a `MediaUploaded` event
    /// is written in the same transaction, so a worker makes its variants
    /// even if this process dies right after answering.
    async fn create_media(&self, media: &MediaAttachment, process_later: bool) -> StoreResult<()>;

    /// One upload, attached or not (not a discarded one).
    async fn media(&self, id: Id) -> StoreResult<Option<MediaAttachment>>;

    /// Replaces an unattached upload that is still exactly `current` (as
    /// read) by `next`: a compare-and-set, so a worker finishing and its
    /// owner describing it at the same time cannot undo each other.
    /// `false` when it changed meanwhile, is gone or is attached (read it
    /// again and retry, or give up).
    async fn update_media(
        &self,
        current: &MediaAttachment,
        next: &MediaAttachment,
    ) -> StoreResult<bool>;

    /// Unattached uploads created before `before_ms`, oldest first, at
    /// most `limit` (for the sweeper, which runs in any worker).
    async fn stale_media(&self, before_ms: i64, limit: usize) -> StoreResult<Vec<MediaAttachment>>;

    /// Removes an upload's row if it is still unattached; `false` otherwise.
    async fn delete_unattached_media(&self, id: Id) -> StoreResult<bool>;

    /// The first step of removing an unattached upload at once (its status
    /// deleted with `delete_media`), before its files go: from now on no
    /// read finds it, no status can attach it, no update changes it, and
    /// its grace period is over, so the sweeper finishes the removal if the
    /// caller does not. `false` when it is attached, gone or discarded
    /// already (then its files are not the caller's to remove).
    async fn discard_media(&self, id: Id) -> StoreResult<bool>;
}

/// The row's document (its `status_id` and `created_at_ms` are kept in
/// columns, which win).
pub(crate) fn encode(media: &MediaAttachment) -> String {
    let document = MediaAttachment {
        status_id: None,
        created_at_ms: 0,
        ..media.clone()
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_string(&document).unwrap_or_default()
}

/// The attachment of a row: its document, with the columns that change
/// without it (the status it is attached to, the time its grace period
/// counts from) taken from the columns.
pub(crate) fn decode(
    data: &str,
    status_id: Option<i64>,
    created_at_ms: i64,
) -> StoreResult<MediaAttachment> {
    let mut media: MediaAttachment = serde_json::from_str(data)
        .map_err(|e| crate::StoreError::Internal(format!("unreadable media row: {e}")))?;
    media.status_id = status_id.map(Id::from_i64);
    media.created_at_ms = created_at_ms;
    Ok(media)
}

/// The columns [`decode`] reads.
pub(crate) const MEDIA_COLUMNS: &str = "data, status_id, created_at";

/// A status's `media` column: its attachments as a JSON array, `''` for
/// none (most statuses, and every row written before attachments).
pub(crate) fn attachments_column(media: &[MediaAttachment]) -> String {
    if media.is_empty() {
        return String::new();
    }
    serde_json::to_string(media).unwrap_or_default()
}

pub(crate) fn attachments_from_column(text: &str) -> StoreResult<Vec<MediaAttachment>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
        .map_err(|_| crate::StoreError::Internal("corrupt row: statuses.media".into()))
}
