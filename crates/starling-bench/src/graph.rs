//! The synthetic social network: who follows whom, who posts when.
//!
//! **Followers follow a power law.** Real follower counts are heavy-tailed:
//! Kwak et al. ("What is Twitter, a social network or a news media?", WWW
//! 2010) fit Twitter's follower distribution with a power law of exponent
//! about 2.28. We get one by giving every account a popularity rank (a
//! random permutation, so popularity is unrelated to sign-up order) and
//! letting each follower draw its followees by rank from Zipf's law with
//! exponent `s`: the expected in-degree of rank `r` is proportional to
//! `r^-s`, which is a power-law degree distribution of exponent
//! `1 + 1/s`. The default `s = 0.78` gives exponent 2.28. Measured with
//! the defaults (50 follows on average): at 10 000 accounts the most
//! followed has 5 622 followers and the median 24; at 100 000 accounts the
//! most followed has 41 971 (two fifths of the network), 15 pass 10 000
//! (the default large-account threshold), and the median has 22.
//!
//! Preferential attachment (Barabási–Albert) would also give a power law,
//! but it is sequential (each new edge depends on all earlier ones) and its
//! exponent is fixed at 3. Drawing from a fixed popularity law keeps every
//! follower's list a pure function of `(seed, follower)`: the generator
//! needs no memory of earlier edges, produces the same network every time,
//! and could be split across threads.
//!
//! **Following counts** are exponential with the configured mean (many
//! accounts follow a few, some follow hundreds), at least one, at most
//! `max_follows`. Followees are distinct and never the follower itself.
//!
//! **Posts** are spread evenly over a window in the past (30 days by
//! default), each by an author drawn uniformly, so every account posts
//! about `posts_per_user` times and timelines interleave.
//!
//! **Ids carry their times** ([`SyntheticIds`]): rows are generated in time
//! order, and each id is composed from its time, its shard and a per-shard
//! sequence, exactly as the server's own generator would have made it then.

use starling_domain::{Id, ShardId, SHARD_COUNT};

use crate::rng::Rng;

/// The size and shape of a network to generate.
#[derive(Clone, Debug)]
pub struct Shape {
    pub users: u32,
    /// Mean number of accounts each account follows.
    pub avg_follows: f64,
    /// No account follows more than this many.
    pub max_follows: u32,
    /// Zipf exponent of followee popularity.
    pub zipf_exponent: f64,
    /// Mean number of posts per account.
    pub posts_per_user: f64,
    /// Fixes the whole network.
    pub seed: u64,
}

/// Zipf's law over ranks `0..n`, sampled by inverting the continuous
/// (Pareto) approximation of its distribution function: one `powf` per
/// draw, no tables.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    one_minus_s: f64,
    span: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Self {
        let n = n.max(1) as f64;
        let one_minus_s = 1.0 - s;
        let span = if one_minus_s.abs() < 1e-9 {
            n.ln()
        } else {
            n.powf(one_minus_s) - 1.0
        };
        Self {
            n,
            one_minus_s,
            span,
        }
    }

    /// A rank in `0..n`; rank 0 is the most likely.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let x = if self.one_minus_s.abs() < 1e-9 {
            (u * self.span).exp()
        } else {
            (1.0 + u * self.span).powf(1.0 / self.one_minus_s)
        };
        ((x.floor() - 1.0).max(0.0) as u64).min(self.n as u64 - 1)
    }
}

/// The network: popularity ranks and the rules above.
pub struct Network {
    pub shape: Shape,
    /// `by_rank[r]` is the account of popularity rank `r`.
    by_rank: Vec<u32>,
    zipf: Zipf,
}

/// Salts that keep the streams of the different draws apart.
const FOLLOWS: u64 = 0x466f_6c6c_6f77_7300;
const POSTS: u64 = 0x506f_7374_7300_0000;

impl Network {
    pub fn new(shape: Shape) -> Self {
        let n = shape.users as usize;
        let mut by_rank: Vec<u32> = (0..shape.users).collect();
        let mut rng = Rng::new(shape.seed);
        for i in (1..n).rev() {
            let j = rng.index(i + 1);
            by_rank.swap(i, j);
        }
        let zipf = Zipf::new(u64::from(shape.users), shape.zipf_exponent);
        Self {
            shape,
            by_rank,
            zipf,
        }
    }

