//! Fan-out lag: how long after a post is acknowledged it shows up in its
//! author's followers' home timelines.
//!
//! Measured from the outside, over the client API, so it holds for any
//! server: pick an author, take a sample of its followers (the first page of
//! `GET /accounts/:id/followers`, mapped to tokens through the users file),
//! read each follower's home once (a server that only fans out to active
//! timelines, as Starling and Mastodon do, must see them as active; a cold
//! timeline would be rebuilt on read and show the post at once, measuring
//! nothing), post, then poll every follower's home with `min_id` just below
//! the new id until the post appears. A follower's lag is the time from the
//! post's acknowledgement to the poll response that first contained it, so
//! it is overstated by up to one poll interval plus one read.
//!
//! Two authors are probed: an ordinary one (follower count nearest the
//! mean) and the most followed account (which Starling merges at read time
//! once it passes the large-account threshold). The samples are taken and
//! their timelines made active before the warm-up ([`prepare`]); the probes
//! run alongside the measured load, so the lag is the lag under that load.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::api::Api;
use crate::report::Percentiles;
use crate::users::User;

/// How to probe.
#[derive(Clone, Debug)]
pub struct LagSpec {
    pub probes: usize,
    pub sample: usize,
    pub poll: Duration,
    pub timeout: Duration,
}

/// The lag seen for one author.
#[derive(Clone, Debug, Serialize)]
pub struct AuthorLag {
    pub author: String,
    pub followers: u32,
    pub probes: usize,
    /// Follower timelines polled, over all probes.
    pub polled: u64,
    /// Of those, the ones the post never reached within the timeout.
    pub lost: u64,
    pub lag_ms: Percentiles,
    /// Probe failures (a request that errored), if any.
    pub failures: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LagReport {
    pub poll_interval_ms: f64,
    pub ordinary: Option<AuthorLag>,
    pub largest: Option<AuthorLag>,
}

/// The most followed user and the one nearest the mean follower count
/// (with at least `sample` followers).
fn authors(users: &[User], sample: usize) -> (Option<usize>, Option<usize>) {
    let largest = (0..users.len()).max_by_key(|&i| users[i].followers);
    let mean = users.iter().map(|u| f64::from(u.followers)).sum::<f64>() / users.len() as f64;
    let ordinary = (0..users.len())
        .filter(|&i| Some(i) != largest && users[i].followers as usize >= sample.max(1))
        .min_by(|&a, &b| {
            let da = (f64::from(users[a].followers) - mean).abs();
            let db = (f64::from(users[b].followers) - mean).abs();
            da.total_cmp(&db)
        });
    (ordinary, largest)
}

/// Authors picked and their followers sampled and made active, ready to
/// probe.
pub struct LagProbe {
    api: Api,
    users: Arc<Vec<User>>,
    spec: LagSpec,
    ordinary: Option<Sampled>,
    largest: Option<Sampled>,
}

/// An author and the followers whose timelines its probes poll (or why
/// there are none).
struct Sampled {
    author: usize,
    sample: Result<Vec<usize>, String>,
}

/// Picks the authors, samples their followers and reads each sampled
/// follower's home once, so the probes' first reads do not rebuild cold
/// timelines during the measured phase (at 1M users that was a 250 ms
/// spike in its first second). Call it before the warm-up.
pub async fn prepare(api: Api, users: Arc<Vec<User>>, spec: LagSpec) -> LagProbe {
    let by_id: HashMap<String, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.clone(), i))
        .collect();
    let (ordinary, largest) = authors(&users, spec.sample);
    let mut sampled = Vec::new();
    for author in [ordinary, largest] {
        sampled.push(match author {
            Some(a) => Some(sample_and_warm(&api, &users, &by_id, a, &spec).await),
            None => None,
        });
    }
    let largest = sampled.pop().flatten();
    let ordinary = sampled.pop().flatten();
    LagProbe {
        api,
        users,
        spec,
        ordinary,
        largest,
    }
}

async fn sample_and_warm(
    api: &Api,
    users: &Arc<Vec<User>>,
    by_id: &HashMap<String, usize>,
    author: usize,
    spec: &LagSpec,
) -> Sampled {
    let mut sample = sample_followers(api, users, by_id, author, spec).await;
    if let Ok(followers) = &sample {
        if let Err(e) = warm(api, users, followers).await {
            sample = Err(format!("{e:#}"));
        }
    }
    Sampled { author, sample }
}

impl LagProbe {
    /// Runs the probes (alongside the measured load).
    pub async fn measure(self) -> LagReport {
        let mut report = LagReport {
            poll_interval_ms: self.spec.poll.as_secs_f64() * 1000.0,
            ordinary: None,
            largest: None,
        };
        for (slot, sampled) in [
            (&mut report.ordinary, &self.ordinary),
            (&mut report.largest, &self.largest),
        ] {
            if let Some(s) = sampled {
                *slot = Some(probe_author(&self.api, &self.users, s, &self.spec).await);
            }
        }
        report
    }
}

