//! [`SharedObjects`] in process memory: the reference adapter of the seam
//! (it passes the same conformance suite as Redis), and what tests use to
//! run several object caches ("processes") over one shared level.
//!
//! The embedded shape does not use it: one process has nothing to share,
//! and a second in-memory level behind the first would only hold the same
//! objects again, encoded (see ARCHITECTURE.md, "The object cache").
//!
//! Entries and tombstones carry their deadline by `clock`; what expired
//! reads as absent. At most `capacity` keys are held (beyond that moka
//! evicts, which only makes misses).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::ops::compute::Op;
use moka::sync::Cache;
use starling_domain::{Clock, Id};

use crate::objects::{ObjectKind, SharedObjects};
use crate::timeline::CacheResult;

#[derive(Clone)]
struct Slot {
    /// `None`: a tombstone.
    value: Option<Arc<[u8]>>,
    until_ms: i64,
}

/// A shared object level in this process's memory.
pub struct MemorySharedObjects {
    slots: Cache<(ObjectKind, Id), Slot>,
    clock: Arc<dyn Clock>,
}

impl MemorySharedObjects {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            slots: Cache::builder().max_capacity(capacity).build(),
            clock,
        }
    }

    fn until(&self, ttl: Duration) -> i64 {
        self.clock
            .now_ms()
            .saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
    }
}

#[async_trait]
impl SharedObjects for MemorySharedObjects {
    async fn get_many(&self, kind: ObjectKind, ids: &[Id]) -> CacheResult<Vec<Option<Vec<u8>>>> {
        let now = self.clock.now_ms();
        Ok(ids
            .iter()
            .map(|id| {
                self.slots
                    .get(&(kind, *id))
                    .filter(|slot| slot.until_ms > now)
                    .and_then(|slot| slot.value.map(|v| v.to_vec()))
            })
            .collect())
    }

    async fn put_many(
        &self,
        kind: ObjectKind,
        items: &[(Id, Vec<u8>)],
        ttl: Duration,
    ) -> CacheResult<()> {
        let until_ms = self.until(ttl);
        for (id, value) in items {
            if value.is_empty() {
                continue;
            }
            let now = self.clock.now_ms();
            // Atomic per key: a tombstone written meanwhile is never lost.
            self.slots
                .entry((kind, *id))
                .and_compute_with(|held| match held {
                    Some(held) if held.value().until_ms > now => Op::Nop,
                    _ => Op::Put(Slot {
                        value: Some(Arc::from(value.as_slice())),
                        until_ms,
                    }),
                });
        }
        Ok(())
    }

    async fn invalidate_many(
        &self,
        kind: ObjectKind,
        ids: &[Id],
        tombstone: Duration,
    ) -> CacheResult<()> {
        let until_ms = self.until(tombstone);
        for id in ids {
            self.slots.insert(
                (kind, *id),
                Slot {
                    value: None,
                    until_ms,
                },
            );
        }
        Ok(())
    }
}
