//! The block-server table (`S ‖ server id`, on shard 0): heartbeats upsert a server's row
//! (blind writes: a heartbeat never conflicts), listing reports which are alive, and placement
//! picks distinct servers for a new block. A server is alive while its last heartbeat is
//! within the dead interval; placement is stricter (within a few heartbeats) so that a server
//! that just went away gets no new blocks.

use std::collections::HashMap;

use arbor_proto::namenode::{
    BlockServerInfo, EcPolicy, HeartbeatReply, HeartbeatRequest, ListBlockServersReply,
};
use arbor_proto::records::BlockServerRecord;
use prost::Message;

use crate::attrs;
use crate::data::{DataConfig, nanos};
use crate::error::NnError;
use crate::keys;
use crate::ops::{Namespace, Outcome, Runner, scan_prefix};
use crate::perm::Caller;
use crate::txn::{Route, Store, Txn};

/// Every registered server, by id.
pub async fn load<T: Txn>(txn: &mut T) -> Result<HashMap<u64, BlockServerRecord>, NnError> {
    let mut out = HashMap::new();
    for (_, row) in scan_prefix(txn, Route::Shard(0), vec![keys::BLOCK_SERVER]).await? {
        let r = BlockServerRecord::decode(row.value.as_slice())?;
        out.insert(r.server_id, r);
    }
    Ok(out)
}

/// Alive: heard from within the dead interval.
pub fn is_alive(server: &BlockServerRecord, config: &DataConfig, now: i64) -> bool {
    now.saturating_sub(server.last_heartbeat_ns) <= nanos(config.dead_after)
}

