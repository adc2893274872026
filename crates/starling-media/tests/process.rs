//! Processing of uploads, with fixtures made here (image crate encoders,
//! hand-built EXIF, ffmpeg's `testsrc`) rather than binaries in the repo.
//! Tests that need ffmpeg skip with a `SKIPPED` line when it is missing,
//! and fail instead with `STARLING_TEST_REQUIRE_SERVICES=1` (CI).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use starling_media::{process, sniff, Limits, MediaError, MediaKind, Processed};

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

/// Left half red, right half blue: orientation shows.
fn halves(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    }))
}

/// A photo-like image: gradients and noise (JPEG cannot squeeze it flat).
fn photo(width: u32, height: u32) -> DynamicImage {
    let mut seed: u32 = 0x9E37_79B9;
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed & 0x3F) as u8;
        Rgb([
            ((x * 255 / width) as u8).saturating_add(n),
            ((y * 255 / height) as u8).saturating_add(n / 2),
            128u8.saturating_add(n),
        ])
    }))
}

/// An APP1 EXIF segment: orientation 6 (rotate 90° clockwise) and a GPS
/// position (52°31'N), big-endian TIFF.
fn exif_app1() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08");
    // IFD0 at 8: 2 entries, then next-IFD 0; ends at 38.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06, 0, 0]);
    t.extend_from_slice(&[0x88, 0x25, 0x00, 0x04, 0, 0, 0, 1]);
    t.extend_from_slice(&38u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD at 38: 2 entries; ends at 68.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0x00, 0x02, 0x00, 0x05, 0, 0, 0, 3]);
    t.extend_from_slice(&68u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    for (n, d) in [(52u32, 1u32), (31, 1), (0, 1)] {
        t.extend_from_slice(&n.to_be_bytes());
        t.extend_from_slice(&d.to_be_bytes());
    }
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((2 + 6 + t.len()) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    seg
}

fn with_exif(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&exif_app1());
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn decoded(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}

fn assert_refused(result: Result<Processed, MediaError>, what: &str) -> MediaError {
    match result {
        Ok(p) => panic!("{what}: accepted as {:?}", p.kind),
        Err(e) => {
            assert!(e.is_client_error(), "{what}: {e:?}");
            e
        }
    }
}

#[test]
fn jpeg_exif_gps_is_stripped_and_orientation_applied() {
    let source = with_exif(&encode(&halves(64, 32), ImageFormat::Jpeg));
    assert!(contains(&source, b"Exif\0\0"));
    assert_eq!(sniff(&source), Some(MediaKind::Image));
    let p = process(&source, &Limits::default()).expect("processed");
    assert_eq!(p.kind, MediaKind::Image);
    assert_eq!(
        (p.original.content_type, p.original.ext),
        ("image/jpeg", "jpg")
    );
    // Rotated: 64x32 stored sideways is a 32x64 picture, red on top.
    assert_eq!((p.original.width, p.original.height), (32, 64));
    let img = decoded(&p.original.bytes).to_rgb8();
    assert_eq!(img.dimensions(), (32, 64));
    let top = img.get_pixel(16, 8).0;
    let bottom = img.get_pixel(16, 56).0;
    assert!(top[0] > 200 && top[2] < 60, "top is red: {top:?}");
    assert!(
        bottom[2] > 200 && bottom[0] < 60,
        "bottom is blue: {bottom:?}"
    );
    // No EXIF (so no GPS) in either file.
    for file in [&p.original.bytes, &p.small.bytes] {
        assert!(!contains(file, b"Exif"), "EXIF survived");
        assert!(!contains(file, b"MM\x00\x2a"), "a TIFF header survived");
        assert!(!contains(file, &[0xFF, 0xE1]), "an APP1 segment survived");
    }
    assert_eq!(
        p.blurhash.as_deref().map(str::len),
        Some(28) // 4x3 components
    );
}

#[test]
fn jpeg_png_webp_keep_their_format_and_get_a_preview() {
    let big = photo(1280, 960);
    for (format, ct) in [
        (ImageFormat::Jpeg, "image/jpeg"),
        (ImageFormat::Png, "image/png"),
        (ImageFormat::WebP, "image/webp"),
    ] {
        let p = process(&encode(&big, format), &Limits::default()).expect("processed");
        assert_eq!(p.kind, MediaKind::Image);
        assert_eq!(p.original.content_type, ct);
        assert_eq!((p.original.width, p.original.height), (1280, 960));
        // Mastodon's small: within 640x360 worth of pixels, aspect kept.
        assert_eq!((p.small.width, p.small.height), (554, 415));
        assert!(u64::from(p.small.width) * u64::from(p.small.height) <= 230_400);
        assert_eq!(p.small.content_type, "image/jpeg");
        assert_eq!(decoded(&p.small.bytes).width(), 554);
        assert_eq!(decoded(&p.original.bytes).height(), 960);
        let hash = p.blurhash.expect("blurhash");
        assert_eq!(hash.len(), 28, "4x3 components: {hash}");
        assert!(p.duration.is_none());
    }
}

#[test]
fn transparency_keeps_a_png_preview_and_a_still_gif_becomes_png() {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 30, |x, _| {
        Rgba([0, 128, 0, if x < 20 { 0 } else { 255 }])
    }));
    let p = process(&encode(&img, ImageFormat::Png), &Limits::default()).expect("png");
    assert_eq!(p.small.content_type, "image/png");
    assert_eq!(
        decoded(&p.original.bytes).to_rgba8().get_pixel(1, 1).0[3],
        0
    );

    let gif = encode(&halves(40, 30), ImageFormat::Gif);
    assert_eq!(sniff(&gif), Some(MediaKind::Image));
    let p = process(&gif, &Limits::default()).expect("still gif");
    assert_eq!(
        (p.kind, p.original.content_type),
        (MediaKind::Image, "image/png")
    );
}

