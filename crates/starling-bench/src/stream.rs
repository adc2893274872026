//! `starling-bench stream`: how long a post takes to reach its author's
//! followers' open streams, and what an open stream costs the server.
//!
//! The first `--streams` users of the users file are the followers; the
//! author is the user after them with the fewest followers (or
//! `--author`), and each follower follows them first (a no-op for those who
//! already do), so the author's followers are about exactly the streams
//! opened. Every follower then opens `GET /api/v1/streaming/user` (Server-
//! Sent Events, one HTTP/1.1 connection each, as a Mastodon client does),
//! and the tool waits for each stream's first bytes.
//!
//! Then the author posts `--posts` public statuses, one every
//! `--interval`, each once the last one reached every stream (or
//! `--timeout` passed). For each status and each stream, the latency runs
//! from just before the `POST /api/v1/statuses` was sent to the moment the
//! stream's `update` event carrying that status's id was read: the post's
//! own request, the outbox relay, the fan-out into home timelines, the live
//! event's publish and the per-viewer rendering on each stream, all
//! included. The generator reads every stream on the same machine, so with
//! a thousand streams its own scheduling is in the figures too.
//!
//! With `--server-pid`, the report adds the server's resident memory before
//! and after the streams were opened: the difference over the number of
//! streams is the memory an open stream costs (connection, subscription,
//! queue and the response's state).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::Api;
use crate::cli::parse_duration;
use crate::client::{Conn, Target};
use crate::procstat::{self, mib, ProcSample};
use crate::report::{Environment, Percentiles};
use crate::users::{self, User};

#[derive(Args, Clone, Debug)]
pub struct StreamArgs {
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
    /// Streams opened: one per follower, the first N users of the file.
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// The author's position in the users file [default: the user after
    /// the followers with the fewest followers].
    #[arg(long)]
    pub author: Option<usize>,
    /// Statuses the author posts while the streams are open.
    #[arg(long, default_value_t = 20)]
    pub posts: usize,
    /// Pause after a status reached every stream, before the next.
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// A status not on a stream after this long counts as missed there.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pause after the follows and after opening the streams, before the
    /// memory is read (lets the server's follow fan-out and allocations
    /// settle).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 32)]
    pub open_concurrency: usize,
    /// The server's process id: report its memory before and after the
    /// streams were opened (and its CPU time per delivered event).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamMemory {
    /// Before any stream was opened (after the follows).
    pub before: ProcSample,
    /// A second after every stream was open.
    pub open: ProcSample,
    /// After the posts, streams still open.
    pub after_posts: ProcSample,
    /// (open − before) / streams.
    pub bytes_per_stream: f64,
    pub threads_before: u64,
    pub threads_open: u64,
    /// Server CPU while posting, per event delivered to a stream.
    pub cpu_us_per_delivery: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamReport {
    pub environment: Environment,
    pub target: String,
    pub streams: usize,
    pub author: String,
    pub author_followers: Option<u64>,
    /// Seconds to open every stream (until each sent its first bytes).
    pub open_seconds: f64,
    pub posts: usize,
    /// Events expected: posts × streams.
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    /// Streams that ended or failed during the run.
    pub stream_failures: u64,
    /// From just before the POST to each stream's `update` for it.
    pub delivery_ms: Percentiles,
    /// Per post: until the last stream had it.
    pub last_stream_ms: Percentiles,
    /// Per post: until the first stream had it.
    pub first_stream_ms: Percentiles,
    /// The POST's own answer.
    pub post_ms: Percentiles,
    pub memory: Option<StreamMemory>,
}

impl StreamReport {
    pub fn print(&self) {
        eprintln!(
            "streaming to {}: {} user streams (SSE) of followers of {} ({} followers); opened in {:.2} s",
            self.target,
            self.streams,
            self.author,
            self.author_followers
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            self.open_seconds
        );
        eprintln!(
            "  {} posts: {} of {} events delivered, {} missed, {} stream failures",
            self.posts, self.delivered, self.expected, self.missed, self.stream_failures
        );
        for (name, p) in [
            ("POST to event", &self.delivery_ms),
            ("to last stream", &self.last_stream_ms),
            ("to first stream", &self.first_stream_ms),
            ("POST answered", &self.post_ms),
        ] {
            eprintln!(
                "  {name:<16} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                p.p50, p.p90, p.p99, p.max
            );
        }
        if let Some(m) = &self.memory {
            eprintln!(
                "  server resident {:.1} MiB before, {:.1} MiB with the streams open ({:.1} KiB a stream), {:.1} MiB after the posts; threads {} -> {}; {:.0} µs of server CPU per delivered event",
                mib(m.before.rss_bytes),
                mib(m.open.rss_bytes),
                m.bytes_per_stream / 1024.0,
                mib(m.after_posts.rss_bytes),
                m.threads_before,
                m.threads_open,
                m.cpu_us_per_delivery
            );
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// The status id of an `update` event's data: the first `"id":"…"` of the
/// status JSON (Starling and Mastodon write the status's own id first).
fn update_id(event: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(event).ok()?;
    let mut kind = None;
    let mut data = None;
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = Some(k.trim());
        } else if let Some(d) = line.strip_prefix("data:") {
            data = Some(d.trim_start());
        }
    }
    if kind != Some("update") {
        return None;
    }
    let data = data?;
    let start = data.find("\"id\":\"")? + 6;
    let len = data[start..].find('"')?;
    Some(&data[start..start + len])
}

/// What a stream tells the collector.
enum Heard {
    Open,
    Update(String, Instant),
    Ended(String),
}

/// Opens one user stream and reports every `update` it carries.
async fn read_stream(target: Target, bearer: HeaderValue, tx: mpsc::UnboundedSender<Heard>) {
    let fail = |tx: &mpsc::UnboundedSender<Heard>, why: String| {
        let _ = tx.send(Heard::Ended(why));
    };
    let mut conn = match Conn::open(&target).await {
        Ok(c) => c,
        Err(e) => return fail(&tx, format!("connect: {e}")),
    };
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = format!("{}/api/v1/streaming/user", target.base_path)
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let h = req.headers_mut();
    h.insert(HOST, target.authority.clone());
    h.insert(AUTHORIZATION, bearer);
    h.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let resp = match conn.request(req).await {
        Ok(r) => r,
        Err(e) => return fail(&tx, format!("request: {e}")),
    };
    if !resp.status().is_success() {
        return fail(&tx, format!("status {}", resp.status().as_u16()));
    }
    let mut body = resp.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    let mut opened = false;
    loop {
        let frame = match body.frame().await {
            Some(Ok(f)) => f,
            Some(Err(e)) => return fail(&tx, format!("body: {e}")),
            None => return fail(&tx, "the stream ended".into()),
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        if !opened {
            opened = true;
            let _ = tx.send(Heard::Open);
        }
        buffer.extend_from_slice(&chunk);
        // Events end with a blank line.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            if let Some(id) = update_id(&buffer[..end]) {
                let _ = tx.send(Heard::Update(id.to_owned(), now));
            }
            buffer.drain(..end + 2);
        }
    }
}

fn pick_author(users: &[User], streams: usize, asked: Option<usize>) -> anyhow::Result<usize> {
    if let Some(i) = asked {
        if i >= users.len() {
            bail!("--author {i}: the users file has {} users", users.len());
        }
        if i < streams {
            bail!("--author {i} is one of the first {streams} users, the followers");
        }
        return Ok(i);
    }
    users
        .iter()
        .enumerate()
        .skip(streams)
        .min_by_key(|(_, u)| u.followers)
        .map(|(i, _)| i)
        .with_context(|| {
            format!("the users file needs more than {streams} users (the followers and an author)")
        })
}

pub async fn stream(args: &StreamArgs) -> anyhow::Result<StreamReport> {
    let target = Target::parse(&args.target)?;
    let users_path = args
        .users_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("bench-users.tsv"));
    let users = users::read(&users_path)?;
    let n = args.streams.max(1);
    let author_index = pick_author(&users, n, args.author)?;
    let author = users[author_index].clone();
    let followers: Vec<User> = users.into_iter().take(n).collect();
    if followers.len() < n {
        bail!("the users file has only {} users", followers.len());
    }
    let api = Api::new(&args.target)?;

