//! Group commit: the one committer thread that orders every change of a shard, the sync
//! threads that make its log durable, the completer that answers, and the applier behind it.
//!
//! The committer takes the first waiting request, drains every other one already queued, and
//! runs them in order against the tables plus its own overlay of everything logged but not yet
//! applied (so each request sees all those before it, in this group and in earlier ones). It
//! writes the records of the whole group to the log and hands one `fdatasync` for the group to
//! a sync thread, then goes on with the next group at once: with two sync threads, the next
//! group's sync starts while the previous one is still in flight, instead of waiting behind it.
//!
//! The completer takes groups in log order and waits for each one's sync (and so every earlier
//! one). Once it returned, it makes the group's user rows visible to readers in the read
//! overlay (`overlay::ReadOverlay`) and moves the visible seq, retires the intents those
//! records decided (their rows are visible now, so readers need not wait for them), and only
//! then answers the group's requests and feeds the change stream's live tail. So nothing is
//! answered or read before its record is durable, and after a failed write nothing later is
//! made visible or acknowledged.
//!
//! The applier, off the commit path, writes the visible groups into the tables, several in one
//! atomic batch together with the applied marker, and then drops their rows from the read
//! overlay. Rows logged but not yet applied are bounded (`overlay::Backlog`): when the applier
//! falls behind, the committer waits before its next group, and requests queue up in front.

use crate::changelog::{Live, Publisher};
use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::hlc::{Hlc, wall_ms};
use crate::intent::{
    self, DecideOutcome, IntentSummary, Participant, PrepareOutcome, ResolveOutcome, Step,
};
use crate::keyspace::{self, DATA};
use crate::metrics;
use crate::overlay::{self, Backlog, ReadOverlay};
use crate::txn::{self, CommitOutcome, View};
use crate::wal::{self, LogRecord, Op, Wal};
use arbor_proto::metastore::{PrepareRequest, TxnBody};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// At most this many requests form one group, so one group's latency stays bounded.
pub const MAX_GROUP: usize = 4096;
/// Capacity of the request queue in front of the committer.
pub const QUEUE: usize = 8192;
/// Groups logged whose sync the completer has not yet seen, at most (back-pressure on the
/// committer while the log's syncs fall behind).
const SYNC_QUEUE: usize = 4;
/// The applier stops merging groups into one table batch past this many writes: sled's cost
/// per write grows with the batch (and with the memory a huge batch churns through).
const APPLY_BATCH_OPS: usize = 2048;
/// Below this many writes, the applier waits up to [`APPLY_LINGER`] for more: fewer, fuller
/// batches cost less per write and wake the applier less often on a busy machine.
const APPLY_MIN_OPS: usize = 512;
const APPLY_LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// Log syncs in flight at once, at most (one per sync thread).
const SYNC_THREADS: usize = 2;

pub type Reply<T> = oneshot::Sender<Result<T>>;

/// Everything that changes a shard, in the order the committer sees it.
pub enum Request {
    Commit {
        txn_id: Vec<u8>,
        body: TxnBody,
        reply: Reply<CommitOutcome>,
    },
    Prepare {
        req: PrepareRequest,
        reply: Reply<PrepareOutcome>,
    },
    Decide {
        txn_id: Vec<u8>,
        commit: bool,
        reply: Reply<DecideOutcome>,
    },
    Resolve {
        txn_id: Vec<u8>,
        reply: Reply<ResolveOutcome>,
    },
    /// Drop the transaction records of these ids that are still older than `cutoff_ms`.
    Sweep {
        txn_ids: Vec<Vec<u8>>,
        cutoff_ms: u64,
        reply: Reply<usize>,
    },
    /// The open intents, answered once everything logged before is visible (so they agree
    /// with what reads see).
    Intents { reply: Reply<Vec<IntentSummary>> },
    /// Finish the current group and exit.
    Stop,
}

/// An answer waiting for its group to be durable. Called with the reason the group
/// failed, if it did.
type Done = Box<dyn FnOnce(Option<&str>) + Send>;

fn done<T: Send + 'static>(reply: Reply<T>, outcome: Result<T>) -> Done {
    Box::new(move |failed| {
        let outcome = match failed {
            Some(why) => Err(Error::Failed(why.to_string())),
            None => outcome,
        };
        // The caller may have given up waiting; nothing to do then.
        let _ = reply.send(outcome);
    })
}

