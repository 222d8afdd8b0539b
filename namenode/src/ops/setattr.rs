//! SetAttr: chmod, chown, utimes, and the recorded size of a file. Every change writes the
//! inode's own row and moves its ctime; the home of the call's retry record is the inode.
//!
//! Who may do what (HDFS / POSIX): chmod only the owner or the superuser; changing the owner
//! only the superuser; changing the group the owner, to a group it is in; times the owner,
//! or anyone with write permission; size needs write permission, and only files have one.
//!
//! Size truncates or extends the file's data in the same transaction (see
//! `data::blocks::FileData::resize`): blocks past the end are freed, the last one shortened,
//! growth adds holes (or zeros to inline bytes within the inline threshold). It is refused
//! with LEASE_HELD while a writer holds the file.

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::{InodeKind, InodeRecord};
use prost::Message;

use crate::attrs;
use crate::data::blocks::FileData;
use crate::data::{lease, policy};
use crate::error::NnError;
use crate::keys::{self, DirCounter, Ino};
use crate::ops::{Exo, Namespace, Outcome, Runner};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::resolve::Walk;
use crate::txn::{CounterOp, Store, Txn};

/// The attributes to change; `None` leaves one as it is.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime_ns: Option<i64>,
    pub atime_ns: Option<i64>,
    pub size: Option<u64>,
}

pub async fn setattr<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    change: &SetAttr,
) -> Result<FileStatus, NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("setattr");
        let mut exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, &mut exo, &path, change).await;
        if let Some(status) = runner.finish(txn, exo, result).await? {
            return Ok(status);
        }
    }
}

/// Applies a change of mode, owner or group to `inode`, if `caller` may make it: the mode
/// only the owner or the superuser, the owner only the superuser, the group the owner to a
/// group it is in (or the superuser).
pub fn change_access(
    caller: &Caller,
    inode: &mut InodeRecord,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    text: &str,
) -> Result<(), NnError> {
    let owner_or_root = caller.is_superuser() || caller.owns(inode);
    if let Some(mode) = mode {
        if !owner_or_root {
            return Err(NnError::not_permitted(
                text,
                "only the owner may change the mode",
            ));
        }
        inode.mode = mode & 0o7777;
    }
    if let Some(uid) = uid
        && uid != inode.uid
    {
        if !caller.is_superuser() {
            return Err(NnError::not_permitted(
                text,
                "only the superuser may change the owner",
            ));
        }
        inode.uid = uid;
    }
    if let Some(gid) = gid
        && gid != inode.gid
    {
        if !(caller.is_superuser() || caller.owns(inode) && caller.in_group(gid)) {
            return Err(NnError::not_permitted(
                text,
                format!("user {} may not give the group to {gid}", caller.user),
            ));
        }
        inode.gid = gid;
    }
    Ok(())
}

/// Sets the modification and access times, if `caller` may: the owner, the superuser, or
/// anyone with write permission.
pub fn change_times(
    caller: &Caller,
    inode: &mut InodeRecord,
    mtime_ns: Option<i64>,
    atime_ns: Option<i64>,
    text: &str,
) -> Result<(), NnError> {
    if mtime_ns.is_none() && atime_ns.is_none() {
        return Ok(());
    }
    if !(caller.is_superuser() || caller.owns(inode)) {
        perm::check(caller, inode, text, perm::WRITE)?;
    }
    if let Some(t) = mtime_ns {
        inode.mtime_ns = t;
    }
    if let Some(t) = atime_ns {
        inode.atime_ns = t;
    }
    Ok(())
}

/// Truncates or extends the file's data (inline bytes or blocks) to `size`, refusing while
/// another writer holds the file's lease (an expired lease is recovered first).
async fn resize<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    walk: &Walk,
    ino: Ino,
    text: &str,
    size: u64,
) -> Result<(), NnError> {
    let cfg = &ns.config.data;
    let now = attrs::now_ns();
    let row = txn.get(&[keys::write_lease(ino)], true).await?;
    let current = lease::decode(&row[0])?;
    lease::take_over(
        txn,
        ino,
        current.as_ref(),
        text,
        "truncate",
        &caller.client_id,
        now,
    )
    .await?;
    let (name, _) = policy::effective(walk.nodes.iter().map(|n| &n.inode), &cfg.default_policy);
    let hole = policy::to_record(&policy::parse(&name, cfg.cell_size, text)?);
    let before = FileData::load(txn, ino).await?;
    let mut after = before.clone();
    after.resize(size, cfg.inline_threshold, cfg.block_size, &hole);
    after.store(txn, ino, &before, now);
    Ok(())
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    path: &NsPath,
    change: &SetAttr,
) -> Result<Outcome<FileStatus>, NnError> {
    let text = path.text();
    let walk = ns.resolver.walk(txn, caller, path, true).await?;
    let node = walk.target()?;
    let ino = node.ino;
    // The walk read the inode: its version is the read check. Only the retry record may
    // still need a read (on a first attempt it is expected absent instead).
    let inode_key = keys::inode(ino);
    let mut want = Vec::new();
    let inode_row = match walk.row(&inode_key) {
        Some(row) => {
            txn.expect(inode_key, row.version);
            Some(row.clone())
        }
        None => {
            want.push(inode_key);
            None
        }
    };
    want.extend(exo.home_expecting_absent(txn, keys::route_of(ino)));
    let mut rows = txn.get(&want, true).await?.into_iter();
    let inode_row = match inode_row {
        Some(row) => row,
        None => rows.next().unwrap_or_default(),
    };
    if let Some(r) = rows.next()
        && let Some(answer) = Exo::replay(&r)?
    {
        return Ok(Outcome::Replayed(answer));
    }
    let Some(mut inode) = attrs::decode_inode(&inode_row)? else {
        return Err(NnError::raced("inode vanished"));
    };
    change_access(
        caller,
        &mut inode,
        change.mode,
        change.uid,
        change.gid,
        &text,
    )?;
    change_times(caller, &mut inode, change.mtime_ns, change.atime_ns, &text)?;
    if let Some(size) = change.size {
        match attrs::kind_of(&inode) {
            InodeKind::File => {}
            InodeKind::Directory => return Err(NnError::IsADirectory(text)),
            _ => return Err(NnError::invalid(&text, "only a file has a size to set")),
        }
        perm::check(caller, &inode, &text, perm::WRITE)?;
        resize(ns, txn, caller, &walk, ino, &text, size).await?;
        inode.size = size;
        if change.mtime_ns.is_none() {
            inode.mtime_ns = attrs::now_ns();
        }
    }
    inode.ctime_ns = inode.ctime_ns.max(attrs::now_ns());
    txn.put(keys::inode(ino), inode.encode_to_vec());
    let mut counter = node.counter;
    if attrs::kind_of(&inode) == InodeKind::Directory
        && let Some(t) = change.mtime_ns
    {
        // A directory's shown mtime is the max of its inode's and its counter row's, so an
        // explicit (possibly older) mtime sets the counter field too.
        txn.counter(
            keys::counter(ino),
            DirCounter::WIDTH,
            vec![(DirCounter::MTIME_NS, CounterOp::Set, t)],
        );
        if let Some(c) = counter.as_mut() {
            c[DirCounter::MTIME_NS as usize] = t;
        }
    }
    Ok(Outcome::Done(attrs::file_status(
        ino,
        path.name(),
        &inode,
        counter,
    )))
}
