//! What the leader asks of block servers: delete shards, and rebuild lost shards onto new
//! homes. A trait, so the repair loop is tested without block servers; [`BlockServers`] is the
//! real one, over the block-server library (its pool holds the channels and deadlines).

use std::future::Future;

use arbor_proto::namenode::{BlockInfo, ShardLocation};

pub trait ShardService: Send + Sync + 'static {
    /// Deletes shards `(block id, index)` on the server at `addr`; absent ones are no error.
    fn delete_shards(
        &self,
        addr: &str,
        ids: &[(u64, u32)],
    ) -> impl Future<Output = Result<u64, String>> + Send;

    /// Regenerates the shards named by `targets` (index, and the server that gets it) from k
    /// good shards of `block`, durably.
    fn rebuild(
        &self,
        block: &BlockInfo,
        targets: &[ShardLocation],
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The block servers themselves, through `arbor_blockserver`.
#[derive(Clone)]
pub struct BlockServers {
    pool: arbor_blockserver::ShardPool,
}

impl BlockServers {
    /// `timeout` bounds each call to a block server.
    pub fn new(timeout: std::time::Duration) -> Self {
        BlockServers {
            pool: arbor_blockserver::ShardPool::new(timeout),
        }
    }
}

impl ShardService for BlockServers {
    async fn delete_shards(&self, addr: &str, ids: &[(u64, u32)]) -> Result<u64, String> {
        arbor_blockserver::delete_shards(&self.pool, addr, ids)
            .await
            .map_err(|e| e.to_string())
    }

    async fn rebuild(&self, block: &BlockInfo, targets: &[ShardLocation]) -> Result<(), String> {
        let block = arbor_blockserver::BlockRef::from_info(block).map_err(|e| e.to_string())?;
        let targets: Vec<arbor_blockserver::ShardTarget> = targets
            .iter()
            .map(|t| arbor_blockserver::ShardTarget {
                index: t.index,
                server_id: t.server_id,
                addr: t.addr.clone(),
            })
            .collect();
        arbor_blockserver::rebuild(&self.pool, &block, &targets)
            .await
            .map_err(|e| e.to_string())
    }
}
