//! The data path's metadata: which blocks make up a file and where their shards live, who may
//! write a file (its lease), where block servers are, and the queues the leader works off
//! (freed blocks to delete, bad shards to rebuild). Every row goes through the same
//! transactions as the namespace, and every row of a file lives on the file's shard.
//!
//! - [`policy`]: erasure-coding policies, their names and inheritance.
//! - [`blocks`]: a file's block rows, inline bytes, freeing and truncation.
//! - [`lease`]: the one-writer-per-file lease.
//! - [`servers`]: the block-server table, heartbeats and placement.
//! - [`open`], [`addblock`], [`commit`], [`read`], [`report`], [`ec`]: the data-path calls.
//! - [`repair`]: the leader's loop that deletes freed shards and rebuilds lost ones, over
//!   [`shards::ShardService`].

pub mod addblock;
pub mod blocks;
pub mod commit;
pub mod ec;
pub mod lease;
pub mod open;
pub mod policy;
pub mod read;
pub mod repair;
pub mod report;
pub mod servers;
pub mod shards;

use std::time::Duration;

/// Tunables of the data path, shared by every namenode of a cluster.
#[derive(Clone, Debug)]
pub struct DataConfig {
    /// The largest block a writer fills before asking for the next one.
    pub block_size: u64,
    /// Bytes per erasure-coding cell (the policies' "1024k" unless set smaller).
    pub cell_size: u32,
    /// Files up to this size may live in the metastore (`L` row) instead of blocks.
    pub inline_threshold: u64,
    /// The policy of files under no directory with a policy of its own.
    pub default_policy: String,
    /// How often block servers heartbeat.
    pub heartbeat: Duration,
    /// A server silent for longer is dead: its shards are rebuilt elsewhere.
    pub dead_after: Duration,
    /// After this, another writer may recover a writer's lease.
    pub lease_soft: Duration,
    /// After this, the leader recovers a lease nobody renewed, and frees blocks allocated
    /// but never committed.
    pub lease_hard: Duration,
    /// GetBlocks page when the client asks for none, and the largest page served.
    pub blocks_page: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            block_size: 64 << 20,
            cell_size: 1 << 20,
            inline_threshold: 64 << 10,
            default_policy: policy::DEFAULT_POLICY.to_string(),
            heartbeat: Duration::from_millis(3000),
            dead_after: Duration::from_millis(600_000),
            lease_soft: Duration::from_millis(60_000),
            lease_hard: Duration::from_millis(3_600_000),
            blocks_page: 1000,
        }
    }
}

impl DataConfig {
    /// A server whose last heartbeat is older than this gets no new blocks (it may be gone
    /// long before it is declared dead): ten heartbeats, at most the dead interval.
    pub fn placement_window(&self) -> Duration {
        (self.heartbeat * 10).min(self.dead_after)
    }
}

pub(crate) fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}
