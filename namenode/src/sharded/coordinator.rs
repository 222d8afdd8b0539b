//! Commits a transaction's buffered parts: one `Commit` when a single shard is involved,
//! otherwise two-phase commit with the lowest participant as primary.
//!
//! The invariant kept: the client hears `Ok` only once the primary recorded COMMITTED (the
//! commit point), and every participant is told to abort unless that may have happened. After
//! the commit point nothing is ever aborted: a participant that cannot be reached is left to
//! its own resolver, which asks the primary and applies the commit.

use std::time::{Duration, Instant};

use arbor_proto::metastore::{
    CommitRequest, Conflict, DecideRequest, DecideResponse, PrepareRequest, PrepareResponse,
    commit_response, decide_response, prepare_response,
};
use futures::future::join_all;

use super::Shared;
use super::buffer::TxnBuffer;
use super::metaclient::{CallError, ShardClient};
use crate::counters::Call;
use crate::fault;
use crate::txn::TxnError;

/// A fresh transaction id: 16 random bytes.
pub fn new_txn_id() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn conflict_error(shard: u32, conflict: &Conflict) -> TxnError {
    TxnError::Conflict(format!(
        "{} on key \"{}\" (shard {shard})",
        conflict.reason().as_str_name(),
        conflict.key.escape_ascii()
    ))
}

/// Validates and applies `buffer` atomically; `label` names the operation for fault points.
pub async fn commit(shared: &Shared, buffer: &TxnBuffer, label: &str) -> Result<(), TxnError> {
    let participants = buffer.participants();
    match participants.as_slice() {
        [] => Ok(()),
        [shard] => commit_one(shared, buffer, *shard, label).await,
        _ => commit_two_phase(shared, buffer, &participants, label).await,
    }
}

async fn commit_one(
    shared: &Shared,
    buffer: &TxnBuffer,
    shard: u32,
    label: &str,
) -> Result<(), TxnError> {
    let body = buffer.part(shard).map(|p| p.body()).unwrap_or_default();
    fault::hit("before_commit", label);
    let client = shared.client(shard)?;
    shared.counters.sent(shard, Call::Commit);
    let resp = client
        .commit(CommitRequest {
            txn_id: new_txn_id(),
            body: Some(body),
            lease_holder: client.lease_holder(),
        })
        .await
        .map_err(CallError::into_commit_error)?;
    match resp.outcome {
        Some(commit_response::Outcome::CommittedSeq(_)) => {
            fault::hit("after_commit", label);
            Ok(())
        }
        Some(commit_response::Outcome::Conflict(c)) => Err(conflict_error(shard, &c)),
        None => Err(TxnError::Unknown(format!(
            "shard {shard} answered a commit without an outcome"
        ))),
    }
}

