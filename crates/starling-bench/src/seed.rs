//! `starling-bench seed` through the store: a whole network in minutes.
//!
//! Going through the HTTP API would cost a password hash per account and a
//! transaction per follow (days for a million accounts), so this writes
//! straight into the store of a stopped server through the [`BulkLoad`]
//! seam: the SQLite file in `--data-dir`, or, with `--config`, the store
//! a Starling configuration file names (the distributed shape's PostgreSQL
//! shards, each row and each side of a follow on the database of its
//! shard; the configuration is read by the server's own code, so the seed
//! lands where the server will look). It runs in three phases, each a
//! pipeline: a generator thread builds batches of rows (ids, token hashes,
//! rendered HTML) while the writer loads the previous batch, so the two
//! cores both work.
//!
//! 1. **accounts**: every account with one access token for the bench app
//!    (only its SHA-256 is stored, as the server does; the text goes to the
//!    users file). All accounts share one password hash, computed once:
//!    argon2 at a million accounts would take hours, and the load generator
//!    signs in with tokens anyway.
//! 2. **follows**: the power-law graph of [`crate::graph`], follower by
//!    follower (so follow ids, and the follower-side indexes, grow in
//!    order).
//! 3. **statuses**: posts spread over the last 30 days, ids carrying their
//!    times, a fifth of them with a hashtag (so tag timelines have data).
//!
//! Then `finish_bulk` builds the deferred indexes, derives the counters and
//! marks the large accounts (with `--config`, the configuration's
//! `large_account_threshold` and `public_url` apply unless given as
//! options). Bulk loads emit no events (see
//! [`starling_store::bulk`]); home timelines are built by the server when
//! each user first reads (run with `--warmup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use starling::store_open::{open_configured_store, sqlite_path, ConfiguredStore};
use starling_domain::oauth::{AccessToken, App, OOB};
use starling_domain::{
    Account, Clock, Id, ScopeSet, Secret, ShardId, Status, SystemClock, Visibility,
};
use starling_store::{
    BulkFollow, BulkLoad, BulkOptions, FinishOptions, NewAccount, SqliteStore, Store,
};
use tokio::sync::mpsc;

use crate::cli::SeedArgs;
use crate::graph::{spread, Network, Shape, SyntheticIds};
use crate::rng::Rng;
use crate::users::{self, User};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// Scopes of the bench app and of every token it holds.
pub const SCOPES: &str = "read write follow push";

/// How long one phase took.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
}

/// What `seed` reports (printed, and written with `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    pub via: String,
    pub users: u64,
    pub follows: u64,
    pub statuses: u64,
    pub phases: Vec<Phase>,
    pub total_seconds: f64,
    /// Peak resident memory of the seeding process.
    pub peak_rss_bytes: Option<u64>,
    /// Size of the database files after the load.
    pub disk_bytes: Option<u64>,
    pub large_accounts: u64,
    pub max_followers: u32,
    pub median_followers: u32,
    pub users_file: PathBuf,
}

impl SeedReport {
    pub fn print(&self) {
        eprintln!(
            "seeded {} users, {} follows, {} statuses via {} in {:.1} s",
            self.users, self.follows, self.statuses, self.via, self.total_seconds
        );
        for p in &self.phases {
            if p.rows > 0 {
                eprintln!(
                    "  {:<42} {:>8.1} s {:>11} rows {:>9.0} rows/s",
                    p.name, p.seconds, p.rows, p.rows_per_sec
                );
            } else {
                eprintln!("  {:<42} {:>8.1} s", p.name, p.seconds);
            }
        }
        eprintln!(
            "  followers: max {}, median {}; large accounts: {}",
            self.max_followers, self.median_followers, self.large_accounts
        );
        if let Some(rss) = self.peak_rss_bytes {
            eprintln!("  peak memory: {}", human_bytes(rss));
        }
        if let Some(disk) = self.disk_bytes {
            eprintln!("  database on disk: {}", human_bytes(disk));
        }
        eprintln!("  users file: {}", self.users_file.display());
    }
}

pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    }
}

/// Peak resident set size of this process (Linux), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn disk_usage(db: &Path) -> Option<u64> {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(meta) = std::fs::metadata(&p) {
            total += meta.len();
        }
    }
    (total > 0).then_some(total)
}

pub fn shape_of(args: &SeedArgs) -> Shape {
    Shape {
        users: args.users,
        avg_follows: args.avg_follows,
        max_follows: args.max_follows,
        zipf_exponent: args.zipf_exponent,
        posts_per_user: args.posts_per_user,
        seed: args.seed,
    }
}

pub fn username(prefix: &str, i: u32) -> String {
    format!("{prefix}{i}")
}

