//! The background resolver: every intent timeout / 4 it looks for intents older than the
//! timeout. On their primary it resolves them locally (an undecided one is aborted); elsewhere it
//! asks the primary's `Resolve` over gRPC (2 s deadline) and applies the answer here. A pending
//! answer or an unreachable primary leaves the intent for the next round: a participant never
//! decides alone, so it never contradicts the commit point.

use crate::error::{Error, Result};
use crate::intent::{IntentSummary, ResolveOutcome};
use crate::shard::{Shard, WeakShard};
use arbor_proto::metastore::{ResolveRequest, metastore_client::MetastoreClient, resolve_response};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Deadline of every call to a primary.
pub const RPC_DEADLINE: Duration = Duration::from_secs(2);

/// Runs rounds every `every` until `stop` fires or the shard is gone.
pub(crate) async fn run(shard: WeakShard, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut clients: HashMap<String, MetastoreClient<Channel>> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let Some(shard) = shard.upgrade() else {
            break;
        };
        round(&shard, &mut clients).await;
    }
}

/// A client for the shard at `addr` (`host:port` or a URL), connected lazily.
pub fn client(addr: &str) -> Result<MetastoreClient<Channel>> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| Error::InvalidArgument(format!("primary address {addr:?}: {e}")))?
        .connect_timeout(RPC_DEADLINE)
        .timeout(RPC_DEADLINE);
    Ok(MetastoreClient::new(endpoint.connect_lazy()))
}

async fn round(shard: &Shard, clients: &mut HashMap<String, MetastoreClient<Channel>>) {
    let expired = shard.expired_intents();
    if expired.is_empty() {
        return;
    }
    let mut work = Vec::with_capacity(expired.len());
    for intent in expired {
        let primary = if intent.is_primary {
            None
        } else {
            match clients.get(&intent.primary_addr) {
                Some(c) => Some(Ok(c.clone())),
                None => {
                    let c = client(&intent.primary_addr);
                    if let Ok(c) = &c {
                        clients.insert(intent.primary_addr.clone(), c.clone());
                    }
                    Some(c)
                }
            }
        };
        work.push(resolve_one(shard, intent, primary));
    }
    futures::future::join_all(work).await;
}

async fn resolve_one(
    shard: &Shard,
    intent: IntentSummary,
    primary: Option<Result<MetastoreClient<Channel>>>,
) {
    let txn = String::from_utf8_lossy(&intent.txn_id).into_owned();
    let Some(primary) = primary else {
        match shard.resolve(intent.txn_id).await {
            Ok(outcome) => tracing::info!(%txn, ?outcome, "resolved an expired transaction"),
            Err(e) => tracing::warn!(%txn, error = %e, "resolving an expired transaction failed"),
        }
        return;
    };
    let outcome = match ask(primary, &intent).await {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(%txn, primary = %intent.primary_addr, error = %e, "primary unreachable; will retry");
            return;
        }
    };
    let decided = match outcome {
        ResolveOutcome::Pending => return,
        ResolveOutcome::Committed => shard.decide(intent.txn_id, true).await,
        ResolveOutcome::Aborted => shard.decide(intent.txn_id, false).await,
    };
    match decided {
        Ok(d) => {
            tracing::info!(%txn, ?outcome, result = ?d, "finished a transaction its coordinator left")
        }
        Err(e) => tracing::warn!(%txn, error = %e, "applying a resolved outcome failed"),
    }
}

async fn ask(
    primary: Result<MetastoreClient<Channel>>,
    intent: &IntentSummary,
) -> Result<ResolveOutcome> {
    let mut client = primary?;
    let call = client.resolve(ResolveRequest {
        txn_id: intent.txn_id.clone(),
    });
    let answer = tokio::time::timeout(RPC_DEADLINE, call)
        .await
        .map_err(|_| Error::Unavailable("resolve deadline passed".into()))?
        .map_err(|s| Error::Unavailable(format!("resolve failed: {s}")))?
        .into_inner();
    Ok(match resolve_response::Outcome::try_from(answer.outcome) {
        Ok(resolve_response::Outcome::Committed) => ResolveOutcome::Committed,
        Ok(resolve_response::Outcome::Aborted) => ResolveOutcome::Aborted,
        Ok(resolve_response::Outcome::Pending) | Err(_) => ResolveOutcome::Pending,
    })
}
