//! The BlockServer gRPC service over a `ShardStore`, plus the in-memory index of stored
//! shards (sizes, count, used bytes) that Stat, ListShards and the heartbeat read.
//!
//! Invariants: a PutShard's data is checked against its crcs before it is stored and the
//! reply comes only once the shard is durable; the index is rebuilt from a store listing at
//! start and then follows every put and delete.

use crate::checksum;
use crate::error::Error;
use crate::shardfile::{self, ShardKey};
use crate::store::{DEFAULT_REMOTE_CAPACITY, ShardStore};
use arbor_proto::blockserver::block_server_server::BlockServer;
use arbor_proto::blockserver::{
    DeleteShardsReply, DeleteShardsRequest, GetShardChunk, GetShardRequest, ListShardsReply,
    ListShardsRequest, PutShardChunk, PutShardReply, ShardEntry, ShardId, StatReply, StatRequest,
};
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Shard bytes this server stored and served (`arbor_blockserver_bytes_total{direction}`).
static BYTES: std::sync::LazyLock<arbor_proto::metrics::prometheus::IntCounterVec> =
    std::sync::LazyLock::new(|| {
        arbor_proto::metrics::counters(
            "arbor_blockserver_bytes_total",
            "Shard data bytes stored (written) and served (read) by this block server.",
            &["direction"],
        )
    });

/// Most data bytes per GetShard message.
const READ_WINDOW: u64 = 1 << 20;
/// A PutShard stream that sends nothing for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// ListShards page size when the caller sets none, and the most it may ask for.
const DEFAULT_LIST: usize = 1000;
const MAX_LIST: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    size: u64,
    modified_ns: i64,
}

#[derive(Default)]
struct Index {
    shards: BTreeMap<ShardKey, Entry>,
    used: u64,
}

/// What a block server serves from. Cheap to clone.
#[derive(Clone)]
pub struct ServerState {
    store: ShardStore,
    server_id: u64,
    capacity: Option<u64>,
    index: Arc<Mutex<Index>>,
}

