//! A metastore shard: a generic versioned key-value store with optimistic single-shard commits
//! and a two-phase-commit participant, durable through its own write-ahead log and group commit,
//! with sled holding the tables. It knows nothing of files: the namenodes own the key schema.
//!
//! Layout: [`wal`] (the log), [`engine`] (the tables behind a trait), [`keyspace`] (how state
//! maps onto the tables), [`txn`] (validation and counters), [`locks`] and [`intent`] (2PC),
//! [`group_commit`] (the committer, completer and applier threads), [`overlay`] (what
//! reads see of records durable but not yet in the tables), [`trim`] (durable flush and log deletion),
//! [`resolver`] (finishing abandoned transactions), [`read_resolve`] (reads finishing the
//! transactions that write what they read), [`changelog`] and [`cursors`] (the change stream
//! read from the log, and its consumers' positions), [`shard`] (the library face) and
//! [`server`] (the gRPC face).

pub mod changelog;
pub mod config;
pub mod cursors;
pub mod engine;
pub mod error;
pub mod group_commit;
pub mod hlc;
pub mod intent;
pub mod keyspace;
pub mod leases;
pub mod locks;
pub mod metrics;
pub mod overlay;
pub mod read_resolve;
pub mod resolver;
pub mod server;
pub mod shard;
pub mod trim;
pub mod txn;
pub mod wal;

pub use config::ShardConfig;
pub use error::{Error, Result};
pub use intent::{DecideOutcome, PrepareOutcome, ResolveOutcome};
pub use shard::{CommitStats, Shard};
pub use txn::{CommitOutcome, Conflict};