#[test]
fn originals_over_the_pixel_cap_are_scaled_down() {
    let limits = Limits {
        image_original_max_pixels: 100_000,
        ..Limits::default()
    };
    let p = process(&encode(&photo(800, 400), ImageFormat::Png), &limits).expect("processed");
    let (w, h) = (p.original.width, p.original.height);
    assert!(u64::from(w) * u64::from(h) <= 100_000 && w > 400, "{w}x{h}");
    assert_eq!(decoded(&p.original.bytes).width(), w);
}

#[test]
fn over_the_limits_is_too_large() {
    let jpeg = encode(&photo(300, 200), ImageFormat::Jpeg);
    let limits = Limits {
        image_max_bytes: 100,
        ..Limits::default()
    };
    let e = assert_refused(process(&jpeg, &limits), "bytes");
    assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
    let limits = Limits {
        image_max_pixels: 300 * 200 - 1,
        ..Limits::default()
    };
    let e = assert_refused(process(&jpeg, &limits), "pixels");
    assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn png_bomb_is_refused_before_decoding() {
    // A real 1x1 PNG whose header then claims 100000x100000 (CRC fixed up).
    let mut png = encode(&halves(1, 1), ImageFormat::Png);
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let start = Instant::now();
    let e = assert_refused(process(&png, &Limits::default()), "bomb");
    assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // Also with limits so high that only the decoder's own guard is left.
    let limits = Limits {
        image_max_pixels: u64::MAX / 16,
        ..Limits::default()
    };
    assert_refused(process(&png, &limits), "bomb under loose limits");
}

#[test]
fn truncated_files_are_refused() {
    let jpeg = encode(&photo(200, 150), ImageFormat::Jpeg);
    let png = encode(&photo(200, 150), ImageFormat::Png);
    let webp = encode(&photo(200, 150), ImageFormat::WebP);
    let gif = encode(&halves(200, 150), ImageFormat::Gif);
    for (name, file) in [
        ("jpeg", &jpeg),
        ("png", &png),
        ("webp", &webp),
        ("gif", &gif),
    ] {
        for keep in [file.len() * 6 / 10, file.len() - 12, file.len() - 2, 20] {
            let e = assert_refused(process(&file[..keep], &Limits::default()), name);
            assert!(
                matches!(e, MediaError::Invalid(_)),
                "{name} cut at {keep}/{}: {e:?}",
                file.len()
            );
        }
    }
}

#[test]
fn polyglots_and_wrong_types_are_refused() {
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00evil.html<script>alert(1)</script>";
    // GIF + ZIP, PNG + ZIP, WebP + ZIP: data after the end.
    for format in [ImageFormat::Gif, ImageFormat::Png, ImageFormat::WebP] {
        let mut file = encode(&halves(20, 20), format);
        file.extend_from_slice(zip);
        let e = assert_refused(process(&file, &Limits::default()), "polyglot");
        assert!(matches!(e, MediaError::Invalid(_)), "{format:?}: {e:?}");
    }
    // JPEG + ZIP is taken (phones write trailers), but the ZIP is gone.
    let mut jpeg = encode(&halves(20, 20), ImageFormat::Jpeg);
    jpeg.extend_from_slice(zip);
    let p = process(&jpeg, &Limits::default()).expect("jpeg with trailer");
    assert!(!contains(&p.original.bytes, b"PK\x03\x04"));
    assert!(!contains(&p.original.bytes, b"<script>"));

    // HTML named .jpg and sent as image/jpeg: the bytes say what it is.
    let html = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>";
    assert_eq!(sniff(html), None);
    let e = assert_refused(process(html, &Limits::default()), "html");
    assert!(matches!(e, MediaError::Unsupported(_)), "{e:?}");
    // A JPEG magic followed by HTML.
    let mut fake = b"\xFF\xD8\xFF\xE0".to_vec();
    fake.extend_from_slice(html);
    assert_refused(process(&fake, &Limits::default()), "jpeg magic + html");
    // HEIC and AVIF, and empty files.
    let e = assert_refused(
        process(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", &Limits::default()),
        "heic",
    );
    assert!(matches!(e, MediaError::Unsupported(_)), "{e:?}");
    assert_refused(process(b"", &Limits::default()), "empty");
    let e = MediaError::Unsupported("x".into());
    assert!(e.to_string().starts_with("unsupported file type"));
}

#[test]
fn corrupted_files_never_panic() {
    let files = [
        encode(&photo(64, 48), ImageFormat::Jpeg),
        encode(&photo(64, 48), ImageFormat::Png),
        encode(&photo(64, 48), ImageFormat::WebP),
        encode(&photo(64, 48), ImageFormat::Gif),
        with_exif(&encode(&photo(64, 48), ImageFormat::Jpeg)),
    ];
    let mut seed: u32 = 12345;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as usize
    };
    for file in &files {
        for _ in 0..60 {
            let mut f = file.clone();
            for _ in 0..1 + next() % 8 {
                let i = next() % f.len();
                f[i] = next() as u8;
            }
            // Any outcome but a panic or a hang.
            let _ = process(&f, &Limits::default());
        }
    }
}

// ---- ffmpeg: GIF animations and video ----

fn have_ffmpeg(test: &str) -> bool {
    if starling_media::ffmpeg_available() {
        return true;
    }
    let required = matches!(
        std::env::var("STARLING_TEST_REQUIRE_SERVICES").as_deref(),
        Ok("1" | "true" | "yes")
    );
    assert!(
        !required,
        "{test}: ffmpeg/ffprobe not found (apt-get install ffmpeg, or scripts/services.sh ensure); STARLING_TEST_REQUIRE_SERVICES is set, so this is a failure"
    );
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: ffmpeg/ffprobe not found (scripts/services.sh ensure installs it)"
    );
    false
}

