//! The transaction interface every namespace operation is written against.
//!
//! An operation reads what it needs (each read returns the row's version, and takes no lock),
//! buffers its writes, and commits once. The store checks at commit that every *validated*
//! read still has the version it had, that every required-empty prefix is still empty, and
//! applies the writes atomically; otherwise the commit fails with [`TxnError::Conflict`] and the
//! operation is run again from the start (see `retry` in the ops). Two implementations exist:
//! `memstore::MemStore`, in memory, for unit tests of the operations, and
//! `sharded::ShardedStore`, over the metastore shards (single-shard commit, or two-phase commit
//! when the writes and validated reads span shards).

use std::future::Future;

/// Where a key lives: on the shard that owns a virtual partition, on the shard of a
/// directory's content partition (see `keys::content_vpart`), or pinned to one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Vpart(u16),
    /// The content partition of the directory with this ino: its children's dentries, its
    /// counter row, its tombstone.
    Content(u64),
    Shard(u32),
}

impl Route {
    /// The route as a virtual partition or a shard, given the cluster's number of virtual
    /// partitions.
    pub fn resolve(self, vparts: u32) -> Route {
        match self {
            Route::Content(dir) => Route::Vpart(crate::keys::content_vpart(dir, vparts)),
            other => other,
        }
    }
}

/// A metastore key and its route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub route: Route,
    pub bytes: Vec<u8>,
}

impl Key {
    pub fn new(route: Route, bytes: Vec<u8>) -> Self {
        Self { route, bytes }
    }
}

/// A row as read: `version == 0` means the row does not exist (and `value` is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: u64,
}

impl Versioned {
    pub fn exists(&self) -> bool {
        self.version != 0
    }
}

/// Rows of one scan call, in key order, and whether more follow.
pub type ScanPage = (Vec<(Vec<u8>, Versioned)>, bool);

/// A range to scan, as [`Txn::scan`] takes it.
#[derive(Clone, Debug)]
pub struct ScanRange {
    pub route: Route,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub limit: u32,
}

/// A commutative update of one field of a counter row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterOp {
    Add,
    Max,
    Set,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TxnError {
    /// Validation failed or a key was locked by a prepared transaction: run the operation again.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// A shard could not be reached or did not answer in time.
    #[error("metastore unavailable: {0}")]
    Unavailable(String),
    /// The outcome of the commit is not known (the coordinator lost contact at the commit
    /// point); the operation's retry record tells whether it happened.
    #[error("transaction outcome unknown: {0}")]
    Unknown(String),
    #[error("metastore: {0}")]
    Internal(String),
}

/// One transaction. Reads go to the store at once; writes are buffered until `commit`.
pub trait Txn: Send {
    /// Point reads, in order. With `validate`, each row joins the read set: the commit fails
    /// if any of them changed (or appeared, for absent rows) before the commit point, and under
    /// two-phase commit they are read-locked while prepared. Reads of keys this transaction
    /// already wrote return the stored row, not the buffered write.
    fn get(
        &mut self,
        keys: &[Key],
        validate: bool,
    ) -> impl Future<Output = Result<Vec<Versioned>, TxnError>> + Send;

    /// Unvalidated point reads for path resolution: rows marked in `lasting` are directories
    /// the walk passes through, which a store may serve from rows it keeps under a read lease
    /// (the sharded store does; see `sharded::rowcache`). Otherwise as `get`.
    fn get_walk(
        &mut self,
        keys: &[Key],
        lasting: &[bool],
    ) -> impl Future<Output = Result<Vec<Versioned>, TxnError>> + Send {
        let _ = lasting;
        self.get(keys, false)
    }

    /// [`Txn::get_walk`] and the first page of each of `scans` in one round; on a shard, the
    /// point reads are read before the scans.
    fn walk_round(
        &mut self,
        keys: &[Key],
        lasting: &[bool],
        scans: Vec<ScanRange>,
    ) -> impl Future<Output = Result<(Vec<Versioned>, Vec<ScanPage>), TxnError>> + Send {
        async move {
            let rows = self.get_walk(keys, lasting).await?;
            let mut pages = Vec::with_capacity(scans.len());
            for s in scans {
                pages.push(self.scan(s.route, s.start, s.end, s.limit).await?);
            }
            Ok((rows, pages))
        }
    }

    /// Committed rows with keys in `[start, end)` on the shard of `route`, in key order, at
    /// most `limit`; the flag says whether more follow. Not validated.
    fn scan(
        &mut self,
        route: Route,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    ) -> impl Future<Output = Result<ScanPage, TxnError>> + Send;

    /// Point reads and the first page of each of `scans`, in one round: what `get` and
    /// `scan` return, but a store that can sends them all at once instead of one after
    /// another (the sharded store does).
    fn read_round(
        &mut self,
        keys: &[Key],
        validate: bool,
        scans: Vec<ScanRange>,
    ) -> impl Future<Output = Result<(Vec<Versioned>, Vec<ScanPage>), TxnError>> + Send {
        async move {
            let rows = self.get(keys, validate).await?;
            let mut pages = Vec::with_capacity(scans.len());
            for s in scans {
                pages.push(self.scan(s.route, s.start, s.end, s.limit).await?);
            }
            Ok((rows, pages))
        }
    }

    /// Joins `key` to the read set at `version` without reading it: the commit fails if the
    /// row's version is not `version` then (0: the row must not exist). For rows already read
    /// in this transaction (by path resolution, say), so they are not fetched a second time.
    fn expect(&mut self, key: Key, version: u64);

    fn put(&mut self, key: Key, value: Vec<u8>);
    fn delete(&mut self, key: Key);
    /// Commutative update of a counter row of `width` i64 fields (a missing row is all zeros).
    fn counter(&mut self, key: Key, width: u32, fields: Vec<(u32, CounterOp, i64)>);
    /// At commit, no row may exist under `prefix` on the shard of `route`.
    fn require_empty(&mut self, route: Route, prefix: Vec<u8>);
    /// Names the operation, for logs and fault-injection points (`ARBOR_FAULT=point:label`).
    fn set_label(&mut self, label: &'static str);
    /// Whether the transaction has writes at all.
    fn is_read_only(&self) -> bool;
    /// Validates and applies atomically; durable on every involved shard before it returns.
    fn commit(self) -> impl Future<Output = Result<(), TxnError>> + Send;
}

/// A transaction that is still prepared somewhere, as fsck reports it.
#[derive(Clone, Debug)]
pub struct OpenIntent {
    pub shard: u32,
    pub txn_id: Vec<u8>,
    pub age_ms: u64,
}

/// What the operations need of a store besides transactions.
pub trait Store: Send + Sync + 'static {
    type Txn: Txn;

    fn begin(&self) -> Self::Txn;
    /// A sequence number never handed out before, for a new inode id (leased in batches).
    fn alloc_seq(&self) -> impl Future<Output = Result<u64, TxnError>> + Send;
    /// Number of virtual partitions (fixed at format time).
    fn vparts(&self) -> u32;
    /// Number of shards, for scans that visit every shard (fsck, the background deleter).
    fn shards(&self) -> u32;
    /// Prepared transactions on any shard (empty for stores without two-phase commit).
    fn open_intents(&self) -> impl Future<Output = Result<Vec<OpenIntent>, TxnError>> + Send;
    /// How long a prepared transaction may stay open before the shards resolve it.
    fn intent_timeout_ms(&self) -> u64;
    /// What this store asked of its shards so far.
    fn counters(&self) -> crate::counters::Snapshot {
        crate::counters::Snapshot::default()
    }
}
