//! A shard: a versioned key-value store made durable by its log. `Shard` is the library face
//! that the gRPC service, tests and benches call; it opens the tables and the log, replays the
//! log into the tables, rebuilds the 2PC state, and runs the committer, applier, trimmer and
//! resolver until closed.
//!
//! Reads go to the read overlay (rows whose records are synced but not yet in the tables) and
//! then to the tables; both only ever hold records already durable in the log, so a read never
//! sees a change that a crash could take back, and a read right after a commit's answer sees
//! it. Before reading, a read finishes (or waits out) the transactions prepared here that will
//! write what it returns (`read_resolve`), so it never sees a cross-shard transaction half
//! applied. Every change goes through the committer. Everything that touches the disk (sled,
//! files) runs on a blocking thread or the shard's own threads, never on a runtime worker.
//!
//! The log is also the change log: `subscribe` streams it (`changelog`), consumers' cursors
//! are kept beside it (`cursors`), and the trimmer keeps it from the lowest cursor on.

use crate::changelog::{self, Batches, Feed};
use crate::config::ShardConfig;
use crate::cursors::{self, Cursor, Cursors};
use crate::engine::{Engine, SledEngine, WriteBatch};
use crate::error::{Error, Result};
use crate::group_commit::{ApplierHold, Committer, Health, QUEUE, Reply, Request, Stats};
use crate::hlc::{Hlc, wall_ms};
use crate::intent::{
    DecideOutcome, Intent, IntentSummary, Participant, PrepareOutcome, ResolveOutcome, Writer,
};
use crate::keyspace::{self, DATA, INTENT};
use crate::leases::Leases;
use crate::locks::ReadSet;
use crate::overlay::{self, Backlog, ReadOverlay};
use crate::read_resolve;
use crate::resolver::{self, Primaries};
use crate::trim::{Retention, Trimmer};
use crate::txn::{self, CommitOutcome};
use crate::wal::{SegmentSet, Wal};
use arbor_proto::metastore::{self as pb, PrepareRequest, Row, TxnBody};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Rows a scan returns when the request says 0.
pub const DEFAULT_SCAN_LIMIT: usize = 1000;
/// Rows a scan returns at most, whatever the request says.
pub const MAX_SCAN_LIMIT: usize = 100_000;
/// Records replayed into the tables per batch at open.
const REPLAY_BATCH: usize = 1024;

/// A handle on an open shard; clones share it.
#[derive(Clone)]
pub struct Shard {
    inner: Arc<Inner>,
}

/// A handle that does not keep the shard open (held by its own background tasks).
#[derive(Clone)]
pub(crate) struct WeakShard(Weak<Inner>);

impl WeakShard {
    pub(crate) fn upgrade(&self) -> Option<Shard> {
        self.0.upgrade().map(|inner| Shard { inner })
    }
}

struct Inner {
    config: ShardConfig,
    engine: Arc<dyn Engine>,
    requests: mpsc::Sender<Request>,
    /// The highest seq the tables hold.
    applied: Arc<AtomicU64>,
    /// The same, for status waiting on the tables.
    applied_watch: watch::Receiver<u64>,
    /// Rows durable in the log but not yet in the tables, and the visible seq.
    overlay: Arc<ReadOverlay>,
    /// For readers waiting on a decision to become visible.
    visible_watch: watch::Receiver<u64>,
    backlog: Arc<Backlog>,
    /// Only tests hold the applier back.
    #[cfg_attr(not(test), allow(dead_code))]
    hold: Arc<ApplierHold>,
    durable: Arc<AtomicU64>,
    participant: Arc<Mutex<Participant>>,
    primaries: Primaries,
    /// Rows readers may keep for a while; writes to them wait until they ran out.
    leases: Leases,
    stats: Arc<Stats>,
    health: Health,
    segments: SegmentSet,
    cursors: Arc<Cursors>,
    /// What subscriptions read from.
    feed: Feed,
    /// Set when the shard closes (or its server stops): subscriptions end.
    closing: watch::Sender<bool>,
    committer: Mutex<Vec<JoinHandle<()>>>,
    trimmer: Mutex<Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>>,
    resolver: Mutex<Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>>,
}

