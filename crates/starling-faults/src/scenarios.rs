//! The scenarios. Each one starts the steady load, injects its fault while
//! the load runs, keeps the load going, restores, waits for the event bus
//! to settle (with a deadline), then checks what clients saw and that every
//! acknowledged post reached every follower's home timeline (and the
//! notifications asked for): nothing lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::sleep;

use crate::api::{id_floor_at, Method};
use crate::cluster::{Bus, Cluster};
use crate::load::{Done, Load, Mix, Posted};
use crate::report::{Figures, LoadFigures};
use crate::world::World;

/// Reads in flight while checking timelines.
const CHECK_CONCURRENCY: usize = 16;
/// How long the bus must stay idle before its work counts as done (the
/// relays poll the outbox every 200 ms).
const SETTLE: Duration = Duration::from_secs(1);

pub const ALL: [&str; 6] = [
    "kill-api",
    "kill-worker",
    "stop-nats",
    "stop-replica",
    "pause-redis",
    "restart-redis",
];

#[derive(Clone, Debug)]
pub struct Options {
    /// Requests per second of the steady load.
    pub rate: f64,
    /// Statuses the author with the large audience posts while a worker is
    /// killed.
    pub author_posts: usize,
    pub nats_outage: Duration,
    pub redis_outage: Duration,
    /// Longest wait for the bus and the timelines to converge.
    pub convergence: Duration,
    /// Outside the large fan-out, the load's posts are checked in one of
    /// this many followers' timelines.
    pub sample_every: usize,
}

pub struct Ctx {
    pub world: Arc<World>,
    pub cluster: Cluster,
    pub opts: Options,
}

