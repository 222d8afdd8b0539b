//! OpenWrite: a writer opens a file (creating it if asked) and takes its lease, in one
//! transaction on the directory's shard. Creating needs WRITE+EXECUTE on the directory,
//! opening an existing file WRITE on it. A live lease of another writer is LEASE_HELD; an
//! expired one is recovered. Overwrite frees the old blocks and inline bytes in the same
//! transaction. A new file takes the effective erasure-coding policy (nearest ancestor's, else
//! the cluster default) and keeps it; the lease records the policy of the blocks the writer
//! will allocate. The retry record's home is the directory, as for create.

use arbor_proto::namenode::{OpenWriteReply, OpenWriteRequest};
use arbor_proto::records::InodeKind;
use prost::Message;

use crate::attrs::{self, CounterUpdates};
use crate::data::blocks::FileData;
use crate::data::{lease, policy};
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, Namespace, Outcome, Runner};
use crate::path::{self, NsPath};
use crate::perm::{self, Caller};
use crate::txn::{Store, Txn};

pub async fn open_write<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &OpenWriteRequest,
) -> Result<OpenWriteReply, NnError> {
    if req.ino != 0 {
        return open_ino(ns, caller, req).await;
    }
    let path = NsPath::parse(&req.path)?;
    if path.is_root() {
        return Err(NnError::IsADirectory(path.text()));
    }
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("open_write");
        let mut exo = runner.exo();
        let presume = req.create && runner.presume();
        let result = attempt(ns, &mut txn, caller, &mut exo, &path, req, presume).await;
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
    path: &NsPath,
    req: &OpenWriteRequest,
    presume: bool,
) -> Result<Outcome<OpenWriteReply>, NnError> {
    let cfg = &ns.config.data;
    let text = path.text();
    let name = path.name();
    path::check_name(name, &text)?;
    let walk = ns.resolver.walk_to_new(txn, caller, path, presume).await?;
    let parent = walk.parent()?.ino;
    let seen = walk.target_ino();

    // The walk read the dentry and an existing file's inode (on the directory's content
    // shard): their versions become read checks, and the parent's tombstone is expected
    // absent. Only the lease, and the retry record unless it is expected absent (a new file
    // on a first attempt), are read here.
    let (dentry_row, inode_row) = walk.last_entry(txn).await?;
    let mut want: Vec<crate::txn::Key> = seen.map(keys::write_lease).into_iter().collect();
    let retry_at = want.len();
    let home = keys::content_route(parent);
    if seen.is_some() {
        want.extend(exo.home(home));
    } else {
        want.extend(exo.home_expecting_absent(txn, home));
    }
    let fetched = txn.get(&want, true).await?;
    if let Some(r) = fetched.get(retry_at)
        && let Some(answer) = Exo::replay(r)?
    {
        return Ok(Outcome::Replayed(answer));
    }
    let lease_row = seen.map(|_| fetched[0].clone()).unwrap_or_default();
    let parent_inode = walk.parent()?.inode.clone();
    if attrs::kind_of(&parent_inode) != InodeKind::Directory {
        return Err(NnError::raced("parent is no longer a directory"));
    }
    let dentry = attrs::decode_dentry(&dentry_row)?;
    if dentry.as_ref().map(|d| d.ino) != seen {
        return Err(NnError::raced("entry changed since resolution"));
    }
    let now = attrs::now_ns();
    let parents = walk.nodes[..path.depth()].iter().map(|n| &n.inode);

    let Some(dentry) = dentry else {
        if !req.create {
            return Err(NnError::NotFound(text));
        }
        perm::check(
            caller,
            &parent_inode,
            &path.parent().text(),
            perm::WRITE | perm::EXECUTE,
        )?;
        let (policy_name, _) = policy::effective(parents, &cfg.default_policy);
        let seq = ns.store.alloc_seq().await?;
        let ino = keys::make_ino(keys::content_vpart(parent, ns.store.vparts()), seq);
        let mut inode = attrs::new_inode(
            InodeKind::File,
            req.mode,
            caller.uid,
            parent_inode.gid,
            parent,
            now,
        );
        inode.ec_policy = policy_name.clone();
        inode.block_size = cfg.block_size;
        txn.put(
            keys::dentry(parent, name),
            attrs::dentry_value(ino, InodeKind::File),
        );
        txn.put(keys::inode(ino), inode.encode_to_vec());
        ns.resolver.remember(parent, name, ino, InodeKind::File);
        let mut c = CounterUpdates::default();
        c.entries(parent, 1, 0, now);
        c.apply(txn);
        let granted = lease::grant(txn, ino, &caller.client_id, &policy_name, cfg, now);
        let status = attrs::file_status(ino, name, &inode, None);
        return reply(ns, status, granted, &policy_name, &FileData::default());
    };

    let ino = dentry.ino;
    if req.exclusive {
        return Err(NnError::AlreadyExists(text));
    }
    match attrs::dentry_kind(&dentry) {
        InodeKind::File => {}
        InodeKind::Directory => return Err(NnError::IsADirectory(text)),
        _ => return Err(NnError::invalid(&text, "not a regular file")),
    }
    let Some(mut inode) = attrs::decode_inode(&inode_row.unwrap_or_default())? else {
        return Err(NnError::raced("inode vanished"));
    };
    perm::check(caller, &inode, &text, perm::WRITE)?;
    let current = lease::decode(&lease_row)?;
    let op = if req.append { "append to" } else { "create" };
    lease::take_over(
        txn,
        ino,
        current.as_ref(),
        &text,
        op,
        &caller.client_id,
        now,
    )
    .await?;

    if inode.ec_policy.is_empty() {
        inode.ec_policy = policy::effective(parents, &cfg.default_policy).0;
    }
    if inode.block_size == 0 {
        inode.block_size = cfg.block_size;
    }
    let policy_name = inode.ec_policy.clone();
    let mut data = FileData::load(txn, ino).await?;
    if req.overwrite {
        let before = data;
        data = FileData::default();
        data.store(txn, ino, &before, now);
        inode.size = 0;
        inode.mtime_ns = now;
        inode.ctime_ns = now;
    }
    txn.put(keys::inode(ino), inode.encode_to_vec());
    let granted = lease::grant(txn, ino, &caller.client_id, &policy_name, cfg, now);
    let status = attrs::file_status(ino, name, &inode, None);
    reply(ns, status, granted, &policy_name, &data)
}