/// The text of seeded post `n` by `author`, and its hashtag if it has one.
pub fn post_text(n: u64, author: &str) -> (String, Option<String>) {
    const WORDS: &[&str] = &[
        "morning", "coffee", "reading", "rust", "garden", "train", "music", "walk", "rain", "code",
        "bread", "river", "window", "city", "night", "letter", "bicycle", "market", "summer",
        "paper", "lamp", "cloud", "piano", "stone",
    ];
    let mut rng = Rng::new(n ^ 0x5445_5854);
    let mut text = format!("Post {n} by {author}:");
    for _ in 0..(8 + rng.index(16)) {
        text.push(' ');
        text.push_str(WORDS[rng.index(WORDS.len())]);
    }
    let tag = (rng.index(5) == 0).then(|| format!("topic{}", rng.index(50)));
    if let Some(tag) = &tag {
        text.push_str(" #");
        text.push_str(tag);
    }
    (text, tag)
}

fn bar(multi: &MultiProgress, name: &str, len: u64) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(len));
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{bar:32}] {human_pos}/{human_len} {per_sec:>12} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_owned());
    bar
}

/// Batches flow from the generator thread to the writer through this.
const PIPELINE_DEPTH: usize = 4;

/// Where a store seed goes, and the settings it takes from there.
struct Destination {
    /// For the report and messages: the file, or the databases.
    via: String,
    /// What to do when the store already has accounts.
    not_empty_hint: &'static str,
    large_account_threshold: i64,
    public_url: String,
}

/// The server's defaults, for a seed without `--config`.
const DEFAULT_LARGE_ACCOUNT_THRESHOLD: i64 = 10_000;
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Seeds through the store: `<data-dir>/starling.db`, or with `--config`
/// the store that configuration names (SQLite file or PostgreSQL shards).
pub async fn seed_store(args: &SeedArgs) -> anyhow::Result<SeedReport> {
    if args.users < 2 {
        bail!("--users must be at least 2");
    }
    let Some(config_file) = &args.config else {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating {}", args.data_dir.display()))?;
        let db_path = args.data_dir.join("starling.db");
        let store = SqliteStore::open(&db_path, 2)
            .await
            .with_context(|| format!("opening {}", db_path.display()))?;
        let to = Destination {
            via: format!("store ({})", db_path.display()),
            not_empty_hint: "seed into an empty --data-dir (with the server stopped)",
            large_account_threshold: args
                .large_account_threshold
                .unwrap_or(DEFAULT_LARGE_ACCOUNT_THRESHOLD),
            public_url: args
                .public_url
                .clone()
                .unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()),
        };
        let mut report = seed_into(&store, args, &to).await?;
        report.disk_bytes = disk_usage(&db_path);
        return Ok(report);
    };

    // The configuration the server reads (file, then STARLING_* variables).
    let config = starling::Config::load(
        Some(config_file.as_path()),
        &starling::FlagOverrides::default(),
    )
    .with_context(|| format!("reading {}", config_file.display()))?;
    let to = |via: String, not_empty_hint| Destination {
        via,
        not_empty_hint,
        large_account_threshold: args
            .large_account_threshold
            .unwrap_or(config.large_account_threshold),
        public_url: args
            .public_url
            .clone()
            .or_else(|| config.public_url.clone())
            .unwrap_or_else(|| format!("http://{}", config.listen)),
    };
    match open_configured_store(&config).await? {
        ConfiguredStore::Sqlite(store) => {
            let db_path = sqlite_path(&config);
            let to = to(
                format!("store ({})", db_path.display()),
                "seed into an empty data_dir (with the server stopped)",
            );
            let mut report = seed_into(&store, args, &to).await?;
            report.disk_bytes = disk_usage(&db_path);
            Ok(report)
        }
        ConfiguredStore::Postgres(store) => {
            let to = to(
                format!(
                    "PostgreSQL ({} physical databases of {})",
                    store.physical_count(),
                    config_file.display()
                ),
                "seed into empty databases (migrated or not, with every starling process stopped)",
            );
            let seeded = seed_into(&store, args, &to).await;
            let disk = store.database_bytes().await.ok();
            store.close().await;
            let mut report = seeded?;
            report.disk_bytes = disk;
            Ok(report)
        }
    }
}

