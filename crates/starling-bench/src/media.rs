//! `starling-bench media`: media uploads end to end over HTTP, and the
//! serving of a processed preview against the ceiling probe.
//!
//! One noisy photo-like JPEG of about `--image-bytes` (a gradient under
//! per-pixel noise, quality 90: it compresses like a phone's photo, not
//! like a flat test card) is generated once and uploaded again and again
//! as a `multipart/form-data` `POST /api/v2/media`, each upload on behalf
//! of a user of the users file. An upload is done when its `url` is known:
//! at once when the server processed it on the request path (200; Starling
//! does this for images up to 4 MiB), or when polling
//! `GET /api/v1/media/:id` every `--poll` answers 200 after the 202 of an
//! upload a worker processes. Latency runs from the upload's start
//! (closed loop) or its intended start (`--rate`, open loop) to that
//! moment.
//!
//! With `--server-pid`, the report adds the server's CPU time per upload
//! (so uploads per CPU-second: per core) and its memory: resident before,
//! the highest resident seen while uploading (sampled every 20 ms), and the
//! process's lifetime peak (`VmHWM`) after. Start a fresh server per
//! concurrency level to read the peak of that level alone.
//!
//! With `--serve-duration`, the last upload's preview (`preview_url`; or
//! with `--serve-file original` its re-encoded original) is then fetched
//! closed loop over `--serve-connections` connections, and the ceiling
//! probe the same way with a body of the file's size: what share of what
//! the HTTP stack can serve the media route delivers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::parse_duration;
use crate::client::{Conn, Target};
use crate::procstat::{self, mib, ProcSample, RssWatch};
use crate::report::{Environment, Percentiles};
use crate::users;

#[derive(Args, Clone, Debug)]
pub struct MediaArgs {
    /// Base URL of the server under test (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub target: String,
    /// The users file written by `seed` [default: <data-dir>/bench-users.tsv].
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// Data directory the users file was seeded into (only used to find the
    /// users file).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Approximate size of the generated JPEG (quality 90, 4:3; its pixel
    /// count is chosen to reach this size). Starling processes images up to
    /// 4 MiB on the request path and larger ones in a worker.
    #[arg(long, default_value_t = 2_000_000)]
    pub image_bytes: usize,
    /// Also write the generated JPEG to this file.
    #[arg(long, value_name = "FILE")]
    pub save_image: Option<PathBuf>,
    /// Uploads in flight at once (closed loop: each connection uploads
    /// again as soon as its last upload is ready; with --rate, the most in
    /// flight).
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Uploads measured.
    #[arg(long, default_value_t = 40)]
    pub uploads: usize,
    /// Uploads made one at a time before measuring (not counted).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Uploads started per second at fixed intervals (open loop; latency
    /// from the intended start); 0 runs closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// How often an upload answered 202 is polled until its URL is ready.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub poll: Duration,
    /// An upload not ready after this long counts as a timeout.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The server's process id: report its CPU time per upload and its
    /// memory (resident before, highest while uploading, lifetime peak).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// After the uploads, fetch the last upload's file closed loop for
    /// this long, then the ceiling probe with a body of the same size; 0
    /// skips it.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub serve_duration: Duration,
    /// Which file of the last upload the serving measurement fetches: its
    /// preview (`preview_url`) or its re-encoded original (`url`; upload a
    /// small image to serve a small original).
    #[arg(long, value_enum, default_value_t = ServeFile::Preview)]
    pub serve_file: ServeFile,
    /// Connections for the serving measurement.
    #[arg(long, default_value_t = 32)]
    pub serve_connections: usize,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A processed file of an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeFile {
    /// `preview_url` (`/media/<id>/small.<ext>`).
    Preview,
    /// `url` (`/media/<id>/original.<ext>`).
    Original,
}

/// The generated upload.
#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    pub bytes: usize,
    pub width: u32,
    pub height: u32,
    pub quality: u8,
}