/// Counters of the committer's work, for status and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub groups: AtomicU64,
    pub requests: AtomicU64,
    pub records: AtomicU64,
    pub syncs: AtomicU64,
    /// Microseconds spent validating and encoding groups.
    pub build_us: AtomicU64,
    /// Microseconds the committer spent writing groups into the log (page cache).
    pub write_us: AtomicU64,
    /// Microseconds the sync threads spent in `fdatasync`.
    pub sync_us: AtomicU64,
    /// Microseconds spent applying groups to the tables.
    pub apply_us: AtomicU64,
    /// Batches applied to the tables (each one or more groups).
    pub applies: AtomicU64,
}

fn add_elapsed(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
}

/// Set once a write to the log or the tables failed; then the shard refuses everything.
#[derive(Debug, Default, Clone)]
pub struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    pub fn failure(&self) -> Option<String> {
        self.0.lock().clone()
    }

    fn fail(&self, why: String) {
        tracing::error!(%why, "shard stopped accepting writes");
        self.0.lock().get_or_insert(why);
    }
}

/// Engine writes logged but not yet applied, each with the seq of its record: the committer's
/// own view of what its earlier records changed (intents and transaction records included,
/// and records not yet synced).
#[derive(Debug, Default)]
struct Overlay {
    rows: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>,
    /// Every write in log order, to prune without walking the whole map.
    order: VecDeque<(u64, Vec<u8>)>,
}

impl Overlay {
    fn insert(&mut self, key: Vec<u8>, seq: u64, value: Option<Vec<u8>>) {
        self.order.push_back((seq, key.clone()));
        self.rows.insert(key, (seq, value));
    }

    /// Forgets what the tables now hold (records at or below `applied`).
    fn prune(&mut self, applied: u64) {
        while let Some((seq, _)) = self.order.front()
            && *seq <= applied
        {
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if self.rows.get(&key).is_some_and(|(s, _)| *s <= applied) {
                self.rows.remove(&key);
            }
        }
    }
}

/// The tables seen through the overlay.
struct OverlayView<'a> {
    engine: &'a dyn Engine,
    overlay: &'a Overlay,
}

impl View for OverlayView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay.rows.get(key) {
            Some((_, v)) => Ok(v.clone()),
            None => self.engine.get(key),
        }
    }

    fn first_under(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut deleted = 0;
        for (k, (_, v)) in self
            .overlay
            .rows
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            if v.is_some() {
                return Ok(Some(k.clone()));
            }
            deleted += 1;
        }
        // Every overlay entry under the prefix is a delete: among the first `deleted + 1`
        // rows of the tables there, one survives if any does.
        let end = keyspace::prefix_end(prefix);
        for (k, _) in self.engine.scan(prefix, end.as_deref(), deleted + 1)? {
            if !self.overlay.rows.contains_key(&k) {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }
}

/// The result of a group's log sync, once it returned.
type SyncTicket = std::sync::mpsc::Receiver<Result<(), String>>;

/// A logged group on its way to its answers and the tables.
struct Group {
    batch: WriteBatch,
    /// The group's user-row writes with the seq of their record, for the read overlay.
    visible: Vec<(Vec<u8>, u64, Option<Vec<u8>>)>,
    last_seq: u64,
    dones: Vec<Done>,
    /// The group's log records, for the change stream once they are durable.
    logged: Vec<LogRecord>,
    failed: Option<String>,
    /// The group's log sync, while it may still be in flight (none: nothing to sync).
    sync: Option<SyncTicket>,
    /// What the group adds to the backlog.
    bytes: usize,
}

impl Group {
    /// Waits for the group's sync and records its failure.
    fn wait_synced(&mut self) {
        let Some(ticket) = self.sync.take() else {
            return;
        };
        match ticket.recv() {
            Ok(Ok(())) => {}
            Ok(Err(why)) => self.failed = Some(why),
            Err(_) => self.failed = Some("log sync thread gone".into()),
        }
    }
}

/// One `fdatasync` of the log, for one group.
struct SyncJob {
    file: Arc<std::fs::File>,
    done: std::sync::mpsc::SyncSender<Result<(), String>>,
}

