//! SetAttr: chmod, chown, utimes, and the recorded size of a file. Every change writes the
//! inode's own row and moves its ctime; the home of the call's retry record is the inode.
//!
//! Who may do what (HDFS / POSIX): chmod only the owner or the superuser; changing the owner
//! only the superuser; changing the group the owner, to a group it is in; times the owner,
//! or anyone with write permission; size needs write permission, and only files have one.

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;
use prost::Message;

use crate::attrs;
use crate::error::NnError;
use crate::keys::{self, DirCounter};
use crate::ops::{Exo, Namespace, Outcome, Runner};
use crate::path::NsPath;
use crate::perm::{self, Caller};
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
    let mut want = vec![keys::inode(ino)];
    want.extend(exo.home(ino));
    let rows = txn.get(&want, true).await?;
    if let Some(r) = rows.get(1)
        && let Some(answer) = Exo::replay(r)?
    {
        return Ok(Outcome::Replayed(answer));
    }
    let Some(mut inode) = attrs::decode_inode(&rows[0])? else {
        return Err(NnError::raced("inode vanished"));
    };
    let owner_or_root = caller.is_superuser() || caller.owns(&inode);

    if let Some(mode) = change.mode {
        if !owner_or_root {
            return Err(NnError::not_permitted(
                &text,
                "only the owner may change the mode",
            ));
        }
        inode.mode = mode & 0o7777;
    }
    if let Some(uid) = change.uid
        && uid != inode.uid
    {
        if !caller.is_superuser() {
            return Err(NnError::not_permitted(
                &text,
                "only the superuser may change the owner",
            ));
        }
        inode.uid = uid;
    }
    if let Some(gid) = change.gid
        && gid != inode.gid
    {
        if !(caller.is_superuser() || caller.owns(&inode) && caller.in_group(gid)) {
            return Err(NnError::not_permitted(
                &text,
                format!("user {} may not give the group to {gid}", caller.user),
            ));
        }
        inode.gid = gid;
    }
    if change.mtime_ns.is_some() || change.atime_ns.is_some() {
        if !owner_or_root {
            perm::check(caller, &inode, &text, perm::WRITE)?;
        }
        if let Some(t) = change.mtime_ns {
            inode.mtime_ns = t;
        }
        if let Some(t) = change.atime_ns {
            inode.atime_ns = t;
        }
    }
    if let Some(size) = change.size {
        match attrs::kind_of(&inode) {
            InodeKind::File => {}
            InodeKind::Directory => return Err(NnError::IsADirectory(text)),
            _ => return Err(NnError::invalid(&text, "only a file has a size to set")),
        }
        perm::check(caller, &inode, &text, perm::WRITE)?;
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
