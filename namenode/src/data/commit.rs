//! CommitWrite and RenewLease: a writer makes what it wrote part of the file. One transaction
//! on the file's shard checks the lease, writes the committed blocks (their offsets follow
//! from the lengths), frees the blocks they replace, turns an inline file into blocks or back,
//! sets the size and mtime, and at close frees what the writer allocated but never committed
//! and releases the lease. A committed block with shards must be one this writer allocated
//! (its pending row) on the servers it was given (or 0 for a shard lost on the way), so no
//! shard escapes the freed queue.

use std::collections::HashMap;

use arbor_proto::namenode::{BlockInfo, CommitWriteRequest, FileStatus, RenewLeaseRequest};
use arbor_proto::records::{BlockRecord, InodeKind, PendingBlock, ShardRef};
use prost::Message;

use crate::attrs;
use crate::data::blocks::{self, FileData};
use crate::data::{lease, policy};
use crate::error::NnError;
use crate::keys;
use crate::ops::setattr::{change_access, change_times};
use crate::ops::{Exo, Namespace, Outcome, Runner, read_with_prefixes};
use crate::perm::Caller;
use crate::txn::{Store, Txn};

pub async fn commit_write<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &CommitWriteRequest,
) -> Result<FileStatus, NnError> {
    let mut runner = Runner::new(ns, caller, &format!("inode {}", req.ino));
    loop {
        let mut txn = ns.begin("commit_write");
        let mut exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, &mut exo, req).await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    req: &CommitWriteRequest,
) -> Result<Outcome<FileStatus>, NnError> {
    let cfg = &ns.config.data;
    let ino = req.ino;
    let what = format!("inode {ino}");
    // Everything the commit rests on, in one round on the file's shard: the inode, the lease,
    // the inline row and the retry record validated; the block rows and pending allocations
    // scanned beside them (every change to those also writes the inode or the lease).
    let route = keys::route_of(ino);
    let mut want = vec![keys::inode(ino), keys::write_lease(ino), keys::inline(ino)];
    want.extend(exo.home(route));
    // A writer inline since its open, holding the lease, knows there are none of either:
    // blocks and pending allocations are only added under the lease, and a writer that took
    // the lease over meanwhile fails the lease check below.
    let unleased = req.lease.is_empty() && req.unleased_ctime_ns != 0;
    // An unleased commit is to a file unchanged since its writer made it without blocks.
    let prefixes = if unleased || (req.no_blocks && req.inline_data.is_some()) {
        Vec::new()
    } else {
        vec![keys::block_prefix(ino), keys::pending_prefix(ino)]
    };
    let (rows, found) = read_with_prefixes(txn, &want, true, route, &prefixes).await?;
    if let Some(r) = rows.get(3)
        && let Some(answer) = Exo::replay(r)?
    {
        return Ok(Outcome::Replayed(answer));
    }
    let mut found = found.into_iter();
    let (block_rows, pending_rows) = (
        found.next().unwrap_or_default(),
        found.next().unwrap_or_default(),
    );
    let Some(mut inode) = attrs::decode_inode(&rows[0])? else {
        return Err(NnError::NotFound(what));
    };
    if attrs::kind_of(&inode) != InodeKind::File {
        return Err(NnError::invalid(&what, "not a regular file"));
    }
    let held = if unleased {
        unleased_allowed(&rows[1], &inode, caller, req, &what)?;
        None
    } else {
        Some(lease::require(&rows[1], ino, &req.lease)?)
    };
    let now = attrs::now_ns();
    let before = FileData::from_rows(&rows[2], block_rows)?;
    let mut pending: HashMap<u64, PendingBlock> = blocks::pending_from_rows(pending_rows)?
        .into_iter()
        .map(|p| (p.block_id, p))
        .collect();
    let default_policy = match &held {
        Some(held) if !held.policy.is_empty() => held.policy.as_str(),
        _ => cfg.default_policy.as_str(),
    };
    let hole = policy::to_record(&policy::parse(default_policy, cfg.cell_size, &what)?);

    let mut after = before.clone();
    if let Some(bytes) = &req.inline_data {
        if !req.blocks.is_empty() {
            return Err(NnError::invalid(
                &what,
                "a commit carries either inline data or blocks, not both",
            ));
        }
        if bytes.len() as u64 > cfg.inline_threshold {
            return Err(NnError::invalid(
                &what,
                format!(
                    "{} bytes of inline data exceed the inline threshold ({} bytes)",
                    bytes.len(),
                    cfg.inline_threshold
                ),
            ));
        }
        after.blocks.clear();
        after.inline = Some(bytes.clone());
    }
    let mut committed = Vec::new();
    for b in &req.blocks {
        let record = block_record(b, &before, &pending, &hole, cfg.inline_threshold, &what)?;
        if record.block_id != 0 && pending.contains_key(&record.block_id) {
            committed.push(record.block_id);
        }
        after.inline = None;
        after.blocks.insert(b.index, record);
    }
    after.renumber(&what)?;
    after.resize(req.size, cfg.inline_threshold, cfg.block_size, &hole);
    after.store(txn, ino, &before, now);
    for id in committed {
        if pending.remove(&id).is_some() {
            txn.delete(keys::pending(ino, id));
        }
    }
    match held {
        Some(held) if req.close => {
            for p in pending.values().filter(|p| p.lease_id == held.lease_id) {
                blocks::free_pending_one(txn, ino, p, now);
            }
            txn.delete(keys::write_lease(ino));
        }
        Some(held) => lease::extend(txn, ino, held, cfg, now),
        None => {}
    }
    change_access(caller, &mut inode, req.mode, req.uid, req.gid, &what)?;
    inode.size = after.len();
    inode.mtime_ns = now;
    change_times(caller, &mut inode, req.mtime_ns, req.atime_ns, &what)?;
    inode.ctime_ns = inode.ctime_ns.max(now);
    txn.put(keys::inode(ino), inode.encode_to_vec());
    Ok(Outcome::Done(attrs::file_status(ino, "", &inode, None)))
}

