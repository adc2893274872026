//! A real `starling serve` killed with SIGKILL in the middle of fan-out
//! finishes every delivery after restart (DESIGN.md "Events and
//! durability").
//!
//! 1. Seed, through the store seam and before the first start: an author
//!    with an app and an access token, and a few thousand followers who
//!    follow with `notify: true` (so each post owes one durable `status`
//!    notification per follower). The seeding's own events (`Followed`) are
//!    taken out of the outbox and discarded, so what the outbox holds later
//!    is the posts' events only.
//! 2. Start the binary, post a burst of statuses as the author over HTTP,
//!    and SIGKILL it as soon as the last POST is acknowledged. Open the
//!    database: the outbox must still hold events (the kill landed
//!    mid-delivery); if not, restart and try again with a bigger burst.
//! 3. Restart on the same data directory, wait for the outbox to drain, and
//!    check: every acknowledged post exists; every follower has exactly one
//!    `status` notification per post; sampled followers see every post once
//!    in their home timeline; the author's `statuses_count` is exact.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use starling_domain::oauth::{AccessToken, App};
use starling_domain::{
    Account, FollowOptions, Id, IdGenerator, NotificationType, Page, ScopeSet, Secret, ShardId,
};
use starling_store::{
    GraphStore, NewAccount, NotificationFilter, NotificationStore, OutboxStore, SqliteStore, Stamp,
    Store,
};
use tokio::task::JoinSet;

const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// Followers of the author, each owed one notification per post.
const AUDIENCE: usize = 3000;
/// Followers who also get a token, to read their home timeline over HTTP.
const SAMPLE: usize = 5;
/// Posts in the first burst; each later round doubles it.
const FIRST_BURST: usize = 8;
/// Bursts tried before giving up on catching delivery in the act.
const ROUNDS: usize = 4;
/// The whole test, seeding included.
const BUDGET: Duration = Duration::from_secs(60);
const SCOPES: &str = "read write follow push";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A user made in the store: its account id and, if it has one, a bearer
/// token's text.
#[derive(Clone, Debug)]
struct Seeded {
    id: Id,
    token: Option<String>,
}

/// The author and its audience, as seeded.
struct Audience {
    author: Seeded,
    followers: Vec<Id>,
    sample: Vec<Seeded>,
}

fn new_account(ids: &IdGenerator, username: &str) -> NewAccount {
    let shard = ShardId::for_key(&username.to_ascii_lowercase());
    NewAccount {
        account: Account::new(ids.next(shard), username, Some("en".into()), now_ms()),
        email: format!("{username}@example.com"),
        email_key: format!("{username}@example.com").to_lowercase(),
        // Never checked: nobody signs in with a password here.
        password_hash: "$argon2id$not-a-real-hash".to_owned(),
        locale: Some("en".to_owned()),
    }
}

/// A token for `account` through `app`, written straight to the store the
/// way the core issues one: the secret carries the account's shard, and
/// only its hash is stored, on that shard.
async fn token_for(store: &SqliteStore, app: &App, account: Id) -> String {
    let secret = Secret::generate(account.shard());
    store
        .create_token(
            secret.shard(),
            &AccessToken {
                token_hash: secret.hash(),
                app_id: app.id,
                account_id: Some(account),
                scopes: ScopeSet::parse(SCOPES).unwrap(),
                created_at_ms: now_ms(),
            },
        )
        .await
        .unwrap();
    secret.expose().to_owned()
}

