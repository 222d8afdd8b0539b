//! What a namenode counts for Prometheus (served with `--metrics-listen`), besides the calls
//! it answers (`arbor_rpc_…{service="namenode"}`: every operation by kind and outcome, with
//! its latency):
//!
//! - `arbor_namenode_shard_requests_total{shard, kind}`: calls sent to each shard (`get`,
//!   `scan`, `commit`, `prepare`);
//! - `arbor_namenode_transactions_total{kind, outcome}`: commits, `single_shard` or
//!   `two_phase`, by outcome (`committed`, `conflict`, `unknown`, `failed`);
//! - `arbor_namenode_row_cache_total{result}`: lookups of rows kept under a shard's read lease
//!   (`hit`, `miss`);
//! - `arbor_namenode_trash_checkpoints_deleted_total`: checkpoints the trash emptier removed;
//! - `arbor_namenode_blocks_under_strength{state}`: blocks the leader's last repair pass found
//!   missing shards (`degraded`) and those with too few good shards to rebuild (`missing`):
//!   the repair queue.

use std::sync::LazyLock;

use arbor_proto::metrics::prometheus::{IntCounterVec, IntGaugeVec};
use arbor_proto::metrics::{counters, gauges};

pub static SHARD_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_namenode_shard_requests_total",
        "Calls this namenode sent to the metadata shards, by shard and kind.",
        &["shard", "kind"],
    )
});

pub static TRANSACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_namenode_transactions_total",
        "Transactions committed or tried, by kind (single_shard, two_phase) and outcome.",
        &["kind", "outcome"],
    )
});

pub static ROW_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counters(
        "arbor_namenode_row_cache_total",
        "Lookups of rows kept under the shards' read leases, by result (hit, miss).",
        &["result"],
    )
});

pub static UNDER_STRENGTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauges(
        "arbor_namenode_blocks_under_strength",
        "Blocks the leader's last repair pass found short of shards, by state (degraded: \
         rebuilt from the others; missing: too few good shards to rebuild).",
        &["state"],
    )
});

/// (degraded, missing) blocks of the last repair pass on this namenode.
pub fn under_strength() -> (i64, i64) {
    (
        UNDER_STRENGTH.with_label_values(&["degraded"]).get(),
        UNDER_STRENGTH.with_label_values(&["missing"]).get(),
    )
}