/// The server process around the uploads.
#[derive(Clone, Debug, Serialize)]
pub struct ServerUse {
    pub before: ProcSample,
    pub after: ProcSample,
    /// Highest `VmRSS` sampled (every 20 ms) while uploading.
    pub max_rss_bytes: u64,
    /// Server CPU seconds spent during the measured uploads.
    pub cpu_seconds: f64,
    pub cpu_ms_per_upload: f64,
    /// Uploads processed per second of server CPU: per core.
    pub uploads_per_cpu_second: f64,
}

/// A closed-loop GET of one path.
#[derive(Clone, Debug, Serialize)]
pub struct ServeReport {
    pub path: String,
    pub connections: usize,
    pub ok: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub mean_body_bytes: u64,
    pub latency_ms: Percentiles,
    pub server_cpu_us_per_request: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MediaReport {
    pub environment: Environment,
    pub target: String,
    pub image: ImageInfo,
    /// "open" (fixed rate) or "closed".
    pub mode: String,
    pub offered_per_second: f64,
    pub concurrency: usize,
    pub uploads: usize,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: Vec<String>,
    /// Uploads answered 200 with their URL at once (processed on the
    /// request path).
    pub answered_ready: u64,
    /// Uploads answered 202 and polled until ready (processed by a worker).
    pub answered_accepted: u64,
    pub seconds: f64,
    pub uploads_per_second: f64,
    /// From the upload's (intended) start until its `url` was known.
    pub ready_ms: Percentiles,
    /// From the upload's start until the POST was answered.
    pub post_ms: Percentiles,
    pub server: Option<ServerUse>,
    /// The file the serving measurement fetched.
    pub served_url: Option<String>,
    pub served: Option<ServeReport>,
    pub ceiling: Option<ServeReport>,
    /// The served file's requests/s over the ceiling probe's.
    pub served_fraction_of_ceiling: Option<f64>,
}

impl MediaReport {
    pub fn print(&self) {
        eprintln!(
            "media uploads to {}: {:.2} MB JPEG ({}x{}, q{}), {} loop{}, {} in flight",
            self.target,
            self.image.bytes as f64 / 1e6,
            self.image.width,
            self.image.height,
            self.image.quality,
            self.mode,
            if self.mode == "open" {
                format!(" at {:.2}/s", self.offered_per_second)
            } else {
                String::new()
            },
            self.concurrency
        );
        eprintln!(
            "  {} ready ({} answered 200, {} answered 202 and polled), {} errors {:?} in {:.1} s: {:.2} uploads/s",
            self.ok,
            self.answered_ready,
            self.answered_accepted,
            self.errors,
            self.error_kinds,
            self.seconds,
            self.uploads_per_second
        );
        for (name, p) in [
            ("until url", &self.ready_ms),
            ("POST answered", &self.post_ms),
        ] {
            eprintln!(
                "  {name:<14} p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                p.p50, p.p90, p.p99, p.max
            );
        }
        if let Some(s) = &self.server {
            eprintln!(
                "  server: {:.0} ms CPU an upload ({:.2} uploads per CPU-second); resident {:.0} MiB before, {:.0} MiB at most while uploading (+{:.0} MiB), {:.0} MiB after; lifetime peak {:.0} MiB",
                s.cpu_ms_per_upload,
                s.uploads_per_cpu_second,
                mib(s.before.rss_bytes),
                mib(s.max_rss_bytes),
                mib(s.max_rss_bytes.saturating_sub(s.before.rss_bytes)),
                mib(s.after.rss_bytes),
                mib(s.after.hwm_bytes)
            );
        }
        let served = self.served_url.as_deref().unwrap_or("the file");
        for (name, r) in [(served, &self.served), ("ceiling probe", &self.ceiling)] {
            if let Some(r) = r {
                eprintln!(
                    "  {name} ({} B, {} connections, closed loop): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors{}",
                    r.mean_body_bytes,
                    r.connections,
                    r.requests_per_second,
                    r.latency_ms.p50,
                    r.latency_ms.p99,
                    r.errors,
                    r.server_cpu_us_per_request
                        .map(|us| format!(", server CPU {us:.0} µs a request"))
                        .unwrap_or_default()
                );
            }
        }
        if let Some(f) = self.served_fraction_of_ceiling {
            eprintln!("  serving the file: {:.1}% of the ceiling probe", f * 100.0);
        }
    }
}

/// A deterministic photo-like image: a colour gradient under per-pixel
/// noise, which JPEG compresses about as well as a phone's photo.
fn photo(width: u32, height: u32) -> image::RgbImage {
    let mut seed: u32 = 0x9E37_79B9;
    image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed & 0x3F) as u8;
        image::Rgb([
            ((u64::from(x) * 255 / u64::from(width)) as u8).saturating_add(n),
            ((u64::from(y) * 255 / u64::from(height)) as u8).saturating_add(n / 2),
            128u8.saturating_add(n),
        ])
    })
}