/// Whether an unleased commit may go ahead: the file has no lease (live or expired), its
/// ctime is the one the writer last gave it (so nobody opened, truncated, wrote or chmodded it
/// since), the writer owns it, and the commit is inline data only.
fn unleased_allowed(
    lease_row: &crate::txn::Versioned,
    inode: &arbor_proto::records::InodeRecord,
    caller: &Caller,
    req: &CommitWriteRequest,
    what: &str,
) -> Result<(), NnError> {
    if req.inline_data.is_none() || !req.blocks.is_empty() {
        return Err(NnError::invalid(
            what,
            "a commit without a lease carries inline data only",
        ));
    }
    let owner = caller.is_superuser() || caller.uid == inode.uid;
    if lease::decode(lease_row)?.is_some() || inode.ctime_ns != req.unleased_ctime_ns || !owner {
        return Err(NnError::LeaseExpired(format!(
            "`{what}': the file changed since this writer created it; the writer must take \
             its lease"
        )));
    }
    Ok(())
}

/// The row of a block the writer commits, checked against what it was allocated.
fn block_record(
    b: &BlockInfo,
    before: &FileData,
    pending: &HashMap<u64, PendingBlock>,
    hole: &arbor_proto::records::BlockPolicy,
    threshold: u64,
    what: &str,
) -> Result<BlockRecord, NnError> {
    if !b.data.is_empty() {
        if b.data.len() as u64 > threshold || b.data.len() as u64 != b.length {
            return Err(NnError::invalid(
                what,
                format!(
                    "block {}: a metastore block holds exactly its length, at most {threshold} bytes",
                    b.index
                ),
            ));
        }
        if !b.shards.is_empty() {
            return Err(NnError::invalid(
                what,
                format!("block {}: has both data and shards", b.index),
            ));
        }
    }
    if b.shards.is_empty() {
        return Ok(BlockRecord {
            block_id: 0,
            offset: 0,
            length: b.length,
            policy: Some(hole.clone()),
            shards: Vec::new(),
            data: b.data.clone(),
            coded_length: 0,
        });
    }
    let allocated = match pending.get(&b.block_id) {
        Some(p) => Some((p.policy.clone(), p.shards.clone())),
        // Committing a block again (say with the same shards after a retry) is harmless.
        None => before
            .blocks
            .get(&b.index)
            .filter(|old| old.block_id == b.block_id)
            .map(|old| (old.policy.clone(), old.shards.clone())),
    };
    let Some((Some(pol), given)) = allocated else {
        return Err(NnError::invalid(
            what,
            format!(
                "block {} (id {}) was not allocated to this writer",
                b.index, b.block_id
            ),
        ));
    };
    if b.shards.len() != policy::width(&pol) {
        return Err(NnError::invalid(
            what,
            format!(
                "block {}: {} shards given, {} has {}",
                b.index,
                b.shards.len(),
                pol.name,
                policy::width(&pol)
            ),
        ));
    }
    let mut shards = Vec::with_capacity(b.shards.len());
    for (i, s) in b.shards.iter().enumerate() {
        let expect = given.iter().find(|g| g.index as usize == i);
        let ok = s.index as usize == i
            && (s.server_id == 0 || expect.is_some_and(|g| g.server_id == s.server_id));
        if !ok {
            return Err(NnError::invalid(
                what,
                format!(
                    "block {}: shard {i} is not where it was allocated (server {})",
                    b.index, s.server_id
                ),
            ));
        }
        shards.push(ShardRef {
            index: s.index,
            server_id: s.server_id,
        });
    }
    let coded_length = if b.coded_length == 0 {
        b.length
    } else {
        b.coded_length
    };
    if coded_length < b.length {
        return Err(NnError::invalid(
            "commit",
            format!(
                "block {} is {} bytes long but was coded with {}",
                b.block_id, b.length, coded_length
            ),
        ));
    }
    Ok(BlockRecord {
        block_id: b.block_id,
        offset: 0,
        length: b.length,
        policy: Some(pol),
        shards,
        data: Vec::new(),
        coded_length,
    })
}

/// Extends each (ino, lease) the writer holds; a lease it lost is LEASE_EXPIRED.
pub async fn renew_lease<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &RenewLeaseRequest,
) -> Result<(), NnError> {
    if req.inos.len() != req.leases.len() {
        return Err(NnError::invalid(
            "renew lease",
            "one lease per inode is needed",
        ));
    }
    let renewals = req
        .inos
        .iter()
        .zip(&req.leases)
        .map(|(ino, token)| renew_one(ns, caller, *ino, token));
    for r in futures::future::join_all(renewals).await {
        r?;
    }
    Ok(())
}

async fn renew_one<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    ino: u64,
    token: &[u8],
) -> Result<(), NnError> {
    let mut runner = Runner::new(ns, caller, &format!("inode {ino}"));
    loop {
        let mut txn = ns.begin("renew_lease");
        let exo = Exo::disabled();
        let result = async {
            let rows = txn.get(&[keys::write_lease(ino)], true).await?;
            let held = lease::require(&rows[0], ino, token)?;
            lease::extend(&mut txn, ino, held, &ns.config.data, attrs::now_ns());
            Ok(Outcome::Done(arbor_proto::namenode::Empty {}))
        }
        .await;
        if runner.finish(txn, exo, result).await?.is_some() {
            return Ok(());
        }
    }
}