/// OpenWrite of an existing file by inode number: a writer that created the file and wrote
/// it without a lease so far takes the lease now (its file outgrew the metastore, or changed
/// under it). The path is only for messages; the file's shard holds everything read.
async fn open_ino<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &OpenWriteRequest,
) -> Result<OpenWriteReply, NnError> {
    let what = if req.path.is_empty() {
        format!("inode {}", req.ino)
    } else {
        req.path.clone()
    };
    if req.create || req.exclusive || req.overwrite {
        return Err(NnError::invalid(
            &what,
            "an open by inode number opens an existing file as it is",
        ));
    }
    let mut runner = Runner::new(ns, caller, &what);
    loop {
        let mut txn = ns.begin("open_write");
        let mut exo = runner.exo();
        let result = attempt_ino(ns, &mut txn, caller, &mut exo, req, &what).await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

async fn attempt_ino<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    req: &OpenWriteRequest,
    what: &str,
) -> Result<Outcome<OpenWriteReply>, NnError> {
    let cfg = &ns.config.data;
    let ino = req.ino;
    let (inode_row, lease_row) = match lease::read_file(txn, exo, ino).await? {
        Ok(rows) => rows,
        Err(answer) => return Ok(Outcome::Replayed(answer)),
    };
    let Some(mut inode) = attrs::decode_inode(&inode_row)? else {
        return Err(NnError::NotFound(what.to_string()));
    };
    if attrs::kind_of(&inode) != InodeKind::File {
        return Err(NnError::invalid(what, "not a regular file"));
    }
    let creator = req.created_btime_ns != 0
        && inode.btime_ns == req.created_btime_ns
        && (caller.is_superuser() || caller.uid == inode.uid);
    if !creator {
        perm::check(caller, &inode, what, perm::WRITE)?;
    }
    let now = attrs::now_ns();
    let current = lease::decode(&lease_row)?;
    let op = if req.append { "append to" } else { "create" };
    lease::take_over(txn, ino, current.as_ref(), what, op, &caller.client_id, now).await?;
    if inode.ec_policy.is_empty() {
        inode.ec_policy = cfg.default_policy.clone();
    }
    if inode.block_size == 0 {
        inode.block_size = cfg.block_size;
    }
    let policy_name = inode.ec_policy.clone();
    let data = FileData::load(txn, ino).await?;
    txn.put(keys::inode(ino), inode.encode_to_vec());
    let granted = lease::grant(txn, ino, &caller.client_id, &policy_name, cfg, now);
    let status = attrs::file_status(ino, "", &inode, None);
    reply(ns, status, granted, &policy_name, &data)
}

fn reply<S: Store>(
    ns: &Namespace<S>,
    status: arbor_proto::namenode::FileStatus,
    granted: arbor_proto::records::WriteLease,
    policy_name: &str,
    data: &FileData,
) -> Result<Outcome<OpenWriteReply>, NnError> {
    let cfg = &ns.config.data;
    let policy = policy::parse(policy_name, cfg.cell_size, &status.name)?;
    let inline = data.blocks.is_empty();
    Ok(Outcome::Done(OpenWriteReply {
        status: Some(status),
        lease: granted.lease_id,
        policy: Some(policy),
        block_size: cfg.block_size,
        inline_threshold: cfg.inline_threshold,
        inline,
        inline_data: if inline {
            data.inline.clone().unwrap_or_default()
        } else {
            Vec::new()
        },
        next_block_index: data.next_index(),
        lease_renew_ms: (cfg.lease_soft.as_millis() as u64 / 4).max(100),
    }))
}