/// The committer's state; lives on its own thread.
pub struct Committer {
    pub rx: mpsc::Receiver<Request>,
    pub engine: Arc<dyn Engine>,
    pub wal: Wal,
    pub participant: Arc<Mutex<Participant>>,
    pub next_seq: u64,
    pub hlc: Hlc,
    /// The highest seq the tables hold, set by the applier.
    pub applied: Arc<AtomicU64>,
    /// Told every new applied seq (for status, which counts rows in the tables).
    pub applied_watch: watch::Sender<u64>,
    /// What readers see of the records synced but not yet applied.
    pub overlay: Arc<ReadOverlay>,
    /// Rows logged and not yet applied, against their bound.
    pub backlog: Arc<Backlog>,
    /// Lets tests hold the applier back.
    pub hold: Arc<ApplierHold>,
    pub stats: Arc<Stats>,
    pub health: Health,
    /// The change stream's live tail, fed by the completer.
    pub live: Live,
}

/// What the committer is building for the current group.
#[derive(Default)]
struct Building {
    frames: Vec<u8>,
    batch: WriteBatch,
    visible: Vec<(Vec<u8>, u64, Option<Vec<u8>>)>,
    dones: Vec<Done>,
    logged: Vec<LogRecord>,
    first_seq: u64,
    records: u64,
    bytes: usize,
}

