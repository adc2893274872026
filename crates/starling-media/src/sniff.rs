//! What a file really is, from its bytes (never from the Content-Type or
//! the file name an uploader sends), and structural checks that decoders
//! alone do not make: a file must end where its format says it ends.
//!
//! - Truncation: a PNG without its `IEND` chunk, a JPEG without its `EOI`
//!   marker, a GIF without its trailer, or a WebP shorter than its RIFF
//!   header says, is refused. Decoders fill missing rows with grey and
//!   call that success; these checks are why a half-uploaded photo is a
//!   422 and not a half-grey post.
//! - Polyglots: bytes after the end of a PNG, GIF or WebP (a ZIP, a script)
//!   are refused. After a JPEG's `EOI` they are tolerated, because phones
//!   write such trailers (Samsung's, motion photos); they never reach a
//!   served file either way, since every image is decoded and re-encoded.

use crate::MediaKind;

/// The formats told apart by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    /// ISO base media (MP4, MOV, 3GP) or QuickTime.
    IsoMedia,
    /// Matroska or WebM.
    Matroska,
    /// HEIC, HEIF or AVIF: ISO base media holding a still image.
    HeifOrAvif,
    /// MP3, Ogg, FLAC, WAV.
    Audio,
}

pub(crate) fn format(bytes: &[u8]) -> Option<Format> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Some(Format::Gif);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some(Format::WebP);
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some(Format::Audio);
    }
    if at(4, b"ftyp") {
        let brand = bytes.get(8..12).unwrap_or_default();
        return Some(match brand {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1"
            | b"avif" | b"avis" => Format::HeifOrAvif,
            b"M4A " | b"M4B " | b"M4P " => Format::Audio,
            _ => Format::IsoMedia,
        });
    }
    // QuickTime files from old cameras start with another atom.
    if at(4, b"moov") || at(4, b"mdat") || at(4, b"wide") || at(4, b"free") {
        return Some(Format::IsoMedia);
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(Format::Matroska);
    }
    if at(0, b"ID3") || at(0, b"OggS") || at(0, b"fLaC") {
        return Some(Format::Audio);
    }
    if bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0 {
        // An MPEG audio frame sync (JPEG's FF D8 was matched above).
        return Some(Format::Audio);
    }
    None
}

/// The kind of media a file is, by its magic bytes: `None` for anything
/// Starling does not take (including HEIC and AVIF). An animated GIF is
/// [`MediaKind::Gifv`]; a GIF that does not parse is [`MediaKind::Image`]
/// here and refused by [`crate::process`].
pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
    match format(bytes)? {
        Format::Jpeg | Format::Png | Format::WebP => Some(MediaKind::Image),
        Format::Gif => Some(match gif_structure(bytes) {
            Ok(g) if g.frames > 1 => MediaKind::Gifv,
            _ => MediaKind::Image,
        }),
        Format::IsoMedia | Format::Matroska => Some(MediaKind::Video),
        Format::Audio => Some(MediaKind::Audio),
        Format::HeifOrAvif => None,
    }
}

/// Why a file's structure is refused.
pub(crate) type StructureError = &'static str;

/// A PNG must be a sequence of whole chunks ending with `IEND`, and nothing
/// after it.
pub(crate) fn check_png(bytes: &[u8]) -> Result<(), StructureError> {
    let mut pos = 8;
    loop {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or("the PNG is truncated (no IEND chunk)")?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .ok_or("the PNG has a corrupt chunk length")?;
        if end > bytes.len() {
            return Err("the PNG is truncated (a chunk runs past the end of the file)");
        }
        if &header[4..8] == b"IEND" {
            return if end == bytes.len() {
                Ok(())
            } else {
                Err("the PNG has data after its end (IEND)")
            };
        }
        pos = end;
    }
}

