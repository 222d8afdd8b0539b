//! The background half of recursive delete, run by the leader. A recursive delete detaches a
//! directory and records it as `todelete(ino)`; the deleter scans every shard for those rows
//! and empties each detached directory step by step, each step ONE bounded transaction:
//! - a page of its entries: files and symlinks lose dentry, inode and xattrs; a subdirectory
//!   loses its dentry and gets a `todelete` row of its own (so it is picked up in turn);
//! - once it has no entries left: its inode, counter row, xattrs and its own `todelete` row.
//!
//! Every step reads validated what it removes (the dentries, the files' inodes, the
//! directory's own `todelete` row), so a step racing another deleter (an old leader still
//! running) or an operation that resolved into the subtree before it was detached fails and
//! starts over. A crash between steps leaves a consistent state, and the next leader resumes.

use std::sync::Arc;
use std::time::Duration;

use arbor_proto::records::{DeleteRecord, InodeKind};
use prost::Message;
use tokio::sync::watch;

use crate::attrs;
use crate::error::NnError;
use crate::keys::{self, Ino};
use crate::ops::{delete_inode, prefix_end, scan_prefix};
use crate::txn::{Key, Route, Store, Txn, TxnError};

#[derive(Clone, Debug)]
pub struct DeleterConfig {
    /// Rows removed per transaction (about).
    pub batch: u32,
    /// Pause between passes when there is nothing to do.
    pub idle: Duration,
}

impl Default for DeleterConfig {
    fn default() -> Self {
        DeleterConfig {
            batch: 100,
            idle: Duration::from_secs(1),
        }
    }
}

/// What a drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainStats {
    pub directories: u64,
    pub files: u64,
    pub steps: u64,
    pub conflicts: u64,
}

/// Every pending `todelete` record, over all shards.
pub async fn pending<S: Store>(store: &S) -> Result<Vec<DeleteRecord>, NnError> {
    let mut out = Vec::new();
    for shard in 0..store.shards() {
        let mut txn = store.begin();
        for (_, row) in scan_prefix(&mut txn, Route::Shard(shard), vec![keys::TODELETE]).await? {
            out.push(DeleteRecord::decode(row.value.as_slice())?);
        }
    }
    Ok(out)
}

/// Removes every detached subtree, pass after pass, until none is left or `keep_going`
/// turns false (leadership lost).
pub async fn drain<S: Store>(
    store: &S,
    batch: u32,
    keep_going: &(dyn Fn() -> bool + Send + Sync),
) -> Result<DrainStats, NnError> {
    let mut stats = DrainStats::default();
    loop {
        let records = pending(store).await?;
        if records.is_empty() {
            return Ok(stats);
        }
        for record in records {
            if !keep_going() {
                return Ok(stats);
            }
            empty_directory(store, &record, batch, keep_going, &mut stats).await?;
        }
    }
}

/// Empties and removes one detached directory (its subdirectories become records of their
/// own, handled by the next pass).
async fn empty_directory<S: Store>(
    store: &S,
    record: &DeleteRecord,
    batch: u32,
    keep_going: &(dyn Fn() -> bool + Send + Sync),
    stats: &mut DrainStats,
) -> Result<(), NnError> {
    let mut backoff = Duration::from_millis(1);
    while keep_going() {
        let mut txn = store.begin();
        txn.set_label("deleter");
        let result = step(&mut txn, record, batch.max(1), stats).await;
        let finished = match result {
            Ok(finished) => match txn.commit().await {
                Ok(()) => {
                    stats.steps += 1;
                    Some(finished)
                }
                Err(TxnError::Conflict(_)) | Err(TxnError::Unknown(_)) => None,
                Err(e) => return Err(e.into()),
            },
            Err(e) if e.is_conflict() => None,
            Err(e) => return Err(e),
        };
        match finished {
            Some(true) => {
                stats.directories += 1;
                return Ok(());
            }
            Some(false) => backoff = Duration::from_millis(1),
            None => {
                stats.conflicts += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

/// One transaction's worth of work on `record`'s directory; `Ok(true)` when this step removes
/// the directory itself (after which nothing of it is left).
async fn step<T: Txn>(
    txn: &mut T,
    record: &DeleteRecord,
    batch: u32,
    stats: &mut DrainStats,
) -> Result<bool, NnError> {
    let dir: Ino = record.ino;
    let route = keys::content_route(dir);
    let prefix = keys::dentry_prefix(dir);
    let end = prefix_end(&prefix);
    let (rows, _) = txn.scan(route, prefix.clone(), end, batch).await?;

    let marker = txn.get(&[keys::todelete(dir)], true).await?;
    if !marker[0].exists() {
        // Another deleter finished it meanwhile.
        return Ok(true);
    }
    if rows.is_empty() {
        txn.require_empty(route, prefix);
        txn.get(&[keys::inode(dir)], true).await?;
        delete_inode(txn, dir, InodeKind::Directory).await?;
        txn.delete(keys::todelete(dir));
        return Ok(true);
    }

    let mut children = Vec::with_capacity(rows.len());
    for (key, row) in &rows {
        let (Some(name), Some(d)) = (keys::dentry_name(key), attrs::decode_dentry(row)?) else {
            continue;
        };
        children.push((name.to_string(), d.ino, attrs::dentry_kind(&d)));
    }
    // What this step removes must still be as scanned when it commits.
    let mut check: Vec<Key> = children
        .iter()
        .map(|(name, _, _)| keys::dentry(dir, name))
        .collect();
    check.extend(
        children
            .iter()
            .filter(|(_, _, k)| *k != InodeKind::Directory)
            .map(|(_, ino, _)| keys::inode(*ino)),
    );
    let now_rows = txn.get(&check, true).await?;
    if now_rows[..children.len()].iter().any(|r| !r.exists()) {
        return Err(NnError::raced("detached entries changed"));
    }

    let now = attrs::now_ns();
    let (mut gone, mut subdirs) = (0i64, 0i64);
    for (name, ino, kind) in &children {
        txn.delete(keys::dentry(dir, name));
        gone += 1;
        if *kind == InodeKind::Directory {
            subdirs += 1;
            let child = DeleteRecord {
                ino: *ino,
                detached_ns: now,
                path: format!("{}/{name}", record.path.trim_end_matches('/')),
            };
            txn.put(keys::todelete(*ino), child.encode_to_vec());
        } else {
            delete_inode(txn, *ino, *kind).await?;
            stats.files += 1;
        }
    }
    // Keep the detached directory's counts true, so fsck can check it mid-way.
    let mut c = attrs::CounterUpdates::default();
    c.change(dir, -gone, -subdirs, 0, 0);
    c.apply(txn);
    Ok(false)
}

/// The leader's deleter: drains whenever this namenode leads, until `stop` turns true.
pub async fn run<S: Store>(
    store: Arc<S>,
    leader: watch::Receiver<bool>,
    config: DeleterConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        if *leader.borrow() {
            let lead = leader.clone();
            let keep_going = move || *lead.borrow();
            match drain(&*store, config.batch, &keep_going).await {
                Ok(s) if s.steps > 0 => {
                    tracing::info!(
                        dirs = s.directories,
                        files = s.files,
                        steps = s.steps,
                        "removed detached subtrees"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "background delete failed; retrying later"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.idle) => {}
            _ = stop.changed() => {}
        }
    }
}