impl Committer {
    /// Runs the committer, the sync threads, the completer and the applier until a `Stop`
    /// request or until every sender is gone.
    pub fn spawn(self, shard: u32) -> Result<Vec<std::thread::JoinHandle<()>>> {
        let mut threads = Vec::new();
        let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel::<SyncJob>(0);
        let sync_rx = Arc::new(Mutex::new(sync_rx));
        for i in 0..SYNC_THREADS {
            let jobs = sync_rx.clone();
            let stats = self.stats.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("arbor-sync-{shard}-{i}"))
                    .spawn(move || run_syncer(jobs, stats))?,
            );
        }
        // Unbounded: what waits for the applier is bounded by the backlog instead.
        let (apply_tx, apply_rx) = std::sync::mpsc::channel::<Applying>();
        let applier = Applier {
            engine: self.engine.clone(),
            applied: self.applied.clone(),
            applied_watch: self.applied_watch.clone(),
            overlay: self.overlay.clone(),
            backlog: self.backlog.clone(),
            hold: self.hold.clone(),
            health: self.health.clone(),
            stats: self.stats.clone(),
        };
        let applier = std::thread::Builder::new()
            .name(format!("arbor-apply-{shard}"))
            .spawn(move || applier.run(apply_rx))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Group>(SYNC_QUEUE);
        let completer = Completer {
            publisher: Publisher::new(self.live.clone(), self.overlay.visible()),
            overlay: self.overlay.clone(),
            participant: self.participant.clone(),
            health: self.health.clone(),
            backlog: self.backlog.clone(),
            to_applier: apply_tx,
        };
        let completer = std::thread::Builder::new()
            .name(format!("arbor-complete-{shard}"))
            .spawn(move || completer.run(rx))?;
        let committer = std::thread::Builder::new()
            .name(format!("arbor-commit-{shard}"))
            .spawn(move || self.run(tx, sync_tx))?;
        // The committer first: joining them in order means each one's feeder is done.
        threads.insert(0, committer);
        threads.push(completer);
        threads.push(applier);
        Ok(threads)
    }

    fn run(
        mut self,
        to_completer: std::sync::mpsc::SyncSender<Group>,
        to_syncer: std::sync::mpsc::SyncSender<SyncJob>,
    ) {
        let mut overlay = Overlay::default();
        let mut stopping = false;
        while !stopping {
            let Some(first) = self.rx.blocking_recv() else {
                break;
            };
            // Back-pressure: while the tables are too far behind, no new group starts (its
            // rows would only grow what waits for the applier).
            let health = self.health.clone();
            if !self.backlog.wait_room(|| health.failure().is_some()) && health.failure().is_none()
            {
                health.fail("the table applier stopped".into());
            }
            let mut requests = vec![first];
            while requests.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            overlay.prune(self.applied.load(Ordering::Acquire));
            let group = self.group(requests, &mut overlay, &mut stopping, &to_syncer);
            if to_completer.send(group).is_err() {
                break;
            }
        }
        // Requests still queued are dropped: their callers see the shard closed.
        self.rx.close();
    }

    fn group(
        &mut self,
        requests: Vec<Request>,
        overlay: &mut Overlay,
        stopping: &mut bool,
        to_syncer: &std::sync::mpsc::SyncSender<SyncJob>,
    ) -> Group {
        let started = Instant::now();
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats
            .requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        metrics::GROUP_REQUESTS.observe(requests.len() as f64);
        let mut b = Building {
            first_seq: self.next_seq,
            ..Default::default()
        };
        if let Some(why) = self.health.failure() {
            for r in requests {
                match refuse(r) {
                    Some(d) => b.dones.push(d),
                    None => *stopping = true,
                }
            }
            return Group {
                batch: WriteBatch::default(),
                visible: Vec::new(),
                last_seq: self.next_seq - 1,
                dones: b.dones,
                logged: Vec::new(),
                failed: Some(why),
                sync: None,
                bytes: 0,
            };
        }
        // The participant is locked per request, not per group: readers look at its locks
        // between requests, and the completer retires decided intents meanwhile (their records
        // precede everything still to be validated here, so that changes no outcome).
        let participant = self.participant.clone();
        for r in requests {
            match r {
                Request::Stop => *stopping = true,
                Request::Intents { reply } => b
                    .dones
                    .push(done(reply, Ok(participant.lock().summaries()))),
                Request::Commit {
                    txn_id,
                    body,
                    reply,
                } => {
                    let result = {
                        let view = OverlayView {
                            engine: &*self.engine,
                            overlay,
                        };
                        txn::commit(body, &view, participant.lock().locks())
                    };
                    let label = match &result {
                        Err(_) => "error",
                        Ok(Err(_)) => "conflict",
                        Ok(Ok(_)) => "committed",
                    };
                    metrics::COMMITS.with_label_values(&[label]).inc();
                    let outcome = match result {
                        Err(e) => Err(e),
                        Ok(Err(c)) => Ok(CommitOutcome::Conflict(c)),
                        // A commit that only validates reads changes nothing: it is answered
                        // with the last seq, once that is durable.
                        Ok(Ok(ops)) if ops.is_empty() => {
                            Ok(CommitOutcome::Committed(self.next_seq - 1))
                        }
                        Ok(Ok(ops)) => Ok(CommitOutcome::Committed(
                            self.emit(&mut b, overlay, txn_id, ops),
                        )),
                    };
                    b.dones.push(done(reply, outcome));
                }
                Request::Prepare { req, reply } => {
                    let txn_id = req.txn_id.clone();
                    let result = {
                        let view = OverlayView {
                            engine: &*self.engine,
                            overlay,
                        };
                        participant.lock().prepare(req, &view, wall_ms())
                    };
                    metrics::TWO_PHASE.with_label_values(&["prepare"]).inc();
                    let outcome = self.step(&mut b, overlay, txn_id, result);
                    b.dones.push(done(reply, outcome));
                }
                Request::Decide {
                    txn_id,
                    commit,
                    reply,
                } => {
                    let result = {
                        let view = OverlayView {
                            engine: &*self.engine,
                            overlay,
                        };
                        participant
                            .lock()
                            .decide(&txn_id, commit, &view, wall_ms(), self.next_seq)
                    };
                    let step = if commit { "commit" } else { "abort" };
                    metrics::TWO_PHASE.with_label_values(&[step]).inc();
                    let outcome = self.step(&mut b, overlay, txn_id, result);
                    b.dones.push(done(reply, outcome));
                }
                Request::Resolve { txn_id, reply } => {
                    let result = {
                        let view = OverlayView {
                            engine: &*self.engine,
                            overlay,
                        };
                        participant
                            .lock()
                            .resolve(&txn_id, &view, wall_ms(), self.next_seq)
                    };
                    metrics::TWO_PHASE.with_label_values(&["resolve"]).inc();
                    let outcome = self.step(&mut b, overlay, txn_id, result);
                    b.dones.push(done(reply, outcome));
                }
                Request::Sweep {
                    txn_ids,
                    cutoff_ms,
                    reply,
                } => {
                    let result = {
                        let view = OverlayView {
                            engine: &*self.engine,
                            overlay,
                        };
                        intent::sweep(&txn_ids, cutoff_ms, &view)
                    };
                    let outcome = result.map(|ops| {
                        let n = ops.len();
                        Step { ops, outcome: n }
                    });
                    let outcome = self.step(&mut b, overlay, Vec::new(), outcome);
                    b.dones.push(done(reply, outcome));
                }
            }
        }
        add_elapsed(&self.stats.build_us, started);
        let last_seq = self.next_seq - 1;
        let mut failed = None;
        let mut sync = None;
        if b.records > 0 {
            let writing = Instant::now();
            let written = self.wal.append(b.first_seq, last_seq, &b.frames);
            add_elapsed(&self.stats.write_us, writing);
            self.stats.records.fetch_add(b.records, Ordering::Relaxed);
            match written {
                Ok(()) => {
                    let (done, ticket) = std::sync::mpsc::sync_channel(1);
                    let job = SyncJob {
                        file: self.wal.active_file(),
                        done,
                    };
                    // Blocks while every sync thread is busy: requests queue up meanwhile and
                    // make the next group larger.
                    if to_syncer.send(job).is_ok() {
                        sync = Some(ticket);
                    } else {
                        failed = Some("log sync threads gone".to_string());
                    }
                }
                Err(e) => failed = Some(format!("log write failed: {e}")),
            }
            if let Some(why) = &failed {
                self.health.fail(why.clone());
            }
        }
        self.backlog.add(b.batch.ops.len(), b.bytes);
        Group {
            batch: b.batch,
            visible: b.visible,
            last_seq,
            dones: b.dones,
            logged: b.logged,
            failed,
            sync,
            bytes: b.bytes,
        }
    }

    /// Logs the operations of a participant step (if any) and returns its outcome.
    fn step<T>(
        &mut self,
        b: &mut Building,
        overlay: &mut Overlay,
        txn_id: Vec<u8>,
        result: Result<Step<T>>,
    ) -> Result<T> {
        let step = result?;
        if !step.ops.is_empty() {
            self.emit(b, overlay, txn_id, step.ops);
        }
        Ok(step.outcome)
    }

    /// Gives `ops` the next seq: encodes the record into the group's log bytes, and its engine
    /// writes into the group's batch and the overlay. Returns the seq.
    fn emit(
        &mut self,
        b: &mut Building,
        overlay: &mut Overlay,
        txn_id: Vec<u8>,
        ops: Vec<Op>,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let record = LogRecord {
            seq,
            hlc: self.hlc.now(),
            txn_id,
            ops,
        };
        wal::encode(&record, &mut b.frames);
        for (k, v) in keyspace::mutations(&record) {
            b.bytes += overlay::write_bytes(&k, &v);
            if k.first() == Some(&DATA) {
                b.visible.push((k.clone(), seq, v.clone()));
            }
            overlay.insert(k.clone(), seq, v.clone());
            b.batch.ops.push((k, v));
        }
        b.logged.push(record);
        b.records += 1;
        seq
    }
}

