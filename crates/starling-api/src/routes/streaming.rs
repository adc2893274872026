//! The streaming endpoints: Server-Sent Events (`/api/v1/streaming/user`,
//! `/public`, …) and the WebSocket (`/api/v1/streaming`, several
//! subscriptions on one socket), framed as Mastodon frames them. What each
//! event is and who sees it is [`crate::streaming`]'s business.
//!
//! - SSE: `200 text/event-stream`, `:)` at once, `:thump` every
//!   heartbeat (`ApiSettings::stream_heartbeat`, 15 s as Mastodon), events as `event: update` / `data: {json}` (a bare id
//!   for `delete`), with `id:` set to the status or notification id so that
//!   a client reconnecting with `Last-Event-ID` gets what it missed (at most
//!   [`crate::streaming::BACKLOG`] of each kind) and nothing twice.
//! - WebSocket: the token from `Authorization`, `access_token` or the
//!   offered `Sec-WebSocket-Protocol` (echoed back, as browsers require);
//!   `{"type":"subscribe","stream":…}` and `unsubscribe` messages, or
//!   `?stream=` in the URL (megalodon); events as
//!   `{"stream":[…],"event":…,"payload":"<json as a string>"}`; a ping every
//!   other heartbeat.
//!
//! A connection ends with its token (revoked or expired: checked at each
//! heartbeat), when its reader falls too far behind (close code 1013, "try
//! again later"), and when the process shuts down (1001, "going away": the
//! client reconnects, through the load balancer, to another process).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::json;
use starling_core::Principal;
use starling_domain::Id;

use crate::auth::{bearer_of, MaybeAuth};
use crate::error::ApiError;
use crate::params::{de, Params};
use crate::streaming::{Channel, ChannelError, Frame, Session};
use crate::AppState;

/// Largest message a client may send on the socket (subscriptions are
/// small).
const WS_MAX_MESSAGE: usize = 16 * 1024;

pub async fn health() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response()
}

#[derive(Deserialize, Default)]
struct StreamParams {
    #[serde(default, deserialize_with = "de::opt_string")]
    stream: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    tag: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    list: Option<String>,
    #[serde(default, deserialize_with = "de::bool_or_false")]
    only_media: bool,
}

fn channel_error(e: &ChannelError) -> ApiError {
    match e {
        ChannelError::NeedsUser => ApiError::InvalidToken,
        ChannelError::Scope => ApiError::Forbidden(e.message().to_owned()),
        ChannelError::UnknownList => ApiError::NotFound,
        ChannelError::Unknown | ChannelError::MissingTag => {
            ApiError::BadRequest(e.message().to_owned())
        }
    }
}

/// `GET /api/v1/streaming/<channel>` as SSE: the channel from the path.
async fn sse_channel(
    state: AppState,
    caller: Option<Principal>,
    headers: HeaderMap,
    uri: Uri,
    name: &str,
) -> Result<Response, ApiError> {
    let p: StreamParams = Params::from_query(uri.query())?.parse()?;
    let name = match (name, p.only_media) {
        ("public", true) => "public:media",
        ("public:local", true) => "public:local:media",
        ("public:remote", true) => "public:remote:media",
        (name, _) => name,
    };
    sse(state, caller, &headers, &uri, name, &p).await
}

