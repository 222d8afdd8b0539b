//! What a shard counts for Prometheus (served with `--metrics-listen`), besides the calls it
//! answers (`arbor_rpc_…`, counted by every server):
//!
//! - `arbor_metastore_commits_total{outcome}`: single-shard commits, `committed` or
//!   `conflict` (a read check failed) or `error`;
//! - `arbor_metastore_2pc_total{step}`: two-phase steps taken here: `prepare`, the decision
//!   `commit` or `abort`, and `resolve` (an expired intent settled by the shard itself);
//! - `arbor_metastore_group_requests`: requests per commit group (how well commits share a
//!   sync);
//! - `arbor_metastore_fdatasync_seconds`: each sync of the log;
//! - `arbor_metastore_intents_open`: prepared transactions not yet decided here;
//! - `arbor_metastore_intent_waits_total`: reads that met an intent and waited for its
//!   decision.

use std::sync::LazyLock;

use arbor_proto::metrics::prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use arbor_proto::metrics::{LATENCY_BUCKETS, counter, counters, gauge, histogram};

pub static COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_metastore_commits_total",
        "Single-shard commits, by outcome (committed, conflict, error).",
        &["outcome"],
    )
});

pub static TWO_PHASE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_metastore_2pc_total",
        "Two-phase commit steps taken on this shard (prepare, commit, abort, resolve).",
        &["step"],
    )
});

pub static GROUP_REQUESTS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "arbor_metastore_group_requests",
        "Requests in each commit group (one log write and one sync for all of them).",
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    )
});

pub static FDATASYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "arbor_metastore_fdatasync_seconds",
        "Time of each fdatasync of the log.",
        LATENCY_BUCKETS,
    )
});

pub static INTENTS_OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "arbor_metastore_intents_open",
        "Prepared transactions not yet decided on this shard.",
    )
});

pub static INTENT_WAITS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "arbor_metastore_intent_waits_total",
        "Reads that met an undecided or unapplied transaction and waited for it.",
    )
});