/// The answer for a request refused because the shard has failed.
fn refuse(r: Request) -> Option<Done> {
    Some(match r {
        Request::Commit { reply, .. } => done(reply, Err(Error::Closed)),
        Request::Prepare { reply, .. } => done(reply, Err(Error::Closed)),
        Request::Decide { reply, .. } => done(reply, Err(Error::Closed)),
        Request::Resolve { reply, .. } => done(reply, Err(Error::Closed)),
        Request::Sweep { reply, .. } => done(reply, Err(Error::Closed)),
        Request::Intents { reply } => done(reply, Err(Error::Closed)),
        Request::Stop => return None,
    })
}

fn run_syncer(jobs: Arc<Mutex<std::sync::mpsc::Receiver<SyncJob>>>, stats: Arc<Stats>) {
    loop {
        let job = match jobs.lock().recv() {
            Ok(job) => job,
            // The committer is gone.
            Err(_) => return,
        };
        let syncing = Instant::now();
        let result = job
            .file
            .sync_data()
            .map_err(|e| format!("log sync failed: {e}"));
        add_elapsed(&stats.sync_us, syncing);
        metrics::FDATASYNC_SECONDS.observe(syncing.elapsed().as_secs_f64());
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        // The applier may be gone after a failure; nothing waits for this answer then.
        let _ = job.done.send(result);
    }
}

/// The completer's state; lives on its own thread.
struct Completer {
    publisher: Publisher,
    overlay: Arc<ReadOverlay>,
    participant: Arc<Mutex<Participant>>,
    health: Health,
    backlog: Arc<Backlog>,
    to_applier: std::sync::mpsc::Sender<Applying>,
}