async fn sse(
    state: AppState,
    caller: Option<Principal>,
    headers: &HeaderMap,
    uri: &Uri,
    name: &str,
    p: &StreamParams,
) -> Result<Response, ApiError> {
    let channel = Channel::parse(name, p.tag.as_deref(), p.list.as_deref(), caller.as_ref())
        .map_err(|e| channel_error(&e))?;
    let token = caller.as_ref().and(bearer_of(headers, uri));
    let beat = state.settings.stream_heartbeat;
    let mut session = Session::new(state, caller, token);
    session.subscribe(channel).await?;
    let mut pending: VecDeque<Bytes> = VecDeque::from([Bytes::from_static(b":)\n")]);
    if let Some(after) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<Id>().ok())
    {
        pending.extend(session.backlog(after).await.iter().map(sse_frame));
    }
    metrics::counter!("starling_streaming_connections_total", "transport" => "sse").increment(1);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = futures_util::stream::unfold(
        (session, pending, heartbeat),
        |(mut session, mut pending, mut heartbeat)| async move {
            loop {
                if let Some(chunk) = pending.pop_front() {
                    return Some((Ok::<_, Infallible>(chunk), (session, pending, heartbeat)));
                }
                tokio::select! {
                    delivery = session.next() => {
                        // Shutting down, or too slow: the response ends and
                        // the client reconnects.
                        let delivery = delivery?;
                        pending.extend(session.frames(&delivery).await.iter().map(sse_frame));
                    }
                    _ = heartbeat.tick() => {
                        if !session.still_authorized().await {
                            return None;
                        }
                        pending.push_back(Bytes::from_static(b":thump\n"));
                    }
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies must pass events on as they come (nginx buffers otherwise).
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One event as SSE lines. A `delete`'s data is the bare id (Mastodon.py
/// parses every `data` as JSON: a number, then).
fn sse_frame(f: &Frame) -> Bytes {
    let mut out = String::with_capacity(f.payload.len() + 64);
    out.push_str("event: ");
    out.push_str(f.event);
    out.push_str("\ndata: ");
    out.push_str(&f.payload);
    out.push('\n');
    if let Some(id) = f.resume_id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

macro_rules! sse_routes {
    ($($handler:ident => $name:literal;)*) => {
        $(
            pub async fn $handler(
                State(state): State<AppState>,
                MaybeAuth(caller): MaybeAuth,
                headers: HeaderMap,
                uri: Uri,
            ) -> Result<Response, ApiError> {
                sse_channel(state, caller, headers, uri, $name).await
            }
        )*
    };
}

sse_routes! {
    user => "user";
    user_notification => "user:notification";
    public => "public";
    public_local => "public:local";
    public_remote => "public:remote";
    hashtag => "hashtag";
    hashtag_local => "hashtag:local";
    list => "list";
    direct => "direct";
}

/// `GET /api/v1/streaming`: a WebSocket, or SSE of the `stream` parameter
/// for a plain request (as Mastodon answers).
pub async fn socket(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let p: StreamParams = Params::from_query(uri.query())?.parse()?;
    let Ok(upgrade) = upgrade else {
        let name = p
            .stream
            .clone()
            .ok_or_else(|| ApiError::BadRequest("No stream type provided".into()))?;
        return sse(state, caller, &headers, &uri, &name, &p).await;
    };
    // Mastodon 4.2 and later: a WebSocket needs a user's token.
    let Some(principal) = caller else {
        return Err(ApiError::InvalidToken);
    };
    if principal.account_id.is_none() {
        return Err(ApiError::InvalidToken);
    }
    let first = match &p.stream {
        Some(name) => Some(
            Channel::parse(name, p.tag.as_deref(), p.list.as_deref(), Some(&principal))
                .map_err(|e| channel_error(&e))?,
        ),
        None => None,
    };
    let token = bearer_of(&headers, &uri);
    // Browsers (masto.js) offer the token as the subprotocol and abort the
    // handshake unless it is selected.
    let offered: Vec<String> = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let ping = state.settings.stream_heartbeat * 2;
    let mut session = Session::new(state, Some(principal), token);
    if let Some(channel) = first {
        session.subscribe(channel).await?;
    }
    metrics::counter!("starling_streaming_connections_total", "transport" => "websocket")
        .increment(1);
    Ok(upgrade
        .protocols(offered)
        .max_message_size(WS_MAX_MESSAGE)
        .on_upgrade(move |socket| run_socket(socket, session, ping)))
}

/// What a client sends on the socket.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    stream: Option<String>,
    tag: Option<String>,
    list: Option<serde_json::Value>,
}

async fn run_socket(mut socket: WebSocket, mut session: Session, every: Duration) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            delivery = session.next() => {
                let Some(delivery) = delivery else {
                    let (code, reason) = if session.closing() {
                        (1001, "server shutting down")
                    } else {
                        (1013, "too far behind")
                    };
                    close(&mut socket, code, reason).await;
                    return;
                };
                for frame in session.frames(&delivery).await {
                    if socket.send(Message::Text(ws_frame(&frame).into())).await.is_err() {
                        return;
                    }
                }
            }
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) => {
                        // The client closes: the close frame tungstenite
                        // queued in reply goes out only with a later write
                        // or read, so send it now (else the client sees the
                        // connection drop, 1006, not a clean close).
                        let _ = socket.flush().await;
                        return;
                    }
                    None | Some(Err(_)) => return,
                    // Pings are answered by the socket itself.
                    Some(Ok(_)) => continue,
                };
                if let Some(error) = handle_client_message(&mut session, text.as_str()).await {
                    if socket.send(Message::Text(error.into())).await.is_err() {
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if !session.still_authorized().await {
                    close(&mut socket, 1008, "token revoked").await;
                    return;
                }
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Applies a subscribe or unsubscribe message; an error frame to send back
/// if it is not one.
async fn handle_client_message(session: &mut Session, text: &str) -> Option<String> {
    let error = |e: &ChannelError| json!({"error": e.message(), "status": e.status()}).to_string();
    let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
        return Some(json!({"error": "Invalid message", "status": 400}).to_string());
    };
    let list = message.list.as_ref().map(|l| match l {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let Some(name) = message.stream.as_deref() else {
        return Some(error(&ChannelError::Unknown));
    };
    match message.kind.as_str() {
        "subscribe" => {
            let channel = match Channel::parse(
                name,
                message.tag.as_deref(),
                list.as_deref(),
                session.caller(),
            ) {
                Ok(c) => c,
                Err(e) => return Some(error(&e)),
            };
            match session.subscribe(channel).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "a stream subscription failed");
                    Some(json!({"error": "Service unavailable", "status": 503}).to_string())
                }
            }
        }
        "unsubscribe" => {
            let mut stream = vec![name.to_owned()];
            stream.extend(message.tag.or(list));
            session.unsubscribe(&stream);
            None
        }
        _ => Some(json!({"error": "Unknown message type", "status": 400}).to_string()),
    }
}

/// One event as a WebSocket text frame: the payload is a JSON string
/// (masto.js and megalodon `JSON.parse` it), a bare id for `delete`.
fn ws_frame(f: &Frame) -> String {
    json!({"stream": f.stream, "event": f.event, "payload": f.payload}).to_string()
}
