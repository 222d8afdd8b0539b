//! Inode sequence numbers, leased from the cluster-wide counter (`M‖sequence` on shard 0) in
//! batches so that allocating an id is usually a local step. Invariant: a batch is taken from
//! the counter by a transaction that validates the value it read, so two leases (from any
//! namenodes) never overlap, and within a namenode every number of a batch is handed out at
//! most once. A batch lost to a crash or an unknown commit outcome is simply skipped.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_proto::records::SequenceRecord;
use prost::Message;
use rand::Rng;

use super::Shared;
use super::txn::ShardedTxn;
use crate::keys::{self, SEQ_BITS};
use crate::txn::{Txn, TxnError};

/// How long a refill keeps retrying conflicts with other namenodes' refills.
const LEASE_PATIENCE: Duration = Duration::from_secs(30);

/// The sequence numbers this namenode holds, and the lock that lets one refill run at a time.
pub struct IdLease {
    batch_size: u64,
    batch: parking_lot::Mutex<Range<u64>>,
    refill: tokio::sync::Mutex<()>,
}

impl IdLease {
    pub fn new(batch_size: u64) -> Self {
        Self {
            batch_size: batch_size.max(1),
            batch: parking_lot::Mutex::new(0..0),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    fn take(&self) -> Option<u64> {
        self.batch.lock().next()
    }

    /// A sequence number never handed out before, by any namenode.
    pub async fn alloc(&self, shared: &Arc<Shared>) -> Result<u64, TxnError> {
        loop {
            if let Some(seq) = self.take() {
                return Ok(seq);
            }
            let _refilling = self.refill.lock().await;
            // Whoever held the lock before us may have refilled already.
            if let Some(seq) = self.take() {
                return Ok(seq);
            }
            let leased = self.lease(shared).await?;
            *self.batch.lock() = leased;
        }
    }

    /// Takes the next batch from the counter, retrying conflicts with jittered backoff.
    async fn lease(&self, shared: &Arc<Shared>) -> Result<Range<u64>, TxnError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(2);
        loop {
            match lease_once(shared, self.batch_size).await {
                Ok(range) => {
                    tracing::debug!(start = range.start, end = range.end, "leased id batch");
                    return Ok(range);
                }
                // An unknown outcome may have taken the batch: skipping it is harmless.
                Err(TxnError::Conflict(_) | TxnError::Unknown(_))
                    if started.elapsed() < LEASE_PATIENCE => {}
                Err(e) => return Err(e),
            }
            let jitter = rand::rng().random_range(0..=backoff.as_micros() as u64);
            tokio::time::sleep(backoff / 2 + Duration::from_micros(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }
}

async fn lease_once(shared: &Arc<Shared>, batch: u64) -> Result<Range<u64>, TxnError> {
    let mut txn = ShardedTxn::new(Arc::clone(shared));
    txn.set_label("idlease");
    let key = keys::meta(keys::META_SEQUENCE);
    let rows = txn.get(std::slice::from_ref(&key), true).await?;
    let row = rows
        .first()
        .filter(|r| r.exists())
        .ok_or_else(|| TxnError::Internal("the id sequence row is missing".into()))?;
    let record = SequenceRecord::decode(row.value.as_slice())
        .map_err(|e| TxnError::Internal(format!("bad id sequence row: {e}")))?;
    let start = record.next.max(keys::FIRST_SEQ);
    let end = start
        .checked_add(batch)
        .filter(|end| *end <= 1u64 << SEQ_BITS)
        .ok_or_else(|| TxnError::Internal("inode sequence space exhausted".into()))?;
    txn.put(key, SequenceRecord { next: end }.encode_to_vec());
    txn.commit().await?;
    Ok(start..end)
}
