//! Media attachments: what an upload is, as the store keeps it and the API
//! shows it.
//!
//! An upload lives on its uploader's shard (so attaching it to a status,
//! which is on the same shard, is one transaction). Its files are in the
//! media storage under id-based keys (`media/<id>/original.<ext>`,
//! `media/<id>/small.<ext>`), so any process can serve any file and a key
//! never changes what it holds once the upload is ready.

use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Mastodon's limit on a description (alt text), in characters.
pub const DESCRIPTION_MAX: usize = 1500;

/// What kind of media an attachment is (`type` in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Image,
    Gifv,
    Video,
    Audio,
    Unknown,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Gifv => "gifv",
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "image" => MediaType::Image,
            "gifv" => MediaType::Gifv,
            "video" => MediaType::Video,
            "audio" => MediaType::Audio,
            _ => MediaType::Unknown,
        }
    }
}

/// Where an upload is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    /// Received; a worker is making its variants (the API answers 206).
    Processing,
    /// Its files are in the storage.
    Ready,
    /// Could not be processed (unreadable, too large once decoded); the
    /// reason is kept for its owner.
    Failed,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Processing => "processing",
            MediaState::Ready => "ready",
            MediaState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "processing" => Some(MediaState::Processing),
            "ready" => Some(MediaState::Ready),
            "failed" => Some(MediaState::Failed),
            _ => None,
        }
    }
}

/// One stored file of an attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaFile {
    /// Its key in the media storage.
    pub key: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

/// The focal point (`focus`), each axis in [-1, 1] (0,0 is the centre).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Focus {
    pub x: f64,
    pub y: f64,
}

// Its numbers are finite (parse refuses NaN and infinities), so equality
// is an equivalence.
impl Eq for Focus {}

impl Focus {
    /// Parses Mastodon's `"x,y"`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (x, y) = s.trim().split_once(',')?;
        let x: f64 = x.trim().parse().ok()?;
        let y: f64 = y.trim().parse().ok()?;
        let ok = |v: f64| v.is_finite() && (-1.0..=1.0).contains(&v);
        (ok(x) && ok(y)).then_some(Self { x, y })
    }
}

/// An upload and, once processed, its files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaAttachment {
    pub id: Id,
    pub account_id: Id,
    /// The status it is attached to; `None` while it is only an upload.
    pub status_id: Option<Id>,
    pub kind: MediaType,
    pub state: MediaState,
    pub description: Option<String>,
    pub focus: Option<Focus>,
    pub original: Option<MediaFile>,
    pub small: Option<MediaFile>,
    pub blurhash: Option<String>,
    /// Seconds, for video and audio.
    pub duration: Option<f64>,
    /// Why processing failed, for its owner.
    pub error: Option<String>,
    pub created_at_ms: i64,
}

// `duration` comes from ffprobe as a finite number and `focus` is finite:
// equality is an equivalence.
impl Eq for MediaAttachment {}

impl MediaAttachment {
    /// Processed, with its files in the storage.
    pub fn is_ready(&self) -> bool {
        self.state == MediaState::Ready && self.original.is_some()
    }
}

/// Checks a description (alt text): at most [`DESCRIPTION_MAX`] characters,
/// no NUL. Blank is `None`.
pub fn parse_description(s: &str) -> Result<Option<String>, &'static str> {
    if s.contains('\0') {
        return Err("Description contains a NUL character");
    }
    if s.chars().count() > DESCRIPTION_MAX {
        return Err("Description is too long (maximum is 1500 characters)");
    }
    let trimmed = s.trim();
    Ok((!trimmed.is_empty()).then(|| s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_is_two_numbers_within_one() {
        assert_eq!(Focus::parse("0.5,-0.25"), Some(Focus { x: 0.5, y: -0.25 }));
        assert_eq!(Focus::parse(" -1 , 1 "), Some(Focus { x: -1.0, y: 1.0 }));
        for bad in ["", "1", "1,2", "a,b", "NaN,0", "0,inf", "0.1;0.2", "0,0,0"] {
            assert_eq!(Focus::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn descriptions_are_bounded() {
        assert_eq!(parse_description("  "), Ok(None));
        assert_eq!(parse_description("a cat"), Ok(Some("a cat".into())));
        assert!(parse_description(&"é".repeat(1500)).is_ok());
        assert!(parse_description(&"é".repeat(1501)).is_err());
        assert!(parse_description("a\0b").is_err());
    }

    #[test]
    fn kinds_and_states_round_trip() {
        for k in [
            MediaType::Image,
            MediaType::Gifv,
            MediaType::Video,
            MediaType::Audio,
        ] {
            assert_eq!(MediaType::parse(k.as_str()), k);
        }
        for s in [
            MediaState::Processing,
            MediaState::Ready,
            MediaState::Failed,
        ] {
            assert_eq!(MediaState::parse(s.as_str()), Some(s));
        }
    }
}
