//! The background keeper of a shard's disk: every flush interval it makes the tables really
//! durable (sled flush plus fsync), remembers the applied marker that is now durable, and
//! deletes log segments that lie entirely below it once the log outgrows its size bound. Less
//! often, it sweeps transaction records older than their time to live (through the committer,
//! so the sweep is logged like any other change).
//!
//! Invariant: a log segment is deleted only if every record in it is durable in the tables.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::group_commit::Request;
use crate::hlc::wall_ms;
use crate::intent::TxnRecord;
use crate::keyspace::TXN;
use crate::wal::SegmentSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Ids handed to the committer per sweep request.
const SWEEP_CHUNK: usize = 4096;

pub struct Trimmer {
    pub engine: Arc<dyn Engine>,
    pub applied: Arc<AtomicU64>,
    /// The applied marker known durable in the tables.
    pub durable: Arc<AtomicU64>,
    pub segments: SegmentSet,
    pub retain_bytes: u64,
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
        let gone = self
            .segments
            .trim(self.durable.load(Ordering::Acquire), self.retain_bytes)?;
        if !gone.is_empty() {
            tracing::info!(segments = ?gone, durable = marker, "deleted log segments");
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
