//! The leader's data upkeep, one pass every repair interval:
//! 1. Leases nobody renewed for the hard limit are recovered, and allocations older than it
//!    are freed (their writer died before committing them).
//! 2. Freed blocks (`G` rows) have their shards deleted on their servers; a row goes once
//!    every live server holding a shard of it said so (a server dead past the dead interval
//!    is not waited for).
//! 3. Blocks with a shard lost (server id 0), on a server dead past the dead interval, or
//!    reported bad are rebuilt: the lost shards are regenerated from k good ones onto live
//!    servers holding no shard of the block (a shard reported bad on a live server is rewritten
//!    in place), then the new locations are committed, conditional
//!    on the block row's version (a concurrent rewrite or delete wins, and the rebuilt shards
//!    are freed). Blocks with fewer than k good shards cannot be rebuilt and are counted.
//!
//! Finding the blocks scans every shard's block rows each pass: fine for the block counts of
//! today's clusters; an index of degraded blocks would replace it at scale.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arbor_proto::namenode::ShardLocation;
use arbor_proto::records::{
    BadShardRecord, BlockRecord, BlockServerRecord, FreedBlock, PendingBlock, ShardRef, WriteLease,
};
use prost::Message;
use tokio::sync::watch;

use crate::attrs;
use crate::data::{DataConfig, blocks, nanos, policy, read, servers, shards::ShardService};
use crate::error::NnError;
use crate::keys;
use crate::ops::scan_prefix;
use crate::txn::{Key, Route, Store, Txn, TxnError};

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairStats {
    pub leases_recovered: u64,
    pub pending_freed: u64,
    pub freed_blocks_done: u64,
    pub shards_deleted: u64,
    pub delete_failures: u64,
    pub blocks_degraded: u64,
    pub shards_rebuilt: u64,
    pub blocks_missing: u64,
    pub rebuild_failures: u64,
    pub conflicts: u64,
}

/// Why a shard of a block needs rebuilding, if it does.
pub fn shard_is_bad(
    s: &ShardRef,
    block_id: u64,
    table: &HashMap<u64, BlockServerRecord>,
    reported: &HashMap<(u64, u32), BadShardRecord>,
    config: &DataConfig,
    now: i64,
) -> Option<&'static str> {
    if s.server_id == 0 {
        return Some("lost");
    }
    match table.get(&s.server_id) {
        None => return Some("unknown server"),
        Some(r) if !servers::is_alive(r, config, now) => return Some("dead server"),
        _ => {}
    }
    match reported.get(&(block_id, s.index)) {
        Some(r) if r.server_id == 0 || r.server_id == s.server_id => Some("reported bad"),
        _ => None,
    }
}

/// Every row under `prefix` on every shard, with the shard it came from.
async fn scan_all<S: Store>(
    store: &S,
    prefix: u8,
) -> Result<Vec<(u32, Vec<u8>, crate::txn::Versioned)>, NnError> {
    let mut out = Vec::new();
    for shard in 0..store.shards() {
        let mut txn = store.begin();
        for (k, v) in scan_prefix(&mut txn, Route::Shard(shard), vec![prefix]).await? {
            out.push((shard, k, v));
        }
    }
    Ok(out)
}

