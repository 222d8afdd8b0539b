//! Read-side resolution: before `Get` or `Scan` reads the tables, every transaction prepared
//! here before the read began that will put or delete a key the read returns is finished, or
//! waited out. Without it a reader could see a cross-shard transaction half applied: its
//! primary's part committed and visible, while this shard still holds its part as an intent
//! (its coordinator died after the commit point, or has not reached this shard yet).
//!
//! For each such transaction, as the participant state shows it:
//! - decided here, its record not yet durable: wait until the visible seq reaches the record
//!   (its rows are then in the read overlay or the tables);
//! - prepared, this shard its primary: the coordinator is mid-flight, so look again after a
//!   short backoff; once the intent has expired, resolve it here (an undecided one is aborted,
//!   exactly as the background resolver would);
//! - prepared, another shard its primary: ask the primary's `Resolve` and apply COMMITTED or
//!   ABORTED here through `Decide`, as the coordinator's own call would; PENDING backs off. A
//!   young intent is first given [`ASK_PRIMARY_AFTER`]: its coordinator usually decides by
//!   then, and before then the primary may not have logged its own prepare, which `Resolve`
//!   would answer by aborting the transaction.
//!
//! Invariant: a read that begins after a transaction's commit point returns its writes; one that
//! begins before may return either state. A read of keys no intent writes costs one lock-table
//! lookup per key (or one range walk over the locked keys in the range). A read stays blocked
//! at most the intent timeout + [`BLOCKED_SLACK`], then fails with [`Error::Blocked`].

use crate::error::{Error, Result};
use crate::hlc::wall_ms;
use crate::intent::{IntentSummary, ResolveOutcome, Writer};
use crate::locks::ReadSet;
use crate::shard::Shard;
use std::time::{Duration, Instant};

/// How much longer than the intent timeout a read may stay blocked.
pub const BLOCKED_SLACK: Duration = Duration::from_secs(2);
/// Age of an intent before a reader asks its primary about it.
pub const ASK_PRIMARY_AFTER: Duration = Duration::from_millis(50);
/// Longest single wait for a decision to become visible before looking again.
const APPLY_WAIT_SLICE: Duration = Duration::from_millis(100);
const BACKOFF_FIRST: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(20);

/// Returns once no transaction prepared before the call will still write a key of `reads`
/// without that write being visible (or with it aborted).
pub(crate) async fn settle(shard: &Shard, reads: &ReadSet<'_>) -> Result<()> {
    let (horizon, mut writers) = shard.writers(reads, None);
    if writers.is_empty() {
        return Ok(());
    }
    crate::metrics::INTENT_WAITS.inc();
    let deadline = Instant::now() + shard.config().intent_timeout + BLOCKED_SLACK;
    let mut backoff = BACKOFF_FIRST;
    loop {
        let visible = shard.applied_seq();
        writers.retain(|w| !matches!(w, Writer::Decided { seq } if *seq <= visible));
        if writers.is_empty() {
            return Ok(());
        }
        if let Some(why) = shard.failure() {
            return Err(Error::Failed(why));
        }
        if Instant::now() >= deadline {
            return Err(Error::Blocked(describe(&writers)));
        }
        let steps = writers.iter().map(|w| finish(shard, w, deadline));
        let mut stuck = false;
        for step in futures::future::join_all(steps).await {
            stuck |= step?;
        }
        if stuck {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        writers = shard.writers(reads, Some(horizon)).1;
    }
}

/// One step towards finishing `writer`; true if nothing could be done yet (back off).
async fn finish(shard: &Shard, writer: &Writer, deadline: Instant) -> Result<bool> {
    match writer {
        Writer::Decided { seq } => {
            // In slices, so that a shard that stops applying (a failed write) is noticed by
            // the caller's next look rather than at the deadline.
            let slice = deadline.min(Instant::now() + APPLY_WAIT_SLICE);
            shard.wait_visible(*seq, slice).await?;
            Ok(false)
        }
        Writer::Prepared(intent) if intent.is_primary => {
            if age(intent) < shard.config().intent_timeout {
                return Ok(true);
            }
            let outcome = shard.resolve(intent.txn_id.clone()).await?;
            tracing::info!(txn = %hex(&intent.txn_id), ?outcome, "a read resolved an expired transaction");
            Ok(false)
        }
        Writer::Prepared(intent) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if age(intent) < ASK_PRIMARY_AFTER || left.is_zero() {
                return Ok(true);
            }
            let asked = shard
                .primaries()
                .ask(&intent.primary_addr, &intent.txn_id, left)
                .await;
            let commit = match asked {
                Ok(ResolveOutcome::Committed) => true,
                Ok(ResolveOutcome::Aborted) => false,
                Ok(ResolveOutcome::Pending) => return Ok(true),
                Err(e) => {
                    tracing::debug!(txn = %hex(&intent.txn_id), primary = %intent.primary_addr, error = %e, "a blocked read could not ask the primary");
                    return Ok(true);
                }
            };
            let decided = shard.decide(intent.txn_id.clone(), commit).await?;
            tracing::info!(txn = %hex(&intent.txn_id), commit, result = ?decided, "a read finished a transaction decided at its primary");
            Ok(false)
        }
    }
}

fn age(intent: &IntentSummary) -> Duration {
    Duration::from_millis(wall_ms().saturating_sub(intent.prepared_at_ms))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(writers: &[Writer]) -> String {
    let each: Vec<String> = writers
        .iter()
        .map(|w| match w {
            Writer::Decided { seq } => format!("a decision at seq {seq} not yet durable"),
            Writer::Prepared(i) if i.is_primary => {
                format!(
                    "transaction {} undecided here (its primary)",
                    hex(&i.txn_id)
                )
            }
            Writer::Prepared(i) => format!(
                "transaction {} undecided at its primary {} (shard {})",
                hex(&i.txn_id),
                i.primary_addr,
                i.primary_shard
            ),
        })
        .collect();
    each.join("; ")
}
