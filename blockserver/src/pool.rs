//! Cached gRPC channels to block servers, and the deadline every call to them runs under.
//! A channel reconnects by itself after its server comes back; a dead server costs one
//! connect timeout per call, never a hang.

use crate::error::Error;
use arbor_proto::blockserver::block_server_client::BlockServerClient;
use arbor_proto::blockserver::{
    DeleteShardsRequest, ListShardsReply, ListShardsRequest, ShardId, StatReply, StatRequest,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Largest gRPC message either side accepts (messages carry at most about 1 MiB of data).
pub const MAX_MESSAGE: usize = 16 << 20;

/// Cached gRPC channels to block servers, with per-call deadlines. Cheap to clone.
#[derive(Clone)]
pub struct ShardPool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    timeout: Duration,
}

impl ShardPool {
    /// `timeout` bounds each call, and each message of a streaming call.
    pub fn new(timeout: std::time::Duration) -> ShardPool {
        ShardPool {
            channels: Arc::new(Mutex::new(HashMap::new())),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client for the block server at `addr` (host:port).
    pub fn client(&self, addr: &str) -> Result<BlockServerClient<Channel>, Error> {
        let channel = {
            let mut channels = self.channels.lock();
            match channels.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                        .map_err(|e| Error::InvalidArgument(format!("address {addr}: {e}")))?
                        .connect_timeout(self.timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(10))
                        .keep_alive_timeout(self.timeout)
                        .keep_alive_while_idle(false);
                    let c = endpoint.connect_lazy();
                    channels.insert(addr.to_string(), c.clone());
                    c
                }
            }
        };
        Ok(BlockServerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    /// Forgets the channel to `addr`, so the next call connects afresh.
    pub fn evict(&self, addr: &str) {
        self.channels.lock().remove(addr);
    }

    /// Runs an idempotent call under the deadline. A transport failure (a connection that
    /// died with its server is only noticed when used) evicts the channel, and the call is
    /// made once more on a fresh connection.
    pub async fn call<T, F, Fut>(&self, addr: &str, what: &str, f: F) -> Result<T, Error>
    where
        F: Fn(BlockServerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        match tokio::time::timeout(self.timeout, f(self.client(addr)?)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(status)) if is_transport(&status) => {
                tracing::debug!(addr, error = %status.message(), "retrying on a fresh connection");
                self.evict(addr);
            }
            Ok(Err(status)) => return Err(status.into()),
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "{what}: no answer within {:?}",
                    self.timeout
                )));
            }
        }
        let client = self.client(addr)?;
        self.deadline(what, async { Ok(f(client).await?) }).await
    }

    /// Runs `fut` under the pool's deadline; `what` names the call in the error.
    pub async fn deadline<T, F>(&self, what: &str, fut: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable(format!(
                "{what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Deletes shards on one server; returns how many existed.
    pub async fn delete_shards(&self, addr: &str, ids: &[(u64, u32)]) -> Result<u64, Error> {
        let req = DeleteShardsRequest {
            ids: ids
                .iter()
                .map(|(block_id, index)| ShardId {
                    block_id: *block_id,
                    index: *index,
                })
                .collect(),
        };
        let what = format!("delete shards on {addr}");
        self.call(addr, &what, |mut c| {
            let req = req.clone();
            async move { Ok(c.delete_shards(req).await?.into_inner().deleted) }
        })
        .await
    }

    /// One page of a server's shard listing.
    pub async fn list_shards(
        &self,
        addr: &str,
        start_after: Option<(u64, u32)>,
        limit: u32,
    ) -> Result<ListShardsReply, Error> {
        let req = ListShardsRequest {
            start_after: start_after.map(|(block_id, index)| ShardId { block_id, index }),
            limit,
        };
        let what = format!("list shards on {addr}");
        self.call(addr, &what, |mut c| async move {
            Ok(c.list_shards(req).await?.into_inner())
        })
        .await
    }

    /// A server's id, store and use.
    pub async fn stat(&self, addr: &str) -> Result<StatReply, Error> {
        let what = format!("stat {addr}");
        self.call(addr, &what, |mut c| async move {
            Ok(c.stat(StatRequest {}).await?.into_inner())
        })
        .await
    }
}

/// Deletes shards on one server (absent ones are not an error).
pub async fn delete_shards(pool: &ShardPool, addr: &str, ids: &[(u64, u32)]) -> Result<u64, Error> {
    pool.delete_shards(addr, ids).await
}

/// True for a failure of the connection rather than an answer of the server: Arbor servers
/// always tag their errors with an Arbor code.
pub fn is_transport(s: &Status) -> bool {
    s.metadata().get(arbor_proto::error::ERROR_KEY).is_none()
        && matches!(
            s.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        )
}
