//! Statuses written as JSON from reusable fragments.
//!
//! A home page is twenty statuses, each with its author: about 30 KB of
//! JSON, nearly all of it the same for every reader and every read until
//! the status or its author changes. Rendering it field by field (owned
//! strings, formatted URLs, dates) was a fifth of a home read's CPU. Here a
//! status is written as
//!
//! ```text
//! { <core> ,"account": <author> ,"mentions": [...] <viewer flags> ,"reblog": <status or null> }
//! ```
//!
//! where `<core>` (everything that depends on the status alone: see
//! [`StatusCoreJson`]) and `<author>` ([`AccountJson`]) are rendered once
//! per *version* of the object and kept in a [`RenderCache`]; the viewer's
//! flags and the mentions are written per request. Field order differs
//! from Mastodon's, which no JSON client can observe.
//!
//! **Versions are `Arc` identities.** Hydrated statuses and accounts come
//! from the object cache (`starling_core::objects`), which replaces its
//! `Arc` whenever the object changes (a write invalidates it, the next read
//! loads a new one). A fragment is kept together with the `Arc` it was
//! rendered from and reused only while the view holds that same `Arc`, so
//! a fragment can never be older than the object the use case returned: no
//! invalidation of its own to get wrong. Holding the `Arc` also keeps its
//! address from being reused by another object while the fragment lives.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use starling_core::views::StatusView;
use starling_domain::{Account, Id, Status};

use crate::entities::{AccountJson, MentionJson, StatusCoreJson};
use crate::settings::ApiSettings;

/// A fragment and the version of the object it was rendered from.
type Fragment<T> = (Arc<T>, Arc<[u8]>);

/// One locked shard of fragments by object id.
type Shard<T> = Mutex<HashMap<Id, Fragment<T>>>;

/// Rendered fragments of recently shown statuses and accounts.
pub struct RenderCache {
    statuses: Fragments<Status>,
    accounts: Fragments<Account>,
}

impl RenderCache {
    /// At most about `capacity` fragments of each kind (a status's core is
    /// about 1 KB, an account about 1 KB).
    pub fn new(capacity: usize) -> Self {
        Self {
            statuses: Fragments::new(capacity),
            accounts: Fragments::new(capacity),
        }
    }
}

/// Shards of the fragment maps (lookups lock one, briefly).
const SHARDS: usize = 64;

/// Fragments by object id, in locked shards.
///
/// A page looks up some forty fragments; a general-purpose cache's
/// bookkeeping (recency lists, a maintenance channel) cost more than the
/// lookups themselves in profiles, so this is a plain map with a policy
/// that fits how fragments go stale: a fragment whose object the object
/// cache no longer holds (its `Arc` is held here alone) can never be used
/// again, since the next view of that object brings a new `Arc`. A full
/// shard first drops those; if it is still full (the object cache holds
/// more than this one), it starts over.
struct Fragments<T> {
    shards: Box<[Shard<T>]>,
    per_shard: usize,
}

impl<T> Fragments<T> {
    fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, id: Id) -> &Shard<T> {
        let raw = id.as_i64() as u64;
        // Ids' low bits are shard and sequence; mix in the time bits.
        let mixed = raw ^ (raw >> 16) ^ (raw >> 29);
        &self.shards[(mixed as usize) % SHARDS]
    }

    /// The fragment rendered from this very `object`, if kept.
    fn get(&self, id: Id, object: &Arc<T>) -> Option<Arc<[u8]>> {
        let map = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        map.get(&id)
            .filter(|(source, _)| Arc::ptr_eq(source, object))
            .map(|(_, json)| json.clone())
    }

    fn insert(&self, id: Id, object: Arc<T>, json: Arc<[u8]>) {
        let mut map = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard && !map.contains_key(&id) {
            map.retain(|_, (source, _)| Arc::strong_count(source) > 1);
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        map.insert(id, (object, json));
    }
}

impl Default for RenderCache {
    fn default() -> Self {
        Self::new(65_536)
    }
}

/// A JSON array of `views`, as [`write_status`] writes each.
pub fn statuses_array<'a>(
    views: impl ExactSizeIterator<Item = &'a StatusView>,
    s: &ApiSettings,
    cache: &RenderCache,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + views.len() * 2048);
    out.push(b'[');
    for (i, v) in views.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_status(&mut out, v, s, Some(cache), None);
    }
    out.push(b']');
    out
}

