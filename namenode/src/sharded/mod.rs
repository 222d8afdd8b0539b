//! The [`Store`] over the metastore shards: routes every key through the partition map,
//! commits on one shard directly or across shards by two-phase commit, leases inode sequence
//! numbers in batches, and formats a new cluster on first start. It keeps no state that
//! another namenode would need: any namenode can finish what this one started.
//!
//! - [`metaclient`]: one gRPC client per shard, deadlines, failure classification.
//! - [`coalesce`]: concurrent reads of one shard sent as one Get.
//! - [`partmap`]: routing by the partition map.
//! - [`buffer`]: a transaction's reads and writes grouped by shard.
//! - [`txn`]: [`ShardedTxn`], the [`Txn`](crate::txn::Txn) implementation.
//! - [`coordinator`]: single-shard commit and two-phase commit.
//! - [`rowcache`]: the directory rows kept under the shards' read leases.
//! - [`idlease`]: batched sequence numbers.
//! - [`bootstrap`]: loading the partition map, formatting.

pub mod bootstrap;
pub mod buffer;
pub mod coalesce;
pub mod coordinator;
pub mod idlease;
pub mod metaclient;
pub mod partmap;
pub mod rowcache;
pub mod txn;

use std::sync::Arc;
use std::time::Duration;

use arbor_proto::records::PartitionMap;
use futures::future::join_all;

use crate::counters::{Counters, Snapshot};
use crate::txn::{OpenIntent, Route, Store, TxnError};
use idlease::IdLease;
use metaclient::{CallError, ReadLease, ShardClient};
use partmap::Routing;
use rowcache::RowCache;

pub use txn::ShardedTxn;

/// How to reach the cluster's shards.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// "host:port" of shard 0, 1, 2, … in order.
    pub metastores: Vec<String>,
    /// Virtual partitions of a cluster this store formats (ignored when the cluster exists).
    pub vparts: u32,
    /// Deadline of each metastore call.
    pub rpc_timeout: Duration,
    /// Sequence numbers leased per batch.
    pub id_batch: u64,
    /// The intent timeout the shards run with.
    pub intent_timeout_ms: u64,
    /// How long the shards let this namenode keep the directory rows its walks pass through
    /// (zero: every walk reads every row).
    pub row_lease: Duration,
    /// Rows kept under leases, at most.
    pub row_cache_rows: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            metastores: Vec::new(),
            vparts: 4096,
            rpc_timeout: Duration::from_secs(5),
            id_batch: 10_000,
            intent_timeout_ms: 5_000,
            row_lease: Duration::ZERO,
            row_cache_rows: 65_536,
        }
    }
}

/// What every transaction of a store shares: the routing and the shard clients.
pub struct Shared {
    routing: Routing,
    clients: Vec<ShardClient>,
    counters: Counters,
    rows: RowCache,
}

impl Shared {
    fn client(&self, shard: u32) -> Result<&ShardClient, TxnError> {
        self.clients.get(shard as usize).ok_or_else(|| {
            TxnError::Internal(format!(
                "no metastore address for shard {shard} ({} known)",
                self.clients.len()
            ))
        })
    }
}

/// The namenode's store: the metastore shards of one cluster.
pub struct ShardedStore {
    shared: Arc<Shared>,
    metastores: Vec<String>,
    intent_timeout_ms: u64,
    ids: IdLease,
}

impl ShardedStore {
    /// Connects to every shard (lazily), loads the partition map from shard 0 and formats the
    /// cluster first if it has none. Waits up to ~30 s for shard 0 to come up. Fails when the
    /// map's shard count differs from the number of addresses given.
    pub async fn connect(config: StoreConfig) -> Result<Arc<ShardedStore>, TxnError> {
        if config.metastores.is_empty() {
            return Err(TxnError::Internal("no metastore addresses given".into()));
        }
        let shards = u32::try_from(config.metastores.len())
            .map_err(|_| TxnError::Internal("too many metastore addresses".into()))?;
        let lease = ReadLease {
            holder: rand::random::<[u8; 16]>().to_vec().into(),
            length: config.row_lease,
        };
        let clients = config
            .metastores
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                ShardClient::new(i as u32, addr, config.rpc_timeout)
                    .map(|c| c.with_read_lease(lease.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let map = bootstrap::load_or_format(&clients[0], config.vparts, shards).await?;
        let routing = Routing::new(map, shards)?;
        tracing::info!(
            shards,
            vparts = routing.map().vparts,
            metastores = ?config.metastores,
            "metastore connected"
        );
        Ok(Arc::new(ShardedStore {
            shared: Arc::new(Shared {
                routing,
                clients,
                counters: Counters::new(shards as usize),
                rows: RowCache::new(config.row_lease, config.row_cache_rows),
            }),
            metastores: config.metastores,
            intent_timeout_ms: config.intent_timeout_ms,
            ids: IdLease::new(config.id_batch),
        }))
    }

    pub fn partition_map(&self) -> &PartitionMap {
        self.shared.routing.map()
    }

    /// Shard `shard`'s own status (applied sequence, open intents, log retained).
    pub async fn shard_status(
        &self,
        shard: u32,
    ) -> Result<arbor_proto::metastore::StatusResponse, TxnError> {
        self.shared
            .client(shard)?
            .status()
            .await
            .map_err(CallError::into_read_error)
    }

    pub fn metastores(&self) -> &[String] {
        &self.metastores
    }

    /// The shard `route` lives on. A virtual partition or shard outside the cluster (an id
    /// that was never allocated) maps to a fixed shard by modulo, where it finds nothing.
    pub fn shard_of(&self, route: Route) -> u32 {
        let routing = &self.shared.routing;
        routing
            .shard_of(route)
            .unwrap_or_else(|| match route.resolve(routing.map().vparts) {
                Route::Vpart(v) => u32::from(v) % routing.shards(),
                Route::Shard(n) => n % routing.shards(),
                Route::Content(_) => 0,
            })
    }
}

impl Store for ShardedStore {
    type Txn = ShardedTxn;

    fn begin(&self) -> ShardedTxn {
        ShardedTxn::new(Arc::clone(&self.shared))
    }

    async fn alloc_seq(&self) -> Result<u64, TxnError> {
        self.ids.alloc(&self.shared).await
    }

    fn vparts(&self) -> u32 {
        self.shared.routing.map().vparts
    }

    fn shards(&self) -> u32 {
        self.shared.routing.shards()
    }

    async fn open_intents(&self) -> Result<Vec<OpenIntent>, TxnError> {
        let calls = self
            .shared
            .clients
            .iter()
            .map(|client| async move { (client.shard(), client.status().await) });
        let mut out = Vec::new();
        for (shard, answer) in join_all(calls).await {
            let status = answer.map_err(CallError::into_read_error)?;
            out.extend(status.intents.into_iter().map(|i| OpenIntent {
                shard,
                txn_id: i.txn_id,
                age_ms: i.age_ms,
            }));
        }
        Ok(out)
    }

    fn intent_timeout_ms(&self) -> u64 {
        self.intent_timeout_ms
    }

    fn counters(&self) -> Snapshot {
        self.shared.counters.snapshot()
    }
}
