//! The mount's metrics (served with `--metrics-listen`): every kernel request it answers by
//! operation, with its latency; the errors it answered with, by operation and errno; and the
//! requests it answered from its own caches without a task or a namenode call.

use std::sync::LazyLock;
use std::time::Duration;

use arbor_proto::metrics::prometheus::{HistogramVec, IntCounterVec};
use arbor_proto::metrics::{LATENCY_BUCKETS, counters, histograms};
use fuser::Errno;

static OPERATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_mount_operations_total",
        "Kernel requests answered by a task, by operation.",
        &["op"],
    )
});
static SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histograms(
        "arbor_mount_operation_seconds",
        "Time from a kernel request to its answer, by operation.",
        &["op"],
        LATENCY_BUCKETS,
    )
});
static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_mount_errors_total",
        "Kernel requests answered with an error, by operation and errno.",
        &["op", "errno"],
    )
});
static CACHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_mount_cache_answers_total",
        "Kernel requests answered from the mount's caches at once, by operation.",
        &["op"],
    )
});

/// A task answered `op` after `took`.
pub fn answered(op: &str, took: Duration) {
    OPERATIONS.with_label_values(&[op]).inc();
    SECONDS.with_label_values(&[op]).observe(took.as_secs_f64());
}

/// `op` is answered with `e`; gives `e` back.
pub fn failed(op: &str, e: Errno) -> Errno {
    ERRORS.with_label_values(&[op, &e.code().to_string()]).inc();
    e
}

/// `op` was answered from a cache, without a task.
pub fn from_cache(op: &str) {
    CACHED.with_label_values(&[op]).inc();
}
