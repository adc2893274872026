//! Media uploads: receive, process (now or in a worker), describe, serve
//! and sweep.
//!
//! An upload is checked by its bytes, never by the Content-Type it came
//! with. Small images are processed on the request path (Mastodon answers
//! 200 with their URLs); anything else is kept as it came under
//! `media/<id>/upload`, its row written with a `MediaUploaded` event in the
//! same transaction, and a worker of the `media` consumer group makes the
//! variants (the API answers 202, then 206 until ready). Processing strips
//! every byte of metadata by re-encoding (see `starling_media::process`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use starling_domain::validation::ErrorCode;
use starling_domain::{FieldError, Focus, Id, MediaAttachment, MediaFile, MediaState, MediaType};
use starling_media::{MediaError, MediaKind, MediaStorage, Processed, StoredObject, Variant};

use crate::{Core, CoreError, CoreResult, Principal};

/// Images up to this size are processed while the uploader waits (a few
/// hundred milliseconds); larger ones, and every video, go to a worker.
pub const PROCESS_NOW_MAX_BYTES: usize = 4 * 1024 * 1024;

/// How long `POST /api/v1/media` (which Mastodon answers once processed)
/// waits for a worker to process a video; after that it answers like v2.
pub const WAIT_FOR_WORKER: Duration = Duration::from_secs(20);

/// How many times a read-modify-write of an upload is tried.
const MODIFY_TRIES: usize = 8;

/// How long an unattached upload is kept (Mastodon: a day).
pub const UNATTACHED_GRACE: Duration = Duration::from_secs(24 * 3600);

/// An upload as the API received it.
#[derive(Clone, Debug)]
pub struct UploadInput {
    pub bytes: Bytes,
    pub description: Option<String>,
    pub focus: Option<Focus>,
}

/// Changes to an unattached upload (`PUT /api/v1/media/:id`).
#[derive(Clone, Debug, Default)]
pub struct MediaUpdate {
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub focus: Option<Focus>,
}

/// The key an upload waiting for a worker is kept under.
pub fn upload_key(id: Id) -> String {
    format!("media/{id}/upload")
}

fn media_error(e: MediaError) -> CoreError {
    match e {
        MediaError::Storage(m) => CoreError::Unavailable(format!("media storage: {m}")),
        other => invalid_file(other.to_string()),
    }
}

fn invalid_file(why: String) -> CoreError {
    CoreError::Validation(FieldError::new("file", ErrorCode::Invalid, why).into())
}

fn kind_of(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Gifv => MediaType::Gifv,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
    }
}

fn file_of(key: String, v: &Variant) -> MediaFile {
    MediaFile {
        key,
        content_type: v.content_type.to_owned(),
        width: v.width,
        height: v.height,
        size: v.bytes.len() as u64,
    }
}

impl Core {
    /// The media storage this process writes to and serves from.
    pub fn media_storage(&self) -> &Arc<dyn MediaStorage> {
        &self.media
    }

