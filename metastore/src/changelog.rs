//! The change stream: every committed change of user rows, in log order, read from the log.
//!
//! A record of the log becomes a [`ChangeRecord`] when it puts or deletes user rows: a
//! single-shard commit, or this shard's part of a two-phase transaction in the record that
//! decides it COMMITTED here (prepares only write intents, aborts no user row, so neither
//! appears). Counter updates are already resolved into plain puts of the resulting row when
//! the record is built, so a consumer sees the counter row's new value.
//!
//! A subscription reads the log segments on a blocking thread while it is behind, then follows
//! the live tail: the completer publishes every group of records once it is durable and
//! visible on a bounded broadcast. A subscriber that falls behind the broadcast, or finds a batch
//! it cannot take from it (missed, or too large to publish), reads that range from the log
//! again, so it never loses a record. Everything a subscription holds is bounded: a channel of
//! [`STREAM_QUEUE`] batches in front of the consumer (a slow consumer stops the reading, it
//! does not grow memory), one segment window of the log reader, and the broadcast ring.
//!
//! Invariants: a subscription sends seqs in increasing order with no gap: each batch covers
//! every seq from the previous batch's `through_seq + 1` to its own `through_seq`, and holds
//! exactly the records of that range that changed user rows. It never sends a record above
//! the visible seq, which is durable. A record that is no longer in the log ends the stream
//! with [`Error::Trimmed`].

use crate::error::{Error, Result};
use crate::wal::{LogReader, LogRecord, Op, SegmentSet};
use arbor_proto::metastore::{ChangeBatch, ChangeRecord, ChangeRow};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::{mpsc, watch};

/// Records per batch when the subscriber does not say.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Records per batch at most, whatever the subscriber says.
pub const MAX_BATCH: usize = 10_000;
/// A batch stops growing once its rows hold this many bytes (one record may exceed it).
pub const BATCH_BYTES: usize = 1 << 20;
/// Log records read per batch at most, user changes or not, so a long run of records that
/// change no user row still reports progress.
const SCAN_PER_BATCH: usize = 100_000;
/// Batches queued in front of one consumer.
pub const STREAM_QUEUE: usize = 2;
/// Published batches the broadcast keeps for subscribers that are slower than the applier.
pub const LIVE_CAPACITY: usize = 256;
/// A published batch whose changes hold more bytes than this is published without them
/// (subscribers read it from the log), so the broadcast ring holds at most about
/// `LIVE_CAPACITY * LIVE_ITEM_BYTES`.
pub const LIVE_ITEM_BYTES: usize = 256 << 10;

/// The change record of a log record, or `None` if it changed no user row.
pub fn change_record(record: LogRecord) -> Option<ChangeRecord> {
    let rows: Vec<ChangeRow> = record
        .ops
        .into_iter()
        .filter_map(|op| match op {
            Op::Put { key, value } => Some(ChangeRow {
                key,
                value,
                deleted: false,
            }),
            Op::Delete { key } => Some(ChangeRow {
                key,
                value: Vec::new(),
                deleted: true,
            }),
            _ => None,
        })
        .collect();
    (!rows.is_empty()).then_some(ChangeRecord {
        seq: record.seq,
        hlc: record.hlc,
        txn_id: record.txn_id,
        rows,
    })
}

fn record_bytes(r: &ChangeRecord) -> usize {
    r.txn_id.len()
        + 24
        + r.rows
            .iter()
            .map(|row| row.key.len() + row.value.len() + 8)
            .sum::<usize>()
}

/// Records made durable and visible together: every seq in `first..=last`, and among them the
/// ones that changed user rows (`None`: too large to publish, read them from the log).
#[derive(Debug)]
pub struct Applied {
    pub first: u64,
    pub last: u64,
    pub records: Option<Vec<ChangeRecord>>,
}

pub type Live = broadcast::Sender<Arc<Applied>>;

/// A new broadcast of durable records.
pub fn live_channel() -> Live {
    broadcast::channel(LIVE_CAPACITY).0
}

/// The applier's side of the live tail.
pub struct Publisher {
    live: Live,
    /// Everything up to here has been published (or had no subscriber to publish to).
    through: u64,
}

impl Publisher {
    /// A publisher whose next batch starts after `visible`.
    pub fn new(live: Live, visible: u64) -> Self {
        Self {
            live,
            through: visible,
        }
    }

    /// Publishes the records durable up to `last` (the log records of every seq after the
    /// previous call). Call it after the visible seq is published, so a subscriber that
    /// misses this broadcast (it was not subscribed yet) finds these records below the visible
    /// seq. With no subscriber it only drops the records.
    pub fn publish(&mut self, last: u64, records: Vec<LogRecord>) {
        let first = self.through + 1;
        self.through = last;
        if self.live.receiver_count() == 0 {
            return;
        }
        let mut changes = Vec::new();
        let mut bytes = 0;
        for record in records {
            if let Some(c) = change_record(record) {
                bytes += record_bytes(&c);
                if bytes > LIVE_ITEM_BYTES {
                    let _ = self.live.send(Arc::new(Applied {
                        first,
                        last,
                        records: None,
                    }));
                    return;
                }
                changes.push(c);
            }
        }
        // Subscribers may all be gone since the count: nothing waits for it then.
        let _ = self.live.send(Arc::new(Applied {
            first,
            last,
            records: Some(changes),
        }));
    }
}

