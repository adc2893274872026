//! The accounts the scenarios act as, made through the API.
//!
//! - an **author** followed by every account of the audience (the large
//!   fan-out);
//! - a few **posters**, who post during the steady load, each followed by a
//!   slice of the audience (account `i` follows poster `i % posters`), the
//!   first account of each slice with `notify: true` (a notification per
//!   post);
//! - the **audience**, who also read: each reads its home timeline once at
//!   setup, so its cached timeline exists and receives fan-out pushes.
//!
//! Registration costs the server an argon2 hash per account, so the audience
//! is registered concurrently, each account's follows and first read in the
//! same task (the server's hashing is the bottleneck; the rest overlaps it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::api::{Api, Method};

/// Requests in flight while setting up.
const SETUP_CONCURRENCY: usize = 12;

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub token: String,
}

pub struct World {
    pub api: Api,
    pub author: User,
    pub posters: Vec<User>,
    /// Tokens of the audience; account `i` follows the author and poster
    /// `i % posters.len()`.
    pub audience: Vec<String>,
}

impl World {
    /// The audience accounts following poster `p`.
    pub fn followers_of_poster(&self, p: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.audience.len()).filter(move |i| i % self.posters.len() == p)
    }

    /// Whether account `i` is among one in `every` of its poster's
    /// followers (each poster's followers are sampled alike, so every post
    /// is checked).
    pub fn in_sample(&self, i: usize, every: usize) -> bool {
        (i / self.posters.len()).checked_rem(every.max(1)) == Some(0)
    }

    /// The account of poster `p` that follows it with notifications on.
    pub fn notified_follower(&self, p: usize) -> Option<usize> {
        (p < self.audience.len()).then_some(p)
    }

    pub async fn create(api: Api, audience: usize, posters: usize) -> anyhow::Result<Self> {
        let started = Instant::now();
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() % 1_000_000_000)
            .unwrap_or(0);
        let prefix = format!("ft{run}");
        let app = api.app_token("starling-faults").await?;
        let make = |name: String| {
            let (api, app) = (api.clone(), app.clone());
            async move {
                let token = api.register(&app, &name).await?;
                let id = api.own_id(&token).await?;
                anyhow::Ok(User { id, token })
            }
        };
        let author = make(format!("{prefix}_author")).await?;
        let mut poster_users = Vec::with_capacity(posters);
        for p in 0..posters.max(1) {
            poster_users.push(make(format!("{prefix}_poster{p}")).await?);
        }
        let posters = poster_users;
        eprintln!(
            "  setup: author and {} posters registered; registering {audience} followers",
            posters.len()
        );

        let next = Arc::new(AtomicUsize::new(0));
        let tokens = Arc::new(std::sync::Mutex::new(vec![String::new(); audience]));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..SETUP_CONCURRENCY {
            let (api, app, next, tokens) = (api.clone(), app.clone(), next.clone(), tokens.clone());
            let (author_id, poster_ids): (i64, Vec<i64>) =
                (author.id, posters.iter().map(|p| p.id).collect());
            let prefix = prefix.clone();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= audience {
                        return anyhow::Ok(());
                    }
                    let token = api.register(&app, &format!("{prefix}_{i}")).await?;
                    api.follow(&token, author_id, false).await?;
                    let p = i % poster_ids.len();
                    api.follow(&token, poster_ids[p], i < poster_ids.len())
                        .await?;
                    // The first read builds the cached home timeline.
                    let read = api
                        .call(
                            Method::Get,
                            "/api/v1/timelines/home?limit=20",
                            Some(&token),
                            None,
                        )
                        .await;
                    if !read.ok() {
                        anyhow::bail!("the first home read failed: {}", read.label());
                    }
                    tokens.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[i] = token;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.context("setup task")?
                .context("setting up the audience")?;
        }
        let audience =
            std::mem::take(&mut *tokens.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        eprintln!(
            "  setup: {} accounts, {} follows, {} home timelines cached in {:.1} s",
            audience.len() + posters.len() + 1,
            audience.len() * 2,
            audience.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            api,
            author,
            posters,
            audience,
        })
    }
}