async fn commit<T: Txn>(txn: T, stats: &mut RepairStats) -> Result<bool, NnError> {
    match txn.commit().await {
        Ok(()) => Ok(true),
        Err(TxnError::Conflict(_)) | Err(TxnError::Unknown(_)) => {
            stats.conflicts += 1;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// One pass of all three duties.
pub async fn run_once<S: Store, B: ShardService>(
    store: &S,
    shards: &B,
    config: &DataConfig,
) -> Result<RepairStats, NnError> {
    let mut stats = RepairStats::default();
    expire(store, config, &mut stats).await?;
    let table = {
        let mut txn = store.begin();
        servers::load(&mut txn).await?
    };
    collect_garbage(store, shards, config, &table, &mut stats).await?;
    rebuild_degraded(store, shards, config, &table, &mut stats).await?;
    Ok(stats)
}

async fn expire<S: Store>(
    store: &S,
    config: &DataConfig,
    stats: &mut RepairStats,
) -> Result<(), NnError> {
    let now = attrs::now_ns();
    // The soft limit has passed at expiry; the hard limit is counted from the last renewal.
    let past_hard = |expires_ns: i64| {
        now.saturating_sub(expires_ns.saturating_sub(nanos(config.lease_soft)))
            > nanos(config.lease_hard)
    };
    for (_, key, row) in scan_all(store, keys::WRITE_LEASE).await? {
        let lease = WriteLease::decode(row.value.as_slice())?;
        let Some(ino) = keys::ino_of(&key) else {
            continue;
        };
        if !past_hard(lease.expires_ns) {
            continue;
        }
        let mut txn = store.begin();
        txn.set_label("lease_recovery");
        let cur = txn.get(&[keys::write_lease(ino)], true).await?;
        if cur[0].version != row.version {
            continue;
        }
        blocks::free_pending(&mut txn, ino, Some(&lease.lease_id), now).await?;
        txn.delete(keys::write_lease(ino));
        if commit(txn, stats).await? {
            tracing::info!(ino, "recovered a write lease past its hard limit");
            stats.leases_recovered += 1;
        }
    }
    for (_, key, row) in scan_all(store, keys::PENDING).await? {
        let p = PendingBlock::decode(row.value.as_slice())?;
        let Some(ino) = keys::ino_of(&key) else {
            continue;
        };
        if now.saturating_sub(p.allocated_ns) <= nanos(config.lease_hard) {
            continue;
        }
        let mut txn = store.begin();
        txn.set_label("pending_expiry");
        let cur = txn.get(&[keys::pending(ino, p.block_id)], true).await?;
        if cur[0].version != row.version {
            continue;
        }
        blocks::free_pending_one(&mut txn, ino, &p, now);
        if commit(txn, stats).await? {
            stats.pending_freed += 1;
        }
    }
    Ok(())
}

async fn collect_garbage<S: Store, B: ShardService>(
    store: &S,
    shards: &B,
    config: &DataConfig,
    table: &HashMap<u64, BlockServerRecord>,
    stats: &mut RepairStats,
) -> Result<(), NnError> {
    let now = attrs::now_ns();
    let freed = scan_all(store, keys::FREED).await?;
    if freed.is_empty() {
        return Ok(());
    }
    let mut by_server: HashMap<u64, Vec<(u64, u32)>> = HashMap::new();
    let mut records = Vec::with_capacity(freed.len());
    for (shard, key, row) in freed {
        let f = FreedBlock::decode(row.value.as_slice())?;
        for s in &f.shards {
            by_server
                .entry(s.server_id)
                .or_default()
                .push((f.block_id, s.index));
        }
        records.push((shard, key, f));
    }
    let mut failed: HashSet<u64> = HashSet::new();
    for (server, ids) in &by_server {
        let Some(record) = table
            .get(server)
            .filter(|r| servers::is_alive(r, config, now))
        else {
            // Gone for good (or never known): nothing to wait for.
            continue;
        };
        match shards.delete_shards(&record.addr, ids).await {
            Ok(n) => stats.shards_deleted += n,
            Err(e) => {
                tracing::warn!(server, addr = %record.addr, error = %e, "deleting freed shards failed; retrying next pass");
                stats.delete_failures += 1;
                failed.insert(*server);
            }
        }
    }
    for (shard, key, f) in records {
        if f.shards.iter().any(|s| failed.contains(&s.server_id)) {
            continue;
        }
        let mut txn = store.begin();
        txn.set_label("gc");
        txn.delete(Key::new(Route::Shard(shard), key));
        if commit(txn, stats).await? {
            stats.freed_blocks_done += 1;
        }
    }
    Ok(())
}

async fn rebuild_degraded<S: Store, B: ShardService>(
    store: &S,
    shards: &B,
    config: &DataConfig,
    table: &HashMap<u64, BlockServerRecord>,
    stats: &mut RepairStats,
) -> Result<(), NnError> {
    let now = attrs::now_ns();
    let mut reported: HashMap<(u64, u32), BadShardRecord> = HashMap::new();
    let mut report_keys: Vec<(u32, Vec<u8>, u64)> = Vec::new();
    for (shard, key, row) in scan_all(store, keys::BAD_SHARD).await? {
        let r = BadShardRecord::decode(row.value.as_slice())?;
        report_keys.push((shard, key, r.block_id));
        reported.insert((r.block_id, r.index), r);
    }
    let mut live_blocks: HashSet<u64> = HashSet::new();
    for (_, key, row) in scan_all(store, keys::BLOCK).await? {
        let Some((ino, index)) = keys::block_key_parts(&key) else {
            continue;
        };
        let block = BlockRecord::decode(row.value.as_slice())?;
        if block.shards.is_empty() {
            continue;
        }
        live_blocks.insert(block.block_id);
        let bad: Vec<u32> = block
            .shards
            .iter()
            .filter(|s| shard_is_bad(s, block.block_id, table, &reported, config, now).is_some())
            .map(|s| s.index)
            .collect();
        if bad.is_empty() {
            continue;
        }
        stats.blocks_degraded += 1;
        let Some(pol) = block.policy.clone() else {
            continue;
        };
        let good = block.shards.len() - bad.len();
        if good < pol.data_shards as usize {
            stats.blocks_missing += 1;
            tracing::warn!(
                ino,
                index,
                block = block.block_id,
                good,
                needed = pol.data_shards,
                "block has too few good shards to rebuild"
            );
            continue;
        }
        // A shard reported bad on a live server is rewritten where it is (a cluster with
        // exactly k+m servers has nowhere else to put it); lost shards and shards of dead
        // servers move to live servers holding no shard of the block.
        let mut in_place: Vec<ShardLocation> = Vec::new();
        let mut moving: Vec<u32> = Vec::new();
        for s in block.shards.iter().filter(|s| bad.contains(&s.index)) {
            match shard_is_bad(s, block.block_id, table, &reported, config, now) {
                Some("reported bad") => match table.get(&s.server_id) {
                    Some(r) => in_place.push(ShardLocation {
                        index: s.index,
                        server_id: s.server_id,
                        addr: r.addr.clone(),
                    }),
                    None => moving.push(s.index),
                },
                _ => moving.push(s.index),
            }
        }
        let holders: Vec<u64> = block.shards.iter().map(|s| s.server_id).collect();
        let ec = policy::from_record(&pol);
        let picked = if moving.is_empty() {
            Vec::new()
        } else {
            match servers::place(table.values(), moving.len(), &holders, &ec, config, now) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(block = block.block_id, error = %e, "no servers to rebuild onto");
                    stats.rebuild_failures += 1;
                    continue;
                }
            }
        };
        // Only the moved shards are new copies: on failure they are garbage, while an in-place
        // target is the block's own shard and must never be freed here.
        let moved: Vec<ShardLocation> = moving
            .iter()
            .zip(&picked)
            .map(|(i, s)| ShardLocation {
                index: *i,
                server_id: s.server_id,
                addr: s.addr.clone(),
            })
            .collect();
        let targets: Vec<ShardLocation> = moved.iter().cloned().chain(in_place).collect();
        // The source excludes the bad shards, so the rebuild reads only good ones.
        let mut source = block.clone();
        for s in source.shards.iter_mut() {
            if bad.contains(&s.index) {
                s.server_id = 0;
            }
        }
        let info = read::block_info(index, &source, table);
        if let Err(e) = shards.rebuild(&info, &targets).await {
            tracing::warn!(block = block.block_id, error = %e, "rebuild failed; retrying next pass");
            stats.rebuild_failures += 1;
            free_targets(store, ino, block.block_id, &moved, stats).await?;
            continue;
        }
        let mut txn = store.begin();
        txn.set_label("repair");
        let cur = txn.get(&[keys::block(ino, index)], true).await?;
        if cur[0].version != row.version {
            drop(txn);
            free_targets(store, ino, block.block_id, &moved, stats).await?;
            stats.conflicts += 1;
            continue;
        }
        let mut fixed = block.clone();
        for t in &targets {
            if let Some(s) = fixed.shards.iter_mut().find(|s| s.index == t.index) {
                s.server_id = t.server_id;
            }
            txn.delete(keys::bad_shard(ino, block.block_id, t.index));
        }
        txn.put(keys::block(ino, index), fixed.encode_to_vec());
        if commit(txn, stats).await? {
            tracing::info!(ino, index, block = block.block_id, shards = ?bad, "rebuilt shards");
            stats.shards_rebuilt += targets.len() as u64;
        } else {
            free_targets(store, ino, block.block_id, &moved, stats).await?;
        }
    }
    // Reports of blocks that no longer exist are done.
    for (shard, key, block_id) in report_keys {
        if live_blocks.contains(&block_id) {
            continue;
        }
        let mut txn = store.begin();
        txn.set_label("repair");
        txn.delete(Key::new(Route::Shard(shard), key));
        commit(txn, stats).await?;
    }
    Ok(())
}

/// Shards rebuilt for a block whose new locations were not committed are garbage.
async fn free_targets<S: Store>(
    store: &S,
    ino: u64,
    block_id: u64,
    targets: &[ShardLocation],
    stats: &mut RepairStats,
) -> Result<(), NnError> {
    let mut txn = store.begin();
    txn.set_label("repair");
    let record = FreedBlock {
        block_id,
        shards: targets
            .iter()
            .map(|t| ShardRef {
                index: t.index,
                server_id: t.server_id,
            })
            .collect(),
        freed_ns: attrs::now_ns(),
        ino,
    };
    // Keyed apart from the block's own freed row (which lists its other shards).
    let mut key = keys::freed(ino, block_id);
    key.bytes.extend_from_slice(&record.freed_ns.to_be_bytes());
    txn.put(key, record.encode_to_vec());
    commit(txn, stats).await?;
    Ok(())
}

/// Runs a pass every `interval` while this namenode leads, until `stop` turns true.
pub async fn run<S: Store, B: ShardService>(
    store: Arc<S>,
    shards: Arc<B>,
    leader: watch::Receiver<bool>,
    config: DataConfig,
    interval: Duration,
    stop: watch::Receiver<bool>,
) {
    crate::leader::every_while_leading(interval, leader, stop, || async {
        match run_once(&*store, &*shards, &config).await {
            Ok(s) => {
                let gauge = &crate::metrics::UNDER_STRENGTH;
                gauge
                    .with_label_values(&["degraded"])
                    .set(s.blocks_degraded as i64);
                gauge
                    .with_label_values(&["missing"])
                    .set(s.blocks_missing as i64);
                if s != RepairStats::default() {
                    tracing::info!(?s, "data upkeep pass");
                }
            }
            Err(e) => tracing::warn!(error = %e, "data upkeep pass failed; retrying later"),
        }
    })
    .await;
}
