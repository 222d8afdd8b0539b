//! Routing: which shard a key lives on, from the partition map read at start. The map is
//! checked once when loaded (one entry per virtual partition, every entry a real shard, as many
//! shards as the namenode was given), so routing a valid route never fails afterwards.

use arbor_proto::records::PartitionMap;

use crate::txn::{Route, TxnError};

/// The partition map a namenode routes by.
#[derive(Clone, Debug)]
pub struct Routing {
    map: PartitionMap,
}

impl Routing {
    /// Checks `map` against the number of shards this namenode knows addresses for.
    pub fn new(map: PartitionMap, shards: u32) -> Result<Self, TxnError> {
        if map.shards != shards {
            return Err(TxnError::Internal(format!(
                "the partition map has {} shards but {} metastore addresses were given",
                map.shards, shards
            )));
        }
        if map.vparts == 0 || map.vparts > u32::from(u16::MAX) + 1 {
            return Err(TxnError::Internal(format!(
                "the partition map has {} virtual partitions (must be 1..=65536)",
                map.vparts
            )));
        }
        if map.shard_of.len() != map.vparts as usize {
            return Err(TxnError::Internal(format!(
                "the partition map lists {} virtual partitions, expected {}",
                map.shard_of.len(),
                map.vparts
            )));
        }
        if let Some((v, s)) = map.shard_of.iter().enumerate().find(|(_, s)| **s >= shards) {
            return Err(TxnError::Internal(format!(
                "the partition map puts virtual partition {v} on shard {s} of {shards}"
            )));
        }
        Ok(Self { map })
    }

    pub fn map(&self) -> &PartitionMap {
        &self.map
    }

    pub fn shards(&self) -> u32 {
        self.map.shards
    }

    /// The shard of `route`, or `None` for a virtual partition or shard that does not exist
    /// (an id that came from outside and was never allocated).
    pub fn shard_of(&self, route: Route) -> Option<u32> {
        match route.resolve(self.map.vparts) {
            Route::Vpart(v) => self.map.shard_of.get(usize::from(v)).copied(),
            Route::Shard(n) => (n < self.map.shards).then_some(n),
            Route::Content(_) => None,
        }
    }

    /// Like [`Routing::shard_of`], as the error a transaction reports.
    pub fn try_shard_of(&self, route: Route) -> Result<u32, TxnError> {
        self.shard_of(route).ok_or_else(|| {
            TxnError::Internal(format!(
                "no shard for {route:?} ({} virtual partitions, {} shards)",
                self.map.vparts, self.map.shards
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::initial_partition_map;

    #[test]
    fn routes_vparts_through_the_map_and_shards_directly() {
        let routing = Routing::new(initial_partition_map(8, 3, vec![], 0), 3).unwrap();
        assert_eq!(routing.shard_of(Route::Vpart(0)), Some(0));
        assert_eq!(routing.shard_of(Route::Vpart(4)), Some(1));
        assert_eq!(routing.shard_of(Route::Vpart(5)), Some(2));
        assert_eq!(routing.shard_of(Route::Shard(2)), Some(2));
        assert_eq!(routing.shard_of(Route::Vpart(8)), None);
        assert_eq!(routing.shard_of(Route::Shard(3)), None);
        assert!(routing.try_shard_of(Route::Vpart(9)).is_err());
    }

    #[test]
    fn follows_a_moved_partition() {
        let mut map = initial_partition_map(4, 2, vec![], 0);
        map.shard_of[2] = 1;
        let routing = Routing::new(map, 2).unwrap();
        assert_eq!(routing.shard_of(Route::Vpart(2)), Some(1));
    }

    #[test]
    fn rejects_maps_that_do_not_fit_the_cluster() {
        let map = initial_partition_map(8, 3, vec![], 0);
        assert!(Routing::new(map.clone(), 2).is_err());
        let mut short = map.clone();
        short.shard_of.pop();
        assert!(Routing::new(short, 3).is_err());
        let mut wild = map;
        wild.shard_of[1] = 7;
        assert!(Routing::new(wild, 3).is_err());
        assert!(Routing::new(initial_partition_map(0, 1, vec![], 0), 1).is_err());
    }
}
