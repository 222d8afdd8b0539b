//! The background keeper of a shard's disk: every flush interval it makes the tables really
//! durable (sled flush plus fsync), remembers the applied marker that is now durable, and
//! deletes the oldest log segments that [`Retention`] lets go. Less often, it sweeps
//! transaction records older than their time to live (through the committer, so the sweep is
//! logged like any other change).
//!
//! Invariants: a log segment is deleted only if every record in it is durable in the tables;
//! only the oldest segments go, so the log always holds every record from its first retained
//! seq on; and within the change-log bounds, no segment holding a record at or above the lowest
//! cursor is deleted.

use crate::cursors::Cursors;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::group_commit::Request;
use crate::hlc::wall_ms;
use crate::intent::TxnRecord;
use crate::keyspace::TXN;
use crate::wal::{SegmentInfo, SegmentSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Ids handed to the committer per sweep request.
const SWEEP_CHUNK: usize = 4096;

/// Which old segments the log keeps, for the change stream's consumers and for nobody.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Segments no cursor needs go while the log is larger than this.
    pub log_bytes: u64,
    /// Past this size the oldest segments go even if a cursor needs them.
    pub changes_bytes: u64,
    /// Segments closed longer ago than this go even if a cursor needs them.
    pub changes_age: Duration,
}

impl Retention {
    /// Whether the oldest segment `seg` may go (it is durable in the tables), given the lowest
    /// cursor (`None`: no cursor registered) and the wall clock in Unix ms.
    pub fn may_delete(&self, seg: &SegmentInfo, lowest_cursor: Option<u64>, now_ms: u64) -> bool {
        let needed = lowest_cursor.is_some_and(|low| seg.last_seq >= low);
        if !needed {
            return seg.log_bytes > self.log_bytes;
        }
        let age_ms = now_ms.saturating_sub(seg.sealed_ms);
        seg.log_bytes > self.changes_bytes || u128::from(age_ms) > self.changes_age.as_millis()
    }
}

pub struct Trimmer {
    pub engine: Arc<dyn Engine>,
    pub applied: Arc<AtomicU64>,
    /// The applied marker known durable in the tables.
    pub durable: Arc<AtomicU64>,
    pub segments: SegmentSet,
    pub cursors: Arc<Cursors>,
    pub retention: Retention,
    pub interval: Duration,
    pub txn_record_ttl: Duration,
    pub requests: mpsc::Sender<Request>,
}

impl Trimmer {
    /// Runs until `stop` receives a message or is disconnected; flushes once more before
    /// returning.
    pub fn run(self, stop: Receiver<()>) {
        let sweep_every = (self.txn_record_ttl / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(60))
            .max(self.interval);
        let mut last_sweep = Instant::now();
        // Ends on a stop message or when the shard drops its end of the channel.
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(self.interval) {
            if let Err(e) = self.flush_and_trim() {
                tracing::warn!(error = %e, "flushing the tables failed; will retry");
            }
            if last_sweep.elapsed() >= sweep_every {
                last_sweep = Instant::now();
                match self.sweep() {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(n, "swept old transaction records"),
                    Err(Error::Closed) => break,
                    Err(e) => tracing::warn!(error = %e, "sweeping transaction records failed"),
                }
            }
        }
        if let Err(e) = self.flush_and_trim() {
            tracing::warn!(error = %e, "final flush of the tables failed");
        }
    }

    /// One durable flush, then deletion of the segments it made unnecessary.
    pub fn flush_and_trim(&self) -> Result<()> {
        // Read before the flush: whatever the flush persists includes at least this much.
        let marker = self.applied.load(Ordering::Acquire);
        self.engine.flush_durable()?;
        self.durable.fetch_max(marker, Ordering::AcqRel);
        let durable = self.durable.load(Ordering::Acquire);
        let now_ms = wall_ms();
        // Decided and done with the cursor table held, so no cursor is set meanwhile to a seq
        // whose segment is going.
        let (gone, lowest) = self.cursors.with_lowest(|lowest| {
            let gone = self.segments.trim_with(durable, |seg| {
                let go = self.retention.may_delete(seg, lowest, now_ms);
                if go && lowest.is_some_and(|low| seg.last_seq >= low) {
                    tracing::warn!(
                        first = seg.first_seq,
                        last = seg.last_seq,
                        lowest_cursor = ?lowest,
                        log_bytes = seg.log_bytes,
                        "deleting a log segment a change-log cursor still needs: past the \
                         change-log size or age bound"
                    );
                }
                go
            });
            (gone, lowest)
        });
        let gone = gone?;
        if !gone.is_empty() {
            tracing::info!(segments = ?gone, durable = marker, lowest_cursor = ?lowest, "deleted log segments");
        }
        Ok(())
    }

    /// Hands the ids of expired transaction records to the committer; returns how many went.
    fn sweep(&self) -> Result<usize> {
        let cutoff_ms = wall_ms().saturating_sub(self.txn_record_ttl.as_millis() as u64);
        let end = [TXN + 1];
        let mut start = vec![TXN];
        let mut swept = 0;
        loop {
            let rows = self.engine.scan(&start, Some(&end), SWEEP_CHUNK)?;
            let full = rows.len() == SWEEP_CHUNK;
            let Some((last, _)) = rows.last() else {
                break;
            };
            start = last.clone();
            start.push(0);
            let mut ids = Vec::new();
            for (k, v) in &rows {
                if TxnRecord::decode(v)?.at_ms < cutoff_ms {
                    ids.push(k[1..].to_vec());
                }
            }
            if !ids.is_empty() {
                let (reply, answer) = oneshot::channel();
                self.requests
                    .blocking_send(Request::Sweep {
                        txn_ids: ids,
                        cutoff_ms,
                        reply,
                    })
                    .map_err(|_| Error::Closed)?;
                swept += answer.blocking_recv().map_err(|_| Error::Closed)??;
            }
            if !full {
                break;
            }
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_what_the_lowest_cursor_needs_within_its_bounds() {
        let r = Retention {
            log_bytes: 100,
            changes_bytes: 1000,
            changes_age: Duration::from_secs(60),
        };
        let now = 10_000_000;
        let seg = |last_seq, log_bytes, age_ms: u64| SegmentInfo {
            first_seq: 1,
            last_seq,
            sealed_ms: now - age_ms,
            log_bytes,
        };
        // No cursor: the size bound alone.
        assert!(!r.may_delete(&seg(10, 100, 0), None, now));
        assert!(r.may_delete(&seg(10, 101, 0), None, now));
        assert!(!r.may_delete(&seg(10, 50, 3_600_000), None, now));
        // Below the lowest cursor: as if no cursor needed it.
        assert!(r.may_delete(&seg(10, 101, 0), Some(11), now));
        assert!(!r.may_delete(&seg(10, 99, 0), Some(11), now));
        // Holding the lowest cursor's record: kept up to the change-log bounds.
        assert!(!r.may_delete(&seg(11, 999, 59_000), Some(11), now));
        assert!(r.may_delete(&seg(11, 1001, 0), Some(11), now));
        assert!(r.may_delete(&seg(11, 10, 61_000), Some(11), now));
    }
}