/// Appends the Mastodon JSON of one status to `out`; `text` adds the source
/// text (the answer to DELETE).
pub fn write_status(
    out: &mut Vec<u8>,
    v: &StatusView,
    s: &ApiSettings,
    cache: Option<&RenderCache>,
    text: Option<&str>,
) {
    out.push(b'{');
    let core = fragment(cache.map(|c| &c.statuses), &v.status, || {
        let mut body = to_json(&StatusCoreJson::new(v, s));
        // Keep the members only: `{...}` without its braces.
        body.pop();
        body.remove(0);
        body
    });
    out.extend_from_slice(&core);
    out.extend_from_slice(b",\"account\":");
    let author = fragment(cache.map(|c| &c.accounts), &v.account, || {
        to_json(&AccountJson::new(&v.account, s))
    });
    out.extend_from_slice(&author);
    out.extend_from_slice(b",\"mentions\":");
    let mentions: Vec<MentionJson> = v
        .mentions
        .iter()
        .map(|a| MentionJson {
            id: a.id.to_string(),
            username: a.username.clone(),
            url: s.url(&format!("/@{}", a.username)),
            acct: a.username.clone(),
        })
        .collect();
    append_json(out, &mentions);
    if let Some(f) = v.viewer {
        // `write!` into a Vec cannot fail.
        let _ = write!(
            out,
            ",\"favourited\":{},\"reblogged\":{},\"muted\":{},\"bookmarked\":false",
            f.favourited, f.reblogged, f.muted
        );
        if f.own {
            out.extend_from_slice(b",\"pinned\":false");
        }
    }
    out.extend_from_slice(b",\"reblog\":");
    match &v.reblog {
        Some(inner) => write_status(out, inner, s, cache, None),
        None => out.extend_from_slice(b"null"),
    }
    if let Some(text) = text {
        out.extend_from_slice(b",\"text\":");
        append_json(out, &text);
    }
    out.push(b'}');
}

/// The cached fragment of `object` if it was rendered from this very
/// version, else a fresh one (cached when there is a cache).
fn fragment<T: HasId>(
    cache: Option<&Fragments<T>>,
    object: &Arc<T>,
    render: impl FnOnce() -> Vec<u8>,
) -> Arc<[u8]> {
    let Some(cache) = cache else {
        return render().into();
    };
    let id = object.id();
    if let Some(json) = cache.get(id, object) {
        return json;
    }
    let json: Arc<[u8]> = render().into();
    cache.insert(id, object.clone(), json.clone());
    json
}

/// Objects fragments are kept by.
trait HasId {
    fn id(&self) -> Id;
}

impl HasId for Status {
    fn id(&self) -> Id {
        self.id
    }
}

impl HasId for Account {
    fn id(&self) -> Id {
        self.id
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    append_json(&mut out, value);
    out
}

fn append_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing these types (strings, numbers, booleans, derived structs)
    // into a Vec cannot fail; write `null` rather than panic if it ever did.
    let mark = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Obj(Id);

    impl HasId for Obj {
        fn id(&self) -> Id {
            self.0
        }
    }

    fn render_count(cache: &Fragments<Obj>, object: &Arc<Obj>, renders: &mut u32) -> Arc<[u8]> {
        fragment(Some(cache), object, || {
            *renders += 1;
            format!("{}", object.0).into_bytes()
        })
    }

    #[test]
    fn a_fragment_is_reused_for_the_same_version_only() {
        let cache = Fragments::new(1024);
        let mut renders = 0;
        let v1 = Arc::new(Obj(Id::from_i64(7)));
        render_count(&cache, &v1, &mut renders);
        render_count(&cache, &v1, &mut renders);
        assert_eq!(renders, 1, "same Arc: rendered once");
        // The object changed: the object cache hands out a new Arc.
        let v2 = Arc::new(Obj(Id::from_i64(7)));
        render_count(&cache, &v2, &mut renders);
        assert_eq!(renders, 2, "a new version is rendered again");
        render_count(&cache, &v1, &mut renders);
        assert_eq!(renders, 3, "an old version never gets the new fragment");
    }

    #[test]
    fn a_full_shard_drops_fragments_nobody_else_holds_first() {
        // Two fragments a shard.
        let cache: Fragments<Obj> = Fragments::new(2 * SHARDS);
        // Three ids that land in one shard.
        let first = Id::from_i64(1);
        let same: Vec<Id> = (2..100_000)
            .map(Id::from_i64)
            .filter(|id| std::ptr::eq(cache.shard(*id), cache.shard(first)))
            .take(2)
            .collect();
        let mut renders = 0;
        let live = Arc::new(Obj(first));
        render_count(&cache, &live, &mut renders);
        // Rendered, then dropped by the object cache: held here alone.
        render_count(&cache, &Arc::new(Obj(same[0])), &mut renders);
        // The shard is full: the stale fragment goes, the live one stays.
        render_count(&cache, &Arc::new(Obj(same[1])), &mut renders);
        let before = renders;
        render_count(&cache, &live, &mut renders);
        assert_eq!(renders, before, "the live fragment was kept");
        let kept: usize = cache
            .shards
            .iter()
            .map(|m| m.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert_eq!(kept, 2);
    }
}