/// What a subscription reads from.
#[derive(Clone)]
pub struct Feed {
    pub segments: SegmentSet,
    /// The visible seq: every record up to it is durable (and readable).
    pub visible: Arc<AtomicU64>,
    /// The applier's broadcast; gone once the applier has stopped.
    pub live: broadcast::WeakSender<Arc<Applied>>,
    /// True once the shard is closing: subscriptions end.
    pub closing: watch::Receiver<bool>,
    /// Times a subscriber fell behind the broadcast and went back to the log.
    pub lagged: Arc<AtomicU64>,
}

/// The batches of one subscription, in order; an error ends it.
pub type Batches = mpsc::Receiver<Result<ChangeBatch>>;

/// Starts streaming the changes from `from_seq` on (0: the oldest retained record). Fails at
/// once with [`Error::Trimmed`] if `from_seq` is no longer in the log, and with
/// [`Error::InvalidArgument`] if it lies beyond the next sequence. Must be called inside a
/// tokio runtime.
pub fn subscribe(feed: &Feed, from_seq: u64, max_batch: u32) -> Result<Batches> {
    // Subscribed before the visible seq is read: a batch published after that read is then
    // surely broadcast to this subscriber.
    if *feed.closing.borrow() {
        return Err(Error::Closed);
    }
    let live = feed.live.upgrade().ok_or(Error::Closed)?.subscribe();
    let visible = feed.visible.load(Ordering::Acquire);
    let first = feed.segments.first_seq().unwrap_or(visible + 1);
    let from = if from_seq == 0 { first } else { from_seq };
    if from > visible + 1 {
        return Err(Error::InvalidArgument(format!(
            "from_seq {from} is beyond the next sequence {}",
            visible + 1
        )));
    }
    if from < first {
        return Err(Error::Trimmed {
            wanted: from,
            first,
        });
    }
    let max_batch = match max_batch {
        0 => DEFAULT_MAX_BATCH,
        n => (n as usize).min(MAX_BATCH),
    };
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let sub = Subscription {
        feed: feed.clone(),
        live,
        next: from,
        max_batch,
        reader: None,
        pending: None,
        tx,
    };
    tokio::spawn(sub.run());
    Ok(rx)
}

struct Subscription {
    feed: Feed,
    live: broadcast::Receiver<Arc<Applied>>,
    /// The next seq to cover.
    next: u64,
    max_batch: usize,
    /// Kept between catch-ups, so falling back to the log does not search its segment again.
    reader: Option<LogReader>,
    /// A published batch taken from the broadcast but not yet used.
    pending: Option<Arc<Applied>>,
    tx: mpsc::Sender<Result<ChangeBatch>>,
}

impl Subscription {
    async fn run(mut self) {
        loop {
            if *self.feed.closing.borrow() {
                self.end(Error::Closed);
                return;
            }
            let head = self.feed.visible.load(Ordering::Acquire);
            if self.next <= head && !self.pending_follows() {
                match self.catch_up(head).await {
                    Ok(batch) => {
                        if !self.send(batch).await {
                            return;
                        }
                    }
                    Err(e) => {
                        self.fail(e).await;
                        return;
                    }
                }
                continue;
            }
            let item = match self.pending.take() {
                Some(item) => item,
                None => {
                    let mut closing = self.feed.closing.clone();
                    let received = tokio::select! {
                        biased;
                        _ = closing.wait_for(|&c| c) => {
                            self.end(Error::Closed);
                            return;
                        }
                        r = self.live.recv() => r,
                    };
                    match received {
                        Ok(item) => item,
                        // Too slow for the broadcast: what was missed is read from the log.
                        Err(RecvError::Lagged(n)) => {
                            self.feed.lagged.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(missed = n, "subscriber fell behind the live tail");
                            continue;
                        }
                        Err(RecvError::Closed) => {
                            self.end(Error::Closed);
                            return;
                        }
                    }
                }
            };
            for batch in self.live_batches(item) {
                if !self.send(batch).await {
                    return;
                }
            }
        }
    }