const QUALITY: u8 = 90;

fn encode(width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(&photo(width, height))
        .context("encoding the test JPEG")?;
    Ok(jpeg)
}

/// A 4:3 noisy JPEG of about `target` bytes (within 7%, or the closest of
/// a few tries).
pub fn noisy_jpeg(target: usize) -> anyhow::Result<(Vec<u8>, ImageInfo)> {
    // About 0.46 bytes a pixel at quality 90 for this noise.
    let mut pixels = (target as f64 / 0.46).clamp(64.0 * 48.0, 33_000_000.0);
    let mut best: Option<(Vec<u8>, u32, u32)> = None;
    for _ in 0..5 {
        let width = (pixels * 4.0 / 3.0).sqrt().round().max(4.0) as u32;
        let height = (width * 3 / 4).max(3);
        let jpeg = encode(width, height)?;
        let ratio = target as f64 / jpeg.len().max(1) as f64;
        let closer = best.as_ref().is_none_or(|(b, _, _)| {
            (b.len() as f64 - target as f64).abs() > (jpeg.len() as f64 - target as f64).abs()
        });
        if closer {
            best = Some((jpeg, width, height));
        }
        if (0.93..=1.07).contains(&ratio) {
            break;
        }
        pixels = (pixels * ratio).clamp(64.0 * 48.0, 33_000_000.0);
    }
    let (jpeg, width, height) = best.context("no image generated")?;
    let info = ImageInfo {
        bytes: jpeg.len(),
        width,
        height,
        quality: QUALITY,
    };
    Ok((jpeg, info))
}

const BOUNDARY: &str = "starling-bench-7d1f0a2c9e";

