//! Delete: a file or symlink, an empty directory, or (recursive) a whole subtree.
//!
//! A file goes with its dentry, inode and xattrs; an empty directory also with its counter
//! row, and the transaction requires its dentry prefix to be empty and reads its inode
//! validated (a concurrent create in it validates that inode too, so one of them fails). A
//! non-empty directory deleted recursively is detached by ONE small transaction: its dentry is
//! removed, the parent's counters move, and `todelete(ino)` records the subtree; the subtree
//! vanishes at once and the leader's deleter removes its rows in the background.

use arbor_proto::namenode::DeleteReply;
use arbor_proto::namenode::delete_request::Expect;
use arbor_proto::records::{DeleteRecord, InodeKind};
use prost::Message;

use crate::attrs::{self, CounterUpdates};
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, InodeRows, Namespace, Outcome, Runner, delete_inode, dir_is_empty};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::txn::{Store, Txn};

pub async fn delete<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    recursive: bool,
    expect: Expect,
) -> Result<DeleteReply, NnError> {
    let path = NsPath::parse(path)?;
    if path.is_root() {
        return Err(NnError::Root(path.text()));
    }
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("delete");
        let mut exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, &mut exo, &path, recursive, expect).await;
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
    recursive: bool,
    expect: Expect,
) -> Result<Outcome<DeleteReply>, NnError> {
    let text = path.text();
    let name = path.name();
    // A file the path cache knows: its own rows are read in the walk's first round, and
    // used if the walk finds that inode (at the version read with them: the same call).
    let walk = ns
        .resolver
        .walk_with(txn, caller, path, InodeRows::extra_for_file)
        .await?;
    let parent = walk.parent()?.ino;
    let seen = walk.target_ino();

    // The walk read the dentry and the victim's inode: their versions are the read checks,
    // with the parent's tombstone expected absent. A missing entry may be this very call's
    // earlier attempt, so then the retry record is read before answering NOT_FOUND.
    let (dentry_row, victim_row) = walk.last_entry(txn).await?;
    let home = keys::content_route(parent);
    let record = if seen.is_some() {
        exo.home_expecting_absent(txn, home)
    } else {
        exo.home(home)
    };
    if let Some(key) = record
        && let Some(answer) = Exo::replay(&txn.get(&[key], true).await?[0])?
    {
        return Ok(Outcome::Replayed(answer));
    }
    let victim_row = victim_row.unwrap_or_default();
    let version = victim_row.version;
    let parent_inode = walk.parent()?.inode.clone();
    let Some(dentry) = attrs::decode_dentry(&dentry_row)? else {
        return match seen {
            Some(_) => Err(NnError::raced("entry vanished")),
            None => Err(NnError::NotFound(text)),
        };
    };
    if seen != Some(dentry.ino) {
        return Err(NnError::raced("entry changed since resolution"));
    }
    let Some(victim) = attrs::decode_inode(&victim_row)? else {
        return Err(NnError::raced("inode vanished"));
    };
    let parent_text = path.parent().text();
    perm::check(
        caller,
        &parent_inode,
        &parent_text,
        perm::WRITE | perm::EXECUTE,
    )?;
    perm::check_sticky(caller, &parent_inode, &parent_text, &victim, &text)?;
    let kind = attrs::dentry_kind(&dentry);
    let is_dir = kind == InodeKind::Directory;
    match expect {
        Expect::FileOnly if is_dir => return Err(NnError::IsADirectory(text)),
        Expect::DirOnly if !is_dir => return Err(NnError::NotADirectory(text)),
        _ => {}
    }

    let now = attrs::now_ns();
    let ino = dentry.ino;
    txn.delete(keys::dentry(parent, name));
    if !is_dir {
        let early = match walk.extra_for {
            Some(guessed) if guessed == ino => {
                let plan = InodeRows::plan(ino, kind);
                let read: Vec<_> = plan
                    .keys
                    .iter()
                    .map(|k| walk.row(k).cloned().unwrap_or_default())
                    .collect();
                let pages = walk.extra_pages.clone();
                let rows = InodeRows::assemble(txn, ino, kind, &plan, read, pages).await?;
                (rows.inode_version == version).then_some(rows)
            }
            _ => None,
        };
        let rows = match early {
            Some(rows) => rows,
            None => InodeRows::read(txn, ino, kind).await?,
        };
        rows.delete(txn)?;
    } else if dir_is_empty(txn, ino).await? {
        txn.require_empty(keys::content_route(ino), keys::dentry_prefix(ino));
        delete_inode(txn, ino, kind).await?;
    } else if recursive {
        let record = DeleteRecord {
            ino,
            detached_ns: now,
            path: text.clone(),
        };
        txn.put(keys::todelete(ino), record.encode_to_vec());
    } else {
        return Err(NnError::NotEmpty(text));
    }
    let mut c = CounterUpdates::default();
    c.entries(parent, -1, -i64::from(is_dir), now);
    c.apply(txn);
    ns.resolver.forget(parent, name);
    Ok(Outcome::Done(DeleteReply { deleted: true }))
}
