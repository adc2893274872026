//! The invalidation seam: telling every process that cached objects changed.
//!
//! Each process keeps recently read accounts and statuses in memory (the
//! object cache in `starling-core`). A write invalidates its own process's
//! copies at once; the other processes learn of it through this seam. In the
//! embedded shape there are no other processes ([`LocalInvalidations`]); in
//! the distributed one, Redis pub/sub carries the message
//! (`RedisInvalidations`).
//!
//! Delivery is best effort, like the pub/sub under it: a process that was
//! cut off from Redis may miss messages, so subscribers are also told when
//! their subscription (re)starts ([`Invalidation::Everything`]) and must drop
//! everything then; and cached entries expire after a short time anyway.

use std::sync::Arc;

use async_trait::async_trait;
use starling_domain::{Id, SecretHash};

use crate::timeline::CacheResult;

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    Accounts(Vec<Id>),
    Statuses(Vec<Id>),
    /// What these accounts see of others changed: their relations to
    /// others (either way), or their own favourites or boosts.
    Viewers(Vec<Id>),
    /// These access tokens were revoked (by their hashes).
    Tokens(Vec<SecretHash>),
    /// Messages may have been missed: drop every cached object.
    Everything,
}

/// Called with every invalidation published by any process (including,
/// for adapters that cannot avoid it, this one's own).
pub type InvalidationHandler = Arc<dyn Fn(Invalidation) + Send + Sync>;

#[async_trait]
pub trait Invalidations: Send + Sync + 'static {
    /// Tells the other processes. Returns once the message is handed to the
    /// transport (for Redis: once Redis has accepted it), so a client that
    /// sees the write's answer and asks another process is unlikely to find
    /// a stale copy there.
    async fn publish(&self, what: &Invalidation) -> CacheResult<()>;

    /// Calls `handler` with what other processes publish, from now on, until
    /// the process ends.
    async fn subscribe(&self, handler: InvalidationHandler) -> CacheResult<()>;
}

/// One process: nobody else to tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalInvalidations;

#[async_trait]
impl Invalidations for LocalInvalidations {
    async fn publish(&self, _what: &Invalidation) -> CacheResult<()> {
        Ok(())
    }

    async fn subscribe(&self, _handler: InvalidationHandler) -> CacheResult<()> {
        Ok(())
    }
}

/// The wire form: `a 1 2 3`, `s 4 5`, `v 6 7`, `t <hex> <hex>`, or `*`. A process that does
/// not know a tag reads it as `*` (so during a rolling upgrade an older
/// process drops everything rather than keep something stale).
pub fn encode(what: &Invalidation) -> String {
    let (tag, ids) = match what {
        Invalidation::Accounts(ids) => ("a", ids),
        Invalidation::Statuses(ids) => ("s", ids),
        Invalidation::Viewers(ids) => ("v", ids),
        Invalidation::Tokens(hashes) => {
            let mut out = String::from("t");
            for hash in hashes {
                out.push(' ');
                for byte in hash.0 {
                    out.push_str(&format!("{byte:02x}"));
                }
            }
            return out;
        }
        Invalidation::Everything => return "*".into(),
    };
    let mut out = String::from(tag);
    for id in ids {
        out.push(' ');
        out.push_str(&id.to_string());
    }
    out
}

/// Reads [`encode`]'s form; anything unreadable means "drop everything".
pub fn decode(text: &str) -> Invalidation {
    let mut parts = text.split_ascii_whitespace();
    let ids = |parts: std::str::SplitAsciiWhitespace<'_>| -> Option<Vec<Id>> {
        parts.map(|p| p.parse().ok()).collect()
    };
    match parts.next() {
        Some("a") => ids(parts).map_or(Invalidation::Everything, Invalidation::Accounts),
        Some("s") => ids(parts).map_or(Invalidation::Everything, Invalidation::Statuses),
        Some("v") => ids(parts).map_or(Invalidation::Everything, Invalidation::Viewers),
        Some("t") => parts
            .map(hash_from_hex)
            .collect::<Option<Vec<SecretHash>>>()
            .map_or(Invalidation::Everything, Invalidation::Tokens),
        _ => Invalidation::Everything,
    }
}

fn hash_from_hex(text: &str) -> Option<SecretHash> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(SecretHash(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        for what in [
            Invalidation::Accounts(vec![Id::from_i64(1), Id::from_i64(1 << 62)]),
            Invalidation::Statuses(vec![Id::from_i64(7)]),
            Invalidation::Viewers(vec![Id::from_i64(8), Id::from_i64(9)]),
            Invalidation::Tokens(vec![SecretHash::of("one"), SecretHash([0xa5; 32])]),
            Invalidation::Everything,
        ] {
            assert_eq!(decode(&encode(&what)), what);
        }
        assert_eq!(decode("s x"), Invalidation::Everything);
        assert_eq!(decode("t abc"), Invalidation::Everything);
        assert_eq!(
            decode(&format!("t {}", "zz".repeat(32))),
            Invalidation::Everything
        );
        assert_eq!(decode(""), Invalidation::Everything);
    }
}
