//! Video and animated GIF through Debian's `ffmpeg` and `ffprobe`, run as
//! child processes (never linked: a codec bug stays in a process that dies
//! alone).
//!
//! Containment, since the workspace forbids `unsafe` (so no `setrlimit` in
//! `pre_exec`) and `prlimit` is not assumed: the input is bounded before
//! ffmpeg sees it (the byte limit, and for GIFs the pixel limit from the
//! header), ffmpeg runs with `-nostdin`, `-threads 1` and explicit output
//! options (first video and first audio stream only, no metadata, no
//! chapters, no subtitles or data streams), and every run has a wall-clock
//! deadline ([`Limits::ffmpeg_timeout`]) after which the process is killed
//! and the upload refused. Its output is read by threads, so a chatty
//! ffmpeg cannot block on a full pipe. Files are in a private temporary
//! directory removed on return.
//!
//! Videos that are already H.264 (yuv420p) with AAC or no audio, in MP4 or
//! MOV, within the limits, are remuxed (`-c copy`: no quality lost, fast);
//! anything else is transcoded to H.264/AAC MP4 with `+faststart`, scaled
//! down to the pixel limit and its frame rate capped.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::sniff::{self, Format};
use crate::still;
use crate::{Limits, MediaError, MediaKind, Processed, Variant};

/// Whether `ffmpeg` and `ffprobe` can be run.
pub fn ffmpeg_available() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|bin| {
        Command::new(bin)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs a command to completion within `timeout`, killing it after.
/// Returns its standard output.
fn run(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>, MediaError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            MediaError::Storage(format!("cannot run {program} (is ffmpeg installed?): {e}"))
        })?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                // Bounded: ffprobe's JSON and ffmpeg's errors are small.
                let _ = p.by_ref().take(8 << 20).read_to_end(&mut buf);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(MediaError::Invalid(format!(
                    "processing took longer than {} s",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(MediaError::Storage(format!("waiting for {program}: {e}"))),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        let err = String::from_utf8_lossy(&err);
        let first = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(MediaError::Invalid(format!(
            "the file cannot be read as video ({})",
            first.chars().take(200).collect::<String>()
        )))
    }
}

fn ffmpeg() -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-threads",
        "1",
    ]);
    cmd
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<ProbeFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
    #[serde(default)]
    tags: serde_json::Map<String, serde_json::Value>,
}

fn ffprobe(path: &Path, limits: &Limits) -> Result<Probe, MediaError> {
    let out = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(path),
        limits.ffmpeg_timeout,
    )?;
    serde_json::from_slice(&out)
        .map_err(|e| MediaError::Invalid(format!("the video cannot be probed ({e})")))
}

/// "30000/1001" as a number (None for 0/0 and garbage).
fn rate(r: &str) -> Option<f64> {
    let (n, d) = r.split_once('/').unwrap_or((r, "1"));
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (d > 0.0 && n > 0.0 && (n / d).is_finite()).then_some(n / d)
}

/// The clockwise rotation a player applies, from the display matrix.
fn rotation(stream: &Stream) -> i64 {
    let from_side = stream
        .side_data_list
        .iter()
        .find_map(|s| s.get("rotation").and_then(serde_json::Value::as_f64));
    let from_tag = stream
        .tags
        .get("rotate")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<f64>().ok());
    from_side.or(from_tag).unwrap_or(0.0).round() as i64
}

/// Even dimensions within `max_pixels` (H.264 with yuv420p needs even).
fn even_fit(width: u32, height: u32, max_pixels: u64) -> (u32, u32) {
    let (w, h) = still::fit_dimensions(width, height, max_pixels);
    ((w & !1).max(2), (h & !1).max(2))
}