/// A video from ffmpeg's test source: `args` choose codec and container.
fn make_video(seconds: u32, size: &str, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("video");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=duration={seconds}:size={size}:rate=25"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "making the fixture video");
    std::fs::read(out).expect("fixture")
}

#[test]
fn animated_gif_becomes_gifv_mp4() {
    if !have_ffmpeg("animated_gif_becomes_gifv_mp4") {
        return;
    }
    let frames = (0..6).map(|i| {
        let img = RgbaImage::from_fn(48, 32, |x, _| {
            if (x / 8) % 6 == i {
                Rgba([255, 255, 0, 255])
            } else {
                Rgba([0, 0, 80, 255])
            }
        });
        image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(100, 1))
    });
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .expect("repeat");
        enc.encode_frames(frames).expect("gif");
    }
    assert_eq!(sniff(&gif), Some(MediaKind::Gifv));
    let p = process(&gif, &Limits::default()).expect("gifv");
    assert_eq!(p.kind, MediaKind::Gifv);
    assert_eq!(
        (p.original.content_type, p.original.ext),
        ("video/mp4", "mp4")
    );
    assert!(contains(&p.original.bytes[..64], b"ftyp"));
    assert_eq!((p.original.width, p.original.height), (48, 32));
    assert_eq!((p.small.width, p.small.height), (48, 32));
    assert_eq!(p.small.content_type, "image/jpeg");
    let d = p.duration.expect("duration");
    assert!((0.4..=0.8).contains(&d), "{d}");
    assert!(p.blurhash.is_some());
    // Data after the GIF's end is refused here too.
    let mut poly = gif.clone();
    poly.extend_from_slice(b"PK\x03\x04zipzipzipzipzipzipzip");
    assert_refused(process(&poly, &Limits::default()), "animated polyglot");
}

#[test]
fn h264_mp4_is_kept_and_gets_a_poster() {
    if !have_ffmpeg("h264_mp4_is_kept_and_gets_a_poster") {
        return;
    }
    let mp4 = make_video(
        2,
        "320x240",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-metadata",
            "location=+52.5200+013.4050/",
            "-metadata",
            "title=secret-title",
            "-f",
            "mp4",
        ],
    );
    assert!(contains(&mp4, b"secret-title"));
    assert_eq!(sniff(&mp4), Some(MediaKind::Video));
    let p = process(&mp4, &Limits::default()).expect("video");
    assert_eq!(p.kind, MediaKind::Video);
    assert_eq!(p.original.content_type, "video/mp4");
    assert_eq!((p.original.width, p.original.height), (320, 240));
    assert!(
        !contains(&p.original.bytes, b"secret-title"),
        "metadata survived"
    );
    assert!(
        !contains(&p.original.bytes, b"+52.5200"),
        "location survived"
    );
    let d = p.duration.expect("duration");
    assert!((1.9..=2.2).contains(&d), "{d}");
    assert_eq!(p.frame_rate.as_deref(), Some("25/1"));
    assert_eq!(p.small.content_type, "image/jpeg");
    assert_eq!((p.small.width, p.small.height), (320, 240));
    assert_eq!(decoded(&p.small.bytes).width(), 320);
    assert!(p.blurhash.is_some());
}

