//! Group commit: the one committer thread that orders every change of a shard, the sync
//! threads that make its log durable, and the applier thread behind them.
//!
//! The committer takes the first waiting request, drains every other one already queued, and
//! runs them in order against the tables plus an overlay of everything logged but not yet
//! applied (so each request sees all those before it, in this group and in earlier ones). It
//! writes the records of the whole group to the log and hands one `fdatasync` for the group to
//! a sync thread, then goes on with the next group at once: with two sync threads, the next
//! group's sync starts while the previous one is still in flight, instead of waiting behind it.
//! The applier takes groups in log order; once a group's sync (and so every earlier one) has
//! returned, it writes the group, with any following groups already synced, into the tables in
//! one atomic batch together with the applied marker, then retires the intents those records
//! decided (their locks go only now, so a reader never finds a key unlocked while its
//! transaction's outcome is missing from the tables), publishes the applied seq, and only then
//! answers their requests. So nothing is answered before its record is durable, the tables
//! never hold a record that is not, and after a failed write nothing later is applied or
//! acknowledged. Last, it hands the applied records to the change stream's live tail
//! (`changelog::Publisher`), which therefore never sees a record that is not durable.

use crate::changelog::{Live, Publisher};
use crate::engine::{Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::hlc::{Hlc, wall_ms};
use crate::intent::{
    self, DecideOutcome, IntentSummary, Participant, PrepareOutcome, ResolveOutcome, Step,
};
use crate::keyspace;
use crate::txn::{self, CommitOutcome, View};
use crate::wal::{self, LogRecord, Op, Wal};
use arbor_proto::metastore::{PrepareRequest, TxnBody};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// At most this many requests form one group, so one group's latency stays bounded.
pub const MAX_GROUP: usize = 4096;
/// Capacity of the request queue in front of the committer.
pub const QUEUE: usize = 8192;
/// Groups logged but not yet applied, at most (back-pressure on the committer).
const APPLY_QUEUE: usize = 4;
/// Groups the applier writes into the tables in one batch, at most.
const MERGE_GROUPS: usize = 8;
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
    /// The open intents, answered once everything logged before is applied (so they agree
    /// with what reads of the tables see).
    Intents { reply: Reply<Vec<IntentSummary>> },
    /// Finish the current group and exit.
    Stop,
}

/// An answer waiting for its group to be durable and applied. Called with the reason the group
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

/// Engine writes logged but not yet applied, each with the seq of its record.
#[derive(Debug, Default)]
struct Overlay {
    rows: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>,
    pruned_at: u64,
}

