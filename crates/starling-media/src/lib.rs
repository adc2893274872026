//! Media attachments for Starling: where the files live and how an upload
//! becomes files fit to serve.
//!
//! # Storage
//! [`MediaStorage`] is the seam (put, get, delete of whole objects by key);
//! [`FsStorage`] keeps files under a directory (the embedded shape, default
//! `data_dir/media`), [`S3Storage`] in an S3-compatible bucket (the
//! distributed shape: any api node serves any file). Keys are id-based
//! ([`original_key`], [`small_key`]). One conformance suite,
//! `tests/storage.rs`, runs against both adapters; the S3 one against a
//! real S3 server on the machine (see below).
//!
//! # Processing
//! [`process`] is synchronous and CPU-bound (call it from
//! `spawn_blocking`): it decides what the file is from its bytes
//! ([`sniff`], never the Content-Type), refuses what is not whole or is over
//! a [`Limits`], and returns the files to store ([`Processed`]):
//!
//! - Images (JPEG, PNG, WebP, a one-frame GIF): decoded under limits (the
//!   declared size checked before any pixel is decoded), the EXIF
//!   orientation applied, then re-encoded from the pixels so no metadata
//!   (EXIF, GPS, XMP, comments) or smuggled bytes survive. JPEG stays JPEG
//!   (quality 90), PNG stays PNG, WebP stays WebP (lossless), a still GIF
//!   becomes PNG; the original is scaled down to
//!   [`Limits::image_original_max_pixels`]. The preview (`small`) fits
//!   Mastodon's 230 400 pixels (640x360) with the aspect kept, JPEG unless
//!   transparent; the blurhash (4x3 components) is computed on it.
//! - Animated GIFs become `gifv`: a silent H.264 MP4, with the first frame
//!   as preview.
//! - Video (MP4, MOV, WebM, MKV): probed with ffprobe (duration,
//!   dimensions, frame rate, rotation), remuxed or transcoded to H.264/AAC
//!   MP4 within the limits, metadata dropped; the poster frame is the
//!   preview (JPEG). ffmpeg is Debian's, run as a child process with a
//!   deadline ([`Limits::ffmpeg_timeout`]); see the `video` module for the
//!   containment.
//! - HEIC, AVIF and audio are refused as unsupported for now.
//!
//! Refusals are [`MediaError::Unsupported`], [`MediaError::TooLarge`] or
//! [`MediaError::Invalid`] (answer 422 with the message); nothing in
//! [`process`] panics out (a decoder panic is caught and becomes
//! `Invalid`) or runs unbounded.
//!
//! # The S3 server in tests
//! The S3 adapter's tests run against `s3s-fs` (crates.io; the `s3s`
//! project's S3 server storing objects as files), installed and started by
//! `scripts/services.sh ensure` on 127.0.0.1:9000 (`STARLING_TEST_S3_URL`).
//! It is a real HTTP server that verifies SigV4 signatures and speaks the
//! S3 wire protocol (XML errors, `Content-Type` kept, 404 `NoSuchKey`), so
//! the tests exercise what production does: signing, path-style URLs,
//! headers, error mapping. A mock of the AWS SDK (moto) checks less of
//! that, and MinIO or Garage are not in the registries this project can
//! reach; s3s-fs is a `cargo install` away and has no other dependency.

mod error;
mod s3;
mod sniff;
mod still;
mod storage;
mod video;

use std::time::Duration;

pub use error::MediaError;
pub use s3::{S3Config, S3Storage};
pub use sniff::sniff;
pub use still::SMALL_PIXELS;
pub use storage::{
    original_key, small_key, validate_key, FsStorage, MediaStorage, StoredObject, MAX_KEY_LEN,
};
pub use video::ffmpeg_available;