async fn commit_two_phase(
    shared: &Shared,
    buffer: &TxnBuffer,
    participants: &[u32],
    label: &str,
) -> Result<(), TxnError> {
    let txn_id = new_txn_id();
    let primary = participants[0];
    let primary_client = shared.client(primary)?;
    let mut clients = Vec::with_capacity(participants.len());
    for &s in participants {
        clients.push(shared.client(s)?);
    }
    tracing::debug!(txn = %hex(&txn_id), label, ?participants, "two-phase commit");

    fault::hit("before_prepare", label);
    let prepares = clients.iter().map(|&client| {
        let req = PrepareRequest {
            txn_id: txn_id.clone(),
            body: Some(
                buffer
                    .part(client.shard())
                    .map(|p| p.body())
                    .unwrap_or_default(),
            ),
            primary_shard: primary,
            primary_addr: primary_client.addr().to_string(),
            participants: participants.to_vec(),
            this_shard: client.shard(),
            lease_holder: client.lease_holder(),
        };
        shared.counters.sent(client.shard(), Call::Prepare);
        async move { (client, client.prepare(req).await) }
    });
    let mut maybe_prepared = Vec::new();
    let mut conflict = None;
    let mut failure = None;
    for (client, result) in join_all(prepares).await {
        match result {
            Ok(PrepareResponse {
                outcome: Some(prepare_response::Outcome::Prepared(_)),
            }) => maybe_prepared.push(client),
            Ok(PrepareResponse {
                outcome: Some(prepare_response::Outcome::Conflict(c)),
            }) => {
                conflict.get_or_insert_with(|| conflict_error(client.shard(), &c));
            }
            Ok(PrepareResponse { outcome: None }) => {
                maybe_prepared.push(client);
                failure.get_or_insert_with(|| {
                    TxnError::Internal(format!(
                        "shard {} answered a prepare without an outcome",
                        client.shard()
                    ))
                });
            }
            Err(e) => {
                if e.maybe_applied() {
                    maybe_prepared.push(client);
                }
                failure.get_or_insert_with(|| e.into_read_error());
            }
        }
    }
    if let Some(err) = conflict.or(failure) {
        // Nothing can have committed: the primary was never asked to. Aborting now frees the
        // locks at once instead of after the intent timeout.
        abort(&txn_id, &maybe_prepared).await;
        tracing::debug!(txn = %hex(&txn_id), error = %err, "prepare failed, aborted");
        return Err(err);
    }

    fault::hit("after_prepare", label);
    match decide(primary_client, &txn_id, true).await {
        Ok(resp) => match resp.outcome() {
            decide_response::Outcome::Committed => {}
            decide_response::Outcome::AlreadyAborted | decide_response::Outcome::Aborted => {
                abort(&txn_id, &clients[1..]).await;
                return Err(TxnError::Conflict(format!(
                    "transaction aborted by its primary (shard {primary}) before it committed"
                )));
            }
            decide_response::Outcome::Unknown => {
                return Err(TxnError::Unknown(format!(
                    "primary shard {primary} has no record of the transaction"
                )));
            }
        },
        Err(DecideFailure { last, maybe_sent }) => {
            if maybe_sent {
                // The shards' resolvers finish it either way; only the retry record can tell.
                tracing::warn!(txn = %hex(&txn_id), error = %last, "commit point not confirmed");
                return Err(TxnError::Unknown(last.to_string()));
            }
            abort(&txn_id, &clients).await;
            return Err(TxnError::Unavailable(last.to_string()));
        }
    }

    fault::hit("after_primary_commit", label);
    // The transaction is committed. The other participants apply it when their decision
    // arrives, or earlier, when a read meets one of its locked keys: the shard then asks the
    // primary and applies the commit before answering. So the caller need not wait for them,
    // and a cross-shard commit costs two synced rounds (prepare, the primary's decision), not
    // three. A participant that cannot be reached applies it through its resolver.
    let others: Vec<ShardClient> = clients[1..].iter().map(|&c| c.clone()).collect();
    let id = txn_id.clone();
    tokio::spawn(async move {
        let decides = others.iter().map(|client| {
            let id = &id;
            async move { (client, decide(client, id, true).await) }
        });
        for (client, result) in join_all(decides).await {
            match result {
                Ok(resp) => match resp.outcome() {
                    // UNKNOWN: a read or its resolver already applied the commit.
                    decide_response::Outcome::Committed | decide_response::Outcome::Unknown => {}
                    other => tracing::error!(
                        txn = %hex(&id),
                        shard = client.shard(),
                        outcome = other.as_str_name(),
                        "participant did not apply a committed transaction"
                    ),
                },
                Err(f) => tracing::warn!(
                    txn = %hex(&id),
                    shard = client.shard(),
                    error = %f.last,
                    "participant unreachable after the commit point; its resolver will apply it"
                ),
            }
        }
    });
    fault::hit("after_commit", label);
    Ok(())
}

/// Why a decision could not be delivered.
#[derive(Debug)]
struct DecideFailure {
    last: CallError,
    /// Some attempt may have reached the shard.
    maybe_sent: bool,
}

/// Delivers a decision, retrying transport failures with backoff within one call deadline
/// (decisions are idempotent on the shard).
async fn decide(
    client: &ShardClient,
    txn_id: &[u8],
    commit: bool,
) -> Result<DecideResponse, DecideFailure> {
    let deadline = Instant::now() + client.timeout();
    let mut backoff = Duration::from_millis(10);
    let mut maybe_sent = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let req = DecideRequest {
            txn_id: txn_id.to_vec(),
            commit,
        };
        let err = match client
            .decide(req, remaining.max(Duration::from_millis(1)))
            .await
        {
            Ok(resp) => return Ok(resp),
            Err(err) => err,
        };
        maybe_sent |= err.maybe_applied();
        let definite = matches!(err, CallError::Refused(..)) && !err.maybe_applied();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if definite || remaining <= backoff {
            return Err(DecideFailure {
                last: err,
                maybe_sent,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(250));
    }
}

/// Best-effort abort on `clients`, in parallel; a shard that misses it aborts on its own once
/// the intent times out and the primary has no COMMITTED record.
async fn abort(txn_id: &[u8], clients: &[&ShardClient]) {
    let aborts = clients
        .iter()
        .map(|&client| async move { (client, decide(client, txn_id, false).await) });
    for (client, result) in join_all(aborts).await {
        if let Err(f) = result {
            tracing::debug!(
                txn = %hex(txn_id),
                shard = client.shard(),
                error = %f.last,
                "abort not delivered"
            );
        }
    }
}