/// Use of a server's store, for Stat and the heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub capacity: u64,
    pub used: u64,
    pub shards: u64,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl ServerState {
    /// Opens the server's view of `store`: its id (created on first start) and the index of
    /// the shards it holds. `capacity` overrides what the store reports.
    pub async fn load(store: ShardStore, capacity: Option<u64>) -> Result<ServerState, Error> {
        let server_id = store.server_id().await?;
        let mut index = Index::default();
        for l in store.list().await? {
            index.used += l.size;
            index.shards.insert(
                l.key,
                Entry {
                    size: l.size,
                    modified_ns: l.modified_ns,
                },
            );
        }
        tracing::info!(
            server_id,
            shards = index.shards.len(),
            used = index.used,
            "store loaded"
        );
        Ok(ServerState {
            store,
            server_id,
            capacity,
            index: Arc::new(Mutex::new(index)),
        })
    }

    pub fn server_id(&self) -> u64 {
        self.server_id
    }

    pub fn store_url(&self) -> &str {
        self.store.url()
    }

    pub async fn usage(&self) -> Usage {
        let (used, shards) = {
            let i = self.index.lock();
            (i.used, i.shards.len() as u64)
        };
        let capacity = match self.capacity {
            Some(c) => c,
            None => self
                .store
                .capacity(used)
                .await
                .unwrap_or(DEFAULT_REMOTE_CAPACITY),
        };
        Usage {
            capacity,
            used,
            shards,
        }
    }

    fn record_put(&self, key: ShardKey, size: u64) {
        let mut i = self.index.lock();
        let entry = Entry {
            size,
            modified_ns: now_ns(),
        };
        if let Some(old) = i.shards.insert(key, entry) {
            i.used = i.used.saturating_sub(old.size);
        }
        i.used += size;
    }

    fn record_delete(&self, key: ShardKey) {
        let mut i = self.index.lock();
        if let Some(old) = i.shards.remove(&key) {
            i.used = i.used.saturating_sub(old.size);
        }
    }

    async fn put_shard(&self, mut stream: Streaming<PutShardChunk>) -> Result<u64, Error> {
        let Some(first) = next_chunk(&mut stream).await? else {
            return Err(Error::InvalidArgument("empty PutShard stream".into()));
        };
        let id = first
            .id
            .ok_or_else(|| Error::InvalidArgument("first PutShard chunk has no id".into()))?;
        let key = ShardKey {
            block_id: id.block_id,
            index: id.index,
        };
        let chunk = first.checksum_chunk as usize;
        if chunk == 0 {
            return Err(Error::InvalidArgument(format!(
                "{key}: checksum_chunk is 0"
            )));
        }
        let mut upload = self.store.begin_put(key, chunk as u32);
        let mut ended_short = false;
        let mut complete = false;
        let mut msg = Some(first);
        let mut is_first = true;
        let result: Result<(), Error> = async {
            while let Some(m) = msg.take() {
                if complete {
                    return Err(Error::InvalidArgument(format!(
                        "{key}: data after the end marker"
                    )));
                }
                if !is_first && let Some(id) = m.id {
                    // The end marker: the last message names the shard again.
                    if (id.block_id, id.index) != (key.block_id, key.index) {
                        return Err(Error::InvalidArgument(format!(
                            "{key}: end marker names shard {:#x}/{}",
                            id.block_id, id.index
                        )));
                    }
                    complete = true;
                }
                is_first = false;
                if !m.data.is_empty() {
                    if ended_short {
                        return Err(Error::InvalidArgument(format!(
                            "{key}: data after a partial checksum chunk"
                        )));
                    }
                    let what = format!("{key} at {}", upload.data_len());
                    checksum::verify(&m.data, chunk, &m.crcs, &what)?;
                    ended_short = !m.data.len().is_multiple_of(chunk);
                    upload.append(&m.data, &m.crcs).await?;
                } else if !m.crcs.is_empty() {
                    return Err(Error::InvalidArgument(format!("{key}: crcs without data")));
                }
                msg = next_chunk(&mut stream).await?;
            }
            if !complete {
                // A cancelled call looks like a closed stream to the handler: only the marker
                // tells a whole shard from a cut one.
                return Err(Error::Unavailable(format!(
                    "{key}: stream ended without its end marker"
                )));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%key, error = %e, "shard write dropped");
            upload.abort().await;
            return Err(e);
        }
        let len = upload.data_len();
        let size = upload.finish().await?;
        BYTES.with_label_values(&["written"]).inc_by(len);
        self.record_put(key, size);
        tracing::debug!(%key, len, "shard stored");
        Ok(len)
    }

    async fn get_shard(
        &self,
        req: GetShardRequest,
        tx: mpsc::Sender<Result<GetShardChunk, Status>>,
    ) -> Result<(), Error> {
        let id = req
            .id
            .ok_or_else(|| Error::InvalidArgument("GetShard without id".into()))?;
        let key = ShardKey {
            block_id: id.block_id,
            index: id.index,
        };
        let footer = self.store.footer(key).await?;
        if req.offset > footer.data_len {
            return Err(Error::InvalidArgument(format!(
                "{key}: offset {} past its {} bytes",
                req.offset, footer.data_len
            )));
        }
        let end = if req.length == 0 {
            footer.data_len
        } else {
            req.offset.saturating_add(req.length)
        };
        let range = footer.widen(req.offset..end);
        let crcs = shardfile::decode_crcs(&self.store.read(key, footer.crc_range(&range)).await?);
        let c = u64::from(footer.chunk);
        let window = (READ_WINDOW / c).max(1) * c;
        let mut first = true;
        let mut at = range.start;
        loop {
            let to = (at + window).min(range.end);
            let data = self.store.read(key, at..to).await?;
            let ci = ((at - range.start) / c) as usize;
            let cn = (to - at).div_ceil(c) as usize;
            let msg = GetShardChunk {
                shard_length: if first { footer.data_len } else { 0 },
                checksum_chunk: if first { footer.chunk } else { 0 },
                offset: if first { range.start } else { 0 },
                data: Vec::from(data),
                crcs: crcs
                    .get(ci..ci + cn)
                    .map(<[u32]>::to_vec)
                    .unwrap_or_default(),
            };
            first = false;
            BYTES
                .with_label_values(&["read"])
                .inc_by(msg.data.len() as u64);
            if tx.send(Ok(msg)).await.is_err() {
                // The reader went away.
                return Ok(());
            }
            at = to;
            if at >= range.end {
                return Ok(());
            }
        }
    }

    async fn delete_shards(&self, ids: Vec<ShardId>) -> Result<u64, Error> {
        let deletes = ids.into_iter().map(|id| async move {
            let key = ShardKey {
                block_id: id.block_id,
                index: id.index,
            };
            let r = self.store.delete(key).await;
            // Forget it even when the store said it was absent.
            self.record_delete(key);
            r.map(|existed| u64::from(existed.is_some()))
        });
        let mut deleted = 0;
        for r in futures::future::join_all(deletes).await {
            deleted += r?;
        }
        Ok(deleted)
    }

    fn list_shards(&self, req: ListShardsRequest) -> ListShardsReply {
        let limit = match req.limit as usize {
            0 => DEFAULT_LIST,
            n => n.min(MAX_LIST),
        };
        let i = self.index.lock();
        let mut iter: Box<dyn Iterator<Item = (&ShardKey, &Entry)>> = match req.start_after {
            Some(s) => {
                let after = ShardKey {
                    block_id: s.block_id,
                    index: s.index,
                };
                Box::new(
                    i.shards
                        .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
                )
            }
            None => Box::new(i.shards.iter()),
        };
        let shards: Vec<ShardEntry> = iter
            .by_ref()
            .take(limit)
            .map(|(k, e)| ShardEntry {
                id: Some(ShardId {
                    block_id: k.block_id,
                    index: k.index,
                }),
                length: e.size,
                modified_ns: e.modified_ns,
            })
            .collect();
        let more = iter.next().is_some();
        ListShardsReply { shards, more }
    }
}