/// What an upload may be. The defaults are Mastodon's, as its
/// `/api/v2/instance` `configuration.media_attachments` states them.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest image upload, bytes (`image_size_limit`: 16 MiB).
    pub image_max_bytes: usize,
    /// Most pixels an uploaded image may have (`image_matrix_limit`:
    /// 33 177 600, 7680x4320); refused above, before decoding.
    pub image_max_pixels: u64,
    /// Most pixels a stored original image keeps (8 294 400, 3840x2160);
    /// larger images are scaled down, aspect kept.
    pub image_original_max_pixels: u64,
    /// Largest video upload, bytes (`video_size_limit`: 99 MiB).
    pub video_max_bytes: usize,
    /// Most pixels of a stored video frame (`video_matrix_limit`:
    /// 8 294 400, 3840x2160); larger videos are scaled down.
    pub video_max_pixels: u64,
    /// Highest stored frame rate (`video_frame_rate_limit`: 120); higher is
    /// capped.
    pub video_max_frame_rate: f64,
    /// Longest video or animation, seconds (300: Mastodon's 36 000 frames
    /// at 120 fps); refused above.
    pub video_max_seconds: f64,
    /// Wall-clock deadline of one ffmpeg or ffprobe run; killed after.
    pub ffmpeg_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            image_max_bytes: 16 * 1024 * 1024,
            image_max_pixels: 33_177_600,
            image_original_max_pixels: 8_294_400,
            video_max_bytes: 99 * 1024 * 1024,
            video_max_pixels: 8_294_400,
            video_max_frame_rate: 120.0,
            video_max_seconds: 300.0,
            ffmpeg_timeout: Duration::from_secs(300),
        }
    }
}

/// Mastodon's attachment types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    /// An animated GIF, stored as a silent looping MP4.
    Gifv,
    Video,
    Audio,
}

impl MediaKind {
    /// The `type` of a Mastodon `MediaAttachment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Gifv => "gifv",
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }
}

/// One file to store.
#[derive(Clone, Debug)]
pub struct Variant {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// File name extension without the dot (`jpg`, `png`, `webp`, `mp4`).
    pub ext: &'static str,
    pub width: u32,
    pub height: u32,
}

/// What [`process`] made of an upload.
#[derive(Clone, Debug)]
pub struct Processed {
    pub kind: MediaKind,
    /// The file served as `url`.
    pub original: Variant,
    /// The preview served as `preview_url` (a video's poster frame).
    pub small: Variant,
    pub blurhash: Option<String>,
    /// Seconds, for video and gifv.
    pub duration: Option<f64>,
    /// As ffprobe gives it, e.g. `"30/1"` (Mastodon's `meta.original.frame_rate`).
    pub frame_rate: Option<String>,
}

/// Verifies, cleans and previews an upload (see the crate docs). CPU-bound
/// and blocking: run it on a blocking thread.
pub fn process(bytes: &[u8], limits: &Limits) -> Result<Processed, MediaError> {
    use sniff::Format;
    let format = sniff::format(bytes).ok_or_else(|| {
        MediaError::Unsupported(
            "the file is not an image or video Starling takes (JPEG, PNG, GIF, WebP, MP4, MOV, WebM)"
                .into(),
        )
    })?;
    let image_size_check = || {
        if bytes.len() > limits.image_max_bytes {
            Err(MediaError::TooLarge(format!(
                "the image is {} bytes; at most {} are accepted",
                bytes.len(),
                limits.image_max_bytes
            )))
        } else {
            Ok(())
        }
    };
    // Decoders are well fuzzed, but a panic in one must not take a worker
    // down: it is one more refused file.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match format {
        Format::Jpeg | Format::Png | Format::WebP => {
            image_size_check()?;
            still::process_image(bytes, format, limits)
        }
        Format::Gif => {
            image_size_check()?;
            let gif = sniff::gif_structure(bytes).map_err(|e| MediaError::Invalid(e.to_owned()))?;
            if gif.frames > 1 {
                video::process_gifv(bytes, limits)
            } else {
                still::process_image(bytes, format, limits)
            }
        }
        Format::IsoMedia | Format::Matroska => video::process_video(bytes, format, limits),
        Format::HeifOrAvif => Err(MediaError::Unsupported(
            "HEIC and AVIF images are not supported; please upload JPEG, PNG or WebP".into(),
        )),
        Format::Audio => Err(MediaError::Unsupported(
            "audio files are not supported yet".into(),
        )),
    }));
    match outcome {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("a media decoder panicked; the upload is refused");
            Err(MediaError::Invalid("the file cannot be decoded".into()))
        }
    }
}
