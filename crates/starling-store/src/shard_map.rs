//! Logical shards onto physical databases.
//!
//! 1024 logical shards are fixed forever (they are baked into ids); how many
//! physical databases hold them is configuration. Resharding moves whole
//! logical shards between physical databases and changes this map; no id or
//! key changes.

use starling_domain::{ShardId, SHARD_COUNT};

/// Maps each logical shard to one of `P` physical handles (pools).
#[derive(Debug)]
pub struct ShardMap<P> {
    physical: Vec<P>,
    /// `slot[logical] = index into physical`.
    slot: Vec<u16>,
}

impl<P> ShardMap<P> {
    /// Every logical shard on one physical database (the embedded shape).
    pub fn single(p: P) -> Self {
        Self {
            physical: vec![p],
            slot: vec![0; usize::from(SHARD_COUNT)],
        }
    }

    /// Logical shards spread over `physical` in contiguous ranges of equal
    /// size (the default layout of the distributed shape).
    ///
    /// # Panics
    /// If `physical` is empty or has more entries than there are shards.
    pub fn ranges(physical: Vec<P>) -> Self {
        assert!(!physical.is_empty() && physical.len() <= usize::from(SHARD_COUNT));
        let n = physical.len();
        let slot = (0..usize::from(SHARD_COUNT))
            .map(|s| (s * n / usize::from(SHARD_COUNT)) as u16)
            .collect();
        Self { physical, slot }
    }

    pub fn get(&self, shard: ShardId) -> &P {
        &self.physical[usize::from(self.slot[usize::from(shard.get())])]
    }

    pub fn physical(&self) -> &[P] {
        &self.physical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_maps_everything_to_one() {
        let map = ShardMap::single("db");
        assert!(ShardId::all().all(|s| *map.get(s) == "db"));
    }

    #[test]
    fn ranges_are_contiguous_and_balanced() {
        let map = ShardMap::ranges(vec![0, 1, 2]);
        let mut counts = [0; 3];
        let mut last = 0;
        for s in ShardId::all() {
            let p = *map.get(s);
            assert!(p >= last);
            last = p;
            counts[p] += 1;
        }
        assert_eq!(counts.iter().sum::<i32>(), 1024);
        assert!(counts.iter().all(|c| (341..=342).contains(c)));
    }
}