    /// Receives an upload. A small image, or any image with `wait`, is
    /// processed before this returns; anything else is handed to a worker
    /// and comes back `Processing` (with `wait`, once the worker is done
    /// or [`WAIT_FOR_WORKER`] has passed).
    pub async fn upload_media(
        &self,
        caller: &Principal,
        input: UploadInput,
        wait: bool,
    ) -> CoreResult<MediaAttachment> {
        let me = caller.user()?;
        let kind = starling_media::sniff(&input.bytes).ok_or_else(|| {
            invalid_file("content type is not supported (images: JPEG, PNG, GIF, WebP; video: MP4, WebM, MOV)".into())
        })?;
        let limits = &self.settings.media_limits;
        let max = match kind {
            MediaKind::Image => limits.image_max_bytes,
            _ => limits.video_max_bytes,
        };
        if input.bytes.len() > max {
            return Err(invalid_file(format!(
                "file size must be less than {} MB",
                max / (1024 * 1024)
            )));
        }
        let id = self.ids.next(me.shard());
        let mut media = MediaAttachment {
            id,
            account_id: me,
            status_id: None,
            kind: kind_of(kind),
            state: MediaState::Processing,
            description: input.description,
            focus: input.focus,
            original: None,
            small: None,
            blurhash: None,
            duration: None,
            error: None,
            created_at_ms: self.clock.now_ms(),
        };
        // Video is never processed on the request path (a transcode can
        // outlast the request's deadline, and the work would be lost):
        // `wait` waits for the worker instead, within a bound.
        let now = kind == MediaKind::Image && (wait || input.bytes.len() <= PROCESS_NOW_MAX_BYTES);
        if now {
            let processed = self.process_bytes(input.bytes).await?;
            self.store_variants(&mut media, processed).await?;
            self.write_media(&media, false).await?;
            return Ok(media);
        }
        self.media
            .put(&upload_key(id), input.bytes, "application/octet-stream")
            .await
            .map_err(media_error)?;
        self.write_media(&media, true).await?;
        if wait {
            let deadline = tokio::time::Instant::now() + WAIT_FOR_WORKER;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                match self.store.media(id).await? {
                    Some(m) if m.state != MediaState::Processing => return Ok(m),
                    Some(_) => {}
                    None => break,
                }
            }
        }
        Ok(media)
    }

    /// Decodes and re-encodes off the async threads, at most one upload
    /// per core at a time; a panic in a codec is a refused file, not a dead
    /// worker.
    async fn process_bytes(&self, bytes: Bytes) -> CoreResult<Processed> {
        let limits = self.settings.media_limits.clone();
        let slot = self
            .media_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CoreError::Unavailable("media processing is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            starling_media::process(&bytes, &limits)
        })
        .await
        .map_err(|_| invalid_file("could not be processed".into()))?
        .map_err(media_error)
    }

    /// Puts the variants in the storage and notes them in `media`.
    async fn store_variants(
        &self,
        media: &mut MediaAttachment,
        processed: Processed,
    ) -> CoreResult<()> {
        let original_key =
            starling_media::original_key(media.id.as_i64() as u64, processed.original.ext);
        let small_key = starling_media::small_key(media.id.as_i64() as u64, processed.small.ext);
        let original = file_of(original_key.clone(), &processed.original);
        let small = file_of(small_key.clone(), &processed.small);
        for (key, variant) in [
            (&original_key, processed.original),
            (&small_key, processed.small),
        ] {
            self.media
                .put(key, Bytes::from(variant.bytes), variant.content_type)
                .await
                .map_err(media_error)?;
        }
        media.kind = kind_of(processed.kind);
        media.original = Some(original);
        media.small = Some(small);
        media.blurhash = processed.blurhash;
        media.duration = processed.duration;
        media.state = MediaState::Ready;
        media.error = None;
        Ok(())
    }

    /// The caller's own upload (attached or not); someone else's is 404.
    pub async fn own_media(&self, caller: &Principal, id: Id) -> CoreResult<MediaAttachment> {
        let me = caller.user()?;
        match self.store.media(id).await? {
            Some(m) if m.account_id == me => Ok(m),
            _ => Err(CoreError::NotFound),
        }
    }

    /// Changes an unattached upload's description or focus.
    pub async fn update_media(
        &self,
        caller: &Principal,
        id: Id,
        update: MediaUpdate,
    ) -> CoreResult<MediaAttachment> {
        let me = caller.user()?;
        self.modify_media(id, |media| {
            // Someone else's upload, or one already attached (Mastodon
            // edits those through the status): not found.
            if media.account_id != me || media.status_id.is_some() {
                return Err(CoreError::NotFound);
            }
            if let Some(description) = &update.description {
                media.description = description.clone();
            }
            if let Some(focus) = update.focus {
                media.focus = Some(focus);
            }
            Ok(())
        })
        .await?
        .ok_or(CoreError::NotFound)
    }

    /// Reads an upload, applies `change` and writes it back if nobody wrote
    /// it meanwhile (else reads again); `None` when it is gone or attached.
    async fn modify_media(
        &self,
        id: Id,
        mut change: impl FnMut(&mut MediaAttachment) -> CoreResult<()>,
    ) -> CoreResult<Option<MediaAttachment>> {
        for _ in 0..MODIFY_TRIES {
            let Some(current) = self.store.media(id).await? else {
                return Ok(None);
            };
            if current.status_id.is_some() {
                return Ok(None);
            }
            let mut next = current.clone();
            change(&mut next)?;
            if next == current || self.write_media_update(&current, &next).await? {
                return Ok(Some(next));
            }
        }
        Err(CoreError::Unavailable(
            "the upload keeps changing; try again".into(),
        ))
    }

    /// The worker's half of a deferred upload: makes its variants, or marks
    /// it failed with the reason. Idempotent (a redelivered event finds it
    /// done); a storage outage is an error, so the event is retried.
    pub async fn process_media(&self, id: Id) -> CoreResult<()> {
        let Some(media) = self.store.media(id).await? else {
            return Ok(());
        };
        if media.state != MediaState::Processing {
            return Ok(());
        }
        let key = upload_key(id);
        let outcome = match self.media.get(&key).await.map_err(media_error)? {
            None => Err("the upload was lost before it was processed".to_owned()),
            Some(upload) => match self.process_bytes(upload.bytes).await {
                Ok(processed) => {
                    let mut done = media.clone();
                    self.store_variants(&mut done, processed).await?;
                    Ok(done)
                }
                Err(CoreError::Validation(e)) => Err(e.message()),
                Err(e) => return Err(e),
            },
        };
        // The description may have changed while this worked: only the
        // processing fields are taken over onto the newest row.
        self.modify_media(id, |row| {
            match &outcome {
                Ok(done) => {
                    row.kind = done.kind;
                    row.state = MediaState::Ready;
                    row.original = done.original.clone();
                    row.small = done.small.clone();
                    row.blurhash = done.blurhash.clone();
                    row.duration = done.duration;
                    row.error = None;
                }
                Err(why) => {
                    row.state = MediaState::Failed;
                    row.error = Some(why.clone());
                }
            }
            Ok(())
        })
        .await?;
        // Written before the upload is dropped, so a crash in between
        // leaves a finished row and a stray file for the sweeper.
        self.media.delete(&key).await.map_err(media_error)?;
        Ok(())
    }

    /// One stored file, for the serving route.
    pub async fn media_file(&self, key: &str) -> CoreResult<Option<StoredObject>> {
        self.media.get(key).await.map_err(media_error)
    }

    /// Removes a deleted status's uploads at once (`delete_media`) instead
    /// of keeping them for a redraft. Each is discarded first (from then on
    /// nothing attaches or changes it, and its grace period is over), then
    /// its files go, then its row: a process that stops halfway, or a
    /// storage that fails, leaves the rest to the sweeper's next run. The
    /// status is deleted either way, so a failure is logged, not returned.
    pub(crate) async fn remove_media_now(&self, media: &[MediaAttachment]) {
        for m in media {
            match self.write_media_discard(m.id).await {
                Ok(true) => {}
                // Attached again (by a redraft that came first) or gone.
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(media_id = %m.id, error = %e,
                        "could not discard an upload; it goes after its grace period");
                    continue;
                }
            }
            let mut files_gone = true;
            for key in media_keys(m) {
                if let Err(e) = self.media.delete(&key).await {
                    tracing::warn!(media_id = %m.id, key = %key, error = %e,
                        "could not remove a deleted upload's file; the sweeper retries");
                    files_gone = false;
                    break;
                }
            }
            if files_gone {
                if let Err(e) = self.write_media_removal(m.id).await {
                    tracing::warn!(media_id = %m.id, error = %e,
                        "could not remove a deleted upload's row; the sweeper retries");
                }
            }
        }
    }

    /// Removes unattached uploads older than the grace period, files first;
    /// how many. Safe in several workers at once.
    pub async fn sweep_media(&self, limit: usize) -> CoreResult<usize> {
        let before = self.clock.now_ms() - UNATTACHED_GRACE.as_millis() as i64;
        let stale = self.store.stale_media(before, limit).await?;
        let mut removed = 0;
        for media in stale {
            for key in media_keys(&media) {
                self.media.delete(&key).await.map_err(media_error)?;
            }
            if self.write_media_removal(media.id).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Which profile image an upload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileImage {
    /// Shown small: the preview variant (about 480x480) is kept.
    Avatar,
    /// Shown wide: the original (capped in pixels) is kept.
    Header,
}

impl Core {
    /// Processes a profile picture or header like any image upload (its
    /// real format checked, metadata dropped) and stores the variant it
    /// is shown as; its storage key.
    pub(crate) async fn store_profile_image(
        &self,
        account: Id,
        bytes: Bytes,
        which: ProfileImage,
    ) -> CoreResult<String> {
        let field = match which {
            ProfileImage::Avatar => "avatar",
            ProfileImage::Header => "header",
        };
        let refuse = |why: &str| {
            CoreError::Validation(FieldError::new(field, ErrorCode::Invalid, why.to_owned()).into())
        };
        if starling_media::sniff(&bytes) != Some(MediaKind::Image) {
            return Err(refuse("must be a still JPEG, PNG, GIF or WebP image"));
        }
        if bytes.len() > self.settings.media_limits.image_max_bytes {
            return Err(refuse("file size is too large"));
        }
        let processed = match self.process_bytes(bytes).await {
            Ok(p) => p,
            Err(CoreError::Validation(e)) => {
                let why =
                    e.0.first()
                        .map_or_else(String::new, |f| f.description.clone());
                return Err(refuse(&why));
            }
            Err(e) => return Err(e),
        };
        let id = self.ids.next(account.shard()).as_i64() as u64;
        let (key, variant) = match which {
            ProfileImage::Avatar => (
                starling_media::small_key(id, processed.small.ext),
                processed.small,
            ),
            ProfileImage::Header => (
                starling_media::original_key(id, processed.original.ext),
                processed.original,
            ),
        };
        self.media
            .put(&key, Bytes::from(variant.bytes), variant.content_type)
            .await
            .map_err(media_error)?;
        Ok(key)
    }

    /// Removes a file nothing points at any more; a failure leaves a stray
    /// file, logged, not an error for the caller.
    pub(crate) async fn forget_media_file(&self, key: &str) {
        if let Err(e) = self.media.delete(key).await {
            tracing::warn!(key, error = %e, "could not remove a replaced media file");
        }
    }
}

/// Every storage key an attachment may have files under.
pub fn media_keys(media: &MediaAttachment) -> Vec<String> {
    let mut keys = vec![upload_key(media.id)];
    keys.extend(media.original.iter().map(|f| f.key.clone()));
    keys.extend(media.small.iter().map(|f| f.key.clone()));
    keys
}