/// Up to `spec.sample` of the author's followers that are in the users
/// file.
async fn sample_followers(
    api: &Api,
    users: &[User],
    by_id: &HashMap<String, usize>,
    author: usize,
    spec: &LagSpec,
) -> Result<Vec<usize>, String> {
    let a = &users[author];
    let ids = api
        .followers(&a.token, &a.id, 80)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let sample: Vec<usize> = ids
        .iter()
        .filter_map(|id| by_id.get(id).copied())
        .take(spec.sample)
        .collect();
    if sample.is_empty() {
        return Err("no follower of this author is in the users file".into());
    }
    Ok(sample)
}

/// Reads each follower's home once (a server that fans out only to active
/// timelines must see them as active).
async fn warm(api: &Api, users: &Arc<Vec<User>>, followers: &[usize]) -> anyhow::Result<()> {
    let mut reads = tokio::task::JoinSet::new();
    for &f in followers {
        let (api, users) = (api.clone(), users.clone());
        reads.spawn(async move { api.home(&users[f].token, "limit=1").await.map(|_| ()) });
    }
    while let Some(done) = reads.join_next().await {
        done??;
    }
    Ok(())
}

async fn probe_author(
    api: &Api,
    users: &Arc<Vec<User>>,
    sampled: &Sampled,
    spec: &LagSpec,
) -> AuthorLag {
    let author = sampled.author;
    let a = &users[author];
    let mut hist: Histogram<u64> =
        Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!());
    let mut out = AuthorLag {
        author: a.username.clone(),
        followers: a.followers,
        probes: 0,
        polled: 0,
        lost: 0,
        lag_ms: Percentiles::default(),
        failures: Vec::new(),
    };
    let sample = match &sampled.sample {
        Ok(sample) => sample,
        Err(e) => {
            out.failures.push(e.clone());
            return out;
        }
    };
    for n in 0..spec.probes {
        match probe_once(api, users, author, sample, spec, n).await {
            Ok(lags) => {
                out.probes += 1;
                for lag in lags {
                    out.polled += 1;
                    match lag {
                        Some(d) => {
                            hist.saturating_record(d.as_micros().max(1) as u64);
                        }
                        None => out.lost += 1,
                    }
                }
            }
            Err(e) => out.failures.push(format!("{e:#}")),
        }
    }
    out.lag_ms = Percentiles::of_us(&hist);
    out
}

/// One post and the lag to each sampled follower (`None`: never seen).
async fn probe_once(
    api: &Api,
    users: &Arc<Vec<User>>,
    author: usize,
    sample: &[usize],
    spec: &LagSpec,
    n: usize,
) -> anyhow::Result<Vec<Option<Duration>>> {
    // Keep the sampled timelines active.
    warm(api, users, sample).await?;
    let text = format!("Fan-out lag probe {n} ({})", std::process::id());
    let id = api.post(&users[author].token, &text).await?;
    let acked = Instant::now();
    let below: u64 = id.parse::<u64>().map_or(0, |v| v.saturating_sub(1));
    let query = Arc::new(format!("min_id={below}&limit=5"));
    let mut lags: Vec<Option<Duration>> = vec![None; sample.len()];
    let deadline = acked + spec.timeout;
    while lags.iter().any(Option::is_none) && Instant::now() < deadline {
        let mut polls = tokio::task::JoinSet::new();
        for (slot, &f) in sample.iter().enumerate() {
            if lags[slot].is_some() {
                continue;
            }
            let (api, users, query, id) = (api.clone(), users.clone(), query.clone(), id.clone());
            polls.spawn(async move {
                let seen = api
                    .home(&users[f].token, &query)
                    .await
                    .map(|(ids, _)| ids.contains(&id))
                    .unwrap_or(false);
                (slot, seen.then(|| acked.elapsed()))
            });
        }
        while let Some(done) = polls.join_next().await {
            if let Ok((slot, Some(lag))) = done {
                lags[slot] = Some(lag);
            }
        }
        tokio::time::sleep(spec.poll).await;
    }
    Ok(lags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(i: u32, followers: u32) -> User {
        User {
            id: i.to_string(),
            username: format!("u{i}"),
            token: String::new(),
            followers,
            following: 0,
        }
    }

    #[test]
    fn picks_the_largest_and_a_typical_author() {
        let users: Vec<User> = [3, 900, 40, 55, 1, 0]
            .iter()
            .enumerate()
            .map(|(i, f)| user(i as u32, *f))
            .collect();
        // Mean is 166.5: 55 is nearest among those with at least 5 followers
        // (900 is the largest, so not ordinary).
        assert_eq!(authors(&users, 5), (Some(3), Some(1)));
    }
}
