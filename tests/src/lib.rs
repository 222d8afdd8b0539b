//! Arbor's cross-process test harness. A scenario starts a real cluster (metastore shards,
//! namenodes) on free loopback ports in a temporary directory and drives it through the client
//! library, the `arbor` CLI, or raw gRPC:
//!
//! ```ignore
//! let cluster = TestCluster::start(Config { shards: 4, namenodes: 2, ..Config::default() }).await;
//! let client = cluster.client().await;
//! cluster.kill_namenode(0);
//! cluster.restart_shard(2).await;
//! assert!(cluster.fsck().await.healthy);
//! ```
//!
//! - [`cluster`]: `TestCluster` and its `Config`; [`process`]: one child process and its log;
//!   [`bins`]: where the binaries are; [`ports`]: free loopback ports.
//! - The data path: `Config::data(n)` adds `n` block servers (local directories, or S3 / Azure
//!   through [`emulators`]); [`data`]: file contents through the client's readers and writers;
//!   [`blockservers`]: raw block-server calls and shard files on disk.
//! - [`namespace`]: walks, snapshots and error assertions over the client library;
//!   [`raw`]: hand-built call contexts for exactly-once scenarios; [`rows`]: metastore rows
//!   read directly.
//!
//! Every scenario is bounded: wrap it in [`within`], so a test fails instead of hanging.

pub mod bins;
pub mod blockservers;
pub mod browser;
pub mod cluster;
pub mod data;
pub mod emulators;
pub mod metrics;
pub mod mount;
pub mod namespace;
pub mod ports;
pub mod process;
pub mod raw;
pub mod rows;
pub mod search;
pub mod sockets;

use std::future::Future;
use std::time::Duration;

pub use cluster::{
    Commits, Config, DataConfig, KIB, MIB, Output, StoreBackend, TestCluster, commits_between,
    superuser,
};

/// Runs `scenario`, failing the test if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, scenario: F) -> F::Output {
    match tokio::time::timeout(limit, scenario).await {
        Ok(out) => out,
        Err(_) => panic!("scenario did not finish within {limit:?}"),
    }
}

/// Seconds, for readable limits.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
