//! Changes made elsewhere (other mounts, the CLI, the library through any namenode), followed
//! on the metadata shards' change streams and turned into kernel cache invalidations, so the
//! kernel may keep entries and attributes for long.
//!
//! Each shard's stream is tailed (`arbor_search::tail`) from the sequence the shard had
//! applied when the mount started. A stream that breaks is resumed where it stopped, so a
//! change is delayed, never missed; a log trimmed past that point drops this mount's own
//! cached statuses, is logged, and the shard is followed again from where it stands (the
//! kernel's entries then live out their timeout). Every batch is held back [`HOLD`]
//! before it is looked at: a change this mount made races the reply to its own call, and once
//! that reply has landed the change is recognised below and costs nothing.
//!
//! For each changed row:
//! - a name made or re-pointed: the kernel's entry for it (negative or not) is dropped unless
//!   this mount already knows the name names that inode; an inode known here under another
//!   name has that entry dropped too;
//! - a name removed that this mount knows: the entry is dropped;
//! - an inode row changed after the status held here (by ctime and mtime), or when none is
//!   held: the status, and the kernel's attributes and pages of the inode, are dropped;
//! - a directory's counter row (its entry count and times) changed after the status held here:
//!   the status and the kernel's attributes are dropped.
//!
//! An event is a past state: by the time it is looked at, this mount may have changed the same
//! names again (git makes `config.lock`, renames it over `config`, and makes `config.lock`
//! anew). So events only drop caches, never move or detach inodes in the table: the kernel's
//! next lookup of a dropped name asks the namenode and records what is true now.
//!
//! Invariants: the kernel is told from a thread of its own, never from a request task (an
//! entry invalidation waits for the directory's lock, which a request in flight holds); only
//! inodes the kernel got from this mount, and names under them, are mentioned to it; of a file
//! this mount is writing only the attributes are dropped (its writer holds the lease: only
//! this mount changes the data).

use std::sync::Arc;
use std::time::Duration;

use arbor_client::{Client, Error, ErrorCode};
use arbor_search::rows::{self, RowKind};
use arbor_search::shards::Shard;
use arbor_search::tail::{Tailed, tail};
use fuser::INodeNo;
use tokio::sync::mpsc;

use crate::fs::Shared;

/// How long a batch waits before it is looked at (see the module's text).
pub const HOLD: Duration = Duration::from_millis(30);
/// Batches queued between the shards' tails and the reacting task.
const QUEUE: usize = 256;

/// What the kernel is told.
#[derive(Debug, PartialEq, Eq)]
pub enum Inval {
    /// Drop the entry of `name` in directory `parent`.
    Entry(u64, String),
    /// Drop the attributes of an inode, and its cached pages when `pages`.
    Inode(u64, bool),
}

/// The shards' change streams, tailed from where each shard stands now.
pub struct Tails {
    shards: Vec<Shard>,
    tx: mpsc::Sender<Tailed>,
    rx: mpsc::Receiver<Tailed>,
}