pub(crate) fn process_video(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Processed, MediaError> {
    if bytes.len() > limits.video_max_bytes {
        return Err(MediaError::TooLarge(format!(
            "the video is {} bytes; at most {} are accepted",
            bytes.len(),
            limits.video_max_bytes
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| MediaError::Storage(format!("temp dir: {e}")))?;
    let input = dir.path().join(match format {
        Format::Matroska => "input.webm",
        _ => "input.mp4",
    });
    std::fs::write(&input, bytes).map_err(|e| MediaError::Storage(format!("temp file: {e}")))?;
    let probe = ffprobe(&input, limits)?;
    let container = probe
        .format
        .as_ref()
        .and_then(|f| f.format_name.clone())
        .unwrap_or_default();
    let video = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"))
        .ok_or_else(|| {
            if probe
                .streams
                .iter()
                .any(|s| s.codec_type.as_deref() == Some("audio"))
            {
                MediaError::Unsupported("audio files are not supported".into())
            } else {
                MediaError::Invalid("the file has no video stream".into())
            }
        })?;
    let audio = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    let (Some(coded_w), Some(coded_h)) = (video.width, video.height) else {
        return Err(MediaError::Invalid("the video has no dimensions".into()));
    };
    if coded_w == 0 || coded_h == 0 {
        return Err(MediaError::Invalid("the video has no pixels".into()));
    }
    let (width, height) = if rotation(video).rem_euclid(180) == 90 {
        (coded_h, coded_w)
    } else {
        (coded_w, coded_h)
    };
    let duration = probe
        .format
        .as_ref()
        .and_then(|f| f.duration.as_deref())
        .or(video.duration.as_deref())
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0);
    let Some(duration) = duration else {
        return Err(MediaError::Invalid("the video has no duration".into()));
    };
    if duration > limits.video_max_seconds {
        return Err(MediaError::TooLarge(format!(
            "the video is {duration:.1} s long; at most {} s are accepted",
            limits.video_max_seconds
        )));
    }
    let fps_text = video
        .avg_frame_rate
        .as_deref()
        .filter(|r| rate(r).is_some())
        .or(video.r_frame_rate.as_deref())
        .unwrap_or("0/0")
        .to_owned();
    let fps = rate(&fps_text);
    let pixels = u64::from(width) * u64::from(height);
    let within = pixels <= limits.video_max_pixels
        && fps.is_some_and(|f| f <= limits.video_max_frame_rate)
        && width % 2 == 0
        && height % 2 == 0;
    let copyable = (container.contains("mp4") || container.contains("mov"))
        && video.codec_name.as_deref() == Some("h264")
        && video.pix_fmt.as_deref() == Some("yuv420p")
        && audio.is_none_or(|a| a.codec_name.as_deref() == Some("aac"));

    let output = dir.path().join("original.mp4");
    let mut cmd = ffmpeg();
    cmd.arg("-i").arg(&input).args([
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-sn",
        "-dn",
    ]);
    let (out_w, out_h, out_rate) = if copyable && within {
        cmd.args(["-c", "copy"]);
        (width, height, fps_text)
    } else {
        let (w, h) = even_fit(width, height, limits.video_max_pixels);
        cmd.args(["-vf", &format!("scale={w}:{h}")]);
        cmd.args(h264_args());
        cmd.args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"]);
        let out_rate = match fps {
            Some(f) if f <= limits.video_max_frame_rate => fps_text,
            _ => {
                let max = limits.video_max_frame_rate.floor().max(1.0);
                cmd.args(["-r", &format!("{max}")]);
                format!("{max}/1")
            }
        };
        (w, h, out_rate)
    };
    cmd.args(["-movflags", "+faststart", "-f", "mp4"])
        .arg(&output);
    run(&mut cmd, limits.ffmpeg_timeout)?;
    let original = read_output(&output, out_w, out_h)?;
    let (small, blurhash) = poster(dir.path(), &output, out_w, out_h, limits)?;
    Ok(Processed {
        kind: MediaKind::Video,
        original,
        small,
        blurhash: Some(blurhash),
        duration: Some(duration),
        frame_rate: Some(out_rate),
    })
}

fn h264_args() -> [&'static str; 8] {
    [
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
    ]
}

fn read_output(path: &Path, width: u32, height: u32) -> Result<Variant, MediaError> {
    let bytes =
        std::fs::read(path).map_err(|e| MediaError::Invalid(format!("no video was made ({e})")))?;
    if bytes.is_empty() {
        return Err(MediaError::Invalid("no video was made".into()));
    }
    Ok(Variant {
        bytes,
        content_type: "video/mp4",
        ext: "mp4",
        width,
        height,
    })
}

/// The first frame at preview size, as a JPEG, and its blurhash.
fn poster(
    dir: &Path,
    video: &Path,
    width: u32,
    height: u32,
    limits: &Limits,
) -> Result<(Variant, String), MediaError> {
    let (w, h) = still::fit_dimensions(width, height, still::SMALL_PIXELS);
    let out = dir.join("poster.png");
    run(
        ffmpeg()
            .arg("-i")
            .arg(video)
            .args([
                "-map",
                "0:v:0",
                "-frames:v",
                "1",
                "-vf",
                &format!("scale={w}:{h}"),
            ])
            .args(["-map_metadata", "-1", "-f", "image2", "-c:v", "png"])
            .arg(&out),
        limits.ffmpeg_timeout,
    )?;
    let png = std::fs::read(&out)
        .map_err(|e| MediaError::Invalid(format!("no poster frame was made ({e})")))?;
    let img = still::decode(&png, image::ImageFormat::Png, limits)?;
    let blurhash = still::blurhash_of(&img)?;
    Ok((still::encode_jpeg(&img, 80)?, blurhash))
}

/// An animated GIF as a silent looping H.264 MP4 (Mastodon's `gifv`), with
/// its first frame as the preview.
pub(crate) fn process_gifv(bytes: &[u8], limits: &Limits) -> Result<Processed, MediaError> {
    let gif = sniff::gif_structure(bytes).map_err(|e| MediaError::Invalid(e.to_owned()))?;
    still::check_dimensions(gif.width, gif.height, limits.image_max_pixels)?;
    let dir = tempfile::tempdir().map_err(|e| MediaError::Storage(format!("temp dir: {e}")))?;
    let input = dir.path().join("input.gif");
    std::fs::write(&input, bytes).map_err(|e| MediaError::Storage(format!("temp file: {e}")))?;
    let probe = ffprobe(&input, limits)?;
    let video = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"))
        .ok_or_else(|| MediaError::Invalid("the GIF cannot be read".into()))?;
    let (width, height) = (
        video.width.unwrap_or(gif.width),
        video.height.unwrap_or(gif.height),
    );
    still::check_dimensions(width, height, limits.image_max_pixels)?;
    let (w, h) = even_fit(width, height, limits.video_max_pixels);
    let output = dir.path().join("original.mp4");
    let mut cmd = ffmpeg();
    cmd.arg("-i")
        .arg(&input)
        .args(["-map", "0:v:0", "-an", "-map_metadata", "-1"])
        .args(["-vf", &format!("scale={w}:{h}:flags=lanczos")])
        .args(h264_args())
        .args(["-movflags", "+faststart", "-f", "mp4"])
        .arg(&output);
    run(&mut cmd, limits.ffmpeg_timeout)?;
    let original = read_output(&output, w, h)?;
    let out_probe = ffprobe(&output, limits)?;
    let duration = out_probe
        .format
        .as_ref()
        .and_then(|f| f.duration.as_deref())
        .and_then(|d| d.parse::<f64>().ok());
    let frame_rate = out_probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"))
        .and_then(|s| s.avg_frame_rate.clone())
        .filter(|r| rate(r).is_some());
    if duration.is_some_and(|d| d > limits.video_max_seconds) {
        return Err(MediaError::TooLarge(format!(
            "the animation is longer than {} s",
            limits.video_max_seconds
        )));
    }
    let first = still::decode(bytes, image::ImageFormat::Gif, limits)?;
    let small = still::fit(&first, still::SMALL_PIXELS);
    Ok(Processed {
        kind: MediaKind::Gifv,
        original,
        blurhash: Some(still::blurhash_of(&small)?),
        small: still::encode_preview(&small)?,
        duration,
        frame_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(rate("30/1"), Some(30.0));
        assert!((rate("30000/1001").unwrap_or(0.0) - 29.97).abs() < 0.01);
        assert_eq!(rate("0/0"), None);
        assert_eq!(rate("abc"), None);
        assert_eq!(even_fit(641, 361, 10_000_000), (640, 360));
        assert_eq!(even_fit(1, 1, 10_000_000), (2, 2));
    }
}