    // Every follower follows the author (a no-op where they already do).
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut follows = tokio::task::JoinSet::new();
    for f in &followers {
        let (api, gate, token, id) = (
            api.clone(),
            gate.clone(),
            f.token.clone(),
            author.id.clone(),
        );
        follows.spawn(async move {
            let _slot = gate.acquire_owned().await;
            api.follow(&token, &id).await
        });
    }
    while let Some(done) = follows.join_next().await {
        done.context("a follow task failed")??;
    }
    let author_followers = api
        .account(&author.token, &author.id)
        .await
        .ok()
        .and_then(|v| v["followers_count"].as_u64());
    // Let the follow events' fan-out settle before measuring memory.
    tokio::time::sleep(args.settle).await;

    let before = args.server_pid.and_then(procstat::sample);
    let (tx, mut rx) = mpsc::unbounded_channel::<Heard>();
    let mut readers = tokio::task::JoinSet::new();
    let open_start = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.open_concurrency.max(1)));
    for f in &followers {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", f.token))
            .context("a token in the users file is not a header value")?;
        let (target, tx, gate) = (target.clone(), tx.clone(), gate.clone());
        readers.spawn(async move {
            // Held until the stream answers (the Open message), so at most
            // `open_concurrency` are being set up at once.
            let slot = gate.acquire_owned().await;
            let (inner_tx, mut inner_rx) = mpsc::unbounded_channel();
            let reader = tokio::spawn(read_stream(target, bearer, inner_tx));
            let mut slot = Some(slot);
            while let Some(heard) = inner_rx.recv().await {
                if matches!(heard, Heard::Open | Heard::Ended(_)) {
                    slot.take();
                }
                if tx.send(heard).is_err() {
                    break;
                }
            }
            reader.abort();
        });
    }
    drop(tx);
    let mut opened = 0usize;
    let mut stream_failures = 0u64;
    let mut early: Vec<(String, Instant)> = Vec::new();
    let open_deadline = Instant::now() + args.timeout.max(Duration::from_secs(30));
    while opened + (stream_failures as usize) < n {
        match tokio::time::timeout_at(open_deadline, rx.recv()).await {
            Ok(Some(Heard::Open)) => opened += 1,
            Ok(Some(Heard::Ended(why))) => {
                stream_failures += 1;
                if stream_failures <= 3 {
                    eprintln!("  a stream failed to open: {why}");
                }
            }
            Ok(Some(Heard::Update(id, at))) => early.push((id, at)),
            Ok(None) | Err(_) => break,
        }
    }
    let open_seconds = open_start.elapsed().as_secs_f64();
    if opened == 0 {
        bail!("no stream opened");
    }
    tokio::time::sleep(args.settle).await;
    let open_sample = args.server_pid.and_then(procstat::sample);

    // The posts.
    let mut conn = Conn::open(&target).await.context("connecting to post")?;
    let author_bearer = HeaderValue::from_str(&format!("Bearer {}", author.token))
        .context("the author's token is not a header value")?;
    let mut heard: HashMap<String, Vec<Instant>> = HashMap::new();
    for (id, at) in early {
        heard.entry(id).or_default().push(at);
    }
    let (mut delivery, mut last, mut first, mut post_h) =
        (histogram(), histogram(), histogram(), histogram());
    let (mut delivered, mut missed) = (0u64, 0u64);
    let cpu_before = args.server_pid.and_then(procstat::sample);
    for k in 0..args.posts {
        let body = serde_json::json!({
            "status": format!("stream probe {k} at {:?}", std::time::SystemTime::now()),
            "visibility": "public",
        })
        .to_string();
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = format!("{}/api/v1/statuses", target.base_path)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let h = req.headers_mut();
        h.insert(HOST, target.authority.clone());
        h.insert(AUTHORIZATION, author_bearer.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let t0 = Instant::now();
        let (status, answer) = conn.send_collect(req).await.context("posting")?;
        post_h.saturating_record(t0.elapsed().as_micros().max(1) as u64);
        if !status.is_success() {
            bail!("posting: status {status}");
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).context("post: not JSON")?;
        let id = v["id"].as_str().context("post: no id")?.to_owned();
        let deadline = t0 + args.timeout;
        let live = opened.saturating_sub(stream_failures as usize);
        while heard.get(&id).map_or(0, Vec::len) < live {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Heard::Update(i, at))) => heard.entry(i).or_default().push(at),
                Ok(Some(Heard::Ended(_))) => stream_failures += 1,
                Ok(Some(Heard::Open)) => opened += 1,
                Ok(None) | Err(_) => break,
            }
        }
        let times = heard.remove(&id).unwrap_or_default();
        delivered += times.len() as u64;
        missed += (live as u64).saturating_sub(times.len() as u64);
        for at in &times {
            delivery.saturating_record(at.saturating_duration_since(t0).as_micros().max(1) as u64);
        }
        if let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) {
            first.saturating_record(lo.saturating_duration_since(t0).as_micros().max(1) as u64);
            last.saturating_record(hi.saturating_duration_since(t0).as_micros().max(1) as u64);
        }
        tokio::time::sleep(args.interval).await;
    }
    let after_posts = args.server_pid.and_then(procstat::sample);
    readers.abort_all();
    while readers.join_next().await.is_some() {}

    let memory = match (before, open_sample, after_posts, cpu_before) {
        (Some(before), Some(open), Some(after_posts), Some(cpu)) => Some(StreamMemory {
            bytes_per_stream: (open.rss_bytes as f64 - before.rss_bytes as f64)
                / opened.max(1) as f64,
            threads_before: before.threads,
            threads_open: open.threads,
            cpu_us_per_delivery: (after_posts.cpu_seconds - cpu.cpu_seconds) * 1e6
                / delivered.max(1) as f64,
            before,
            open,
            after_posts,
        }),
        _ => None,
    };
    Ok(StreamReport {
        environment: Environment::here(),
        target: args.target.clone(),
        streams: opened,
        author: author.username,
        author_followers,
        open_seconds,
        posts: args.posts,
        expected: (args.posts * opened) as u64,
        delivered,
        missed,
        stream_failures,
        delivery_ms: Percentiles::of_us(&delivery),
        last_stream_ms: Percentiles::of_us(&last),
        first_stream_ms: Percentiles::of_us(&first),
        post_ms: Percentiles::of_us(&post_h),
        memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_ids_are_read_from_events() {
        let event =
            b"event: update\ndata: {\"id\":\"123\",\"account\":{\"id\":\"9\"}}\nid: 123".as_slice();
        assert_eq!(update_id(event), Some("123"));
        assert_eq!(update_id(b"event: delete\ndata: 123"), None);
        assert_eq!(update_id(b":thump"), None);
        assert_eq!(
            update_id(b"event: notification\ndata: {\"id\":\"5\"}"),
            None
        );
    }
}