/// A JPEG must reach its `EOI` marker through well-formed segments and
/// entropy-coded data. Data after `EOI` is allowed (see the module docs).
pub(crate) fn check_jpeg(bytes: &[u8]) -> Result<(), StructureError> {
    const TRUNCATED: &str = "the JPEG is truncated (no end-of-image marker)";
    let mut pos = 2; // after SOI
    loop {
        // At a marker: skip fill bytes.
        if bytes.get(pos) != Some(&0xFF) {
            return Err("the JPEG is corrupt (a segment does not start with a marker)");
        }
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *bytes.get(pos).ok_or(TRUNCATED)?;
        pos += 1;
        match marker {
            0xD9 => return Ok(()),          // EOI
            0x01 | 0xD0..=0xD7 => continue, // no length
            _ => {}
        }
        let len_bytes = bytes.get(pos..pos + 2).ok_or(TRUNCATED)?;
        let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        if len < 2 {
            return Err("the JPEG is corrupt (a segment length under 2)");
        }
        pos += len;
        if pos > bytes.len() {
            return Err(TRUNCATED);
        }
        if marker == 0xDA {
            // Start of scan: entropy-coded data up to the next marker that
            // is neither a stuffed 0xFF00 nor a restart marker.
            loop {
                let rel = bytes
                    .get(pos..)
                    .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
                    .ok_or(TRUNCATED)?;
                pos += rel;
                match bytes.get(pos + 1) {
                    None => return Err(TRUNCATED),
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => pos += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// A WebP's RIFF header gives its size: the file must be exactly that long
/// (an odd size padded by one byte).
pub(crate) fn check_webp(bytes: &[u8]) -> Result<(), StructureError> {
    let size = bytes
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("the WebP is truncated")?;
    let expected = size.saturating_add(8);
    match bytes.len() {
        n if n < expected => Err("the WebP is truncated (shorter than its RIFF header says)"),
        n if n == expected || (n == expected + 1 && size % 2 == 1) => Ok(()),
        _ => Err("the WebP has data after its end"),
    }
}

/// What walking a GIF's blocks found.
#[derive(Debug)]
pub(crate) struct GifStructure {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
}

/// Walks a GIF's blocks to its trailer: counts frames, and refuses a GIF
/// that is cut short or has data after the trailer.
pub(crate) fn gif_structure(bytes: &[u8]) -> Result<GifStructure, StructureError> {
    const TRUNCATED: &str = "the GIF is truncated (no trailer)";
    let lsd = bytes.get(6..13).ok_or(TRUNCATED)?;
    let width = u32::from(u16::from_le_bytes([lsd[0], lsd[1]]));
    let height = u32::from(u16::from_le_bytes([lsd[2], lsd[3]]));
    let table_len = |flags: u8| {
        if flags & 0x80 != 0 {
            3usize << ((flags & 0x07) + 1)
        } else {
            0
        }
    };
    let mut pos = 13 + table_len(lsd[4]);
    let mut frames = 0u32;
    let skip_sub_blocks = |mut pos: usize| -> Result<usize, StructureError> {
        loop {
            let size = *bytes.get(pos).ok_or(TRUNCATED)? as usize;
            pos += 1 + size;
            if size == 0 {
                return Ok(pos);
            }
        }
    };
    loop {
        match *bytes.get(pos).ok_or(TRUNCATED)? {
            0x3B => {
                // A few encoders pad after the trailer; allow a little.
                let rest = bytes.get(pos + 1..).unwrap_or_default();
                return if rest.len() <= 16 && rest.iter().all(|&b| b == 0 || b == 0x3B) {
                    Ok(GifStructure {
                        width,
                        height,
                        frames,
                    })
                } else {
                    Err("the GIF has data after its end (trailer)")
                };
            }
            0x21 => pos = skip_sub_blocks(pos + 2)?,
            0x2C => {
                let descriptor = bytes.get(pos + 1..pos + 10).ok_or(TRUNCATED)?;
                pos += 10 + table_len(descriptor[8]) + 1; // + LZW minimum code size
                pos = skip_sub_blocks(pos)?;
                frames += 1;
            }
            _ => return Err("the GIF is corrupt (an unknown block)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some(MediaKind::Image));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(MediaKind::Image));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(MediaKind::Image));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Some(MediaKind::Video));
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  "), Some(MediaKind::Video));
        assert_eq!(sniff(b"\x1a\x45\xdf\xa3webm"), Some(MediaKind::Video));
        assert_eq!(sniff(b"\0\0\0\x1cftypheic"), None);
        assert_eq!(sniff(b"\0\0\0\x1cftypavif"), None);
        assert_eq!(sniff(b"ID3\x04"), Some(MediaKind::Audio));
        assert_eq!(sniff(b"<!DOCTYPE html><script>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\xFF"), None);
    }

    #[test]
    fn structure_walkers_never_panic_on_garbage() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..300 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(x as u8);
            }
            for prefix in [
                &b"\x89PNG\r\n\x1a\n"[..],
                b"\xFF\xD8\xFF",
                b"GIF89a",
                b"RIFF",
            ] {
                let mut b = prefix.to_vec();
                b.extend_from_slice(&buf);
                let _ = check_png(&b);
                let _ = check_jpeg(&b);
                let _ = check_webp(&b);
                let _ = gif_structure(&b);
            }
        }
    }
}
