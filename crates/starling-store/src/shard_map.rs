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

    /// Logical shards assigned explicitly: `slot[logical]` is the index in
    /// `physical` of the database holding that shard. `None` unless `slot`
    /// has an entry for each of the 1024 shards and each names a database in
    /// `physical`.
    pub fn from_slots(physical: Vec<P>, slot: Vec<u16>) -> Option<Self> {
        let valid = slot.len() == usize::from(SHARD_COUNT)
            && slot.iter().all(|s| usize::from(*s) < physical.len());
        valid.then_some(Self { physical, slot })
    }

    pub fn get(&self, shard: ShardId) -> &P {
        &self.physical[self.index(shard)]
    }

    /// The index in [`ShardMap::physical`] of the database holding `shard`.
    pub fn index(&self, shard: ShardId) -> usize {
        usize::from(self.slot[usize::from(shard.get())])
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
    fn explicit_slots_are_checked() {
        let half = |s: u16| u16::from(s >= 512);
        let map = ShardMap::from_slots(
            vec!["a", "b"],
            ShardId::all().map(|s| half(s.get())).collect(),
        )
        .expect("valid");
        assert_eq!(*map.get(ShardId::new(511).expect("shard")), "a");
        assert_eq!(map.index(ShardId::new(512).expect("shard")), 1);
        assert!(
            ShardMap::from_slots(vec!["a"], vec![0; 10]).is_none(),
            "too few slots"
        );
        assert!(
            ShardMap::from_slots(vec!["a"], vec![1; 1024]).is_none(),
            "no such database"
        );
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