impl Completer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Group>) {
        // Once a group fails, no later group may be made visible or acknowledged: it was
        // validated against the failed one.
        let mut dead: Option<String> = None;
        let mut applier_gone = false;
        while let Ok(mut g) = rx.recv() {
            // Log order: each group waits for its own sync, so for every earlier one too.
            g.wait_synced();
            if dead.is_none()
                && let Some(why) = &g.failed
            {
                self.health.fail(why.clone());
                dead = Some(why.clone());
            }
            if let Some(why) = &dead {
                for d in g.dones {
                    d(Some(why));
                }
                // These rows will never reach the tables.
                self.backlog.release(g.batch.ops.len(), g.bytes);
                continue;
            }
            self.overlay
                .publish(std::mem::take(&mut g.visible), g.last_seq);
            // The decided transactions' rows are visible now: their locks can go, and readers
            // that waited on them go on.
            self.participant.lock().retire_through(g.last_seq);
            for d in g.dones {
                d(None);
            }
            if g.batch.is_empty() {
                continue;
            }
            // After the answers: subscribers are not on the commit path.
            self.publisher.publish(g.last_seq, g.logged);
            let applying = Applying {
                batch: g.batch,
                last_seq: g.last_seq,
                bytes: g.bytes,
            };
            if self.to_applier.send(applying).is_err() && !applier_gone {
                // The rows stay visible in the overlay and durable in the log; the next open
                // replays them into the tables.
                applier_gone = true;
                tracing::warn!("the table applier is gone; the tables fall behind the log");
            }
        }
    }
}

/// Durable, visible writes on their way into the tables.
struct Applying {
    batch: WriteBatch,
    last_seq: u64,
    bytes: usize,
}

/// Test hook: holds the applier back (its groups stay in the overlay) or makes it stop as if
/// the process died before the tables got them.
#[derive(Debug, Default)]
pub struct ApplierHold {
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct HoldState {
    paused: bool,
    crashed: bool,
}

impl ApplierHold {
    /// The applier writes nothing into the tables until [`ApplierHold::resume`].
    pub fn pause(&self) {
        self.state.lock().paused = true;
    }

    pub fn resume(&self) {
        self.state.lock().paused = false;
        self.changed.notify_all();
    }

    /// The applier stops at once and drops what it holds, as a crash would.
    pub fn crash(&self) {
        self.state.lock().crashed = true;
        self.changed.notify_all();
    }

    /// Waits while paused; false once crashed.
    fn proceed(&self) -> bool {
        let mut s = self.state.lock();
        while s.paused && !s.crashed {
            self.changed.wait(&mut s);
        }
        !s.crashed
    }
}

/// The applier's state; lives on its own thread.
struct Applier {
    engine: Arc<dyn Engine>,
    applied: Arc<AtomicU64>,
    applied_watch: watch::Sender<u64>,
    overlay: Arc<ReadOverlay>,
    backlog: Arc<Backlog>,
    hold: Arc<ApplierHold>,
    health: Health,
    stats: Arc<Stats>,
}

impl Applier {
    fn run(self, rx: std::sync::mpsc::Receiver<Applying>) {
        self.apply_all(rx);
        // Nothing will be released any more: a committer waiting for room must not wait forever.
        self.backlog.close();
    }

    fn apply_all(&self, rx: std::sync::mpsc::Receiver<Applying>) {
        while let Ok(first) = rx.recv() {
            if !self.hold.proceed() {
                return;
            }
            // Everything already waiting goes in one batch (one marker, all or nothing).
            let mut last_seq = first.last_seq;
            let mut bytes = first.bytes;
            let mut batch = first.batch;
            let linger_until = Instant::now() + APPLY_LINGER;
            while batch.ops.len() < APPLY_BATCH_OPS {
                let next = if batch.ops.len() < APPLY_MIN_OPS {
                    rx.recv_timeout(linger_until.saturating_duration_since(Instant::now()))
                        .ok()
                } else {
                    rx.try_recv().ok()
                };
                let Some(mut next) = next else {
                    break;
                };
                batch.ops.append(&mut next.batch.ops);
                last_seq = next.last_seq;
                bytes += next.bytes;
            }
            let rows = batch.ops.len();
            let applying = Instant::now();
            keyspace::mark_applied(&mut batch, last_seq);
            if let Err(e) = self.engine.apply(&batch) {
                // The records are durable in the log, visible in the overlay, and will be
                // replayed at the next open; until then the tables stay behind.
                self.health
                    .fail(format!("applying to the tables failed: {e}"));
                return;
            }
            self.applied.store(last_seq, Ordering::Release);
            self.applied_watch.send_replace(last_seq);
            let data_keys = batch
                .ops
                .iter()
                .map(|(k, _)| k.as_slice())
                .filter(|k| k.first() == Some(&DATA));
            self.overlay.forget(data_keys, last_seq);
            self.backlog.release(rows, bytes);
            add_elapsed(&self.stats.apply_us, applying);
            self.stats.applies.fetch_add(1, Ordering::Relaxed);
        }
    }
}
