//! Streaming (mastodon-api.md §6): SSE and the WebSocket, through real HTTP,
//! with what each reader may see, bad input, resuming and shutdown.
//!
//! Events come from the consumers, after the request that wrote returned:
//! each test waits for frames with a deadline, never assumes timing.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, User};

const WAIT: Duration = Duration::from_secs(10);

/// One SSE event as a client parses it.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    data: String,
    id: Option<String>,
}

/// An open SSE response, read chunk by chunk.
struct Sse {
    response: reqwest::Response,
    buffer: String,
    comments: Vec<String>,
}

impl Sse {
    async fn open(app: &TestApp, path: &str, token: Option<&str>) -> Self {
        Self::open_with(app, path, token, None).await
    }

    async fn open_with(
        app: &TestApp,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut req = app.client.get(app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let response = req.send().await.expect("request");
        assert_eq!(response.status(), 200, "GET {path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream; charset=utf-8"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        let mut sse = Self {
            response,
            buffer: String::new(),
            comments: Vec::new(),
        };
        // Mastodon writes `:)` at once: the stream is open (and subscribed).
        sse.fill_until(|s| s.comments.iter().any(|c| c == ")"))
            .await;
        sse
    }

    /// Reads until `done` holds, failing after [`WAIT`]; `false` if the
    /// server ended the response first.
    async fn fill_until(&mut self, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("an SSE chunk before the deadline")
                .expect("reading the stream");
            let Some(chunk) = chunk else { return false };
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
            // Comment lines stand alone (`:thump\n`), events end with a
            // blank line.
            while let Some(line_end) = self.buffer.find('\n') {
                if self.buffer.starts_with(':') {
                    self.comments.push(self.buffer[1..line_end].to_owned());
                    self.buffer.drain(..=line_end);
                } else {
                    break;
                }
            }
        }
        true
    }

    /// The next event, skipping comments.
    async fn next(&mut self) -> SseEvent {
        let found = self.fill_until(|s| s.buffer.contains("\n\n")).await;
        assert!(found, "the stream ended while waiting for an event");
        let end = self.buffer.find("\n\n").unwrap();
        let block: String = self.buffer.drain(..end + 2).collect();
        let mut event = SseEvent {
            event: String::new(),
            data: String::new(),
            id: None,
        };
        for line in block.lines().filter(|l| !l.is_empty()) {
            let (key, value) = line.split_once(": ").unwrap_or_else(|| {
                panic!("SSE lines are `key: value` (Mastodon.py splits on it): {line:?}")
            });
            match key {
                "event" => event.event = value.to_owned(),
                "data" => event.data = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                other => panic!("unexpected SSE field {other:?}"),
            }
        }
        event
    }

    /// Events until one matches `want`; every event's data is JSON (what
    /// Mastodon.py requires, a bare number for `delete`).
    async fn until(&mut self, want: impl Fn(&SseEvent, &Value) -> bool) -> (SseEvent, Value) {
        loop {
            let e = self.next().await;
            let data: Value = serde_json::from_str(&e.data)
                .unwrap_or_else(|err| panic!("SSE data is JSON: {err}: {:?}", e.data));
            if want(&e, &data) {
                return (e, data);
            }
        }
    }

    /// Whether nothing but heartbeats arrives for a moment.
    async fn quiet(&mut self, for_: Duration) -> Option<SseEvent> {
        tokio::time::timeout(for_, self.next()).await.ok()
    }
}

fn status_event<'a>(event: &'a str, id: &'a str) -> impl Fn(&SseEvent, &Value) -> bool + 'a {
    move |e, data| e.event == event && data["id"] == id
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn health_answers_ok_in_plain_text() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/api/v1/streaming/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn user_stream_hears_followed_posts_mentions_and_deletes() {
    let app = TestApp::spawn().await;
    let reader = app.user().await;
    let author = app.user().await;
    let stranger = app.user().await;
    app.follow(&reader, &author).await;
    app.settle().await;
    let mut sse = Sse::open(&app, "/api/v1/streaming/user", Some(&reader.token)).await;

    let post = id_of(&app.post_status(&author, "hello, followers").await);
    let (e, status) = sse.until(status_event("update", &post)).await;
    assert_eq!(status["content"], "<p>hello, followers</p>");
    assert_eq!(status["account"]["id"], author.id.as_str());
    assert_eq!(
        e.id.as_deref(),
        Some(post.as_str()),
        "id: for Last-Event-ID"
    );

    // A stranger's mention: a notification (not a home update: the
    // reader does not follow them).
    let mention = id_of(
        &app.post_status(&stranger, &format!("hi @{}", reader.username))
            .await,
    );
    let (_, n) = sse
        .until(|e, d| e.event == "notification" && d["type"] == "mention")
        .await;
    assert_eq!(n["status"]["id"], mention.as_str());
    assert_eq!(n["account"]["id"], stranger.id.as_str());

    // The reader's own post reaches their own home stream.
    let own = id_of(&app.post_status(&reader, "my own").await);
    sse.until(status_event("update", &own)).await;

    app.delete(&format!("/api/v1/statuses/{post}"), Some(&author.token))
        .await
        .expect(200);
    let (e, data) = sse.until(|e, _| e.event == "delete").await;
    assert_eq!(e.data, post, "a delete's data is the bare id");
    assert!(data.is_number(), "Mastodon.py reads it as JSON: a number");
}

#[tokio::test]
async fn each_reader_sees_only_what_their_timelines_would_show() {
    let app = TestApp::spawn().await;
    let reader = app.user().await;
    let friend = app.user().await;
    let muted = app.user().await;
    let blocked = app.user().await;
    let booster = app.user().await;
    for who in [&friend, &muted, &booster] {
        app.follow(&reader, who).await;
    }
    app.follow_with(&reader, &booster, json!({"reblogs": false}))
        .await;
    app.mute(&reader, &muted).await;
    app.block(&reader, &blocked).await;
    app.settle().await;
    let mut home = Sse::open(&app, "/api/v1/streaming/user", Some(&reader.token)).await;
    let mut public = Sse::open(&app, "/api/v1/streaming/public", Some(&reader.token)).await;
    let mut anonymous = Sse::open(&app, "/api/v1/streaming/public/local", None).await;

    // Nothing of these may reach the reader's streams:
    app.post_status(&muted, "muted words").await;
    app.post_status(&blocked, "blocked words").await;
    let private = app.post_visible(&friend, "friends only", "private").await;
    let dm_to_other = app
        .post_status_with(
            &friend,
            json!({"status": format!("psst @{}", booster.username), "visibility": "direct"}),
        )
        .await;
    let boosted = id_of(&app.post_status(&friend, "worth a boost").await);
    app.act(&booster, &boosted, "reblog").await.expect(200);
    // ...and then a marker that must arrive, after all of them.
    let marker = id_of(&app.post_status(&friend, "marker").await);
    app.settle().await;

    let mut seen_home = Vec::new();
    loop {
        let (_, s) = home.until(|e, _| e.event == "update").await;
        let author = s["account"]["id"].as_str().unwrap().to_owned();
        seen_home.push((author, id_of(&s), s["reblog"].is_object()));
        if id_of(&s) == marker {
            break;
        }
    }
    for (author, id, is_boost) in &seen_home {
        assert_ne!(author, &muted.id, "a muted author stays out of home");
        assert_ne!(author, &blocked.id, "a blocked author stays out of home");
        assert!(
            !is_boost,
            "boosts of a follow with reblogs:false are hidden"
        );
        assert_ne!(id, &id_of(&dm_to_other), "a DM to someone else");
    }
    assert!(
        seen_home.iter().any(|(_, id, _)| *id == private),
        "a followed account's private post is in home"
    );

    let mut seen_public = Vec::new();
    loop {
        let (_, s) = public.until(|e, _| e.event == "update").await;
        seen_public.push((s["account"]["id"].as_str().unwrap().to_owned(), id_of(&s)));
        if id_of(&s) == marker {
            break;
        }
    }
    for (author, id) in &seen_public {
        assert_ne!(author, &muted.id, "muted: off the reader's public stream");
        assert_ne!(
            author, &blocked.id,
            "blocked: off the reader's public stream"
        );
        assert_ne!(id, &private, "private posts are never public");
        assert_ne!(id, &id_of(&dm_to_other));
    }
    // The anonymous public stream has the muted and blocked authors (nobody
    // muted them there), but still no private post or boost.
    let mut anonymous_authors = Vec::new();
    loop {
        let (_, s) = anonymous.until(|e, _| e.event == "update").await;
        assert_ne!(id_of(&s), private);
        assert!(!s["reblog"].is_object(), "public streams carry no boosts");
        anonymous_authors.push(s["account"]["id"].as_str().unwrap().to_owned());
        if id_of(&s) == marker {
            break;
        }
    }
    assert!(anonymous_authors.contains(&muted.id));
    assert!(anonymous_authors.contains(&blocked.id));
}

#[tokio::test]
async fn hashtag_and_media_streams_filter_what_they_carry() {
    let app = TestApp::spawn().await;
    let author = app.user().await;
    let mut tag = Sse::open(&app, "/api/v1/streaming/hashtag?tag=Rust", None).await;
    let mut local_tag = Sse::open(&app, "/api/v1/streaming/hashtag/local?tag=rust", None).await;
    app.post_status(&author, "no tag here").await;
    app.post_visible(&author, "hidden #rust", "private").await;
    let tagged = id_of(&app.post_status(&author, "I like #RUST").await);
    let (_, s) = tag.until(|e, _| e.event == "update").await;
    assert_eq!(id_of(&s), tagged, "only public posts with the tag");
    let (_, s) = local_tag.until(|e, _| e.event == "update").await;
    assert_eq!(id_of(&s), tagged);

    let mut media = Sse::open(&app, "/api/v1/streaming/public?only_media=true", None).await;
    app.post_status(&author, "words only").await;
    let marker = id_of(&app.post_status(&author, "still words").await);
    app.settle().await;
    assert!(
        media.quiet(Duration::from_millis(500)).await.is_none(),
        "no media, nothing on public:media (marker {marker})"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let read_only_notifications = app.token_for(&user, "read:notifications").await;
    for (path, token, status) in [
        ("/api/v1/streaming/user", None, 401),
        ("/api/v1/streaming/user/notification", None, 401),
        ("/api/v1/streaming/direct", None, 401),
        ("/api/v1/streaming/user", Some("not-a-token"), 401),
        ("/api/v1/streaming/hashtag", None, 400),
        ("/api/v1/streaming/hashtag?tag=", None, 400),
        (
            "/api/v1/streaming/list?list=1",
            Some(user.token.as_str()),
            404,
        ),
        ("/api/v1/streaming?stream=nonsense", None, 400),
        ("/api/v1/streaming", None, 400),
        ("/api/v1/streaming/nonsense", None, 404),
        (
            "/api/v1/streaming/public",
            Some(read_only_notifications.as_str()),
            403,
        ),
    ] {
        let r = app.get(path, token).await;
        assert_eq!(r.status, status, "GET {path}: {}", r.text);
        assert!(
            !r.error().is_empty(),
            "GET {path}: a JSON error: {}",
            r.text
        );
    }
}

/// A WebSocket client as masto.js opens it: the token as the subprotocol.
async fn socket(
    app: &TestApp,
    query: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/api/v1/streaming{query}",
        app.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", token.parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket handshake");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        token,
        "the offered subprotocol is echoed, or browsers abort"
    );
    ws
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, as JSON.
async fn frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame before the deadline")
            .expect("the socket is open")
            .expect("a frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("frames are JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn frame_where(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        let f = frame(ws).await;
        assert!(f.get("error").is_none(), "an error frame: {f}");
        if want(&f) {
            return f;
        }
    }
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_socket_carries_several_subscriptions_as_masto_js_expects() {
    let app = TestApp::spawn().await;
    let reader = app.user().await;
    let author = app.user().await;
    app.follow(&reader, &author).await;
    app.settle().await;
    let mut ws = socket(&app, "", &reader.token).await;
    send(&mut ws, json!({"type": "subscribe", "stream": "user"})).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "stream": "public:local"}),
    )
    .await;
    send(
        &mut ws,
        json!({"type": "subscribe", "stream": "hashtag", "tag": "Fediverse"}),
    )
    .await;
    // Subscriptions are applied in order: a ping round trip later they hold.
    send(
        &mut ws,
        json!({"type": "subscribe", "stream": "user:notification"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let post = id_of(&app.post_status(&author, "hello #fediverse").await);
    let mut streams = Vec::new();
    while streams.len() < 3 {
        let f = frame_where(&mut ws, |f| f["event"] == "update").await;
        let payload: Value =
            serde_json::from_str(f["payload"].as_str().expect("payload is a JSON string")).unwrap();
        assert_eq!(id_of(&payload), post);
        streams.push(f["stream"].clone());
    }
    streams.sort_by_key(Value::to_string);
    assert_eq!(
        streams,
        vec![
            json!(["hashtag", "Fediverse"]),
            json!(["public:local"]),
            json!(["user"])
        ],
        "once per matching subscription, with its stream array as sent"
    );

    app.post_status(&author, &format!("@{} look", reader.username))
        .await;
    let n = frame_where(&mut ws, |f| f["event"] == "notification").await;
    let mut got = vec![n["stream"].clone()];
    let n2 = frame_where(&mut ws, |f| f["event"] == "notification").await;
    got.push(n2["stream"].clone());
    got.sort_by_key(Value::to_string);
    assert_eq!(got, vec![json!(["user"]), json!(["user:notification"])]);

    send(
        &mut ws,
        json!({"type": "unsubscribe", "stream": "public:local"}),
    )
    .await;
    send(
        &mut ws,
        json!({"type": "unsubscribe", "stream": "hashtag", "tag": "Fediverse"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.delete(&format!("/api/v1/statuses/{post}"), Some(&author.token))
        .await
        .expect(200);
    let f = frame_where(&mut ws, |f| f["event"] == "delete").await;
    assert_eq!(
        f["payload"],
        post.as_str(),
        "a delete's payload is the bare id"
    );
    assert_eq!(f["stream"], json!(["user"]));
}

#[tokio::test]
async fn megalodon_subscribes_in_the_url_and_bad_messages_get_error_frames() {
    let app = TestApp::spawn().await;
    let reader = app.user().await;
    let mut ws = socket(&app, "?stream=public", &reader.token).await;
    send(&mut ws, json!({"type": "subscribe", "stream": "nonsense"})).await;
    let f = frame(&mut ws).await;
    assert_eq!(f, json!({"error": "Unknown stream type", "status": 400}));
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(frame(&mut ws).await["status"], 400);
    send(
        &mut ws,
        json!({"type": "subscribe", "stream": "list", "list": "42"}),
    )
    .await;
    assert_eq!(frame(&mut ws).await["status"], 404);

    let post = id_of(&app.post_status(&reader, "via the URL").await);
    let f = frame_where(&mut ws, |f| f["event"] == "update").await;
    assert_eq!(f["stream"], json!(["public"]));
    let payload: Value = serde_json::from_str(f["payload"].as_str().unwrap()).unwrap();
    assert_eq!(id_of(&payload), post);
}

#[tokio::test]
async fn a_socket_needs_a_user_token() {
    let app = TestApp::spawn().await;
    let url = format!(
        "{}/api/v1/streaming?stream=public",
        app.base.replacen("http://", "ws://", 1)
    );
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected a 401 handshake, got {other:?}"),
    }
    let app_token = app.app_only_token("read").await;
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {app_token}").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected a 401 handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn a_socket_the_client_closes_gets_the_close_frame_back() {
    let app = TestApp::spawn().await;
    let reader = app.user().await;
    let mut ws = socket(&app, "?stream=user", &reader.token).await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    // RFC 6455 5.5.1: the server answers with a close frame (clients that
    // get none report 1006, an abnormal closure), then the socket ends.
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("answered in time");
    match reply {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the close frame back, got {other:?}"),
    }
}

#[tokio::test]
async fn reconnecting_with_last_event_id_resumes_without_duplicates() {
    let app = TestApp::spawn().await;
    let reader = app.user().await;
    let author = app.user().await;
    app.follow(&reader, &author).await;
    app.settle().await;
    let mut sse = Sse::open(&app, "/api/v1/streaming/user", Some(&reader.token)).await;
    let first = id_of(&app.post_status(&author, "one").await);
    let (e, _) = sse.until(status_event("update", &first)).await;
    let last = e.id.expect("an id to resume from");
    drop(sse);

    // Missed while away: two posts and a mention.
    let second = id_of(&app.post_status(&author, "two").await);
    let third = id_of(
        &app.post_status(&author, &format!("three @{}", reader.username))
            .await,
    );
    app.settle().await;
    let mut sse = Sse::open_with(
        &app,
        "/api/v1/streaming/user",
        Some(&reader.token),
        Some(&last),
    )
    .await;
    let fourth = id_of(&app.post_status(&author, "four").await);
    let mut updates = Vec::new();
    let mut notifications = 0;
    while !updates.contains(&fourth) {
        let (e, d) = sse.until(|_, _| true).await;
        match e.event.as_str() {
            "update" => updates.push(id_of(&d)),
            "notification" => notifications += 1,
            _ => {}
        }
    }
    assert_eq!(updates, vec![second, third, fourth], "in order, each once");
    assert_eq!(notifications, 1, "the mention missed while away");
}

#[tokio::test]
async fn shutdown_ends_streams_so_clients_reconnect_elsewhere() {
    let mut app = TestApp::spawn().await;
    let reader = app.user().await;
    let mut sse = Sse::open(&app, "/api/v1/streaming/user", Some(&reader.token)).await;
    let mut ws = socket(&app, "?stream=user", &reader.token).await;
    app.shutdown();
    let ended = sse.fill_until(|_| false).await;
    assert!(!ended, "the SSE response ends");
    let close = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("closed in time");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame 1001, got {other:?}"),
    }
}

#[tokio::test]
async fn large_accounts_reach_followers_streams_from_their_own_topic() {
    let app = TestApp::spawn_with(|c| c.large_account_threshold = 2).await;
    let star = app.user().await;
    let fans: Vec<User> = futures_util::future::join_all((0..3).map(|_| app.user())).await;
    for fan in &fans {
        app.follow(fan, &star).await;
    }
    app.settle().await;
    let fan = &fans[0];
    let mut sse = Sse::open(&app, "/api/v1/streaming/user", Some(&fan.token)).await;
    let post = id_of(&app.post_status(&star, "to all my fans").await);
    let (_, s) = sse.until(status_event("update", &post)).await;
    assert_eq!(s["account"]["id"], star.id.as_str());
    // A reply to someone the fan does not follow stays out, as in home.
    let other = app.user().await;
    let theirs = id_of(&app.post_status(&other, "a stranger").await);
    app.reply(&star, &theirs, "replying to a stranger").await;
    let marker = id_of(&app.post_status(&star, "marker").await);
    let (_, s) = sse.until(|e, _| e.event == "update").await;
    assert_eq!(id_of(&s), marker, "the reply to a stranger was skipped");
}

#[tokio::test]
async fn streams_work_on_postgresql_too() {
    let Some(app) = TestApp::spawn_postgres("streams_work_on_postgresql_too").await else {
        return;
    };
    let reader = app.user().await;
    let author = app.user().await;
    app.follow(&reader, &author).await;
    app.settle().await;
    let mut sse = Sse::open(&app, "/api/v1/streaming/user", Some(&reader.token)).await;
    let post = id_of(&app.post_status(&author, "from postgres").await);
    sse.until(status_event("update", &post)).await;
    app.post_status(&author, &format!("@{} ping", reader.username))
        .await;
    sse.until(|e, d| e.event == "notification" && d["type"] == "mention")
        .await;
}

#[tokio::test]
async fn a_revoked_token_ends_its_streams_at_the_next_heartbeat() {
    let app = TestApp::spawn_with(|c| c.stream_heartbeat_ms = 100).await;
    let user = app.user().await;
    let client = app.create_app("read", "urn:ietf:wg:oauth:2.0:oob").await;
    let token = app.password_token(&user, &client, "read").await.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut sse = Sse::open(&app, "/api/v1/streaming/user", Some(&token)).await;
    let mut ws = socket(&app, "?stream=user", &token).await;
    sse.fill_until(|s| s.comments.iter().any(|c| c == "thump"))
        .await;
    app.post_form(
        "/oauth/revoke",
        None,
        &[
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.client_secret.as_str()),
            ("token", token.as_str()),
        ],
    )
    .await
    .expect(200);
    assert!(!sse.fill_until(|_| false).await, "the SSE response ends");
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("closed in time");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a close frame 1008, got {other:?}"),
    }
}
