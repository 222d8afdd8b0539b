//! The heartbeat loop: tells a namenode, every interval, that this server lives, where it
//! is reached and how full its store is. Any namenode will do; on failure the next one is
//! tried. A namenode without the call (UNIMPLEMENTED) or a down one is retried later: a
//! block server never exits for want of a namenode.

use crate::service::ServerState;
use arbor_proto::namenode::HeartbeatRequest;
use arbor_proto::namenode::namenode_client::NamenodeClient;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Interval used until a namenode says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct HeartbeatConfig {
    /// host:port of each namenode.
    pub namenodes: Vec<String>,
    /// The address clients reach this server at.
    pub addr: String,
    /// Fixed interval; when unset, the namenode's reply sets it.
    pub interval: Option<Duration>,
    /// Deadline of each heartbeat call.
    pub timeout: Duration,
}

fn channel(addr: &str, timeout: Duration) -> Option<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))
        .ok()
        .map(|e| e.connect_timeout(timeout).timeout(timeout).connect_lazy())
}

/// Runs until `stop` changes.
pub async fn run(state: ServerState, config: HeartbeatConfig, mut stop: watch::Receiver<bool>) {
    let clients: Vec<(String, NamenodeClient<Channel>)> = config
        .namenodes
        .iter()
        .filter_map(|a| match channel(a, config.timeout) {
            Some(c) => Some((a.clone(), NamenodeClient::new(c))),
            None => {
                tracing::warn!(namenode = %a, "bad namenode address, ignored");
                None
            }
        })
        .collect();
    if clients.is_empty() {
        tracing::warn!("no namenode to heartbeat to");
        return;
    }
    let mut current = 0;
    let mut interval = config.interval.unwrap_or(DEFAULT_INTERVAL);
    loop {
        let usage = state.usage().await;
        let req = HeartbeatRequest {
            server_id: state.server_id(),
            addr: config.addr.clone(),
            store_url: state.store_url().to_string(),
            capacity_bytes: usage.capacity,
            used_bytes: usage.used,
            shards: usage.shards,
        };
        // One pass over the namenodes, starting with the one that answered last.
        for attempt in 0..clients.len() {
            let (addr, client) = &clients[(current + attempt) % clients.len()];
            let mut client = client.clone();
            let call =
                tokio::time::timeout(config.timeout, client.block_server_heartbeat(req.clone()));
            match call.await {
                Ok(Ok(reply)) => {
                    current = (current + attempt) % clients.len();
                    let ms = reply.into_inner().interval_ms;
                    if config.interval.is_none() && ms > 0 {
                        interval = Duration::from_millis(ms);
                    }
                    tracing::trace!(namenode = %addr, "heartbeat");
                    break;
                }
                Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                    tracing::debug!(namenode = %addr, "namenode does not take heartbeats yet");
                }
                Ok(Err(status)) => {
                    tracing::debug!(namenode = %addr, error = %status.message(), "heartbeat failed");
                }
                Err(_) => {
                    tracing::debug!(namenode = %addr, "heartbeat timed out");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