/// The upload's `multipart/form-data` body: one `file` part.
fn multipart(jpeg: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(jpeg.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(jpeg);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(body)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

fn request(
    target: &Target,
    method: Method,
    path: &str,
    bearer: Option<&HeaderValue>,
    body: Bytes,
    content_type: Option<&HeaderValue>,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = format!("{}{path}", target.base_path)
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let h = req.headers_mut();
    h.insert(HOST, target.authority.clone());
    if let Some(b) = bearer {
        h.insert(AUTHORIZATION, b.clone());
    }
    if let Some(t) = content_type {
        h.insert(CONTENT_TYPE, t.clone());
    }
    req
}

/// What one upload came to.
enum Outcome {
    Ready {
        post: Duration,
        accepted: bool,
        urls: Urls,
    },
    Failed(String),
}

/// The fixed parts of every upload.
struct Uploader {
    target: Target,
    body: Bytes,
    content_type: HeaderValue,
    bearers: Vec<HeaderValue>,
    poll: Duration,
    timeout: Duration,
}

fn text_field(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_owned)
}

/// An upload's files, as its answer names them.
#[derive(Clone, Debug, Default)]
struct Urls {
    original: Option<String>,
    preview: Option<String>,
}

impl Urls {
    fn of(v: &serde_json::Value) -> Self {
        Self {
            original: text_field(v, "url"),
            preview: text_field(v, "preview_url"),
        }
    }
}

impl Uploader {
    /// One upload on `conn` until its URL is known.
    async fn upload(&self, conn: &mut Option<Conn>, user: usize) -> Outcome {
        match tokio::time::timeout(self.timeout, self.upload_inner(conn, user)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                *conn = None;
                Outcome::Failed(format!("{e:#}"))
            }
            Err(_) => {
                *conn = None;
                Outcome::Failed("timeout".into())
            }
        }
    }

    async fn upload_inner(&self, conn: &mut Option<Conn>, user: usize) -> anyhow::Result<Outcome> {
        if conn.is_none() {
            *conn = Some(Conn::open(&self.target).await.context("connect")?);
        }
        let Some(c) = conn.as_mut() else {
            bail!("no connection");
        };
        let bearer = &self.bearers[user % self.bearers.len()];
        let start = Instant::now();
        let (status, body) = c
            .send_collect(request(
                &self.target,
                Method::POST,
                "/api/v2/media",
                Some(bearer),
                self.body.clone(),
                Some(&self.content_type),
            ))
            .await
            .context("upload")?;
        let post = start.elapsed();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        match status {
            StatusCode::OK if v.get("url").is_some_and(|u| u.is_string()) => {
                return Ok(Outcome::Ready {
                    post,
                    accepted: false,
                    urls: Urls::of(&v),
                })
            }
            StatusCode::OK | StatusCode::ACCEPTED => {}
            other => return Ok(Outcome::Failed(format!("status {}", other.as_u16()))),
        }
        let id = text_field(&v, "id").context("the upload's answer has no id")?;
        let path = format!("/api/v1/media/{id}");
        loop {
            tokio::time::sleep(self.poll).await;
            let (status, body) = c
                .send_collect(request(
                    &self.target,
                    Method::GET,
                    &path,
                    Some(bearer),
                    Bytes::new(),
                    None,
                ))
                .await
                .context("polling the upload")?;
            match status {
                StatusCode::PARTIAL_CONTENT => continue,
                StatusCode::OK => {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if v.get("url").is_some_and(|u| u.is_string()) {
                        return Ok(Outcome::Ready {
                            post,
                            accepted: true,
                            urls: Urls::of(&v),
                        });
                    }
                }
                other => {
                    return Ok(Outcome::Failed(format!(
                        "status {} while polling",
                        other.as_u16()
                    )))
                }
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    ready: Option<Histogram<u64>>,
    post: Option<Histogram<u64>>,
    ok: u64,
    accepted: u64,
    errors: Vec<String>,
    urls: Option<Urls>,
}

impl Tally {
    fn new() -> Self {
        Self {
            ready: Some(histogram()),
            post: Some(histogram()),
            ..Self::default()
        }
    }

    fn record(&mut self, outcome: Outcome, ready: Duration) {
        match outcome {
            Outcome::Ready {
                post,
                accepted,
                urls,
            } => {
                self.ok += 1;
                self.accepted += u64::from(accepted);
                if let Some(h) = self.ready.as_mut() {
                    h.saturating_record(ready.as_micros().max(1) as u64);
                }
                if let Some(h) = self.post.as_mut() {
                    h.saturating_record(post.as_micros().max(1) as u64);
                }
                self.urls = Some(urls);
            }
            Outcome::Failed(why) => self.errors.push(why),
        }
    }

    fn merge(&mut self, other: Tally) {
        for (mine, theirs) in [(&mut self.ready, other.ready), (&mut self.post, other.post)] {
            if let (Some(m), Some(t)) = (mine.as_mut(), theirs) {
                let _ = m.add(&t);
            }
        }
        self.ok += other.ok;
        self.accepted += other.accepted;
        self.errors.extend(other.errors);
        if other.urls.is_some() {
            self.urls = other.urls;
        }
    }
}

/// Closed-loop GETs of `path` over `connections` connections for
/// `duration`.
pub async fn serve_closed_loop(
    target: &Target,
    path: &str,
    connections: usize,
    duration: Duration,
    server_pid: Option<u32>,
) -> ServeReport {
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + duration;
    let cpu_before = server_pid.and_then(procstat::sample);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (target, path) = (target.clone(), path.to_owned());
        tasks.spawn(async move {
            let mut h = histogram();
            let (mut errors, mut bytes) = (0u64, 0u64);
            let mut conn = Conn::open(&target).await.ok();
            tokio::time::sleep_until(start).await;
            while Instant::now() < end {
                if conn.is_none() {
                    conn = Conn::open(&target).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let t = Instant::now();
                let req = request(&target, Method::GET, &path, None, Bytes::new(), None);
                match tokio::time::timeout(Duration::from_secs(10), c.send(req)).await {
                    Ok(Ok((status, n))) if status.is_success() => {
                        h.saturating_record(t.elapsed().as_micros().max(1) as u64);
                        bytes += n as u64;
                    }
                    Ok(Ok(_)) => errors += 1,
                    _ => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (h, errors, bytes)
        });
    }
    let mut all = histogram();
    let (mut errors, mut bytes) = (0u64, 0u64);
    while let Some(done) = tasks.join_next().await {
        if let Ok((h, e, b)) = done {
            let _ = all.add(&h);
            errors += e;
            bytes += b;
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let ok = all.len();
    let cpu = match (cpu_before, server_pid.and_then(procstat::sample)) {
        (Some(a), Some(b)) if ok > 0 => Some((b.cpu_seconds - a.cpu_seconds) * 1e6 / ok as f64),
        _ => None,
    };
    ServeReport {
        path: path.to_owned(),
        connections,
        ok,
        errors,
        requests_per_second: ok as f64 / seconds,
        mean_body_bytes: bytes.checked_div(ok).unwrap_or(0),
        latency_ms: Percentiles::of_us(&all),
        server_cpu_us_per_request: cpu,
    }
}

pub async fn media(args: &MediaArgs) -> anyhow::Result<MediaReport> {
    let target = Target::parse(&args.target)?;
    let users_path = args
        .users_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("bench-users.tsv"));
    let users = users::read(&users_path)?;
    if users.is_empty() {
        bail!("{} holds no users", users_path.display());
    }
    let (jpeg, image) = noisy_jpeg(args.image_bytes)?;
    if let Some(path) = &args.save_image {
        std::fs::write(path, &jpeg).with_context(|| format!("writing {}", path.display()))?;
    }
    let uploader = Arc::new(Uploader {
        target: target.clone(),
        body: multipart(&jpeg),
        content_type: HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}"))
            .context("content type")?,
        bearers: users
            .iter()
            .map(|u| HeaderValue::from_str(&format!("Bearer {}", u.token)))
            .collect::<Result<_, _>>()
            .context("a token in the users file is not a header value")?,
        poll: args.poll,
        timeout: args.timeout,
    });
    drop(jpeg);

    // Warm-up, one at a time: the first upload opens files and pools.
    let mut conn = None;
    for i in 0..args.warmup {
        if let Outcome::Failed(why) = uploader.upload(&mut conn, i).await {
            bail!("a warm-up upload failed: {why}");
        }
    }
    drop(conn);

    let before = args.server_pid.and_then(procstat::sample);
    let watch = args
        .server_pid
        .map(|pid| RssWatch::start(pid, Duration::from_millis(20)));
    let concurrency = args.concurrency.max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let (tx, rx) = flume::unbounded::<Instant>();
    let open = args.rate > 0.0;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (uploader, next, rx) = (uploader.clone(), next.clone(), rx.clone());
        let total = args.uploads;
        tasks.spawn(async move {
            let mut tally = Tally::new();
            let mut conn = Conn::open(&uploader.target).await.ok();
            tokio::time::sleep_until(start).await;
            loop {
                let intended = if open {
                    match rx.recv_async().await {
                        Ok(at) => at,
                        Err(_) => break,
                    }
                } else {
                    Instant::now()
                };
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let outcome = uploader.upload(&mut conn, i).await;
                tally.record(outcome, intended.elapsed());
            }
            tally
        });
    }
    drop(rx);
    if open {
        let interval = Duration::from_secs_f64(1.0 / args.rate);
        for k in 0..args.uploads {
            let at = start + interval * k as u32;
            tokio::time::sleep_until(at).await;
            if tx.send(at).is_err() {
                break;
            }
        }
    }
    drop(tx);
    let mut tally = Tally::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(t) = done {
            tally.merge(t);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let max_rss = match watch {
        Some(w) => w.finish().await,
        None => 0,
    };
    let after = args.server_pid.and_then(procstat::sample);
    let server = match (before, after) {
        (Some(before), Some(after)) => {
            let cpu = after.cpu_seconds - before.cpu_seconds;
            Some(ServerUse {
                before,
                after,
                max_rss_bytes: max_rss.max(after.rss_bytes),
                cpu_seconds: cpu,
                cpu_ms_per_upload: cpu * 1000.0 / tally.ok.max(1) as f64,
                uploads_per_cpu_second: if cpu > 0.0 {
                    tally.ok as f64 / cpu
                } else {
                    0.0
                },
            })
        }
        _ => None,
    };

    let urls = tally.urls.clone().unwrap_or_default();
    let served_url = match args.serve_file {
        ServeFile::Preview => urls.preview.clone(),
        ServeFile::Original => urls.original.clone(),
    };
    let served_path = served_url.as_deref().and_then(|u| {
        url::Url::parse(u).ok().map(|p| {
            format!(
                "{}{}",
                p.path(),
                p.query().map_or(String::new(), |q| format!("?{q}"))
            )
        })
    });
    let (mut served, mut ceiling) = (None, None);
    if let (Some(path), false) = (&served_path, args.serve_duration.is_zero()) {
        let p = serve_closed_loop(
            &target,
            path,
            args.serve_connections,
            args.serve_duration,
            args.server_pid,
        )
        .await;
        let bytes = p.mean_body_bytes.max(64);
        let c = serve_closed_loop(
            &target,
            &format!("/api/v1/_bench/ceiling?bytes={bytes}"),
            args.serve_connections,
            args.serve_duration,
            args.server_pid,
        )
        .await;
        served = Some(p);
        if c.ok > 0 {
            ceiling = Some(c);
        }
    }
    let served_fraction_of_ceiling = match (&served, &ceiling) {
        (Some(p), Some(c)) if c.requests_per_second > 0.0 => {
            Some(p.requests_per_second / c.requests_per_second)
        }
        _ => None,
    };
    let mut error_kinds: Vec<String> = tally.errors.clone();
    error_kinds.sort();
    error_kinds.dedup();
    let ok = tally.ok;
    Ok(MediaReport {
        environment: Environment::here(),
        target: args.target.clone(),
        image,
        mode: if open { "open" } else { "closed" }.into(),
        offered_per_second: args.rate,
        concurrency,
        uploads: args.uploads,
        ok,
        errors: tally.errors.len() as u64,
        error_kinds,
        answered_ready: ok - tally.accepted,
        answered_accepted: tally.accepted,
        seconds,
        uploads_per_second: ok as f64 / seconds.max(1e-9),
        ready_ms: tally
            .ready
            .as_ref()
            .map(Percentiles::of_us)
            .unwrap_or_default(),
        post_ms: tally
            .post
            .as_ref()
            .map(Percentiles::of_us)
            .unwrap_or_default(),
        server,
        served_url,
        served,
        ceiling,
        served_fraction_of_ceiling,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_image_is_about_the_size_asked() {
        let (jpeg, info) = noisy_jpeg(300_000).expect("an image");
        assert_eq!(jpeg.len(), info.bytes);
        assert!(
            (250_000..=350_000).contains(&info.bytes),
            "{} bytes",
            info.bytes
        );
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let body = multipart(&jpeg);
        assert!(body.len() > jpeg.len());
        assert!(body.ends_with(format!("--{BOUNDARY}--\r\n").as_bytes()));
    }
}
