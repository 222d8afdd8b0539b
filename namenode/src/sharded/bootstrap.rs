//! Finding the cluster's partition map at start, formatting the cluster when shard 0 has none.
//! Formatting is one commit on shard 0 that requires the map row to be absent, so of several
//! namenodes starting together exactly one formats and the others load its map.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbor_proto::metastore::{
    CommitRequest, ReadCheck, TxnBody, Write, commit_response, write::Op,
};
use arbor_proto::records::PartitionMap;
use prost::Message;

use super::coordinator::new_txn_id;
use super::metaclient::{CallError, ShardClient};
use super::partmap::Routing;
use crate::format;
use crate::keys;
use crate::txn::TxnError;

/// How long a namenode waits for shard 0 to come up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);

/// Loads the partition map from shard 0, formatting a new cluster of `shards` shards and
/// `vparts` virtual partitions first if there is none. Waits for shard 0 while it is
/// unreachable.
pub async fn load_or_format(
    shard0: &ShardClient,
    vparts: u32,
    shards: u32,
) -> Result<PartitionMap, TxnError> {
    let deadline = Instant::now() + STARTUP_PATIENCE;
    let mut backoff = Duration::from_millis(50);
    loop {
        match try_load_or_format(shard0, vparts, shards).await {
            Ok(Some(map)) => return Ok(map),
            // Someone else formatted, or our format's outcome is unknown: read again.
            Ok(None) if Instant::now() < deadline => {}
            Err(TxnError::Unavailable(why)) if Instant::now() < deadline => {
                tracing::info!(shard = 0, addr = shard0.addr(), %why, "waiting for the metastore");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Ok(None) => {
                return Err(TxnError::Unavailable(
                    "could not read or write the partition map on shard 0".into(),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn try_load_or_format(
    shard0: &ShardClient,
    vparts: u32,
    shards: u32,
) -> Result<Option<PartitionMap>, TxnError> {
    let key = keys::meta(keys::META_PARTMAP).bytes;
    let rows = shard0
        .get(vec![key])
        .await
        .map_err(CallError::into_read_error)?;
    if let Some(row) = rows.first().filter(|r| r.version != 0) {
        let map = PartitionMap::decode(row.value.as_slice())
            .map_err(|e| TxnError::Internal(format!("bad partition map row: {e}")))?;
        return Ok(Some(map));
    }
    format_cluster(shard0, vparts, shards).await
}

/// Writes a new cluster's rows; `None` when another namenode formatted first or the outcome
/// is unknown.
async fn format_cluster(
    shard0: &ShardClient,
    vparts: u32,
    shards: u32,
) -> Result<Option<PartitionMap>, TxnError> {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let map = format::initial_partition_map(vparts, shards, new_txn_id(), now_ns);
    let routing = Routing::new(map.clone(), shards)?;
    let rows = format::initial_rows(&map, now_ns);
    let mut writes = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        let shard = routing.try_shard_of(key.route)?;
        if shard != 0 {
            return Err(TxnError::Internal(format!(
                "format row {:?} would live on shard {shard}, not shard 0",
                key.bytes.escape_ascii().to_string()
            )));
        }
        writes.push(Write {
            key: key.bytes,
            op: Some(Op::Put(value)),
        });
    }
    let body = TxnBody {
        reads: vec![ReadCheck {
            key: keys::meta(keys::META_PARTMAP).bytes,
            version: 0,
        }],
        empty_prefixes: Vec::new(),
        writes,
    };
    let resp = shard0
        .commit(CommitRequest {
            txn_id: new_txn_id(),
            body: Some(body),
            ..Default::default()
        })
        .await;
    match resp.map(|r| r.outcome) {
        Ok(Some(commit_response::Outcome::CommittedSeq(seq))) => {
            tracing::info!(vparts, shards, seq, "formatted a new cluster");
            Ok(Some(map))
        }
        Ok(Some(commit_response::Outcome::Conflict(_))) | Ok(None) => Ok(None),
        Err(e) => match e.into_commit_error() {
            TxnError::Unknown(_) => Ok(None),
            other => Err(other),
        },
    }
}
