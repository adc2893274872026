//! `starling-bench seed --target URL`: the same network, through the client
//! API of any running Mastodon-compatible server.
//!
//! Registration costs the server a password hash per account and every
//! follow and post is a request, so this is for small networks (hundreds to
//! a few thousand accounts); it exists so the same benchmark can run against
//! a server whose store we cannot write to. The network is the one
//! [`crate::graph`] generates for the same options, so a store-seeded and an
//! API-seeded network of the same seed have the same shape.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Mutex;

use crate::api::Api;
use crate::cli::SeedArgs;
use crate::graph::Network;
use crate::seed::{peak_rss, phase_of, post_text, shape_of, username, SeedReport, SCOPES};
use crate::users::{self, User};

/// Runs `f(0..n)` with at most `concurrency` calls in flight; stops at the
/// first error.
async fn for_each<F, Fut>(n: u64, concurrency: usize, bar: &ProgressBar, f: F) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (f, next, bar) = (f.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                f(i).await?;
                bar.inc(1);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("seeding task")??;
    }
    Ok(())
}

fn bar(args: &SeedArgs, name: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if args.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>9} [{bar:32}] {human_pos}/{human_len} {per_sec:>12}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_owned());
    bar
}

pub async fn seed_api(args: &SeedArgs, target: &str) -> anyhow::Result<SeedReport> {
    if args.users < 2 {
        bail!("--users must be at least 2");
    }
    let started = Instant::now();
    let api = Api::new(target)?;
    let network = Arc::new(Network::new(shape_of(args)));
    let mut phases = Vec::new();

    let (client_id, client_secret) = api.create_app("starling-bench", SCOPES).await?;
    let app_token = api.app_token(&client_id, &client_secret, SCOPES).await?;

    // Accounts.
    let phase = Instant::now();
    let n = args.users;
    let slots: Arc<Mutex<Vec<Option<User>>>> = Arc::new(Mutex::new(vec![None; n as usize]));
    let progress = bar(args, "accounts", u64::from(n));
    {
        let (api, slots, prefix, password) = (
            api.clone(),
            slots.clone(),
            args.username_prefix.clone(),
            args.password.clone(),
        );
        let app_token = Arc::new(app_token);
        for_each(u64::from(n), args.concurrency, &progress, move |i| {
            let (api, slots, app_token) = (api.clone(), slots.clone(), app_token.clone());
            let name = username(&prefix, i as u32);
            let password = password.clone();
            async move {
                let email = format!("{name}@bench.invalid");
                let token = api.register(&app_token, &name, &email, &password).await?;
                let id = api.own_id(&token).await?;
                slots.lock().await[i as usize] = Some(User {
                    id,
                    username: name,
                    token,
                    followers: 0,
                    following: 0,
                });
                Ok(())
            }
        })
        .await?;
    }
    progress.finish();
    let mut users: Vec<User> = std::mem::take(&mut *slots.lock().await)
        .into_iter()
        .collect::<Option<_>>()
        .context("an account was not registered")?;
    phases.push(phase_of("accounts (API)", u64::from(n), phase));

    // Follows.
    let phase = Instant::now();
    let mut plan: Vec<(u32, u32)> = Vec::new();
    let mut list = Vec::new();
    let mut followers = vec![0u32; n as usize];
    for f in 0..n {
        network.followees(f, &mut list);
        users[f as usize].following = list.len() as u32;
        for &t in &list {
            followers[t as usize] += 1;
            plan.push((f, t));
        }
    }
    for (u, count) in users.iter_mut().zip(&followers) {
        u.followers = *count;
    }
    let progress = bar(args, "follows", plan.len() as u64);
    let shared = Arc::new((users.clone(), plan));
    {
        let (api, shared) = (api.clone(), shared.clone());
        for_each(
            shared.1.len() as u64,
            args.concurrency,
            &progress,
            move |e| {
                let (api, shared) = (api.clone(), shared.clone());
                async move {
                    let (f, t) = shared.1[e as usize];
                    let (users, _) = &*shared;
                    api.follow(&users[f as usize].token, &users[t as usize].id)
                        .await
                }
            },
        )
        .await?;
    }
    progress.finish();
    phases.push(phase_of("follows (API)", shared.1.len() as u64, phase));

    // Posts.
    let phase = Instant::now();
    let total = network.total_posts();
    let progress = bar(args, "statuses", total);
    {
        let (api, network, shared) = (api.clone(), network.clone(), shared.clone());
        for_each(total, args.concurrency, &progress, move |p| {
            let (api, network, shared) = (api.clone(), network.clone(), shared.clone());
            async move {
                let author = &shared.0[network.post_author(p) as usize];
                let (text, _) = post_text(p, &author.username);
                api.post(&author.token, &text).await.map(|_| ())
            }
        })
        .await?;
    }
    progress.finish();
    phases.push(phase_of("statuses (API)", total, phase));

    let users_file = args
        .users_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("bench-users.tsv"));
    users::write(&users_file, &users)?;
    let mut sorted = followers.clone();
    sorted.sort_unstable();
    Ok(SeedReport {
        via: format!("API ({target})"),
        users: u64::from(n),
        follows: shared.1.len() as u64,
        statuses: total,
        phases,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss(),
        disk_bytes: None,
        large_accounts: 0,
        max_followers: sorted.last().copied().unwrap_or(0),
        median_followers: sorted.get(sorted.len() / 2).copied().unwrap_or(0),
        users_file,
    })
}