impl Overlay {
    /// Forgets what the tables now hold (records at or below `applied`).
    fn prune(&mut self, applied: u64) {
        if applied > self.pruned_at {
            self.rows.retain(|_, (seq, _)| *seq > applied);
            self.pruned_at = applied;
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

/// A logged group on its way to the tables.
struct Group {
    batch: WriteBatch,
    last_seq: u64,
    dones: Vec<Done>,
    /// The group's log records, for the change stream once they are applied.
    logged: Vec<LogRecord>,
    failed: Option<String>,
    /// The group's log sync, while it may still be in flight (none: nothing to sync).
    sync: Option<SyncTicket>,
}

impl Group {
    /// Waits for the group's sync (if `wait`) and records its failure. Returns whether the
    /// group's records are known durable or failed.
    fn synced(&mut self, wait: bool) -> bool {
        let Some(ticket) = &self.sync else {
            return true;
        };
        let result = if wait {
            ticket.recv().map_err(|_| ())
        } else {
            match ticket.try_recv() {
                Ok(r) => Ok(r),
                Err(std::sync::mpsc::TryRecvError::Empty) => return false,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(()),
            }
        };
        self.sync = None;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(why)) => self.failed = Some(why),
            Err(()) => self.failed = Some("log sync thread gone".into()),
        }
        true
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
    pub applied: Arc<AtomicU64>,
    /// Told every new applied seq, for readers waiting on a decision being applied.
    pub applied_watch: watch::Sender<u64>,
    pub stats: Arc<Stats>,
    pub health: Health,
    /// The change stream's live tail, fed by the applier.
    pub live: Live,
}

/// What the committer is building for the current group.
#[derive(Default)]
struct Building {
    frames: Vec<u8>,
    batch: WriteBatch,
    dones: Vec<Done>,
    logged: Vec<LogRecord>,
    first_seq: u64,
    records: u64,
}

impl Committer {
    /// Runs the committer and the applier until a `Stop` request or until every sender is gone.
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
        let (tx, rx) = std::sync::mpsc::sync_channel::<Group>(APPLY_QUEUE);
        let applier = Applier {
            publisher: Publisher::new(self.live.clone(), self.applied.load(Ordering::Acquire)),
            engine: self.engine.clone(),
            applied: self.applied.clone(),
            applied_watch: self.applied_watch.clone(),
            participant: self.participant.clone(),
            health: self.health.clone(),
            stats: self.stats.clone(),
        };
        let applier = std::thread::Builder::new()
            .name(format!("arbor-apply-{shard}"))
            .spawn(move || applier.run(rx))?;
        let committer = std::thread::Builder::new()
            .name(format!("arbor-commit-{shard}"))
            .spawn(move || self.run(tx, sync_tx))?;
        // The committer first: joining it in order means the others are done when it is.
        threads.insert(0, committer);
        threads.push(applier);
        Ok(threads)
    }

    fn run(
        mut self,
        to_applier: std::sync::mpsc::SyncSender<Group>,
        to_syncer: std::sync::mpsc::SyncSender<SyncJob>,
    ) {
        let mut overlay = Overlay::default();
        let mut stopping = false;
        while !stopping {
            let Some(first) = self.rx.blocking_recv() else {
                break;
            };
            let mut requests = vec![first];
            while requests.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            overlay.prune(self.applied.load(Ordering::Acquire));
            let group = self.group(requests, &mut overlay, &mut stopping, &to_syncer);
            if to_applier.send(group).is_err() {
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
        let mut b = Building {
            first_seq: self.next_seq,
            ..Default::default()
        };
        if let Some(why) = self.health.failure() {
            for r in requests {
                if let Some(d) = refuse(r) {
                    b.dones.push(d);
                }
            }
            return Group {
                batch: WriteBatch::default(),
                last_seq: self.next_seq - 1,
                dones: b.dones,
                logged: Vec::new(),
                failed: Some(why),
                sync: None,
            };
        }
        // The participant is locked per request, not per group: readers look at its locks
        // between requests, and the applier retires decided intents meanwhile (their records
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
        Group {
            batch: b.batch,
            last_seq,
            dones: b.dones,
            logged: b.logged,
            failed,
            sync,
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
            overlay.rows.insert(k.clone(), (seq, v.clone()));
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
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        // The applier may be gone after a failure; nothing waits for this answer then.
        let _ = job.done.send(result);
    }
}

/// The applier's state; lives on its own thread.
struct Applier {
    publisher: Publisher,
    engine: Arc<dyn Engine>,
    applied: Arc<AtomicU64>,
    applied_watch: watch::Sender<u64>,
    participant: Arc<Mutex<Participant>>,
    health: Health,
    stats: Arc<Stats>,
}

impl Applier {
    fn run(self, rx: std::sync::mpsc::Receiver<Group>) {
        let Applier {
            mut publisher,
            engine,
            applied,
            applied_watch,
            participant,
            health,
            stats,
        } = self;
        let mut queue: std::collections::VecDeque<Group> = std::collections::VecDeque::new();
        // Once a group fails, no later group may be applied or acknowledged: it was validated
        // against the failed one.
        let mut dead: Option<String> = None;
        loop {
            if queue.is_empty() {
                match rx.recv() {
                    Ok(g) => queue.push_back(g),
                    Err(_) => return,
                }
            }
            while queue.len() < MERGE_GROUPS {
                match rx.try_recv() {
                    Ok(g) => queue.push_back(g),
                    Err(_) => break,
                }
            }
            // Log order: the first group waits for its sync; following groups whose syncs have
            // already returned go in the same batch (one batch, one marker, all or nothing).
            let mut ready = Vec::new();
            while let Some(mut g) = queue.pop_front() {
                if !g.synced(ready.is_empty()) {
                    queue.push_front(g);
                    break;
                }
                ready.push(g);
            }
            // Groups before the first failed one are durable and go to the tables.
            let first_failed = ready.iter().position(|g| g.failed.is_some());
            let good = if dead.is_some() {
                0
            } else {
                first_failed.unwrap_or(ready.len())
            };
            let mut batch = WriteBatch::default();
            let mut last_seq = None;
            let mut logged = Vec::new();
            for g in &mut ready[..good] {
                if !g.batch.is_empty() {
                    batch.ops.append(&mut g.batch.ops);
                    logged.append(&mut g.logged);
                    last_seq = Some(g.last_seq);
                }
            }
            let mut apply_failed = None;
            let mut to_publish = None;
            if let Some(last_seq) = last_seq {
                let applying = Instant::now();
                keyspace::mark_applied(&mut batch, last_seq);
                match engine.apply(batch) {
                    Ok(()) => {
                        applied.store(last_seq, Ordering::Release);
                        participant.lock().retire_applied(last_seq);
                        // Readers find no retired intent from now on, and whoever waited for one
                        // to be applied goes on.
                        applied_watch.send_replace(last_seq);
                        add_elapsed(&stats.apply_us, applying);
                        stats.applies.fetch_add(1, Ordering::Relaxed);
                        to_publish = Some((last_seq, std::mem::take(&mut logged)));
                    }
                    // The records are durable in the log and will be replayed at the next open;
                    // until then the tables are behind.
                    Err(e) => apply_failed = Some(format!("applying to the tables failed: {e}")),
                }
            }
            if dead.is_none()
                && let Some(why) = apply_failed
                    .clone()
                    .or_else(|| first_failed.and_then(|i| ready[i].failed.clone()))
            {
                health.fail(why.clone());
                dead = Some(why);
            }
            for (i, g) in ready.into_iter().enumerate() {
                let failed = if i < good && apply_failed.is_none() {
                    None
                } else {
                    dead.as_deref()
                };
                for d in g.dones {
                    d(failed);
                }
            }
            // After the answers: subscribers are not on the commit path.
            if let Some((last_seq, logged)) = to_publish {
                publisher.publish(last_seq, logged);
            }
        }
    }
}
