//! Still images (JPEG, PNG, WebP, a one-frame GIF): verified, decoded under
//! limits, oriented, re-encoded without metadata, previewed, blurhashed.
//!
//! Order matters: the structure check ([`crate::sniff`]) comes first, then
//! the decoder reads the header only and the declared dimensions are
//! checked against the pixel limit *before* any pixel is decoded (a 100 KB
//! PNG declaring 100000x100000 never allocates), and the decoder itself
//! runs under `image::Limits` (dimensions, bytes allocated) as a second
//! guard. The EXIF orientation is read from the decoder and applied to the
//! pixels; nothing else of the source survives, since the files written
//! are fresh encodings of the pixels (no EXIF, GPS, XMP, comments, ICC
//! profiles or trailing data).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::sniff::{self, Format};
use crate::{Limits, MediaError, MediaKind, Processed, Variant};

/// Mastodon's `small` size: 640x360 worth of pixels, aspect kept.
pub const SMALL_PIXELS: u64 = 230_400;

/// JPEG quality of a re-encoded original (as Mastodon's).
const ORIGINAL_JPEG_QUALITY: u8 = 90;
/// JPEG quality of a preview.
const SMALL_JPEG_QUALITY: u8 = 80;

/// The largest width and height, in pixels, any one side may have.
const MAX_SIDE: u32 = 32_768;

pub(crate) fn process_image(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Processed, MediaError> {
    let image_format = match format {
        Format::Jpeg => {
            sniff::check_jpeg(bytes).map_err(invalid)?;
            ImageFormat::Jpeg
        }
        Format::Png => {
            sniff::check_png(bytes).map_err(invalid)?;
            ImageFormat::Png
        }
        Format::WebP => {
            sniff::check_webp(bytes).map_err(invalid)?;
            ImageFormat::WebP
        }
        Format::Gif => ImageFormat::Gif, // walked by the caller
        _ => return Err(MediaError::Unsupported("not an image".into())),
    };
    let img = decode(bytes, image_format, limits)?;
    let original = cap_pixels(img, limits.image_original_max_pixels);
    let small = fit(&original, SMALL_PIXELS);
    let blurhash = blurhash_of(&small)?;
    let original_variant = match format {
        Format::Jpeg => encode_jpeg(&original, ORIGINAL_JPEG_QUALITY)?,
        Format::WebP => encode_webp(&original)?,
        _ => encode_png(&original)?,
    };
    Ok(Processed {
        kind: MediaKind::Image,
        original: original_variant,
        small: encode_preview(&small)?,
        blurhash: Some(blurhash),
        duration: None,
        frame_rate: None,
    })
}

fn invalid(why: &str) -> MediaError {
    MediaError::Invalid(why.to_owned())
}

/// Decodes under the limits, checking the declared size before decoding,
/// and applies the EXIF orientation.
pub(crate) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<DynamicImage, MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(MAX_SIDE);
    image_limits.max_image_height = Some(MAX_SIDE);
    // The largest buffer a decoder may need: 16-bit RGBA at the pixel limit.
    image_limits.max_alloc = Some(limits.image_max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits.image_max_pixels)?;
    // A broken EXIF block is no reason to refuse a photo: upright it is.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    Ok(img)
}

pub(crate) fn check_dimensions(width: u32, height: u32, max_pixels: u64) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(invalid("the image has no pixels"));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(MediaError::TooLarge(format!(
            "the image is {width}x{height} pixels; at most {max_pixels} pixels are accepted"
        )));
    }
    Ok(())
}

fn decode_error(e: image::ImageError) -> MediaError {
    match e {
        image::ImageError::Limits(l) => {
            MediaError::TooLarge(format!("the image is over the decoder's limits ({l})"))
        }
        image::ImageError::Unsupported(u) => {
            MediaError::Unsupported(format!("this image variant cannot be read ({u})"))
        }
        other => MediaError::Invalid(format!("the image cannot be decoded ({other})")),
    }
}

fn encode_error(e: image::ImageError) -> MediaError {
    MediaError::Invalid(format!("the image cannot be re-encoded ({e})"))
}

/// Width and height of `width`x`height` scaled to at most `max_pixels`,
/// aspect kept, each at least 1.
pub(crate) fn fit_dimensions(width: u32, height: u32, max_pixels: u64) -> (u32, u32) {
    let pixels = u64::from(width) * u64::from(height);
    if pixels <= max_pixels || pixels == 0 {
        return (width, height);
    }
    let scale = (max_pixels as f64 / pixels as f64).sqrt();
    let w = ((f64::from(width) * scale).floor() as u32).clamp(1, width);
    let h = ((f64::from(height) * scale).floor() as u32).clamp(1, height);
    // A side clamped up to 1 pixel takes the area from the other.
    let w = w
        .min(u32::try_from(max_pixels / u64::from(h)).unwrap_or(u32::MAX))
        .max(1);
    let h = h
        .min(u32::try_from(max_pixels / u64::from(w)).unwrap_or(u32::MAX))
        .max(1);
    (w, h)
}