/// Seeds the audience into a fresh database at `db` (no HTTP, no password
/// hashing); returns it with how many seeding events were discarded.
async fn seed(db: &Path) -> (Audience, u64) {
    let store = Arc::new(SqliteStore::open(db, 4).await.unwrap());
    store.migrate().await.unwrap();
    let ids = Arc::new(IdGenerator::new());

    let author = new_account(&ids, "crashauthor");
    store.create_account(&author).await.unwrap();
    let author_id = author.account.id;
    let client_id = Secret::generate(ShardId::random());
    let app = App {
        id: ids.next(client_id.shard()),
        client_id: client_id.expose().to_owned(),
        client_secret_hash: Secret::generate(client_id.shard()).hash(),
        name: "crash test".to_owned(),
        website: None,
        redirect_uris: vec!["urn:ietf:wg:oauth:2.0:oob".to_owned()],
        scopes: ScopeSet::parse(SCOPES).unwrap(),
        created_at_ms: now_ms(),
    };
    store.create_app(&app).await.unwrap();
    let author_token = token_for(&store, &app, author_id).await;

    // One writer connection either way; a few calls in flight keep it busy.
    let mut followers = Vec::with_capacity(AUDIENCE);
    let mut tasks = JoinSet::new();
    for chunk in (0..AUDIENCE).collect::<Vec<_>>().chunks(AUDIENCE / 8 + 1) {
        let (store, ids, chunk) = (store.clone(), ids.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let mut made = Vec::with_capacity(chunk.len());
            for i in chunk {
                let new = new_account(&ids, &format!("follower{i:05}"));
                store.create_account(&new).await.unwrap();
                let follower = new.account.id;
                let row = ids.next(follower.shard());
                store
                    .follow(
                        follower,
                        author_id,
                        FollowOptions {
                            reblogs: true,
                            notify: true,
                        },
                        false,
                        Stamp {
                            id: row,
                            at_ms: row.unix_ms() as i64,
                        },
                    )
                    .await
                    .unwrap();
                made.push(follower);
            }
            made
        });
    }
    while let Some(made) = tasks.join_next().await {
        followers.extend(made.unwrap());
    }
    followers.sort();

    let mut sample = Vec::new();
    for i in 0..SAMPLE {
        // Spread over the cursor walk: first, last and in between.
        let id = followers[i * (AUDIENCE - 1) / (SAMPLE - 1)];
        sample.push(Seeded {
            id,
            token: Some(token_for(&store, &app, id).await),
        });
    }

    // The follows' events: nobody needs them for this test (they would only
    // notify the author of each follow), so they are dropped here and the
    // outbox holds nothing but the posts' events from now on.
    let mut discarded = 0u64;
    loop {
        let pending = store.outbox_pending(1000).await.unwrap();
        if pending.is_empty() {
            break;
        }
        discarded += pending.len() as u64;
        let keys: Vec<(u32, i64)> = pending.iter().map(|e| e.key).collect();
        store.outbox_remove(&keys).await.unwrap();
    }
    assert_eq!(store.outbox_len().await.unwrap(), 0);
    let account = store.account(author_id).await.unwrap().unwrap();
    assert_eq!(account.followers_count, AUDIENCE as i64);
    (
        Audience {
            author: Seeded {
                id: author_id,
                token: Some(author_token),
            },
            followers,
            sample,
        },
        discarded,
    )
}

/// A running `starling serve`, SIGKILLed when dropped if still alive.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on `dir` and a free port; returns once `/readyz`
    /// answers 200.
    async fn start(dir: &Path, name: &str, http: &reqwest::Client) -> Self {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .env("STARLING_RATE_LIMITS__ENABLED", "false")
            .env("STARLING_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", server.base)).send().await {
                if r.status() == 200 {
                    return server;
                }
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{name} exited with {status}: {}", server.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became ready: {}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reap it.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status:?}");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Posts statuses number `posts` as the author, all at once; returns the ids of those
/// acknowledged with a 200 (all of them, or the test fails).
async fn burst(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    round: usize,
    posts: std::ops::Range<usize>,
) -> Vec<Id> {
    let mut tasks = JoinSet::new();
    for i in posts {
        let (http, url, token) = (
            http.clone(),
            format!("{base}/api/v1/statuses"),
            token.to_owned(),
        );
        tasks.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "status": format!("round {round}, post {i}"), "visibility": "public" }))
                .send()
                .await
                .expect("POST /api/v1/statuses");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("JSON body");
            assert_eq!(status, 200, "posting failed: {body}");
            body["id"].as_str().unwrap().parse::<Id>().unwrap()
        });
    }
    let mut acked = Vec::new();
    while let Some(id) = tasks.join_next().await {
        acked.push(id.unwrap());
    }
    acked
}

