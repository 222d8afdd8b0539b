//! What this namenode asked of the shards, counted: point-read and scan RPCs, and commits by
//! the operation that made them (its transaction label) and by kind, single-shard or
//! two-phase. These are the figures that tell how many durable rounds an operation costs:
//! one single-shard commit is one synced round on one shard, a two-phase commit two.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

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

#[derive(Default)]
pub struct Counters {
    gets: AtomicU64,
    scans: AtomicU64,
    commits: Mutex<BTreeMap<&'static str, CommitCount>>,
}

impl Counters {
    pub fn get_sent(&self) {
        self.gets.fetch_add(1, Ordering::Relaxed);
    }

    pub fn scan_sent(&self) {
        self.scans.fetch_add(1, Ordering::Relaxed);
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