#[test]
fn webm_is_transcoded_to_h264_and_capped() {
    if !have_ffmpeg("webm_is_transcoded_to_h264_and_capped") {
        return;
    }
    let mkv = make_video(
        1,
        "640x480",
        &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libopus",
            "-f",
            "webm",
        ],
    );
    assert_eq!(sniff(&mkv), Some(MediaKind::Video));
    let limits = Limits {
        video_max_pixels: 320 * 240,
        video_max_frame_rate: 10.0,
        ..Limits::default()
    };
    let p = process(&mkv, &limits).expect("video");
    assert_eq!((p.original.width, p.original.height), (320, 240));
    assert_eq!(p.frame_rate.as_deref(), Some("10/1"));
    // What was written is H.264 in MP4, at that size.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.mp4");
    std::fs::write(&path, &p.original.bytes).expect("write");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "h264,320,240"
    );
}

#[test]
fn video_over_the_duration_limit_or_deadline_is_refused() {
    if !have_ffmpeg("video_over_the_duration_limit_or_deadline_is_refused") {
        return;
    }
    let mp4 = make_video(
        3,
        "160x120",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mp4",
        ],
    );
    let limits = Limits {
        video_max_seconds: 2.0,
        ..Limits::default()
    };
    let e = assert_refused(process(&mp4, &limits), "long video");
    assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
    // A deadline too short for ffprobe: killed, refused, quickly.
    let limits = Limits {
        ffmpeg_timeout: Duration::from_millis(1),
        ..Limits::default()
    };
    let start = Instant::now();
    let e = assert_refused(process(&mp4, &limits), "deadline");
    assert!(e.to_string().contains("longer than"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Over the byte limit before ffmpeg runs; truncated; not a video at all.
    let limits = Limits {
        video_max_bytes: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        process(&mp4, &limits),
        Err(MediaError::TooLarge(_))
    ));
    assert_refused(
        process(&mp4[..mp4.len() / 3], &Limits::default()),
        "truncated mp4",
    );
    let mut junk = b"\0\0\0\x20ftypisom".to_vec();
    junk.extend(std::iter::repeat_n(0x42u8, 4096));
    assert_refused(process(&junk, &Limits::default()), "ftyp and junk");
}

/// `cargo test --release -p starling-media -- --ignored --nocapture`
#[test]
#[ignore = "timing, run by hand in release mode"]
fn timing_2mb_jpeg() {
    // A noisy 2400x1800 (4.3 MP) photo, at the quality that makes it about
    // 2 MB, like a phone's.
    let img = photo(2400, 1800);
    let mut jpeg = Vec::new();
    for quality in (40..=95).rev().step_by(5) {
        jpeg.clear();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
            .encode_image(&img)
            .expect("encode");
        if jpeg.len() <= 2_200_000 {
            break;
        }
    }
    let limits = Limits::default();
    let _ = process(&jpeg, &limits).expect("warm up");
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        process(&jpeg, &limits).expect("processed");
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    println!(
        "process(): {ms:.0} ms per {:.1} MB 2400x1800 JPEG (decode, re-encode at q90, preview, blurhash), one thread",
        jpeg.len() as f64 / 1e6
    );
}

#[test]
fn gif_declaring_a_huge_screen_is_refused_before_decoding() {
    // The logical screen size in the header, patched to 60000x60000; still
    // and animated (the latter before ffmpeg is ever run).
    let still = encode(&halves(8, 8), ImageFormat::Gif);
    let mut animated = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut animated);
        let frames = (0..2).map(|_| {
            image::Frame::from_parts(
                RgbaImage::from_pixel(8, 8, Rgba([1, 2, 3, 255])),
                0,
                0,
                image::Delay::from_numer_denom_ms(50, 1),
            )
        });
        enc.encode_frames(frames).expect("gif");
    }
    for mut gif in [still, animated] {
        gif[6..8].copy_from_slice(&60_000u16.to_le_bytes());
        gif[8..10].copy_from_slice(&60_000u16.to_le_bytes());
        let start = Instant::now();
        let e = assert_refused(process(&gif, &Limits::default()), "gif bomb");
        assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
