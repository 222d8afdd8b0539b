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
use arbor_proto::records::InodeKind;
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
    let mut want = vec![keys::inode(ino)];
    want.extend(exo.home(keys::route_of(ino)));
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
