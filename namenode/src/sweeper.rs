//! The leader's sweep of old retry records. A retry record only has to outlive the client's
//! retries of its call; past a TTL (10 minutes by default) the leader removes it, one small
//! single-shard transaction per page of expired records.

use std::sync::Arc;
use std::time::Duration;

use arbor_proto::records::RetryRecord;
use prost::Message;
use tokio::sync::watch;

use crate::attrs;
use crate::error::NnError;
use crate::keys;
use crate::ops::prefix_end;
use crate::txn::{Key, Route, Store, Txn, TxnError};

const PAGE: u32 = 1000;

/// Removes the retry records older than `ttl` on every shard; returns how many.
pub async fn sweep_once<S: Store>(store: &S, ttl: Duration) -> Result<u64, NnError> {
    let cutoff = attrs::now_ns().saturating_sub(ttl.as_nanos().min(i64::MAX as u128) as i64);
    let prefix = vec![keys::RETRY];
    let end = prefix_end(&prefix);
    let mut removed = 0;
    for shard in 0..store.shards() {
        let route = Route::Shard(shard);
        let mut start = prefix.clone();
        loop {
            let mut txn = store.begin();
            txn.set_label("retry_sweep");
            let (rows, more) = txn.scan(route, start.clone(), end.clone(), PAGE).await?;
            let mut n = 0;
            for (key, row) in &rows {
                let Ok(record) = RetryRecord::decode(row.value.as_slice()) else {
                    continue;
                };
                if record.written_ns < cutoff {
                    txn.delete(Key::new(route, key.clone()));
                    n += 1;
                }
            }
            if n > 0 {
                match txn.commit().await {
                    Ok(()) => removed += n,
                    // Nothing validated: a conflict only means a busy shard; next sweep.
                    Err(TxnError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match (more, rows.last()) {
                (true, Some((k, _))) => {
                    start = k.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(removed)
}

/// Sweeps every `every` while this namenode leads, until `stop` turns true.
pub async fn run<S: Store>(
    store: Arc<S>,
    leader: watch::Receiver<bool>,
    ttl: Duration,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    crate::leader::every_while_leading(every, leader, stop, || async {
        match sweep_once(&*store, ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept expired retry records"),
            Err(e) => tracing::warn!(error = %e, "retry record sweep failed"),
        }
    })
    .await;
}
