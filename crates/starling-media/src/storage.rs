//! The storage seam: where processed media files live. One small trait
//! ([`MediaStorage`]: put, get, delete of whole objects under a key), two
//! adapters ([`FsStorage`] for the embedded shape, [`crate::S3Storage`] for
//! the distributed one), one conformance suite (`tests/storage.rs`) that
//! both pass.
//!
//! Keys are id-based (`media/<id>/original.<ext>`, see [`original_key`]), so
//! any api node finds any file through the shared store, and a URL never
//! changes meaning: a re-processed file gets a new media id, never a new
//! body under an old key (the serving side can say `immutable`).
//!
//! Keys are checked by every adapter the same way ([`validate_key`]):
//! segments of `[A-Za-z0-9._-]` separated by `/`, none empty, none starting
//! with a dot (so no `.` or `..`, no hidden files), no leading `/`, at most
//! 512 bytes. A key that fails is a `MediaError::Storage` (a caller bug,
//! never user input).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::MediaError;

/// An object as stored: its bytes and the content type given to `put`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: Bytes,
    pub content_type: String,
}

/// Whole-object storage under string keys.
#[async_trait::async_trait]
pub trait MediaStorage: Send + Sync + 'static {
    /// Stores bytes under key (overwrites). A reader sees the old object or
    /// the new one, never a mix.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), MediaError>;
    /// Whole object, or None when absent.
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, MediaError>;
    /// Removes; absent is not an error.
    async fn delete(&self, key: &str) -> Result<(), MediaError>;
}

/// The key of a media attachment's original (re-encoded) file.
pub fn original_key(media_id: u64, ext: &str) -> String {
    format!("media/{media_id}/original.{ext}")
}

/// The key of a media attachment's preview (image, or a video's poster).
pub fn small_key(media_id: u64, ext: &str) -> String {
    format!("media/{media_id}/small.{ext}")
}

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 512;

/// Checks a key against the rules in the module docs.
pub fn validate_key(key: &str) -> Result<(), MediaError> {
    let bad = |why: &str| {
        Err(MediaError::Storage(format!(
            "invalid storage key {key:?}: {why}"
        )))
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return bad("empty or too long");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty segment (leading, trailing or double slash)");
        }
        if segment.starts_with('.') {
            return bad("segment starting with a dot");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("characters other than A-Z a-z 0-9 . _ -");
        }
    }
    Ok(())
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> MediaError {
    MediaError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Media files on the local filesystem, for the embedded shape (one node;
/// by default under `data_dir/media`).
///
/// Layout: the object for key `k` is the plain file `root/k` (an operator
/// can look at it, or a web server serve it); its content type is the
/// one-line file `root/.content-types/k`. Writes go to `root/.tmp/` and are
/// renamed into place, so readers never see a half-written file; the
/// content type is written before the object and removed after it, so a
/// present object always has one. Two concurrent puts of the same key with
/// different content types may pair one's bytes with the other's type;
/// media keys are written once, so that is not a case that arises.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

const TYPES_DIR: &str = ".content-types";
const TMP_DIR: &str = ".tmp";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

impl FsStorage {
    /// Storage under `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory everything is under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding the object for a (valid) key.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn type_path(&self, key: &str) -> PathBuf {
        self.root.join(TYPES_DIR).join(key)
    }

    /// Writes `bytes` to `target` through a temporary file and a rename.
    async fn write_atomic(&self, target: &Path, bytes: &[u8]) -> Result<(), MediaError> {
        let tmp_dir = self.root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(|e| io_error("creating", &tmp_dir, e))?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error("creating", parent, e))?;
        }
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_error("creating", &tmp, e))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, bytes)
                .await
                .map_err(|e| io_error("writing", &tmp, e))?;
            file.sync_all()
                .await
                .map_err(|e| io_error("syncing", &tmp, e))?;
            drop(file);
            match tokio::fs::rename(&tmp, target).await {
                // The directory was removed by a delete of a sibling key
                // since it was made: make it again, once.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if let Some(parent) = target.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(|e| io_error("creating", parent, e))?;
                    }
                    tokio::fs::rename(&tmp, target).await
                }
                other => other,
            }
            .map_err(|e| io_error("renaming into", target, e))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

#[async_trait::async_trait]
impl MediaStorage for FsStorage {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), MediaError> {
        validate_key(key)?;
        let content_type = content_type.trim();
        if content_type.contains(['\n', '\r']) {
            return Err(MediaError::Storage(format!(
                "invalid content type {content_type:?}"
            )));
        }
        self.write_atomic(&self.type_path(key), content_type.as_bytes())
            .await?;
        self.write_atomic(&self.object_path(key), &bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, MediaError> {
        validate_key(key)?;
        let path = self.object_path(key);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &path, e)),
        };
        let type_path = self.type_path(key);
        let content_type = match tokio::fs::read_to_string(&type_path).await {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            Ok(_) => DEFAULT_CONTENT_TYPE.to_owned(),
            Err(e) if e.kind() == ErrorKind::NotFound => DEFAULT_CONTENT_TYPE.to_owned(),
            Err(e) => return Err(io_error("reading", &type_path, e)),
        };
        Ok(Some(StoredObject {
            bytes,
            content_type,
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), MediaError> {
        validate_key(key)?;
        for path in [self.object_path(key), self.type_path(key)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("removing", &path, e)),
            }
        }
        // Best effort: drop the key's directory (`media/<id>`) once empty;
        // never higher, where other keys' directories are being made. A
        // put racing with this re-creates it (see `write_atomic`).
        if key.contains('/') {
            for path in [self.object_path(key), self.type_path(key)] {
                if let Some(dir) = path.parent() {
                    let _ = tokio::fs::remove_dir(dir).await;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(original_key(42, "jpg"), "media/42/original.jpg");
        assert_eq!(small_key(42, "png"), "media/42/small.png");
        for ok in ["media/1/original.jpg", "a", "a-b_c.d/e"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a/./b",
            "a//b",
            "a/",
            ".hidden",
            "a\\b",
            "a b",
            "a\0b",
            "é",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
