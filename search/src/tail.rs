//! One shard's change stream, followed for as long as anyone listens: subscribes from a
//! sequence, forwards every batch with the moment it arrived, and after a broken stream or a
//! failed subscribe resubscribes where it stopped (100 ms, doubling to 3 s between tries), so
//! a batch is delayed, never skipped. A log trimmed past that point ends the tail with
//! [`Tailed::Trimmed`]: the listener must start again from somewhere it can. The search
//! indexer, `arbor changes` and the mount all follow shards through this.

use std::time::{Duration, Instant};

use arbor_proto::metastore::ChangeBatch;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::shards::{self, Shard};

/// Longest wait between two attempts to resubscribe.
const MAX_RETRY: Duration = Duration::from_secs(3);

/// What a tail hands its listener.
#[derive(Debug)]
pub enum Tailed {
    /// The next batch of shard `shard`, received at `at`.
    Batch {
        shard: u32,
        at: Instant,
        batch: ChangeBatch,
    },
    /// Shard `shard` no longer holds the records the tail needed: it has ended.
    Trimmed(u32),
}

/// Follows `shard` from sequence `from` into `tx` until `tx` closes or the log is trimmed.
pub async fn tail(shard: Shard, mut from: u64, tx: mpsc::Sender<Tailed>) {
    let mut wait = Duration::from_millis(100);
    loop {
        match shard.subscribe(from).await {
            Ok(mut stream) => {
                wait = Duration::from_millis(100);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(batch) => {
                            from = from.max(batch.through_seq + 1);
                            let msg = Tailed::Batch {
                                shard: shard.index,
                                at: Instant::now(),
                                batch,
                            };
                            if tx.send(msg).await.is_err() {
                                return;
                            }
                        }
                        Err(s) if shards::is_trimmed(&s) => {
                            let _ = tx.send(Tailed::Trimmed(shard.index)).await;
                            return;
                        }
                        Err(s) => {
                            tracing::warn!(shard = shard.index, status = %s, "change stream broke");
                            break;
                        }
                    }
                }
            }
            Err(Error::Trimmed { .. }) => {
                let _ = tx.send(Tailed::Trimmed(shard.index)).await;
                return;
            }
            Err(e) => tracing::warn!(shard = shard.index, error = %e, "subscribe failed"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY);
    }
}