pub async fn run(ctx: &Ctx, name: &str) -> Figures {
    let started = Instant::now();
    let result = match name {
        "kill-api" => kill_api(ctx).await,
        "kill-worker" => kill_worker(ctx).await,
        "stop-nats" => stop_nats(ctx).await,
        "stop-replica" => stop_replica(ctx).await,
        "pause-redis" => pause_redis(ctx).await,
        "restart-redis" => restart_redis(ctx).await,
        other => Err(anyhow::anyhow!("no scenario {other}")),
    };
    let mut figures = match result {
        Ok(f) => f,
        Err(e) => {
            let mut f = Figures::new(
                ALL.iter().copied().find(|n| *n == name).unwrap_or("?"),
                "broke off",
            );
            f.problem(format!("{e:#}"));
            // Put back whatever it may have left stopped, so the next
            // scenarios find a whole cluster.
            restore_all(&ctx.cluster).await;
            f
        }
    };
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An id below everything made from now on (a second of margin).
fn since_now() -> i64 {
    id_floor_at(now_ms().saturating_sub(1000))
}

/// Starts whatever a scenario that broke off may have left stopped or
/// paused (what already runs is left alone).
async fn restore_all(cluster: &Cluster) {
    for args in [
        &["resume", "redis"][..],
        &["start", "redis"],
        &["start", "nats"],
        &["start", "api1"],
        &["resume", "worker2"],
        &["start", "worker1"],
        &["start", "worker2"],
        &["start-replica", "0"],
    ] {
        if cluster.pid(args[1]).await.ok().flatten().is_some() && args[0] == "start" {
            continue;
        }
        let _ = cluster.command(args).await;
    }
}

// ------------------------------------------------------------- scenarios

/// SIGKILL api1 under load: HAProxy retries idempotent requests on another
/// process, so no GET may fail; only a POST in flight on api1 at the kill
/// may (it may have been applied: it is not retried).
async fn kill_api(ctx: &Ctx) -> anyhow::Result<Figures> {
    let mut f = Figures::new(
        "kill-api",
        "SIGKILL api1 under a steady load, start it again",
    );
    let since = since_now();
    let bus0 = ctx.cluster.bus().await?;
    let load = Load::start(ctx.world.clone(), mix(ctx, 0.15), "kill-api");
    sleep(Duration::from_secs(3)).await;
    let kill_at = Instant::now();
    let killed = ctx.cluster.command(&["kill", "api1"]).await;
    let gone = Instant::now();
    sleep(Duration::from_secs(5)).await;
    let restarted = ctx.cluster.command(&["start", "api1"]).await;
    let back = Instant::now();
    sleep(Duration::from_secs(4)).await;
    let done = load.stop().await;
    killed?;
    restarted?;
    // In flight at the kill: sent before api1 was gone, answered after the
    // kill was sent. A POST the client sent just after may fail with them:
    // HAProxy closes the client connection a failed request came on, and
    // a request the client queued for that connection meets the close
    // (hyper: "connection closed before message completed"). So a POST sent
    // up to a second after the kill is allowed to fail too; a GET never is.
    let grace = gone + Duration::from_secs(1);
    f.load = LoadFigures::of(&done, |s| {
        s.method == Method::Post && s.started <= grace && s.ended >= kill_at
    });
    f.note(format!(
        "api1 killed at +{:.2} s (gone at +{:.2} s), answering /readyz again after {:.1} s",
        kill_at.duration_since(done.started).as_secs_f64(),
        gone.duration_since(done.started).as_secs_f64(),
        (back - kill_at).as_secs_f64()
    ));
    deliveries(ctx, &mut f, &done, &[], Check::Sample, since, &bus0).await;
    f.check_common();
    Ok(f)
}

/// SIGKILL a worker while it fans out the author's posts to the whole
/// audience; the other worker gets its unacknowledged events from NATS
/// after `ack_wait`, and every follower's timeline is complete.
///
/// So that the victim surely dies holding the fan-out: both workers are
/// paused (SIGSTOP; the other one long enough for its pending pull to
/// expire), the author posts (the events wait in the outbox: the relays run
/// in the workers), the victim is resumed and relays and pulls them in one
/// batch, and dies (SIGKILL) as soon as NATS shows it holds them; then the
/// other worker is resumed.
async fn kill_worker(ctx: &Ctx) -> anyhow::Result<Figures> {
    let mut f = Figures::new(
        "kill-worker",
        "SIGKILL a worker during a large fan-out, the other takes over",
    );
    let world = &ctx.world;
    let since = since_now();
    let bus0 = ctx.cluster.bus().await?;
    let load = Load::start(world.clone(), mix(ctx, 0.10), "kill-worker");
    sleep(Duration::from_secs(1)).await;
    let (victim, survivor) = ("worker1", "worker2");
    let victim_pid = ctx
        .cluster
        .pid(victim)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{victim} does not run"))?;
    ctx.cluster.command(&["pause", survivor]).await?;
    // A pull the paused worker had sent still takes events until it expires
    // (3 s).
    sleep(Duration::from_secs(4)).await;
    ctx.cluster.command(&["pause", victim]).await?;

    let n = ctx.opts.author_posts.max(1);
    let mut author_posts = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("fault test kill-worker: large fan-out #{i}");
        author_posts.push(world.api.post(&world.author.token, &text).await?);
    }
    ctx.cluster.command(&["resume", victim]).await?;
    let resumed = Instant::now();
    let mut held = 0;
    // Once it holds a good part of the batch (it may pull before its relay
    // published everything).
    while resumed.elapsed() < Duration::from_secs(5) {
        held = ctx.cluster.bus().await?.group("fanout").ack_pending;
        if held as usize >= n.div_ceil(2) {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    // Straight from here: the script would take a moment to start.
    let _ = tokio::process::Command::new("kill")
        .args(["-KILL", &victim_pid.to_string()])
        .status()
        .await;
    let killed_at = Instant::now();
    ctx.cluster.command(&["kill", victim]).await?; // forgets it
    ctx.cluster.command(&["resume", survivor]).await?;
    f.note(format!(
        "killed {victim} {} ms after it resumed, holding {held} unacknowledged fan-out events (the author posted {n} while it was paused); {survivor} resumed",
        killed_at.duration_since(resumed).as_millis()
    ));

    // The survivor alone finishes, under the load: wait until the fan-out
    // group acknowledged everything up to the author's last post.
    sleep(Duration::from_secs(1)).await;
    let last = ctx.cluster.bus().await?.last_seq;
    let deadline = Instant::now() + ctx.opts.convergence;
    loop {
        let bus = ctx.cluster.bus().await?;
        if bus.group("fanout").ack_floor >= last {
            f.note(format!(
                "the fan-out group acknowledged everything up to the author's last post {:.1} s after the kill",
                killed_at.elapsed().as_secs_f64()
            ));
            break;
        }
        if Instant::now() >= deadline {
            f.problem("the fan-out group did not catch up with the author's posts in time");
            break;
        }
        sleep(Duration::from_millis(200)).await;
    }
    sleep(Duration::from_secs(1)).await;
    let done = load.stop().await;
    f.load = LoadFigures::of(&done, |_| false);
    let everyone: Vec<usize> = (0..world.audience.len()).collect();
    f.note(format!(
        "the author posted {} statuses to {} followers: {} deliveries",
        author_posts.len(),
        world.audience.len(),
        author_posts.len() * world.audience.len()
    ));
    let extra = vec![(everyone, author_posts)];
    let rebuilds = deliveries(ctx, &mut f, &done, &extra, Check::Every, since, &bus0).await;
    if rebuilds > 0 {
        f.problem(format!(
            "{rebuilds} home timelines were rebuilt while checking: they were not cached, so the check did not test the fan-out"
        ));
    }
    if f.redeliveries == 0 {
        f.problem("NATS redelivered nothing: the killed worker held no event, nothing was tested");
    }
    ctx.cluster.command(&["start", victim]).await?;
    f.check_common();
    Ok(f)
}

/// Stop NATS for a while under load with posts: posts are still accepted
/// (their events wait in the outbox) and every one is delivered once NATS
/// is back.
async fn stop_nats(ctx: &Ctx) -> anyhow::Result<Figures> {
    let mut f = Figures::new(
        "stop-nats",
        "stop NATS under load with posts, start it again",
    );
    let since = since_now();
    let bus0 = ctx.cluster.bus().await?;
    let load = Load::start(ctx.world.clone(), mix(ctx, 0.15), "stop-nats");
    sleep(Duration::from_secs(3)).await;
    ctx.cluster.command(&["stop", "nats"]).await?;
    let stopped = Instant::now();
    sleep(ctx.opts.nats_outage).await;
    let started = Instant::now();
    let back = ctx.cluster.command(&["start", "nats"]).await;
    sleep(Duration::from_secs(3)).await;
    let done = load.stop().await;
    back?;
    f.load = LoadFigures::of(&done, |_| false);
    let during = done
        .posted
        .iter()
        .filter(|p| p.started >= stopped && p.started <= started)
        .count();
    f.note(format!(
        "NATS down for {:.1} s; {during} posts acknowledged meanwhile",
        (started - stopped).as_secs_f64()
    ));
    if during == 0 {
        f.problem("no post was acknowledged while NATS was down");
    }
    deliveries(ctx, &mut f, &done, &[], Check::Sample, since, &bus0).await;
    f.check_common();
    Ok(f)
}

/// Stop shard 0's replica under a read-heavy load: reads go on (from the
/// primary), none fails.
async fn stop_replica(ctx: &Ctx) -> anyhow::Result<Figures> {
    let mut f = Figures::new(
        "stop-replica",
        "stop shard 0's replica under a read load, start it again",
    );
    let since = since_now();
    let bus0 = ctx.cluster.bus().await?;
    let load = Load::start(ctx.world.clone(), mix(ctx, 0.05), "stop-replica");
    sleep(Duration::from_secs(3)).await;
    let stopped = ctx.cluster.command(&["stop-replica", "0"]).await;
    sleep(Duration::from_secs(6)).await;
    let started = ctx.cluster.command(&["start-replica", "0"]).await;
    sleep(Duration::from_secs(4)).await;
    let done = load.stop().await;
    stopped?;
    started?;
    f.load = LoadFigures::of(&done, |_| false);
    deliveries(ctx, &mut f, &done, &[], Check::Sample, since, &bus0).await;
    f.check_common();
    Ok(f)
}

/// Redis hangs (SIGSTOP) under load with posts, then resumes with its data:
/// requests are served from the store meanwhile, and the posts made while
/// it hung reach the followers' cached timelines once it answers again.
async fn pause_redis(ctx: &Ctx) -> anyhow::Result<Figures> {
    let mut f = Figures::new(
        "pause-redis",
        "Redis hangs (SIGSTOP) under load with posts, then resumes with its data",
    );
    let since = since_now();
    let bus0 = ctx.cluster.bus().await?;
    let load = Load::start(ctx.world.clone(), mix(ctx, 0.15), "pause-redis");
    sleep(Duration::from_secs(3)).await;
    ctx.cluster.command(&["pause", "redis"]).await?;
    let paused = Instant::now();
    sleep(ctx.opts.redis_outage).await;
    let resumed = Instant::now();
    ctx.cluster.command(&["resume", "redis"]).await?;
    sleep(Duration::from_secs(4)).await;
    let done = load.stop().await;
    f.load = LoadFigures::of(&done, |_| false);
    let during = count_between(&done, paused, resumed);
    f.note(format!(
        "Redis hung for {:.1} s; {during} posts acknowledged meanwhile",
        (resumed - paused).as_secs_f64()
    ));
    let rebuilds = deliveries(ctx, &mut f, &done, &[], Check::Sample, since, &bus0).await;
    if rebuilds > 0 {
        f.note(format!(
            "{rebuilds} home timelines rebuilt while checking (expected none: Redis kept them)"
        ));
    }
    f.check_common();
    Ok(f)
}

/// Restart Redis (it comes back empty) under load with posts: requests are
/// served from the store while it is down; afterwards timelines are rebuilt
/// on read and contain the posts made during the outage, and fan-out fills
/// the rebuilt timelines again.
async fn restart_redis(ctx: &Ctx) -> anyhow::Result<Figures> {
    let mut f = Figures::new(
        "restart-redis",
        "kill Redis under load with posts, start it again empty",
    );
    let world = &ctx.world;
    let since = since_now();
    let bus0 = ctx.cluster.bus().await?;
    let load = Load::start(world.clone(), mix(ctx, 0.15), "restart-redis");
    sleep(Duration::from_secs(3)).await;
    ctx.cluster.command(&["kill", "redis"]).await?;
    let down = Instant::now();
    sleep(ctx.opts.redis_outage).await;
    let up = Instant::now();
    ctx.cluster.command(&["start", "redis"]).await?;
    sleep(Duration::from_secs(5)).await;
    let done = load.stop().await;
    f.load = LoadFigures::of(&done, |_| false);
    let during = count_between(&done, down, up);
    f.note(format!(
        "Redis down for {:.1} s; {during} posts acknowledged meanwhile",
        (up - down).as_secs_f64()
    ));
    let rebuilds = deliveries(ctx, &mut f, &done, &[], Check::Sample, since, &bus0).await;
    f.note(format!(
        "{rebuilds} home timelines rebuilt from the store on their first read after the restart"
    ));

    // Recovery: the timelines read above are cached again; a post from each
    // poster must reach them by fan-out (no rebuild while checking).
    let since = since_now();
    let mut posts = Vec::new();
    for (p, poster) in world.posters.iter().enumerate() {
        let id = world
            .api
            .post(&poster.token, "fault test restart-redis: after recovery")
            .await?;
        posts.push(Posted {
            id,
            poster: p,
            started: Instant::now(),
        });
    }
    let after = Done {
        started: Instant::now(),
        samples: vec![],
        posted: posts,
        skipped: 0,
        seconds: 0.0,
        unfinished: 0,
    };
    let mut recovery = Figures::new("", "");
    let bus1 = ctx.cluster.bus().await?;
    let rebuilt = deliveries(ctx, &mut recovery, &after, &[], Check::Sample, since, &bus1).await;
    f.note(format!(
        "after recovery: {} posts, {} deliveries by fan-out into cached timelines, {} missing, {} timelines rebuilt",
        recovery.posts, recovery.deliveries, recovery.deliveries_missing, rebuilt
    ));
    f.posts += recovery.posts;
    f.deliveries += recovery.deliveries;
    f.deliveries_missing += recovery.deliveries_missing;
    f.notifications += recovery.notifications;
    f.notifications_missing += recovery.notifications_missing;
    f.dead_letters += recovery.dead_letters;
    f.problems.extend(recovery.problems);
    if rebuilt > 0 {
        f.problem(format!(
            "{rebuilt} timelines were rebuilt after recovery: the cache did not keep them"
        ));
    }
    f.check_common();
    Ok(f)
}

// ------------------------------------------------------------- checks

fn mix(ctx: &Ctx, posts: f64) -> Mix {
    Mix {
        rate: ctx.opts.rate,
        posts,
    }
}

fn deadline_in(d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + d
}

fn count_between(done: &Done, from: Instant, to: Instant) -> usize {
    done.posted
        .iter()
        .filter(|p| p.started >= from && p.started <= to)
        .count()
}

/// Waits for the bus to settle, then checks that every post the load got
/// acknowledged (and every `extra` post, to its listed audience) is in the
/// home timeline of each follower of its poster, and that each poster's
/// notified follower has a notification for it; fills in the figures.
/// Returns how many home timelines were rebuilt (not cached) while checking.
async fn deliveries(
    ctx: &Ctx,
    f: &mut Figures,
    done: &Done,
    extra: &[(Vec<usize>, Vec<i64>)],
    check_in: Check,
    since: i64,
    bus_before: &Bus,
) -> u64 {
    let world = &ctx.world;
    let every = match check_in {
        Check::Every => 1,
        Check::Sample => ctx.opts.sample_every.max(1),
    };
    let deadline = deadline_in(ctx.opts.convergence);
    if let Err(e) = ctx.cluster.bus_idle(SETTLE, deadline).await {
        f.problem(format!("{e}"));
    }
    let mut homes: Vec<Vec<i64>> = vec![Vec::new(); world.audience.len()];
    let mut notes: Vec<Vec<i64>> = vec![Vec::new(); world.audience.len()];
    for p in &done.posted {
        for i in world.followers_of_poster(p.poster) {
            if world.in_sample(i, every) {
                homes[i].push(p.id);
            }
        }
        if let Some(i) = world.notified_follower(p.poster) {
            notes[i].push(p.id);
        }
    }
    for (audience, posts) in extra {
        for &i in audience {
            homes[i].extend(posts);
        }
    }
    f.posts += (done.posted.len() + extra.iter().map(|(_, p)| p.len()).sum::<usize>()) as u64;
    let rebuilds0 = ctx
        .cluster
        .api_counter("starling_home_rebuilds_total")
        .await;
    let (checked, missing) = check(ctx, &homes, since, Kind::Home, deadline).await;
    let rebuilds = ctx
        .cluster
        .api_counter("starling_home_rebuilds_total")
        .await
        - rebuilds0;
    f.deliveries += checked;
    f.deliveries_missing += missing;
    if every > 1 && !done.posted.is_empty() {
        f.note(format!(
            "the load's posts checked in the home timelines of every {every}th follower of their poster ({} timelines)",
            homes.iter().filter(|h| !h.is_empty()).count()
        ));
    }
    let (checked, missing) = check(ctx, &notes, since, Kind::Notifications, deadline).await;
    f.notifications += checked;
    f.notifications_missing += missing;
    match ctx.cluster.bus().await {
        Ok(bus) => {
            f.dead_letters += bus.dead_letters.saturating_sub(bus_before.dead_letters);
            f.redeliveries += bus.redeliveries_since(bus_before);
        }
        Err(e) => f.problem(format!("cannot read the event bus' state: {e}")),
    }
    rebuilds.max(0.0) as u64
}

/// Whose timelines [`deliveries`] reads for the load's posts.
#[derive(Clone, Copy)]
enum Check {
    /// Every follower's.
    Every,
    /// Those in the sample ([`World::in_sample`]): each post is still
    /// checked, in a share of its followers' timelines.
    Sample,
}

#[derive(Clone, Copy)]
enum Kind {
    Home,
    Notifications,
}

/// Checks that account `i` sees every id of `expected[i]`, again and again
/// until it does or the deadline passes; (pairs checked, pairs missing).
async fn check(
    ctx: &Ctx,
    expected: &[Vec<i64>],
    since: i64,
    kind: Kind,
    deadline: tokio::time::Instant,
) -> (u64, u64) {
    let mut outstanding: Vec<(usize, HashSet<i64>)> = expected
        .iter()
        .enumerate()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(i, ids)| (i, ids.iter().copied().collect()))
        .collect();
    let checked: u64 = outstanding.iter().map(|(_, s)| s.len() as u64).sum();
    loop {
        outstanding = round(ctx, outstanding, since, kind).await;
        if outstanding.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_secs(1)).await;
    }
    let missing = outstanding.iter().map(|(_, s)| s.len() as u64).sum();
    (checked, missing)
}