/// A snapshot of the committer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Groups formed (each at most one fdatasync of the log).
    pub groups: u64,
    /// Requests handled.
    pub requests: u64,
    /// Log records written.
    pub records: u64,
    /// fdatasync calls on the log.
    pub syncs: u64,
    /// Microseconds the committer spent validating and encoding.
    pub build_us: u64,
    /// Microseconds the committer spent writing groups into the log.
    pub write_us: u64,
    /// Microseconds spent in the log's `fdatasync` (by the sync threads, which overlap).
    pub sync_us: u64,
    /// Microseconds the applier spent writing groups into the tables.
    pub apply_us: u64,
    /// Batches written into the tables (each holding one or more groups).
    pub applies: u64,
}

/// What recovery found and built, before any thread runs.
struct Recovered {
    engine: Arc<dyn Engine>,
    wal: Wal,
    cursors: Cursors,
    participant: Participant,
    marker: u64,
    next_seq: u64,
    hlc_floor: u64,
}

/// Two-phase commit keys its intents and records by transaction id: it must name something.
fn check_txn_id(txn_id: &[u8]) -> Result<()> {
    if txn_id.is_empty() {
        return Err(Error::InvalidArgument(
            "a two-phase transaction needs a txn id".into(),
        ));
    }
    Ok(())
}

/// One range to scan (see [`Shard::scan`]).
#[derive(Clone, Debug)]
pub struct ScanSpec {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub limit: u32,
    pub keys_only: bool,
}

/// A Get whose overlay answers are taken; `None` entries are read from the tables.
struct PendingGet {
    keys: Vec<Vec<u8>>,
    engine_keys: Vec<Vec<u8>>,
    found: Vec<Option<Option<Vec<u8>>>>,
}

impl PendingGet {
    /// The rows, reading the tables (`engine`, when needed) for what the overlay lacked.
    fn finish(self, engine: Option<&dyn Engine>) -> Result<Vec<Row>> {
        self.keys
            .into_iter()
            .zip(self.engine_keys)
            .zip(self.found)
            .map(|((key, engine_key), f)| match (f, engine) {
                (Some(v), _) => stored_row(key, v.as_deref()),
                (None, Some(engine)) => stored_row(key, engine.get(&engine_key)?.as_deref()),
                (None, None) => Err(Error::Internal("a table read without the tables".into())),
            })
            .collect()
    }
}