impl Tails {
    /// Starts tailing every shard. Fails when the cluster does not say where its shards are
    /// or one does not answer (the mount then keeps short cache timeouts).
    pub async fn open(client: &Client) -> Result<Tails, Error> {
        let info = client.cluster_info().await?;
        let list = Shard::all(&info).map_err(search_error)?;
        let mut starts = Vec::new();
        for shard in list {
            let from = shard.status().await.map_err(search_error)?.applied_seq + 1;
            starts.push((shard, from));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut shards = Vec::new();
        for (shard, from) in starts {
            shards.push(shard.clone());
            tokio::spawn(tail(shard, from, tx.clone()));
        }
        Ok(Tails { shards, tx, rx })
    }

    /// Reacts to every change for `shared` from now on (inside the mount's runtime).
    pub fn serve(self, shared: Arc<Shared>) -> Result<(), Error> {
        let (itx, irx) = std::sync::mpsc::channel::<Inval>();
        let teller = shared.clone();
        std::thread::Builder::new()
            .name("arbor-mount-inval".into())
            .spawn(move || {
                for inval in irx {
                    teller.tell_kernel(&inval);
                }
            })
            .map_err(|e| Error::new(ErrorCode::Internal, e.to_string()))?;
        tokio::spawn(react_loop(shared, self, itx));
        Ok(())
    }
}

fn search_error(e: arbor_search::Error) -> Error {
    Error::new(ErrorCode::Unavailable, e.to_string())
}

async fn react_loop(shared: Arc<Shared>, mut tails: Tails, kernel: std::sync::mpsc::Sender<Inval>) {
    while let Some(t) = tails.rx.recv().await {
        match t {
            Tailed::Batch { at, batch, .. } => {
                tokio::time::sleep_until((at + HOLD).into()).await;
                for row in batch.records.iter().flat_map(|r| &r.rows) {
                    match rows::decode(&row.key, &row.value, row.deleted) {
                        Ok(kind) => {
                            for inval in react(&shared, kind) {
                                if kernel.send(inval).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::debug!("undecodable changed row: {e}"),
                    }
                }
            }
            Tailed::Trimmed(index) => {
                tracing::warn!(
                    shard = index,
                    "changes of a shard were trimmed before this mount saw them; \
                     its cached entries may be stale until their timeout"
                );
                shared.statuses.clear();
                // Follow the shard again from where it stands now.
                let Some(shard) = tails.shards.get(index as usize).cloned() else {
                    continue;
                };
                let tx = tails.tx.clone();
                tokio::spawn(async move {
                    loop {
                        match shard.status().await {
                            Ok(st) => return tail(shard, st.applied_seq + 1, tx).await,
                            Err(e) => tracing::warn!(shard = index, error = %e, "shard status"),
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
            }
        }
    }
}

/// What one changed row asks of this mount's tables, and of the kernel.
pub fn react(shared: &Shared, row: RowKind) -> Vec<Inval> {
    let mut out = Vec::new();
    match row {
        RowKind::Dentry {
            parent,
            name,
            value: Some((ino, _)),
        } => {
            shared.fresh.added(parent, &name);
            if shared.inodes.name_ino(parent, &name) == Some(ino) || !shared.inodes.knows(parent) {
                return out;
            }
            // An inode known here under another name moved: its old entry goes too. The
            // table itself is left to the kernel's next lookups: an event is a past state,
            // and this mount may have changed the names since (a lock file made again).
            if let Some(old) = shared.inodes.located(ino)
                && old != (parent, name.clone())
            {
                out.push(Inval::Entry(old.0, old.1));
            }
            out.push(Inval::Entry(parent, name));
        }
        RowKind::Dentry {
            parent,
            name,
            value: None,
        } => {
            if let Some(ino) = shared.inodes.name_ino(parent, &name) {
                shared.statuses.changed(ino);
                out.push(Inval::Entry(parent, name));
                out.push(Inval::Inode(ino, false));
            }
        }
        RowKind::Inode { ino, value } => {
            if shared.files.writing(ino) {
                // Only this mount changes the data; others may change the attributes.
                if shared.inodes.knows(ino) {
                    out.push(Inval::Inode(ino, false));
                }
                return out;
            }
            let newer = match (&value, shared.statuses.get(ino)) {
                (Some(a), Some((held, _))) => {
                    a.ctime_ns > held.ctime_ns || a.mtime_ns > held.mtime_ns
                }
                _ => true,
            };
            if newer {
                shared.statuses.changed(ino);
                shared.pages.forget(ino);
                if shared.inodes.knows(ino) {
                    out.push(Inval::Inode(ino, value.is_some()));
                }
            }
        }
        RowKind::Counter { ino, value } => {
            let newer = match (value, shared.statuses.get(ino)) {
                (Some(c), Some((held, _))) => {
                    c[rows::COUNTER_MTIME] > held.mtime_ns || c[rows::COUNTER_CTIME] > held.ctime_ns
                }
                _ => true,
            };
            if newer {
                shared.statuses.changed(ino);
                if shared.inodes.knows(ino) {
                    out.push(Inval::Inode(ino, false));
                }
            }
        }
        RowKind::Xattr { .. } | RowKind::Other => {}
    }
    out
}

impl Shared {
    /// Tells the kernel one invalidation (it may answer ENOENT for what it no longer holds).
    pub fn tell_kernel(&self, inval: &Inval) {
        let Some(n) = self.notifier() else {
            return;
        };
        let res = match inval {
            Inval::Entry(parent, name) => n.inval_entry(INodeNo(*parent), name.as_ref()),
            Inval::Inode(ino, pages) => {
                n.inval_inode(INodeNo(*ino), if *pages { 0 } else { -1 }, 0)
            }
        };
        if let Err(e) = res
            && e.raw_os_error() != Some(libc::ENOENT)
        {
            tracing::debug!(?inval, "kernel invalidation failed: {e}");
        }
    }
}
