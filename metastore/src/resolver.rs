//! The background resolver, and the one way a shard asks another shard (a primary) what became
//! of a transaction. Every intent timeout / 4 the resolver looks for intents older than the
//! timeout. On their primary it resolves them locally (an undecided one is aborted); elsewhere
//! it asks the primary's `Resolve` over gRPC (2 s deadline) and applies the answer here. A
//! pending answer or an unreachable primary leaves the intent for the next round: a participant
//! never decides alone, so it never contradicts the commit point. Readers that meet a prepared
//! intent ask the primary through the same [`Primaries`] (see `read_resolve`).

use crate::error::{Error, Result};
use crate::intent::{IntentSummary, ResolveOutcome};
use crate::shard::{Shard, WeakShard};
use arbor_proto::metastore::{ResolveRequest, metastore_client::MetastoreClient, resolve_response};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Deadline of every call to a primary.
pub const RPC_DEADLINE: Duration = Duration::from_secs(2);

/// Runs rounds every `every` until `stop` fires or the shard is gone.
pub(crate) async fn run(shard: WeakShard, every: Duration, mut stop: watch::Receiver<bool>) {
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
        round(&shard).await;
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

/// Clients of the primaries this shard has asked, by address (channels multiplex, so one per
/// primary serves every concurrent question).
#[derive(Default)]
pub(crate) struct Primaries {
    clients: Mutex<HashMap<String, MetastoreClient<Channel>>>,
}

impl Primaries {
    fn client(&self, addr: &str) -> Result<MetastoreClient<Channel>> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let c = client(addr)?;
        clients.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// The primary's answer about `txn_id`, within `deadline` (at most [`RPC_DEADLINE`]).
    /// Never decides anything here.
    pub(crate) async fn ask(
        &self,
        addr: &str,
        txn_id: &[u8],
        deadline: Duration,
    ) -> Result<ResolveOutcome> {
        let deadline = deadline.min(RPC_DEADLINE);
        let mut client = self.client(addr)?;
        let mut req = tonic::Request::new(ResolveRequest {
            txn_id: txn_id.to_vec(),
        });
        req.set_timeout(deadline);
        let answer = tokio::time::timeout(deadline, client.resolve(req))
            .await
            .map_err(|_| Error::Unavailable(format!("resolve at {addr}: deadline passed")))?
            .map_err(|s| Error::Unavailable(format!("resolve at {addr}: {s}")))?
            .into_inner();
        Ok(match resolve_response::Outcome::try_from(answer.outcome) {
            Ok(resolve_response::Outcome::Committed) => ResolveOutcome::Committed,
            Ok(resolve_response::Outcome::Aborted) => ResolveOutcome::Aborted,
            Ok(resolve_response::Outcome::Pending) | Err(_) => ResolveOutcome::Pending,
        })
    }
}

async fn round(shard: &Shard) {
    let expired = shard.expired_intents();
    if expired.is_empty() {
        return;
    }
    let work = expired.into_iter().map(|intent| resolve_one(shard, intent));
    futures::future::join_all(work).await;
}

async fn resolve_one(shard: &Shard, intent: IntentSummary) {
    let txn = String::from_utf8_lossy(&intent.txn_id).into_owned();
    if intent.is_primary {
        match shard.resolve(intent.txn_id).await {
            Ok(outcome) => tracing::info!(%txn, ?outcome, "resolved an expired transaction"),
            Err(e) => tracing::warn!(%txn, error = %e, "resolving an expired transaction failed"),
        }
        return;
    }
    let outcome = match shard
        .primaries()
        .ask(&intent.primary_addr, &intent.txn_id, RPC_DEADLINE)
        .await
    {
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