/// The next message of a PutShard stream; a stream idle too long is an error.
async fn next_chunk(stream: &mut Streaming<PutShardChunk>) -> Result<Option<PutShardChunk>, Error> {
    match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(m))) => Ok(Some(m)),
        Ok(Some(Err(s))) => Err(Error::Unavailable(format!("stream: {}", s.message()))),
        Ok(None) => Ok(None),
        Err(_) => Err(Error::Unavailable("stream idle too long".into())),
    }
}

/// The tonic service.
#[derive(Clone)]
pub struct BlockService {
    state: ServerState,
}

impl BlockService {
    pub fn new(state: ServerState) -> BlockService {
        BlockService { state }
    }
}

type ChunkStream = Pin<Box<dyn futures::Stream<Item = Result<GetShardChunk, Status>> + Send>>;

#[tonic::async_trait]
impl BlockServer for BlockService {
    async fn put_shard(
        &self,
        request: Request<Streaming<PutShardChunk>>,
    ) -> Result<Response<PutShardReply>, Status> {
        let length = self.state.put_shard(request.into_inner()).await?;
        Ok(Response::new(PutShardReply { length }))
    }

    type GetShardStream = ChunkStream;

    async fn get_shard(
        &self,
        request: Request<GetShardRequest>,
    ) -> Result<Response<Self::GetShardStream>, Status> {
        let req = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let state = self.state.clone();
        tokio::spawn(async move {
            if let Err(e) = state.get_shard(req, tx.clone()).await {
                if !matches!(e, Error::NotFound(_)) {
                    tracing::warn!(error = %e, "shard read failed");
                }
                let _ = tx.send(Err(Status::from(e))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete_shards(
        &self,
        request: Request<DeleteShardsRequest>,
    ) -> Result<Response<DeleteShardsReply>, Status> {
        let deleted = self.state.delete_shards(request.into_inner().ids).await?;
        Ok(Response::new(DeleteShardsReply { deleted }))
    }

    async fn list_shards(
        &self,
        request: Request<ListShardsRequest>,
    ) -> Result<Response<ListShardsReply>, Status> {
        Ok(Response::new(self.state.list_shards(request.into_inner())))
    }

    async fn stat(&self, _request: Request<StatRequest>) -> Result<Response<StatReply>, Status> {
        let u = self.state.usage().await;
        Ok(Response::new(StatReply {
            server_id: self.state.server_id,
            store_url: self.state.store_url().to_string(),
            capacity_bytes: u.capacity,
            used_bytes: u.used,
            shards: u.shards,
        }))
    }
}