    /// The accounts `follower` follows, distinct, in draw order (appended
    /// to `out`, which is cleared first).
    pub fn followees(&self, follower: u32, out: &mut Vec<u32>) {
        out.clear();
        let n = self.shape.users;
        if n < 2 {
            return;
        }
        let mut rng = Rng::for_item(self.shape.seed ^ FOLLOWS, u64::from(follower));
        let cap = self.shape.max_follows.clamp(1, n - 1);
        let mean = self.shape.avg_follows.max(1.0);
        let wanted = ((-(1.0 - rng.unit()).ln() * mean).round() as u32).clamp(1, cap) as usize;
        // Popular accounts come up again and again: bound the tries so a
        // follower wanting most of a small network still finishes.
        let mut tries = wanted * 20 + 100;
        while out.len() < wanted && tries > 0 {
            tries -= 1;
            let followee = self.by_rank[self.zipf.sample(&mut rng) as usize];
            if followee != follower && !out.contains(&followee) {
                out.push(followee);
            }
        }
    }

    /// Total posts in the network.
    pub fn total_posts(&self) -> u64 {
        (f64::from(self.shape.users) * self.shape.posts_per_user).round() as u64
    }

    /// The author of post number `n` (`0..total_posts()`).
    pub fn post_author(&self, n: u64) -> u32 {
        Rng::for_item(self.shape.seed ^ POSTS, n).below(u64::from(self.shape.users)) as u32
    }

    /// The account with popularity rank 0 (the most followed, give or take
    /// the randomness of the draws).
    pub fn most_popular(&self) -> u32 {
        self.by_rank[0]
    }
}

/// Ids for rows generated in time order: per shard, the last millisecond
/// used and a sequence within it (carrying into the next millisecond after
/// 64), as the server's `IdGenerator` does in real time. Unique as long as
/// the times passed in never go backwards.
pub struct SyntheticIds {
    last: Vec<(u64, u64)>,
}

impl Default for SyntheticIds {
    fn default() -> Self {
        Self {
            last: vec![(0, 0); usize::from(SHARD_COUNT)],
        }
    }
}

impl SyntheticIds {
    pub fn at(&mut self, unix_ms: u64, shard: ShardId) -> Id {
        let slot = &mut self.last[usize::from(shard.get())];
        if unix_ms > slot.0 {
            *slot = (unix_ms, 0);
        } else {
            slot.1 += 1;
            if slot.1 == 64 {
                *slot = (slot.0 + 1, 0);
            }
        }
        Id::from_parts(slot.0, shard, slot.1)
    }
}

/// Evenly spaced times: item `i` of `count` in `[start_ms, end_ms)`.
pub fn spread(start_ms: u64, end_ms: u64, i: u64, count: u64) -> u64 {
    if count == 0 {
        return start_ms;
    }
    let span = end_ms.saturating_sub(start_ms);
    start_ms + ((u128::from(span) * u128::from(i)) / u128::from(count)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(users: u32) -> Shape {
        Shape {
            users,
            avg_follows: 50.0,
            max_follows: 5000,
            zipf_exponent: 0.78,
            posts_per_user: 2.0,
            seed: 42,
        }
    }

    #[test]
    fn followees_are_distinct_reproducible_and_heavy_tailed() {
        let net = Network::new(shape(5_000));
        let mut indeg = vec![0u32; 5_000];
        let mut total = 0usize;
        let mut list = Vec::new();
        for f in 0..5_000 {
            net.followees(f, &mut list);
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len(), "distinct");
            assert!(!list.contains(&f), "no self-follow");
            total += list.len();
            for &t in &list {
                indeg[t as usize] += 1;
            }
        }
        let mut again = Vec::new();
        net.followees(123, &mut again);
        net.followees(123, &mut list);
        assert_eq!(again, list);
        let mean = total as f64 / 5_000.0;
        assert!((35.0..65.0).contains(&mean), "mean follows {mean}");
        indeg.sort_unstable();
        let median = indeg[2_500];
        let top = indeg[4_999];
        assert!(top > 20 * median.max(1), "top {top}, median {median}");
        assert!(indeg[4_999] == indeg.iter().copied().max().unwrap_or(0));
    }

    #[test]
    fn zipf_prefers_low_ranks() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = Rng::new(9);
        let mut low = 0;
        for _ in 0..10_000 {
            let r = z.sample(&mut rng);
            assert!(r < 1000);
            if r < 10 {
                low += 1;
            }
        }
        // log(10)/log(1000) = 1/3 of the mass on the first ten ranks.
        assert!((2_800..3_900).contains(&low), "{low}");
    }

    #[test]
    fn ids_carry_time_and_shard_and_never_repeat() {
        let mut ids = SyntheticIds::default();
        let shard = ShardId::new(5).unwrap_or_else(|| unreachable!());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let id = ids.at(1_000, shard);
            assert_eq!(id.shard(), shard);
            assert!(id.unix_ms() >= 1_000 && id.unix_ms() <= 1_004);
            assert!(seen.insert(id));
        }
        assert_eq!(spread(100, 200, 5, 10), 150);
    }
}
