//! The gRPC face of the search service: `Query` parses the query, scopes it to the path
//! prefix through the directory map of the current snapshot, and runs it on a blocking
//! thread; `Status` reports how far the index has caught up with each shard.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arbor_proto::search::search_server::{Search, SearchServer};
use arbor_proto::search::{QueryReply, QueryRequest, ShardProgress, StatusReply, StatusRequest};
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::indexer::Shared;
use crate::{index, query};

/// Hits returned when the request sets no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// Most hits one query returns.
pub const MAX_LIMIT: usize = 100_000;

pub struct SearchService {
    shared: Arc<Shared>,
}

impl SearchService {
    pub fn new(shared: Arc<Shared>) -> SearchService {
        SearchService { shared }
    }

    pub fn into_server(self) -> SearchServer<SearchService> {
        SearchServer::new(self)
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Search for SearchService {
    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        let req = req.into_inner();
        let parsed = query::parse(&req.query, now_ns()).map_err(|e| e.to_status())?;
        let limit = match req.limit as usize {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let snap = self.shared.snapshot();
        let fields = self.shared.fields;
        let prefix = if req.path_prefix.is_empty() {
            "/".to_string()
        } else {
            req.path_prefix
        };
        if !prefix.starts_with('/') {
            return Err(Error::BadQuery(format!("path {prefix:?} is not absolute")).to_status());
        }
        let (hits, total) = tokio::task::spawn_blocking(move || {
            index::search(&snap.searcher, &fields, &snap.dirs, &parsed, &prefix, limit)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| e.to_status())?;
        Ok(Response::new(QueryReply { hits, total }))
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let snap = self.shared.snapshot();
        let shards = self.shared.shards();
        let applied = futures::future::join_all(shards.iter().map(|s| s.status())).await;
        let mut out = Vec::with_capacity(shards.len());
        for (shard, st) in shards.iter().zip(applied) {
            let st = st.map_err(|e| e.to_status())?;
            out.push(ShardProgress {
                shard: shard.index,
                indexed_seq: snap.payload.shards.get(&shard.index).copied().unwrap_or(0),
                shard_applied_seq: st.applied_seq,
            });
        }
        Ok(Response::new(StatusReply {
            shards: out,
            documents: snap.documents,
        }))
    }
}