/// Seeds `store` (any adapter with the bulk-load seam).
async fn seed_into<S: Store + BulkLoad>(
    store: &S,
    args: &SeedArgs,
    to: &Destination,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    store.migrate().await.context("migrating the database")?;
    let existing = store.count_accounts().await?;
    if existing > 0 {
        bail!(
            "{} already holds {existing} accounts: {}",
            to.via,
            to.not_empty_hint
        );
    }
    let multi = MultiProgress::with_draw_target(if args.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let network = Arc::new(Network::new(shape_of(args)));
    let now_ms = SystemClock.now_ms() as u64;
    let mut phases = Vec::new();

    store
        .begin_bulk(&BulkOptions {
            keep_indexes: args.keep_indexes,
        })
        .await?;

    // The bench app: one row, through the ordinary seam.
    let scopes = ScopeSet::parse(SCOPES).map_err(|e| anyhow::anyhow!("scopes: {e:?}"))?;
    let app_shard = ShardId::random();
    let app = App {
        id: Id::from_parts(now_ms - 61 * DAY_MS, app_shard, 0),
        client_id: Secret::generate(app_shard).expose().to_owned(),
        client_secret_hash: Secret::generate(app_shard).hash(),
        name: "starling-bench".into(),
        website: None,
        redirect_uris: vec![OOB.to_owned()],
        scopes,
        created_at_ms: (now_ms - 61 * DAY_MS) as i64,
    };
    store.create_app(&app).await?;

    // Phase 1: accounts and their tokens.
    let password_hash = {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(args.password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string()
    };
    let phase = Instant::now();
    let progress = bar(&multi, "accounts", u64::from(args.users));
    let (tx, mut rx) = mpsc::channel::<(Vec<NewAccount>, Vec<AccessToken>)>(PIPELINE_DEPTH);
    let generator = {
        let (n, batch, prefix, app_id) =
            (args.users, args.batch, args.username_prefix.clone(), app.id);
        tokio::task::spawn_blocking(move || -> Vec<User> {
            let mut ids = SyntheticIds::default();
            let mut users = Vec::with_capacity(n as usize);
            let mut accounts = Vec::with_capacity(batch);
            let mut tokens = Vec::with_capacity(batch);
            let (start, end) = (now_ms - 60 * DAY_MS, now_ms - 46 * DAY_MS);
            for i in 0..n {
                let name = username(&prefix, i);
                let shard = ShardId::for_key(&name);
                let at = spread(start, end, u64::from(i), u64::from(n));
                let id = ids.at(at, shard);
                let mut account = Account::new(id, &name, Some("en".into()), at as i64);
                account.display_name = format!("Bench user {i}");
                let email = format!("{name}@bench.invalid");
                accounts.push(NewAccount {
                    account,
                    email_key: email.clone(),
                    email,
                    password_hash: password_hash.clone(),
                    locale: Some("en".into()),
                });
                let token = Secret::generate(shard);
                tokens.push(AccessToken {
                    token_hash: token.hash(),
                    app_id,
                    account_id: Some(id),
                    scopes,
                    created_at_ms: at as i64,
                });
                users.push(User {
                    id: id.to_string(),
                    username: name,
                    token: token.expose().to_owned(),
                    followers: 0,
                    following: 0,
                });
                if accounts.len() == batch || i + 1 == n {
                    let out = (std::mem::take(&mut accounts), std::mem::take(&mut tokens));
                    if tx.blocking_send(out).is_err() {
                        break;
                    }
                }
            }
            users
        })
    };
    while let Some((accounts, tokens)) = rx.recv().await {
        store.load_accounts(&accounts).await?;
        store.load_tokens(&tokens).await?;
        progress.inc(accounts.len() as u64);
    }
    let mut users = generator.await.context("account generator")?;
    progress.finish();
    phases.push(phase_of("accounts + tokens", users.len() as u64, phase));
    let account_ids: Arc<Vec<Id>> = Arc::new(
        users
            .iter()
            .map(|u| u.id.parse::<Id>().map_err(|_| anyhow::anyhow!("bad id")))
            .collect::<anyhow::Result<_>>()?,
    );

    // Phase 2: follows, follower by follower.
    let phase = Instant::now();
    let expected = (f64::from(args.users) * args.avg_follows) as u64;
    let progress = bar(&multi, "follows", expected);
    let (tx, mut rx) = mpsc::channel::<Vec<BulkFollow>>(PIPELINE_DEPTH);
    let generator = {
        let (network, account_ids, batch) = (network.clone(), account_ids.clone(), args.batch);
        tokio::task::spawn_blocking(move || -> (Vec<u32>, Vec<u32>) {
            let n = network.shape.users;
            let mut followers = vec![0u32; n as usize];
            let mut following = vec![0u32; n as usize];
            let mut ids = SyntheticIds::default();
            let mut list = Vec::new();
            let mut out = Vec::with_capacity(batch);
            let (start, end) = (now_ms - 45 * DAY_MS, now_ms - 31 * DAY_MS);
            let mut edge = 0u64;
            for f in 0..n {
                network.followees(f, &mut list);
                following[f as usize] = list.len() as u32;
                let follower = account_ids[f as usize];
                for &t in &list {
                    followers[t as usize] += 1;
                    let at = spread(start, end, edge.min(expected), expected.max(1));
                    edge += 1;
                    out.push(BulkFollow {
                        id: ids.at(at, follower.shard()),
                        follower,
                        followee: account_ids[t as usize],
                        created_at_ms: at as i64,
                    });
                }
                if out.len() >= batch || f + 1 == n {
                    if tx.blocking_send(std::mem::take(&mut out)).is_err() {
                        break;
                    }
                    out.reserve(batch);
                }
            }
            (followers, following)
        })
    };
    let mut follows = 0u64;
    while let Some(batch) = rx.recv().await {
        store.load_follows(&batch).await?;
        follows += batch.len() as u64;
        progress.set_length(progress.length().unwrap_or(0).max(follows));
        progress.set_position(follows);
    }
    let (followers, following) = generator.await.context("follow generator")?;
    progress.finish();
    phases.push(phase_of("follows", follows, phase));
    for (i, u) in users.iter_mut().enumerate() {
        u.followers = followers[i];
        u.following = following[i];
    }

    // Phase 3: statuses, oldest first.
    let phase = Instant::now();
    let total_posts = network.total_posts();
    let progress = bar(&multi, "statuses", total_posts);
    let (tx, mut rx) = mpsc::channel::<Vec<Status>>(PIPELINE_DEPTH);
    let generator = {
        let (network, account_ids, batch) = (network.clone(), account_ids.clone(), args.batch);
        let names: Arc<Vec<String>> = Arc::new(users.iter().map(|u| u.username.clone()).collect());
        let base = to.public_url.trim_end_matches('/').to_owned();
        let app_id = app.id;
        tokio::task::spawn_blocking(move || {
            let mut ids = SyntheticIds::default();
            let mut out = Vec::with_capacity(batch);
            let (start, end) = (now_ms - 30 * DAY_MS, now_ms - 60_000);
            for n in 0..total_posts {
                let a = network.post_author(n) as usize;
                let author = account_ids[a];
                let at = spread(start, end, n, total_posts);
                let (text, tag) = post_text(n, &names[a]);
                let content = starling_domain::text::render(&text, &base, &|_| None);
                out.push(Status {
                    id: ids.at(at, author.shard()),
                    account_id: author,
                    reblog_of_id: None,
                    in_reply_to_id: None,
                    in_reply_to_account_id: None,
                    text,
                    content,
                    spoiler_text: String::new(),
                    sensitive: false,
                    visibility: Visibility::Public,
                    language: Some("en".into()),
                    app_id: Some(app_id),
                    mentions: vec![],
                    tags: tag.into_iter().collect(),
                    created_at_ms: at as i64,
                    replies_count: 0,
                    reblogs_count: 0,
                    favourites_count: 0,
                    media: Vec::new(),
                });
                if out.len() == batch || n + 1 == total_posts {
                    if tx.blocking_send(std::mem::take(&mut out)).is_err() {
                        break;
                    }
                    out.reserve(batch);
                }
            }
        })
    };
    let mut statuses = 0u64;
    while let Some(batch) = rx.recv().await {
        store.load_statuses(&batch).await?;
        statuses += batch.len() as u64;
        progress.set_position(statuses);
    }
    generator.await.context("status generator")?;
    progress.finish();
    phases.push(phase_of("statuses", statuses, phase));

    // Finish: indexes, counters, large accounts.
    let phase = Instant::now();
    let spinner = multi.add(ProgressBar::new_spinner());
    spinner.set_message("building indexes and counters");
    spinner.enable_steady_tick(Duration::from_millis(200));
    let finished = store
        .finish_bulk(&FinishOptions {
            large_account_threshold: to.large_account_threshold,
        })
        .await?;
    spinner.finish_and_clear();
    for (step, secs) in &finished.steps {
        phases.push(Phase {
            name: format!("finish: {step}"),
            rows: 0,
            seconds: *secs,
            rows_per_sec: 0.0,
        });
    }
    phases.push(phase_of("finish (total)", 0, phase));

    let users_file = args
        .users_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("bench-users.tsv"));
    users::write(&users_file, &users)?;
    let mut sorted: Vec<u32> = followers.clone();
    sorted.sort_unstable();
    Ok(SeedReport {
        via: to.via.clone(),
        users: users.len() as u64,
        follows,
        statuses,
        phases,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss(),
        disk_bytes: None,
        large_accounts: finished.large_accounts,
        max_followers: sorted.last().copied().unwrap_or(0),
        median_followers: sorted.get(sorted.len() / 2).copied().unwrap_or(0),
        users_file,
    })
}

pub fn phase_of(name: &str, rows: u64, started: Instant) -> Phase {
    let seconds = started.elapsed().as_secs_f64();
    Phase {
        name: name.to_owned(),
        rows,
        seconds,
        rows_per_sec: if seconds > 0.0 {
            rows as f64 / seconds
        } else {
            0.0
        },
    }
}
