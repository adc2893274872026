//! What each request of a run is: operations, mixes, and the requests they
//! become.
//!
//! A [`Mix`] picks an [`Op`] per request by weight (the DeathStarBench mix
//! is 60/30/10, a single-operation workload is 100% one op). The
//! [`Population`] turns an op into a concrete Mastodon API request on
//! behalf of a user drawn uniformly from the active users: their token, a
//! random account to read or follow, a recent status to favourite. Only
//! client API endpoints are used, so the same run works against any
//! Mastodon-compatible server. Header values are built once per user, so a
//! request costs a couple of small allocations.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use serde::Serialize;

use crate::cli::Workload;
use crate::client::Target;
use crate::rng::Rng;
use crate::users::User;

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Home,
    Account,
    Post,
    Follow,
    Favourite,
    Notifications,
    Ceiling,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Home => "home",
            Op::Account => "account",
            Op::Post => "post",
            Op::Follow => "follow",
            Op::Favourite => "favourite",
            Op::Notifications => "notifications",
            Op::Ceiling => "ceiling",
        }
    }
}

/// Ops with cumulative weights.
#[derive(Clone, Debug)]
pub struct Mix {
    table: Vec<(Op, f64)>,
}

impl Mix {
    pub fn of(workload: Workload) -> Self {
        let weights: &[(Op, f64)] = match workload {
            Workload::Mix => &[(Op::Home, 0.6), (Op::Account, 0.3), (Op::Post, 0.1)],
            Workload::Home => &[(Op::Home, 1.0)],
            Workload::Account => &[(Op::Account, 1.0)],
            Workload::Post => &[(Op::Post, 1.0)],
            Workload::Follow => &[(Op::Follow, 1.0)],
            Workload::Favourite => &[(Op::Favourite, 1.0)],
            Workload::Notifications => &[(Op::Notifications, 1.0)],
            Workload::Ceiling => &[(Op::Ceiling, 1.0)],
        };
        let mut sum = 0.0;
        let table = weights
            .iter()
            .map(|&(op, w)| {
                sum += w;
                (op, sum)
            })
            .collect();
        Self { table }
    }

    pub fn ops(&self) -> Vec<Op> {
        self.table.iter().map(|(op, _)| *op).collect()
    }

    pub fn pick(&self, rng: &mut Rng) -> Op {
        if self.table.len() == 1 {
            return self.table[0].0;
        }
        let total = self.table.last().map_or(1.0, |(_, w)| *w);
        let x = rng.unit() * total;
        self.table
            .iter()
            .find(|(_, w)| x < *w)
            .or(self.table.last())
            .map_or(Op::Home, |(op, _)| *op)
    }
}

/// The users a run acts for and what it needs to build requests.
pub struct Population {
    target: Target,
    users: Vec<User>,
    bearer: Vec<HeaderValue>,
    /// Recent public statuses (favourite targets).
    pub status_ids: Vec<String>,
    /// Body size asked of the ceiling probe.
    pub ceiling_bytes: usize,
    json: HeaderValue,
}

impl Population {
    pub fn new(target: Target, users: Vec<User>) -> anyhow::Result<Self> {
        let bearer = users
            .iter()
            .map(|u| HeaderValue::from_str(&format!("Bearer {}", u.token)))
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("a token in the users file is not a header value"))?;
        Ok(Self {
            target,
            users,
            bearer,
            status_ids: Vec::new(),
            ceiling_bytes: 16 * 1024,
            json: HeaderValue::from_static("application/json"),
        })
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        user: usize,
        body: Option<Vec<u8>>,
    ) -> Request<Full<Bytes>> {
        let has_body = body.is_some();
        let mut req = Request::new(Full::new(body.map(Bytes::from).unwrap_or_default()));
        *req.method_mut() = method;
        let uri = format!("{}{path}", self.target.base_path);
        *req.uri_mut() = uri.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
        let headers = req.headers_mut();
        headers.insert(HOST, self.target.authority.clone());
        headers.insert(AUTHORIZATION, self.bearer[user].clone());
        if has_body {
            headers.insert(CONTENT_TYPE, self.json.clone());
        }
        req
    }

    /// The request for `op`, on behalf of a random user.
    pub fn build(&self, op: Op, rng: &mut Rng) -> Request<Full<Bytes>> {
        let me = rng.index(self.users.len());
        self.build_as(op, me, rng)
    }

    /// The request for `op` on behalf of user number `me`.
    pub fn build_as(&self, op: Op, me: usize, rng: &mut Rng) -> Request<Full<Bytes>> {
        let n = self.users.len();
        let other = |rng: &mut Rng| {
            let o = rng.index(n);
            if o == me && n > 1 {
                (o + 1) % n
            } else {
                o
            }
        };
        match op {
            Op::Home => self.request(Method::GET, "/api/v1/timelines/home?limit=20", me, None),
            Op::Account => {
                let id = &self.users[other(rng)].id;
                self.request(
                    Method::GET,
                    &format!("/api/v1/accounts/{id}/statuses?limit=20"),
                    me,
                    None,
                )
            }
            Op::Post => {
                let a = &self.users[other(rng)].username;
                let b = &self.users[other(rng)].username;
                let r = rng.next_u64() % 1_000_000;
                let text = format!(
                    "Load test {r} with @{a} and @{b} about #bench{} and #starling: \
                     https://example.com/posts/{r}",
                    rng.index(100)
                );
                let body = serde_json::json!({ "status": text, "visibility": "public" });
                self.request(
                    Method::POST,
                    "/api/v1/statuses",
                    me,
                    Some(body.to_string().into_bytes()),
                )
            }
            Op::Follow => {
                let id = &self.users[other(rng)].id;
                self.request(
                    Method::POST,
                    &format!("/api/v1/accounts/{id}/follow"),
                    me,
                    None,
                )
            }
            Op::Favourite => {
                let path = match self.status_ids.len() {
                    0 => "/api/v1/statuses/0/favourite".to_owned(),
                    k => format!(
                        "/api/v1/statuses/{}/favourite",
                        self.status_ids[rng.index(k)]
                    ),
                };
                self.request(Method::POST, &path, me, None)
            }
            Op::Notifications => {
                self.request(Method::GET, "/api/v1/notifications?limit=20", me, None)
            }
            Op::Ceiling => self.request(
                Method::GET,
                &format!("/api/v1/_bench/ceiling?bytes={}", self.ceiling_bytes),
                me,
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_60_30_10() {
        let mix = Mix::of(Workload::Mix);
        let mut rng = Rng::new(5);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            *counts.entry(mix.pick(&mut rng)).or_insert(0) += 1;
        }
        let share = |op| f64::from(counts[&op]) / 100_000.0;
        assert!((share(Op::Home) - 0.6).abs() < 0.01);
        assert!((share(Op::Account) - 0.3).abs() < 0.01);
        assert!((share(Op::Post) - 0.1).abs() < 0.01);
        assert_eq!(Mix::of(Workload::Follow).ops(), vec![Op::Follow]);
    }
}