    /// Whether the pending published batch starts exactly where the stream is.
    fn pending_follows(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.first == self.next && p.records.is_some())
    }

    /// The batches to send for a published batch, joined with the ones that follow it on the
    /// broadcast at once; nothing if it is already covered or does not follow on (then the
    /// log fills the gap).
    fn live_batches(&mut self, item: Arc<Applied>) -> Vec<ChangeBatch> {
        if item.last < self.next {
            return Vec::new();
        }
        let Some(records) = item.records.as_ref().filter(|_| item.first <= self.next) else {
            return Vec::new();
        };
        let mut out: Vec<ChangeRecord> = records
            .iter()
            .filter(|r| r.seq >= self.next)
            .cloned()
            .collect();
        let mut through = item.last;
        while out.len() < self.max_batch {
            match self.live.try_recv() {
                Ok(more) if more.first == through + 1 && more.records.is_some() => {
                    out.extend(more.records.iter().flatten().cloned());
                    through = more.last;
                }
                Ok(other) => {
                    self.pending = Some(other);
                    break;
                }
                Err(TryRecvError::Lagged(_)) => {
                    self.feed.lagged.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => break,
            }
        }
        self.next = through + 1;
        let mut batches = Vec::new();
        let mut rest = out.into_iter().peekable();
        loop {
            let chunk: Vec<ChangeRecord> = rest.by_ref().take(self.max_batch).collect();
            let last_chunk = rest.peek().is_none();
            let chunk_through = match chunk.last() {
                Some(r) if !last_chunk => r.seq,
                _ => through,
            };
            batches.push(ChangeBatch {
                records: chunk,
                through_seq: chunk_through,
            });
            if last_chunk {
                return batches;
            }
        }
    }

    /// One batch read from the log, from `next` up to at most `head`.
    async fn catch_up(&mut self, head: u64) -> Result<ChangeBatch> {
        let mut reader = match self.reader.take() {
            Some(r) if r.position() <= self.next => r,
            _ => LogReader::new(self.feed.segments.clone(), self.next),
        };
        reader.skip_to(self.next);
        let max_batch = self.max_batch;
        let (reader, batch) = tokio::task::spawn_blocking(move || {
            let batch = read_batch(&mut reader, head, max_batch);
            (reader, batch)
        })
        .await
        .map_err(|e| Error::Internal(format!("log reader: {e}")))?;
        let batch = batch?;
        self.reader = Some(reader);
        self.next = batch.through_seq + 1;
        Ok(batch)
    }

    /// Sends a batch, waiting while the consumer's queue is full. False if the stream is over
    /// (the consumer went away, or the shard is closing).
    async fn send(&mut self, batch: ChangeBatch) -> bool {
        let mut closing = self.feed.closing.clone();
        tokio::select! {
            biased;
            _ = closing.wait_for(|&c| c) => {
                self.end(Error::Closed);
                false
            }
            sent = self.tx.send(Ok(batch)) => sent.is_ok(),
        }
    }

    /// Ends the stream with `e` (a trimmed log, a damaged one), waiting for the consumer to
    /// take it unless the shard closes meanwhile: it must learn why, not see a normal end.
    async fn fail(&mut self, e: Error) {
        let mut closing = self.feed.closing.clone();
        tokio::select! {
            biased;
            _ = closing.wait_for(|&c| c) => {}
            _ = self.tx.send(Err(e)) => {}
        }
    }

    /// Ends the stream with `e`, if the consumer has room to hear it (it ends either way).
    fn end(&self, e: Error) {
        let _ = self.tx.try_send(Err(e));
    }
}

/// Reads records from the reader's position up to `head`, until the batch is full.
fn read_batch(reader: &mut LogReader, head: u64, max_batch: usize) -> Result<ChangeBatch> {
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut scanned = 0;
    while records.len() < max_batch && bytes < BATCH_BYTES && scanned < SCAN_PER_BATCH {
        let record = match reader.next_record(head) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            // What was read is sent first; the reader fails the same way on the next call,
            // and the error then names the first record the consumer did not get.
            Err(_) if scanned > 0 => break,
            Err(e) => return Err(e),
        };
        scanned += 1;
        if let Some(c) = change_record(record) {
            bytes += record_bytes(&c);
            records.push(c);
        }
    }
    Ok(ChangeBatch {
        records,
        through_seq: reader.position() - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_rows_make_change_records() {
        let record = |ops| LogRecord {
            seq: 7,
            hlc: 70,
            txn_id: b"tx".to_vec(),
            ops,
        };
        assert_eq!(
            change_record(record(vec![
                Op::PutIntent {
                    txn_id: b"tx".to_vec(),
                    intent: vec![1],
                },
                Op::PutTxnRecord {
                    txn_id: b"tx".to_vec(),
                    record: vec![2],
                },
            ])),
            None
        );
        let c = change_record(record(vec![
            Op::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            Op::DropIntent {
                txn_id: b"tx".to_vec(),
            },
            Op::Delete { key: b"b".to_vec() },
        ]))
        .unwrap();
        assert_eq!((c.seq, c.hlc, c.txn_id.as_slice()), (7, 70, &b"tx"[..]));
        assert_eq!(
            c.rows,
            vec![
                ChangeRow {
                    key: b"a".to_vec(),
                    value: b"1".to_vec(),
                    deleted: false
                },
                ChangeRow {
                    key: b"b".to_vec(),
                    value: Vec::new(),
                    deleted: true
                },
            ]
        );
    }
}
