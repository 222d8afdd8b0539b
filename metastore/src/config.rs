//! The knobs of one shard, gathered in one struct so a process logs them once at start and
//! tests can shrink the timers.

use std::path::PathBuf;
use std::time::Duration;

/// How a shard is opened and run.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Holds `wal/` (the log segments) and `tables/` (the sled database).
    pub dir: PathBuf,
    /// This shard's index in the cluster.
    pub shard: u32,
    /// A prepared transaction older than this is resolved by asking its primary.
    pub intent_timeout: Duration,
    /// Upper bound of sled's page cache.
    pub cache_bytes: u64,
    /// With no change-log cursor registered, log segments are kept until the log grows past
    /// this size (and only those below the durable table marker are ever deleted). With
    /// cursors, segments below the lowest cursor go under the same size rule.
    pub log_retain_bytes: u64,
    /// The log is kept from the lowest cursor on, but never grows past this size for it: past
    /// it, the oldest segments go even if a cursor still needs them.
    pub changes_retain_bytes: u64,
    /// Nor are segments kept for a cursor once their newest record is older than this.
    pub changes_retain_age: Duration,
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// How often the tables are flushed to disk, which lets old log segments go.
    pub flush_interval: Duration,
    /// Transaction records (COMMITTED / ABORTED) are swept once older than this.
    pub txn_record_ttl: Duration,
    /// Rows (engine writes) logged but not yet applied to the tables, at most: past it, new
    /// commits wait for the applier. Bounds the read overlay's memory.
    pub backlog_rows: usize,
    /// The same bound in bytes of keys and values.
    pub backlog_bytes: usize,
}

impl ShardConfig {
    pub const DEFAULT_INTENT_TIMEOUT: Duration = Duration::from_millis(5000);
    pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
    pub const DEFAULT_LOG_RETAIN_BYTES: u64 = 1 << 30;
    pub const DEFAULT_CHANGES_RETAIN_BYTES: u64 = 1 << 30;
    pub const DEFAULT_CHANGES_RETAIN_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_TXN_RECORD_TTL: Duration = Duration::from_secs(3600);
    /// About a second of the applier's work at full speed.
    pub const DEFAULT_BACKLOG_ROWS: usize = 100_000;
    pub const DEFAULT_BACKLOG_BYTES: usize = 64 << 20;

    /// A configuration with every default, for shard `shard` stored under `dir`.
    pub fn new(dir: impl Into<PathBuf>, shard: u32) -> Self {
        Self {
            dir: dir.into(),
            shard,
            intent_timeout: Self::DEFAULT_INTENT_TIMEOUT,
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
            log_retain_bytes: Self::DEFAULT_LOG_RETAIN_BYTES,
            changes_retain_bytes: Self::DEFAULT_CHANGES_RETAIN_BYTES,
            changes_retain_age: Self::DEFAULT_CHANGES_RETAIN_AGE,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            flush_interval: Self::DEFAULT_FLUSH_INTERVAL,
            txn_record_ttl: Self::DEFAULT_TXN_RECORD_TTL,
            backlog_rows: Self::DEFAULT_BACKLOG_ROWS,
            backlog_bytes: Self::DEFAULT_BACKLOG_BYTES,
        }
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    pub fn tables_dir(&self) -> PathBuf {
        self.dir.join("tables")
    }
}