/// A scan whose overlay entries are taken.
struct PendingScan {
    start: Vec<u8>,
    end: Vec<u8>,
    limit: usize,
    keys_only: bool,
    pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The pages of `scans`, merging each one's overlay entries with the tables.
fn finish_scans(
    engine: &dyn Engine,
    scans: Vec<Option<PendingScan>>,
) -> Result<Vec<(Vec<Row>, bool)>> {
    scans
        .into_iter()
        .map(|w| {
            let Some(w) = w else {
                return Ok((Vec::new(), false));
            };
            // Each delete in the overlay may hide one row of the tables: read that many more.
            let hidden = w.pending.iter().filter(|(_, v)| v.is_none()).count();
            let tables = engine.scan(&w.start, Some(&w.end), w.limit + 1 + hidden)?;
            let mut rows = overlay::merge_scan(w.pending, tables, w.limit + 1);
            let more = rows.len() > w.limit;
            rows.truncate(w.limit);
            rows.into_iter()
                .map(|(k, v)| {
                    let (version, payload) = keyspace::decode_row(&v)?;
                    Ok(Row {
                        key: k[1..].to_vec(),
                        value: if w.keys_only {
                            Vec::new()
                        } else {
                            payload.to_vec()
                        },
                        version,
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(|rows| (rows, more))
        })
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))?
}

/// The row of user key `key` from its stored value (version ‖ payload), absent if `None`.
fn stored_row(key: Vec<u8>, stored: Option<&[u8]>) -> Result<Row> {
    Ok(match stored {
        None => Row {
            key,
            value: Vec::new(),
            version: 0,
        },
        Some(v) => {
            let (version, payload) = keyspace::decode_row(v)?;
            Row {
                key,
                value: payload.to_vec(),
                version,
            }
        }
    })
}

/// Opens the tables, replays the log after their applied marker, and rebuilds the intents.
fn recover(config: &ShardConfig) -> Result<Recovered> {
    std::fs::create_dir_all(&config.dir)?;
    let engine: Arc<dyn Engine> =
        Arc::new(SledEngine::open(&config.tables_dir(), config.cache_bytes)?);
    let cursors = Cursors::open(&config.dir)?;
    let marker = keyspace::decode_marker(engine.get(keyspace::APPLIED)?.as_deref())?;
    let mut batch = WriteBatch::default();
    let mut pending = 0usize;
    let mut last = marker;
    let (wal, rec) = Wal::open(&config.wal_dir(), config.segment_bytes, marker, |record| {
        batch.ops.extend(keyspace::mutations(&record));
        last = record.seq;
        pending += 1;
        if pending >= REPLAY_BATCH {
            keyspace::mark_applied(&mut batch, last);
            engine.apply(&batch)?;
            batch = WriteBatch::default();
            pending = 0;
        }
        Ok(())
    })?;
    if pending > 0 {
        keyspace::mark_applied(&mut batch, last);
        engine.apply(&batch)?;
    }
    let mut participant = Participant::new(config.shard, config.intent_timeout.as_millis() as u64);
    let start = [INTENT];
    let end = [INTENT + 1];
    for (_, v) in engine.scan(&start, Some(&end), usize::MAX)? {
        participant.restore(Intent::decode(&v)?);
    }
    tracing::info!(
        shard = config.shard,
        marker,
        replayed = rec.replayed,
        last_seq = rec.last_seq,
        cut_bytes = rec.cut_bytes,
        intents = participant.summaries().len(),
        first_retained = wal.segments().first_seq(),
        cursors = cursors.list().len(),
        "shard recovered"
    );
    Ok(Recovered {
        engine,
        wal,
        cursors,
        participant,
        marker: last,
        next_seq: rec.last_seq.max(last) + 1,
        hlc_floor: rec.last_hlc,
    })
}

impl Shard {
    /// Opens (or creates) the shard in `config.dir` and starts its threads and tasks. Must be
    /// called inside a tokio runtime.
    pub async fn open(config: ShardConfig) -> Result<Shard> {
        let cfg = config.clone();
        let rec = blocking(move || recover(&cfg)).await?;
        let applied = Arc::new(AtomicU64::new(rec.marker));
        let (applied_tx, applied_watch) = watch::channel(rec.marker);
        let overlay = Arc::new(ReadOverlay::new(rec.marker));
        let visible_watch = overlay.watch();
        let backlog = Arc::new(Backlog::new(config.backlog_rows, config.backlog_bytes));
        let hold = Arc::new(ApplierHold::default());
        let durable = Arc::new(AtomicU64::new(0));
        let participant = Arc::new(Mutex::new(rec.participant));
        let stats = Arc::new(Stats::default());
        let health = Health::default();
        let segments = rec.wal.segments();
        let cursors = Arc::new(rec.cursors);
        let live = changelog::live_channel();
        let (closing, closing_rx) = watch::channel(false);
        let feed = Feed {
            segments: segments.clone(),
            visible: overlay.visible_counter(),
            live: live.downgrade(),
            closing: closing_rx,
            lagged: Arc::new(AtomicU64::new(0)),
        };
        let leases = if rec.next_seq > 1 {
            Leases::after_restart()
        } else {
            Leases::default()
        };
        let (requests, rx) = mpsc::channel(QUEUE);
        let committer = Committer {
            rx,
            engine: rec.engine.clone(),
            wal: rec.wal,
            participant: participant.clone(),
            next_seq: rec.next_seq,
            hlc: Hlc::new(rec.hlc_floor),
            applied: applied.clone(),
            applied_watch: applied_tx,
            overlay: overlay.clone(),
            backlog: backlog.clone(),
            hold: hold.clone(),
            stats: stats.clone(),
            health: health.clone(),
            live,
        }
        .spawn(config.shard)?;
        let trimmer = Trimmer {
            engine: rec.engine.clone(),
            applied: applied.clone(),
            durable: durable.clone(),
            segments: segments.clone(),
            cursors: cursors.clone(),
            retention: Retention {
                log_bytes: config.log_retain_bytes,
                changes_bytes: config.changes_retain_bytes,
                changes_age: config.changes_retain_age,
            },
            interval: config.flush_interval,
            txn_record_ttl: config.txn_record_ttl,
            requests: requests.clone(),
        };
        let (trim_stop, trim_rx) = std::sync::mpsc::channel();
        let trim_thread = std::thread::Builder::new()
            .name(format!("arbor-trim-{}", config.shard))
            .spawn(move || trimmer.run(trim_rx))?;
        let inner = Arc::new(Inner {
            config,
            engine: rec.engine,
            requests,
            applied,
            applied_watch,
            overlay,
            visible_watch,
            backlog,
            hold,
            durable,
            participant,
            primaries: Primaries::default(),
            leases,
            stats,
            health,
            segments,
            cursors,
            feed,
            closing,
            committer: Mutex::new(committer),
            trimmer: Mutex::new(Some((trim_stop, trim_thread))),
            resolver: Mutex::new(None),
        });
        let (stop, stop_rx) = watch::channel(false);
        let every = (inner.config.intent_timeout / 4).max(Duration::from_millis(10));
        let task = tokio::spawn(resolver::run(
            WeakShard(Arc::downgrade(&inner)),
            every,
            stop_rx,
        ));
        *inner.resolver.lock() = Some((stop, task));
        Ok(Shard { inner })
    }

    pub fn config(&self) -> &ShardConfig {
        &self.inner.config
    }

    /// Highest seq applied: its record, and every earlier one, is durable in the log and seen by
    /// reads (from the read overlay, or the tables once the applier got there).
    pub fn applied_seq(&self) -> u64 {
        self.inner.overlay.visible()
    }

    /// Highest seq the tables themselves hold (at most [`Shard::applied_seq`]).
    pub fn tables_seq(&self) -> u64 {
        self.inner.applied.load(Ordering::Acquire)
    }

    /// Rows (engine writes) logged and not yet in the tables.
    pub fn backlog_rows(&self) -> usize {
        self.inner.backlog.rows()
    }

    /// Highest seq known durable in the tables (the log below it may be deleted).
    pub fn durable_seq(&self) -> u64 {
        self.inner.durable.load(Ordering::Acquire)
    }

    /// Segments in the log, the active one included.
    pub fn log_segments(&self) -> usize {
        self.inner.segments.count()
    }

    pub fn commit_stats(&self) -> CommitStats {
        let s = &self.inner.stats;
        CommitStats {
            groups: s.groups.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            build_us: s.build_us.load(Ordering::Relaxed),
            write_us: s.write_us.load(Ordering::Relaxed),
            sync_us: s.sync_us.load(Ordering::Relaxed),
            apply_us: s.apply_us.load(Ordering::Relaxed),
            applies: s.applies.load(Ordering::Relaxed),
        }
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        if let Some(why) = self.inner.health.failure() {
            return Err(Error::Failed(why));
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(make(reply))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Point reads of committed rows, in order; absent rows have version 0. Waits for (or
    /// finishes) the transactions prepared before the call that will write one of `keys`.
    pub async fn get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Row>> {
        self.get_leased(keys, &[], Duration::ZERO, &[]).await
    }

    /// [`Shard::get`], granting `holder` a read lease of `length` on the keys at the indexes
    /// `leased` first (see `leases`): until it runs out, a write to one of them by anyone else
    /// is answered only once it has.
    pub async fn get_leased(
        &self,
        keys: Vec<Vec<u8>>,
        holder: &[u8],
        length: Duration,
        leased: &[u32],
    ) -> Result<Vec<Row>> {
        Ok(self.read(keys, holder, length, leased, Vec::new()).await?.0)
    }

    /// [`Shard::get_leased`] and [`Shard::scan_many`] in one: the point reads are read before
    /// the scans, and what the overlay cannot answer comes from the tables in one blocking
    /// task for both.
    pub async fn read(
        &self,
        keys: Vec<Vec<u8>>,
        holder: &[u8],
        length: Duration,
        leased: &[u32],
        scans: Vec<ScanSpec>,
    ) -> Result<(Vec<Row>, Vec<(Vec<Row>, bool)>)> {
        let gets = self.prepare_get(keys, holder, length, leased).await?;
        let scans = self.prepare_scans(scans).await?;
        let tables_needed =
            gets.found.iter().any(Option::is_none) || scans.iter().any(Option::is_some);
        if !tables_needed {
            return Ok((
                gets.finish(None)?,
                scans.into_iter().map(|_| (Vec::new(), false)).collect(),
            ));
        }
        let engine = self.inner.engine.clone();
        blocking(move || {
            let rows = gets.finish(Some(engine.as_ref()))?;
            let pages = finish_scans(engine.as_ref(), scans)?;
            Ok((rows, pages))
        })
        .await
    }

    /// A Get's work before the tables: the lease granted, the intents settled, the overlay's
    /// answers taken.
    async fn prepare_get(
        &self,
        keys: Vec<Vec<u8>>,
        holder: &[u8],
        length: Duration,
        leased: &[u32],
    ) -> Result<PendingGet> {
        if !leased.is_empty() {
            // Before the read: a write that does not see this lease was visible to the read.
            self.inner.leases.grant(
                holder,
                length,
                leased
                    .iter()
                    .filter_map(|&i| keys.get(i as usize))
                    .map(Vec::as_slice),
            );
        }
        read_resolve::settle(self, &ReadSet::Keys(&keys)).await?;
        let engine_keys: Vec<Vec<u8>> = keys.iter().map(|k| keyspace::key(DATA, k)).collect();
        // The overlay first: a key it has is answered from memory; the others from the tables,
        // which (since the overlay said nothing of them) hold their latest visible value.
        let found = self.inner.overlay.get_many(&engine_keys);
        Ok(PendingGet {
            keys,
            engine_keys,
            found,
        })
    }

    /// Committed rows in `[start, end)` (an empty `end`: to the end), in key order, at most
    /// `limit` (0: the default page); the flag says whether more follow. Waits for (or
    /// finishes) the transactions prepared before the call that will write a key in the range.
    pub async fn scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
        keys_only: bool,
    ) -> Result<(Vec<Row>, bool)> {
        let mut pages = self
            .scan_many(vec![ScanSpec {
                start,
                end,
                limit,
                keys_only,
            }])
            .await?;
        Ok(pages.pop().unwrap_or_default())
    }

    /// Several [`Shard::scan`]s, one page each, in order, with the tables read in one
    /// blocking task for all of them.
    pub async fn scan_many(&self, scans: Vec<ScanSpec>) -> Result<Vec<(Vec<Row>, bool)>> {
        Ok(self
            .read(Vec::new(), &[], Duration::ZERO, &[], scans)
            .await?
            .1)
    }

    /// The scans' work before the tables: intents settled, the overlay's entries taken (`None`:
    /// an empty range).
    async fn prepare_scans(&self, scans: Vec<ScanSpec>) -> Result<Vec<Option<PendingScan>>> {
        let mut work = Vec::with_capacity(scans.len());
        for scan in scans {
            let limit = match scan.limit {
                0 => DEFAULT_SCAN_LIMIT,
                n => (n as usize).min(MAX_SCAN_LIMIT),
            };
            if !scan.end.is_empty() && scan.end <= scan.start {
                work.push(None);
                continue;
            }
            let range = ReadSet::Range {
                start: &scan.start,
                end: (!scan.end.is_empty()).then_some(scan.end.as_slice()),
            };
            read_resolve::settle(self, &range).await?;
            let (start, end) = keyspace::data_range(&scan.start, &scan.end);
            // The overlay's entries first, then the tables: both only move forward, so every
            // row returned is at least as new as it was when the scan looked at the overlay.
            let pending = self.inner.overlay.range(&start, &end, limit + 1);
            work.push(Some(PendingScan {
                start,
                end,
                limit,
                keys_only: scan.keys_only,
                pending,
            }));
        }
        Ok(work)
    }

    /// A single-shard transaction: validated and applied atomically, durable when it returns.
    pub async fn commit(&self, txn_id: Vec<u8>, body: TxnBody) -> Result<CommitOutcome> {
        self.commit_as(&[], txn_id, body).await
    }

    /// A commit by `writer` (the id its read leases carry): answered once the leases other
    /// holders have on the rows it wrote ran out.
    pub async fn commit_as(
        &self,
        writer: &[u8],
        txn_id: Vec<u8>,
        body: TxnBody,
    ) -> Result<CommitOutcome> {
        txn::check_body(&body)?;
        let written: Vec<Vec<u8>> = body.writes.iter().map(|w| w.key.clone()).collect();
        let outcome = self
            .request(|reply| Request::Commit {
                txn_id,
                body,
                reply,
            })
            .await?;
        if matches!(outcome, CommitOutcome::Committed(_)) {
            self.wait_out_leases(writer, &written).await;
        }
        Ok(outcome)
    }

    /// Phase one of two-phase commit on this shard.
    pub async fn prepare(&self, req: PrepareRequest) -> Result<PrepareOutcome> {
        self.prepare_as(&[], req).await
    }

    /// A prepare by `writer`: answered once the leases other holders have on the rows it will
    /// write ran out (readers that come later meet its intent instead of the old rows).
    pub async fn prepare_as(&self, writer: &[u8], req: PrepareRequest) -> Result<PrepareOutcome> {
        check_txn_id(&req.txn_id)?;
        if let Some(body) = &req.body {
            txn::check_body(body)?;
        }
        let written: Vec<Vec<u8>> = req
            .body
            .iter()
            .flat_map(|b| b.writes.iter().map(|w| w.key.clone()))
            .collect();
        let outcome = self
            .request(|reply| Request::Prepare { req, reply })
            .await?;
        if matches!(outcome, PrepareOutcome::Prepared) {
            self.wait_out_leases(writer, &written).await;
        }
        Ok(outcome)
    }

    async fn wait_out_leases(&self, writer: &[u8], written: &[Vec<u8>]) {
        self.inner
            .leases
            .wait_out(writer, written.iter().map(Vec::as_slice))
            .await;
    }

    /// Phase two of two-phase commit on this shard.
    pub async fn decide(&self, txn_id: Vec<u8>, commit: bool) -> Result<DecideOutcome> {
        check_txn_id(&txn_id)?;
        self.request(|reply| Request::Decide {
            txn_id,
            commit,
            reply,
        })
        .await
    }

    /// The outcome of a transaction this shard is the primary of (deciding ABORTED if its
    /// intent expired undecided, or if it was never prepared here).
    pub async fn resolve(&self, txn_id: Vec<u8>) -> Result<ResolveOutcome> {
        check_txn_id(&txn_id)?;
        self.request(|reply| Request::Resolve { txn_id, reply })
            .await
    }

    /// Intents older than the intent timeout.
    pub(crate) fn expired_intents(&self) -> Vec<IntentSummary> {
        self.inner.participant.lock().expired(wall_ms())
    }

    /// The transactions that will write a key of `reads`, prepared at or before `horizon` (none:
    /// before now), and the horizon used.
    pub(crate) fn writers(&self, reads: &ReadSet<'_>, horizon: Option<u64>) -> (u64, Vec<Writer>) {
        let p = self.inner.participant.lock();
        let horizon = horizon.unwrap_or_else(|| p.stamp());
        (horizon, p.writers(reads, horizon))
    }

    /// Returns once every record up to `seq` is durable and visible to reads, or at
    /// `deadline`.
    pub(crate) async fn wait_visible(&self, seq: u64, deadline: Instant) -> Result<()> {
        let mut visible = self.inner.visible_watch.clone();
        let reached = tokio::time::timeout_at(deadline.into(), visible.wait_for(|&a| a >= seq));
        match reached.await {
            Ok(Ok(_)) | Err(_) => Ok(()),
            // The overlay is gone: the shard closed.
            Ok(Err(_)) => Err(Error::Closed),
        }
    }

    /// The applier's test hook.
    #[cfg(test)]
    pub(crate) fn applier_hold(&self) -> &ApplierHold {
        &self.inner.hold
    }

    /// Rows in the read overlay.
    #[cfg(test)]
    pub(crate) fn overlay_rows(&self) -> usize {
        self.inner.overlay.len()
    }

    /// Why the shard stopped accepting writes, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.inner.health.failure()
    }

    pub(crate) fn primaries(&self) -> &Primaries {
        &self.inner.primaries
    }

    /// What the shard is and holds. The intents and the applied seq are taken after everything
    /// logged before the call is visible, so they agree with what reads see; the rows are
    /// counted in the tables once they have caught up with that seq.
    pub async fn status(&self) -> Result<pb::StatusResponse> {
        let summaries = self.request(|reply| Request::Intents { reply }).await?;
        let now = wall_ms();
        let intents = summaries
            .into_iter()
            .map(|i| pb::Intent {
                txn_id: i.txn_id,
                primary_shard: i.primary_shard,
                age_ms: now.saturating_sub(i.prepared_at_ms),
                is_primary: i.is_primary,
            })
            .collect();
        let applied_seq = self.applied_seq();
        let mut tables = self.inner.applied_watch.clone();
        tables
            .wait_for(|&a| a >= applied_seq)
            .await
            .map_err(|_| Error::Closed)?;
        let engine = self.inner.engine.clone();
        let rows = blocking(move || engine.count(&[DATA], Some(&[DATA + 1]))).await?;
        Ok(pb::StatusResponse {
            shard: self.inner.config.shard,
            applied_seq,
            intents,
            rows,
            intent_timeout_ms: self.inner.config.intent_timeout.as_millis() as u64,
            first_retained_seq: self.first_retained_seq(),
            log_bytes: self.inner.segments.total_bytes(),
        })
    }

    /// The oldest seq still in the log: a subscription can start there.
    pub fn first_retained_seq(&self) -> u64 {
        self.inner
            .segments
            .first_seq()
            .unwrap_or_else(|| self.applied_seq() + 1)
    }

    /// Streams the committed changes from `from_seq` on (0: the oldest retained record), then
    /// the new ones as they become durable, until the consumer drops the receiver or the shard
    /// closes (the last item is then [`Error::Closed`]). Fails at once with
    /// [`Error::Trimmed`] if `from_seq` is no longer in the log, or [`Error::InvalidArgument`]
    /// if it is beyond the next sequence. A consumer resumes from its last batch's
    /// `through_seq + 1`.
    pub fn subscribe(&self, from_seq: u64, max_batch: u32) -> Result<Batches> {
        if let Some(why) = self.inner.health.failure() {
            return Err(Error::Failed(why));
        }
        changelog::subscribe(&self.inner.feed, from_seq, max_batch)
    }

    /// Registers `consumer`'s cursor or moves it to `seq`, the first sequence it still needs
    /// (0: the oldest retained record). Durable when it returns. A `seq` no longer in the log
    /// fails with [`Error::Trimmed`]; one beyond the next sequence with
    /// [`Error::InvalidArgument`].
    pub async fn set_cursor(&self, consumer: String, seq: u64) -> Result<()> {
        cursors::check_name(&consumer)?;
        let shard = self.clone();
        blocking(move || {
            let inner = &shard.inner;
            inner.cursors.set(&consumer, seq, |seq| {
                // Under the cursor table's lock: the trimmer cannot delete meanwhile.
                let next = inner.overlay.visible() + 1;
                let first = inner.segments.first_seq().unwrap_or(next);
                if seq > next {
                    return Err(Error::InvalidArgument(format!(
                        "cursor {seq} is beyond the next sequence {next}"
                    )));
                }
                match seq {
                    0 => Ok(first),
                    s if s < first => Err(Error::Trimmed { wanted: s, first }),
                    s => Ok(s),
                }
            })
        })
        .await
    }

    /// Times a subscriber fell behind the live tail and read what it missed from the log.
    pub fn subscriber_lags(&self) -> u64 {
        self.inner.feed.lagged.load(Ordering::Relaxed)
    }

    /// Every registered cursor, by consumer name.
    pub fn list_cursors(&self) -> Vec<Cursor> {
        self.inner.cursors.list()
    }

    /// Removes `consumer`'s cursor (true if it had one); durable when it returns.
    pub async fn delete_cursor(&self, consumer: String) -> Result<bool> {
        let cursors = self.inner.cursors.clone();
        blocking(move || cursors.delete(&consumer)).await
    }

    /// Ends every subscription (their last item is [`Error::Closed`]) and refuses new ones;
    /// the shard goes on serving everything else. A server stopping calls it so that its open
    /// streams do not hold it up.
    pub fn end_subscriptions(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Stops the shard: requests already queued are finished, later ones fail with
    /// [`Error::Closed`], and the tables are flushed durably. The files are released when the
    /// last handle is dropped.
    pub async fn close(&self) -> Result<()> {
        self.end_subscriptions();
        let resolver = self.inner.resolver.lock().take();
        if let Some((stop, task)) = resolver {
            let _ = stop.send(true);
            let _ = task.await;
        }
        // The committer may already be gone (closed before): then there is nothing to stop.
        let _ = self.inner.requests.send(Request::Stop).await;
        let committer = std::mem::take(&mut *self.inner.committer.lock());
        let trimmer = self.inner.trimmer.lock().take();
        blocking(move || {
            for t in committer {
                t.join()
                    .map_err(|_| Error::Internal("committer thread panicked".into()))?;
            }
            if let Some((stop, t)) = trimmer {
                let _ = stop.send(());
                t.join()
                    .map_err(|_| Error::Internal("trimmer thread panicked".into()))?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(
            shard = self.inner.config.shard,
            applied = self.applied_seq(),
            "shard closed"
        );
        Ok(())
    }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