fn cap_pixels(img: DynamicImage, max_pixels: u64) -> DynamicImage {
    let (w, h) = fit_dimensions(img.width(), img.height(), max_pixels);
    if (w, h) == (img.width(), img.height()) {
        img
    } else {
        img.resize_exact(w, h, image::imageops::FilterType::CatmullRom)
    }
}

/// A copy no larger than `max_pixels` (box-filtered: fast, and sharp enough
/// for a downscale).
pub(crate) fn fit(img: &DynamicImage, max_pixels: u64) -> DynamicImage {
    let (w, h) = fit_dimensions(img.width(), img.height(), max_pixels);
    if (w, h) == (img.width(), img.height()) {
        img.clone()
    } else {
        img.thumbnail_exact(w, h)
    }
}

/// Blurhash with 4x3 components (Mastodon's), from the preview.
pub(crate) fn blurhash_of(img: &DynamicImage) -> Result<String, MediaError> {
    let rgba = img.to_rgba8();
    blurhash::encode(4, 3, rgba.width(), rgba.height(), rgba.as_raw())
        .map_err(|e| MediaError::Invalid(format!("blurhash: {e}")))
}

fn has_alpha(img: &DynamicImage) -> bool {
    img.color().has_alpha() && img.to_rgba8().pixels().any(|p| p.0[3] != u8::MAX)
}

/// A preview: JPEG, or PNG when the image has transparency.
pub(crate) fn encode_preview(img: &DynamicImage) -> Result<Variant, MediaError> {
    if has_alpha(img) {
        encode_png(img)
    } else {
        encode_jpeg(img, SMALL_JPEG_QUALITY)
    }
}

pub(crate) fn encode_jpeg(img: &DynamicImage, quality: u8) -> Result<Variant, MediaError> {
    let mut out = Vec::new();
    let (w, h) = (
        u16::try_from(img.width()).map_err(|_| invalid("the image is too wide for JPEG"))?,
        u16::try_from(img.height()).map_err(|_| invalid("the image is too tall for JPEG"))?,
    );
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    let result = match img {
        DynamicImage::ImageLuma8(gray) => {
            encoder.encode(gray.as_raw(), w, h, jpeg_encoder::ColorType::Luma)
        }
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLumaA16(_) => {
            encoder.encode(img.to_luma8().as_raw(), w, h, jpeg_encoder::ColorType::Luma)
        }
        DynamicImage::ImageRgb8(rgb) => {
            encoder.encode(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        }
        _ => encoder.encode(img.to_rgb8().as_raw(), w, h, jpeg_encoder::ColorType::Rgb),
    };
    result.map_err(|e| MediaError::Invalid(format!("the image cannot be re-encoded ({e})")))?;
    Ok(variant(out, "image/jpeg", "jpg", img))
}

pub(crate) fn encode_png(img: &DynamicImage) -> Result<Variant, MediaError> {
    let pixels = match img {
        DynamicImage::ImageRgb32F(_) => DynamicImage::ImageRgb16(img.to_rgb16()),
        DynamicImage::ImageRgba32F(_) => DynamicImage::ImageRgba16(img.to_rgba16()),
        _ => img.clone(),
    };
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    pixels.write_with_encoder(encoder).map_err(encode_error)?;
    Ok(variant(out, "image/png", "png", img))
}

fn encode_webp(img: &DynamicImage) -> Result<Variant, MediaError> {
    let pixels = if img.color().has_alpha() {
        DynamicImage::ImageRgba8(img.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(img.to_rgb8())
    };
    let mut out = Vec::new();
    let encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
    pixels.write_with_encoder(encoder).map_err(encode_error)?;
    Ok(variant(out, "image/webp", "webp", img))
}

fn variant(
    bytes: Vec<u8>,
    content_type: &'static str,
    ext: &'static str,
    img: &DynamicImage,
) -> Variant {
    Variant {
        bytes,
        content_type,
        ext,
        width: img.width(),
        height: img.height(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_within_area() {
        assert_eq!(fit_dimensions(640, 360, SMALL_PIXELS), (640, 360));
        assert_eq!(fit_dimensions(1920, 1080, SMALL_PIXELS), (640, 360));
        let (w, h) = fit_dimensions(4000, 3000, SMALL_PIXELS);
        assert!(u64::from(w) * u64::from(h) <= SMALL_PIXELS);
        assert!((f64::from(w) / f64::from(h) - 4.0 / 3.0).abs() < 0.01);
        assert_eq!(fit_dimensions(100_000, 1, SMALL_PIXELS), (100_000, 1));
        let (w, h) = fit_dimensions(1_000_000, 2, SMALL_PIXELS);
        assert!(w >= 1 && h >= 1 && u64::from(w) * u64::from(h) <= SMALL_PIXELS);
    }
}
