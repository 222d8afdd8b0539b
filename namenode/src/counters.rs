//! What this namenode asked of the shards, counted: point-read and scan RPCs, and commits by
//! the operation that made them (its transaction label) and by kind, single-shard or
//! two-phase. These are the figures that tell how many durable rounds an operation costs:
//! one single-shard commit is one synced round on one shard, a two-phase commit two. The same
//! counts go to Prometheus (`arbor_namenode_shard_requests_total` per shard and kind,
//! `arbor_namenode_transactions_total` by kind and outcome), through counters resolved once
//! here, so the hot path neither formats labels nor looks them up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_proto::metrics::prometheus::IntCounter;
use parking_lot::Mutex;

use crate::metrics::{SHARD_REQUESTS, TRANSACTIONS};
use crate::txn::TxnError;

/// A call sent to a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Get = 0,
    Scan = 1,
    Commit = 2,
    Prepare = 3,
}

const CALLS: [&str; 4] = ["get", "scan", "commit", "prepare"];
const OUTCOMES: [&str; 4] = ["committed", "conflict", "unknown", "failed"];

/// Commits of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitCount {
    pub single_shard: u64,
    pub two_phase: u64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub gets: u64,
    pub scans: u64,
    pub commits: BTreeMap<String, CommitCount>,
}

pub struct Counters {
    gets: AtomicU64,
    scans: AtomicU64,
    commits: Mutex<BTreeMap<&'static str, CommitCount>>,
    /// Per shard, the Prometheus counter of each [`Call`].
    sent: Vec<[IntCounter; 4]>,
    /// Single-shard and two-phase transactions, by outcome (as [`OUTCOMES`]).
    finished: [[IntCounter; 4]; 2],
}

impl Counters {
    /// The counters of a store over `shards` shards.
    pub fn new(shards: usize) -> Counters {
        let sent = (0..shards)
            .map(|i| {
                let shard = i.to_string();
                CALLS.map(|c| SHARD_REQUESTS.with_label_values(&[shard.as_str(), c]))
            })
            .collect();
        let finished = ["single_shard", "two_phase"]
            .map(|kind| OUTCOMES.map(|o| TRANSACTIONS.with_label_values(&[kind, o])));
        Counters {
            gets: AtomicU64::new(0),
            scans: AtomicU64::new(0),
            commits: Mutex::default(),
            sent,
            finished,
        }
    }

    /// A `call` went to `shard`.
    pub fn sent(&self, shard: u32, call: Call) {
        match call {
            Call::Get => self.gets.fetch_add(1, Ordering::Relaxed),
            Call::Scan => self.scans.fetch_add(1, Ordering::Relaxed),
            Call::Commit | Call::Prepare => 0,
        };
        if let Some(c) = self.sent.get(shard as usize) {
            c[call as usize].inc();
        }
    }

    /// A commit over `participants` shards ended with `result`.
    pub fn finished(&self, participants: usize, result: &Result<(), TxnError>) {
        let outcome = match result {
            Ok(()) => 0,
            Err(TxnError::Conflict(_)) => 1,
            Err(TxnError::Unknown(_)) => 2,
            Err(_) => 3,
        };
        self.finished[usize::from(participants > 1)][outcome].inc();
    }

    /// A commit of `label` over `participants` shards was attempted.
    pub fn commit(&self, label: &'static str, participants: usize) {
        let mut commits = self.commits.lock();
        let c = commits.entry(label).or_default();
        if participants > 1 {
            c.two_phase += 1;
        } else {
            c.single_shard += 1;
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            gets: self.gets.load(Ordering::Relaxed),
            scans: self.scans.load(Ordering::Relaxed),
            commits: self
                .commits
                .lock()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}