/// One pass over the accounts still missing something; what they still
/// miss.
async fn round(
    ctx: &Ctx,
    outstanding: Vec<(usize, HashSet<i64>)>,
    since: i64,
    kind: Kind,
) -> Vec<(usize, HashSet<i64>)> {
    let mut left = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = outstanding.into_iter();
    loop {
        while tasks.len() < CHECK_CONCURRENCY {
            let Some((i, mut want)) = queue.next() else {
                break;
            };
            let api = ctx.world.api.clone();
            let token = ctx.world.audience[i].clone();
            tasks.spawn(async move {
                let seen = match kind {
                    Kind::Home => {
                        api.ids_since(&token, "/api/v1/timelines/home", "", since, None)
                            .await
                    }
                    Kind::Notifications => {
                        api.ids_since(
                            &token,
                            "/api/v1/notifications",
                            "&types[]=status",
                            since,
                            Some("status"),
                        )
                        .await
                    }
                };
                match seen {
                    Ok(seen) => want.retain(|id| !seen.contains(id)),
                    Err(e) => eprintln!("  check: account {i}: {e:#}"),
                }
                (i, want)
            });
        }
        match tasks.join_next().await {
            Some(Ok((i, want))) => {
                if !want.is_empty() {
                    left.push((i, want));
                }
            }
            Some(Err(e)) => eprintln!("  check task: {e}"),
            None => break,
        }
    }
    left
}