/// The `status` notifications `account` has, by status id, sorted.
async fn status_notifications(store: &SqliteStore, account: Id) -> Vec<Id> {
    let filter = NotificationFilter {
        types: vec![NotificationType::Status],
        ..NotificationFilter::default()
    };
    let mut got: Vec<Id> = store
        .notifications(account, &filter, &Page::first(10_000))
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.status_id.expect("a status notification names its status"))
        .collect();
    got.sort();
    got
}

/// GET with a bearer token; must answer 200 with JSON.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> (Value, Option<String>) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {body}");
    (body, link)
}

/// Every status id in `token`'s home timeline, following `next` links.
async fn home_ids(http: &reqwest::Client, base: &str, token: &str) -> Vec<Id> {
    let mut out = Vec::new();
    let mut url = Some(format!("{base}/api/v1/timelines/home?limit=40"));
    while let Some(u) = url.take() {
        let (page, link) = get_json(http, &u, token).await;
        let page = page.as_array().unwrap().clone();
        assert!(out.len() < 10_000, "runaway paging");
        out.extend(
            page.iter()
                .map(|s| s["id"].as_str().unwrap().parse::<Id>().unwrap()),
        );
        if !page.is_empty() {
            url = link.and_then(|l| {
                l.split(", ")
                    .find(|p| p.ends_with("rel=\"next\""))
                    .and_then(|p| p.split_once('>'))
                    .map(|(u, _)| u.trim_start_matches('<').to_owned())
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_fan_out_then_restart_delivers_everything() {
    tokio::time::timeout(BUDGET, crash_and_recover())
        .await
        .expect("the crash test ran over its time budget");
}

async fn crash_and_recover() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("starling.db");
    let (audience, discarded) = seed(&db).await;
    let seeded_in = started.elapsed();
    println!(
        "crash: seeded {AUDIENCE} followers (notify on) in {:.1} s; {discarded} follow events discarded",
        seeded_in.as_secs_f64()
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let author_token = audience.author.token.clone().unwrap();

    // Post bursts and kill until a kill lands with deliveries outstanding.
    let mut acked: Vec<Id> = Vec::new();
    let mut caught = None;
    for round in 0..ROUNDS {
        let n = FIRST_BURST << round;
        let mut server = Server::start(dir.path(), &format!("run{round}"), &http).await;
        let t = Instant::now();
        // Half the burst, then wait until its delivery is visibly under way
        // (a post's notification reached the first follower), then the
        // other half, and SIGKILL the moment it is acknowledged.
        let mut ids = burst(&http, &server.base, &author_token, round, 0..n / 2).await;
        let watcher = Arc::new(SqliteStore::open(&db, 1).await.unwrap());
        loop {
            let seen = status_notifications(&watcher, audience.followers[0]).await;
            if ids.iter().any(|p| seen.contains(p)) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no delivery 10 s after posting: {}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(watcher);
        let first_delivery = t.elapsed();
        ids.extend(burst(&http, &server.base, &author_token, round, n / 2..n).await);
        let posting = t.elapsed();
        server.kill();
        acked.extend(&ids);
        let store = Arc::new(SqliteStore::open(&db, 2).await.unwrap());
        let pending = store.outbox_len().await.unwrap();
        // Posts whose notifications had all been written before the kill
        // (one transaction per delivered batch, so the first and the last
        // follower tell).
        let first = status_notifications(&store, audience.followers[0]).await;
        let last = status_notifications(&store, audience.followers[AUDIENCE - 1]).await;
        let delivered = ids
            .iter()
            .filter(|p| first.contains(p) && last.contains(p))
            .count();
        // Events still in the outbox whose effects were already written:
        // handled but not yet acknowledged, so they will be redelivered.
        let mut handled_unacked = 0;
        for e in store.outbox_pending(10_000).await.unwrap() {
            if let starling_domain::EventKind::StatusCreated { status_id, .. } = e.event.kind {
                if first.contains(&status_id) {
                    handled_unacked += 1;
                }
            }
        }
        println!(
            "crash: round {round}: {n} posts acknowledged in {} ms (the first delivery seen at \
             {} ms, between the two halves), SIGKILL; at the kill: {pending} events pending in \
             the outbox, {delivered}/{n} posts fully notified, {handled_unacked} pending events \
             already handled (to be redelivered)",
            posting.as_millis(),
            first_delivery.as_millis()
        );
        drop(store);
        if pending > 0 {
            caught = Some((round, pending));
            break;
        }
        // Delivery outran the kill: the server must still have finished
        // everything, and the next round posts more.
    }
    let (round, pending_at_kill) = caught.unwrap_or_else(|| {
        panic!("delivery always finished before SIGKILL landed ({ROUNDS} rounds); post more")
    });

    // Restart on the same data directory and wait for the outbox to drain.
    let restarted = Instant::now();
    let server = Server::start(dir.path(), "after-crash", &http).await;
    let ready_in = restarted.elapsed();
    let store = Arc::new(SqliteStore::open(&db, 4).await.unwrap());
    // Sampled followers read their home timeline at once (while redelivery
    // runs): their cached timelines then receive the redelivered fan-out,
    // which must not duplicate entries.
    for s in &audience.sample {
        home_ids(&http, &server.base, s.token.as_deref().unwrap()).await;
    }
    loop {
        let left = store.outbox_len().await.unwrap();
        if left == 0 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "{left} events still pending 30 s after restart: {}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = restarted.elapsed();

    // Every acknowledged post exists, over HTTP.
    acked.sort();
    for id in &acked {
        let (s, _) = get_json(
            &http,
            &format!("{}/api/v1/statuses/{id}", server.base),
            &author_token,
        )
        .await;
        assert_eq!(s["account"]["id"], audience.author.id.to_string());
    }
    // The author's statuses_count counts each exactly once.
    let (me, _) = get_json(
        &http,
        &format!("{}/api/v1/accounts/{}", server.base, audience.author.id),
        &author_token,
    )
    .await;
    assert_eq!(
        me["statuses_count"].as_i64(),
        Some(acked.len() as i64),
        "statuses_count after the crash"
    );
    assert_eq!(me["followers_count"].as_i64(), Some(AUDIENCE as i64));

    // Every follower: exactly one status notification per acknowledged post.
    let expected = acked.len() * AUDIENCE;
    let mut found = 0usize;
    let mut wrong = Vec::new();
    let mut tasks = JoinSet::new();
    for chunk in audience.followers.chunks(AUDIENCE / 8 + 1) {
        let (store, chunk, acked) = (store.clone(), chunk.to_vec(), acked.clone());
        tasks.spawn(async move {
            let mut found = 0;
            let mut wrong = Vec::new();
            for f in chunk {
                let got = status_notifications(&store, f).await;
                found += got.len();
                if got != acked {
                    wrong.push((f, got.len()));
                }
            }
            (found, wrong)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (n, w) = done.unwrap();
        found += n;
        wrong.extend(w);
    }
    // The same seen over HTTP by the sampled followers.
    for s in &audience.sample {
        let (list, _) = get_json(
            &http,
            &format!(
                "{}/api/v1/notifications?types[]=status&limit=80",
                server.base
            ),
            s.token.as_deref().unwrap(),
        )
        .await;
        let mut ids: Vec<Id> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["status"]["id"].as_str().unwrap().parse().unwrap())
            .collect();
        ids.sort();
        if acked.len() <= 80 {
            assert_eq!(ids, acked, "notifications of sampled follower {}", s.id);
        }
    }

    // Sampled followers see every post exactly once at home.
    for s in &audience.sample {
        let home = home_ids(&http, &server.base, s.token.as_deref().unwrap()).await;
        let mut sorted = home.clone();
        sorted.sort();
        assert_eq!(
            sorted, acked,
            "home timeline of {} after the crash: every post, once",
            s.id
        );
    }

    println!(
        "crash: caught in round {round}; posts acknowledged {}; events pending at kill \
         {pending_at_kill}; after restart: ready in {} ms, outbox drained in {} ms; \
         status notifications expected {expected}, found {found}; followers with a wrong set {}; \
         whole test {:.1} s (seeding {:.1} s)",
        acked.len(),
        ready_in.as_millis(),
        drained_in.as_millis(),
        wrong.len(),
        started.elapsed().as_secs_f64(),
        seeded_in.as_secs_f64(),
    );
    assert!(
        wrong.is_empty(),
        "{} followers lack or repeat notifications, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(found, expected);
    drop(server);
}
