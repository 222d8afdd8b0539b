//! The rows a new cluster starts with: the partition map, the id sequence, and the root
//! directory. Every store writes exactly these when it formats, in one transaction that
//! requires the partition map to be absent, so two namenodes starting together cannot both
//! format.

use arbor_proto::records::{InodeKind, InodeRecord, PartitionMap, SequenceRecord};
use prost::Message;

use crate::keys::{self, FIRST_SEQ, ROOT_INO};
use crate::txn::Key;

/// Mode of the root directory of a new cluster.
pub const ROOT_MODE: u32 = 0o755;

/// Virtual partition `v` of `shards` shards goes to shard `v % shards` at format time.
pub fn initial_partition_map(
    vparts: u32,
    shards: u32,
    cluster_id: Vec<u8>,
    now_ns: i64,
) -> PartitionMap {
    let shards = shards.max(1);
    PartitionMap {
        vparts,
        shard_of: (0..vparts).map(|v| v % shards).collect(),
        shards,
        cluster_id,
        formatted_ns: now_ns,
    }
}

/// The rows to write when formatting, the partition map first.
pub fn initial_rows(map: &PartitionMap, now_ns: i64) -> Vec<(Key, Vec<u8>)> {
    let root = InodeRecord {
        kind: InodeKind::Directory as i32,
        mode: ROOT_MODE,
        uid: 0,
        gid: 0,
        size: 0,
        mtime_ns: now_ns,
        atime_ns: now_ns,
        ctime_ns: now_ns,
        parent: ROOT_INO,
        nlink: 2,
        symlink_target: String::new(),
        ec_policy: String::new(),
        block_size: 0,
        btime_ns: now_ns,
    };
    // The root's counter row, like any directory's, is made by its first child's update: it
    // lives on the root's content shard, and formatting is one commit on shard 0.
    vec![
        (keys::meta(keys::META_PARTMAP), map.encode_to_vec()),
        (
            keys::meta(keys::META_SEQUENCE),
            SequenceRecord { next: FIRST_SEQ }.encode_to_vec(),
        ),
        (keys::inode(ROOT_INO), root.encode_to_vec()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_round_robin() {
        let map = initial_partition_map(8, 3, vec![1], 0);
        assert_eq!(map.shard_of, vec![0, 1, 2, 0, 1, 2, 0, 1]);
        let rows = initial_rows(&map, 5);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, keys::meta(keys::META_PARTMAP));
    }
}