/// Records a heartbeat.
pub async fn heartbeat<S: Store>(
    ns: &Namespace<S>,
    req: &HeartbeatRequest,
) -> Result<HeartbeatReply, NnError> {
    if req.server_id == 0 {
        return Err(NnError::invalid("heartbeat", "server id 0 is reserved"));
    }
    if req.addr.is_empty() {
        return Err(NnError::invalid("heartbeat", "the server gave no address"));
    }
    let caller = Caller::root();
    let mut runner = Runner::new(ns, &caller, "heartbeat");
    loop {
        let mut txn = ns.begin("heartbeat");
        let exo = runner.exo();
        let result = async {
            let key = keys::block_server(req.server_id);
            let old = txn.get(std::slice::from_ref(&key), false).await?;
            let now = attrs::now_ns();
            let first_seen_ns = if old[0].exists() {
                BlockServerRecord::decode(old[0].value.as_slice())?.first_seen_ns
            } else {
                tracing::info!(server = req.server_id, addr = %req.addr, "block server registered");
                now
            };
            let record = BlockServerRecord {
                server_id: req.server_id,
                addr: req.addr.clone(),
                store_url: req.store_url.clone(),
                capacity_bytes: req.capacity_bytes,
                used_bytes: req.used_bytes,
                shards: req.shards,
                last_heartbeat_ns: now,
                first_seen_ns,
            };
            txn.put(key, record.encode_to_vec());
            Ok(Outcome::Done(HeartbeatReply {
                interval_ms: ns.config.data.heartbeat.as_millis() as u64,
            }))
        }
        .await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

/// Every registered server, ordered by id, with its liveness.
pub async fn list<S: Store>(ns: &Namespace<S>) -> Result<ListBlockServersReply, NnError> {
    let mut txn = ns.begin("list_block_servers");
    let now = attrs::now_ns();
    let mut servers: Vec<_> = load(&mut txn)
        .await?
        .into_values()
        .map(|r| info(&r, &ns.config.data, now))
        .collect();
    servers.sort_by_key(|s| s.server_id);
    Ok(ListBlockServersReply { servers })
}

pub fn info(r: &BlockServerRecord, config: &DataConfig, now: i64) -> BlockServerInfo {
    BlockServerInfo {
        server_id: r.server_id,
        addr: r.addr.clone(),
        store_url: r.store_url.clone(),
        capacity_bytes: r.capacity_bytes,
        used_bytes: r.used_bytes,
        shards: r.shards,
        last_heartbeat_ns: r.last_heartbeat_ns,
        alive: is_alive(r, config, now),
    }
}

/// Picks `n` distinct servers heard from within the placement window and not in `exclude`,
/// at random weighted by free space (weighted sampling without replacement: each candidate
/// draws `u^(1/w)` and the largest keys win). Fewer candidates than `n` is NO_SPACE.
pub fn place<'a>(
    servers: impl IntoIterator<Item = &'a BlockServerRecord>,
    n: usize,
    exclude: &[u64],
    policy: &EcPolicy,
    config: &DataConfig,
    now: i64,
) -> Result<Vec<&'a BlockServerRecord>, NnError> {
    let window = nanos(config.placement_window());
    let live: Vec<&BlockServerRecord> = servers
        .into_iter()
        .filter(|s| now.saturating_sub(s.last_heartbeat_ns) <= window)
        .collect();
    let candidates: Vec<&BlockServerRecord> = live
        .iter()
        .copied()
        .filter(|s| !exclude.contains(&s.server_id))
        .collect();
    if candidates.len() < n {
        let excluded = live.len() - candidates.len();
        let note = if excluded > 0 {
            format!(" ({excluded} more excluded by the writer)")
        } else {
            String::new()
        };
        return Err(NnError::NoSpace(format!(
            "Cannot allocate a block: only {} block servers are live{note}, {} needs {n}",
            candidates.len(),
            policy.name
        )));
    }
    let mut keyed: Vec<(f64, &BlockServerRecord)> = candidates
        .into_iter()
        .map(|s| {
            let free = s.capacity_bytes.saturating_sub(s.used_bytes);
            // Unknown capacity weighs like a little free space, never zero.
            let weight = (free as f64).max(1.0);
            let u: f64 = rand::random::<f64>().max(f64::MIN_POSITIVE);
            (u.ln() / weight, s)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(keyed.into_iter().take(n).map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: u64, free: u64, age_ms: i64, now: i64) -> BlockServerRecord {
        BlockServerRecord {
            server_id: id,
            addr: format!("127.0.0.1:{id}"),
            capacity_bytes: free,
            last_heartbeat_ns: now - age_ms * 1_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn distinct_live_unexcluded_servers() {
        let cfg = DataConfig::default();
        let now = attrs::now_ns();
        let p = crate::data::policy::lookup("RS-4-2", 1).unwrap();
        let mut all: Vec<_> = (1..=8).map(|i| server(i, 1 << 30, 10, now)).collect();
        all.push(server(9, 1 << 30, 3_600_000, now));
        for _ in 0..50 {
            let got = place(&all, 6, &[2], &p, &cfg, now).unwrap();
            let mut ids: Vec<_> = got.iter().map(|s| s.server_id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 6);
            assert!(!ids.contains(&2) && !ids.contains(&9));
        }
        let e = place(&all, 6, &[1, 2, 3], &p, &cfg, now).unwrap_err();
        assert_eq!(e.code(), arbor_proto::namenode::ErrorCode::NoSpace);
        assert!(
            e.to_string().contains("only 5 block servers are live"),
            "{e}"
        );
        assert!(e.to_string().contains("RS-4-2-1024k needs 6"), "{e}");
    }

    #[test]
    fn free_space_weighs_the_choice() {
        let cfg = DataConfig::default();
        let now = attrs::now_ns();
        let p = crate::data::policy::lookup("REPLICATION-3", 1).unwrap();
        let mut all: Vec<_> = (1..=3).map(|i| server(i, 1 << 40, 10, now)).collect();
        all.push(server(4, 1 << 20, 10, now));
        let mut picked_small = 0;
        for _ in 0..200 {
            let got = place(&all, 3, &[], &p, &cfg, now).unwrap();
            picked_small += got.iter().filter(|s| s.server_id == 4).count();
        }
        assert!(
            picked_small < 20,
            "the nearly full server was picked {picked_small} times"
        );
    }
}
