//! Rename with POSIX semantics, as ONE transaction between any two directories on any shards:
//! `dst` is the new full path; an existing `dst` is replaced atomically (file over file, or
//! directory over empty directory). Moving a directory is O(1): only its dentry moves (and
//! its InodeRecord's parent).
//!
//! Cycle safety: when the source is a directory, the dentries of `dst`'s whole ancestor chain,
//! from the root, are read validated (read-locked under two-phase commit). If any of them names the source directory,
//! the move would put it under itself (SUBDIR_OF_ITSELF). Two crossing renames (`/a -> /b/a`
//! and `/b -> /a/b`) each validate the dentry the other removes, so at most one commits.

use arbor_proto::namenode::Empty;
use arbor_proto::records::InodeKind;
use prost::Message;

use crate::attrs::{self, CounterUpdates};
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, Namespace, Outcome, Runner, delete_inode, dir_is_empty};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::resolve::{End, Walk};
use crate::txn::{Key, Store, Txn, Versioned};

pub async fn rename<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    src: &str,
    dst: &str,
    noreplace: bool,
) -> Result<(), NnError> {
    let src = NsPath::parse(src)?;
    let dst = NsPath::parse(dst)?;
    if src.is_root() {
        return Err(NnError::Root(src.text()));
    }
    if dst.is_root() {
        return Err(NnError::Root(dst.text()));
    }
    let mut runner = Runner::new(ns, caller, &src.text());
    loop {
        let mut txn = ns.begin("rename");
        let mut exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, &mut exo, &src, &dst, noreplace).await;
        if runner.finish(txn, exo, result).await?.is_some() {
            return Ok(());
        }
    }
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    exo: &mut Exo,
    src: &NsPath,
    dst: &NsPath,
    noreplace: bool,
) -> Result<Outcome<Empty>, NnError> {
    let (src_text, dst_text) = (src.text(), dst.text());
    let (src_name, dst_name) = (src.name(), dst.name());
    let (src_walk, dst_walk) = ns.resolver.walk_two(txn, caller, src, dst).await?;
    let sp = src_walk.parent()?.ino;
    let dp = match dst_walk.end {
        End::NotDir(_) => return Err(NnError::NotADirectory(dst_text)),
        End::Missing(i) if i + 1 < dst.depth() => return Err(NnError::NotFound(dst_text)),
        _ => dst_walk.nodes[dst.depth() - 1].ino,
    };
    let src_seen = src_walk.target_ino();
    let dst_seen = dst_walk.target_ino();

    // One validated round: both dentries, both parents, dst's ancestor chain, both inodes as
    // resolved, and the retry record.
    // The parents' existence is their tombstones' absence, beside their dentries: a file
    // rename within one directory stays on one shard.
    let mut want = vec![
        keys::tombstone(sp),
        keys::dentry(sp, src_name),
        keys::tombstone(dp),
        keys::dentry(dp, dst_name),
    ];
    // Only a moved directory can close a cycle, so only then is dst's ancestor chain part of
    // the read set. A file rename stays on the shards of its two parents: within one directory
    // that is a single-shard commit instead of a two-phase commit across the chain's shards.
    let src_walk_is_dir = src_walk
        .nodes
        .last()
        .is_some_and(|n| src_seen.is_some() && attrs::kind_of(&n.inode) == InodeKind::Directory);
    let chain_at = want.len();
    let chain_len = if src_walk_is_dir { dst.depth() - 1 } else { 0 };
    for i in 0..chain_len {
        want.push(keys::dentry(dst_walk.nodes[i].ino, &dst.comps()[i]));
    }
    let src_inode_at = src_seen.map(|ino| {
        want.push(keys::inode(ino));
        want.len() - 1
    });
    let dst_inode_at = dst_seen.map(|ino| {
        want.push(keys::inode(ino));
        want.len() - 1
    });
    let retry_at = want.len();
    // A source that still exists means no earlier attempt of this call moved it: the retry
    // record is then expected absent. Otherwise it is read, to tell a replay from NOT_FOUND.
    let home = keys::content_route(sp);
    let record = if src_seen.is_some() {
        exo.home_expecting_absent(txn, home)
    } else {
        exo.home(home)
    };
    want.extend(record);
    let rows = read_checked(txn, &[&src_walk, &dst_walk], &want, &[0, 2]).await?;
    if let Some(r) = rows.get(retry_at)
        && let Some(answer) = Exo::replay(r)?
    {
        return Ok(Outcome::Replayed(answer));
    }

    let Some(src_dentry) = attrs::decode_dentry(&rows[1])? else {
        return match src_seen {
            Some(_) => Err(NnError::raced("source vanished")),
            None => Err(NnError::NotFound(src_text)),
        };
    };
    if src_seen != Some(src_dentry.ino) {
        return Err(NnError::raced("source changed since resolution"));
    }
    if rows[0].exists() || rows[2].exists() {
        return Err(NnError::raced("a parent directory vanished"));
    }
    let sp_inode = src_walk.parent()?.inode.clone();
    let dp_inode = dst_walk.nodes[dst.depth() - 1].inode.clone();
    if attrs::kind_of(&sp_inode) != InodeKind::Directory
        || attrs::kind_of(&dp_inode) != InodeKind::Directory
    {
        return Err(NnError::raced("a parent is no longer a directory"));
    }
    for i in 0..chain_len {
        let named = attrs::decode_dentry(&rows[chain_at + i])?.map(|d| d.ino);
        if named != Some(dst_walk.nodes[i + 1].ino) {
            return Err(NnError::raced("destination's ancestors changed"));
        }
    }
    let dst_dentry = attrs::decode_dentry(&rows[3])?;
    if dst_dentry.as_ref().map(|d| d.ino) != dst_seen {
        return Err(NnError::raced("destination changed since resolution"));
    }
    let src_ino = src_dentry.ino;
    let src_kind = attrs::dentry_kind(&src_dentry);
    let src_is_dir = src_kind == InodeKind::Directory;
    if src_is_dir != src_walk_is_dir {
        return Err(NnError::raced("source changed kind since resolution"));
    }
    let Some(mut src_inode) = src_inode_at
        .map(|i| attrs::decode_inode(&rows[i]))
        .transpose()?
        .flatten()
    else {
        return Err(NnError::raced("source inode vanished"));
    };

    // Renaming an entry onto itself changes nothing (POSIX).
    if (sp == dp && src_name == dst_name) || dst_seen == Some(src_ino) {
        return Ok(Outcome::Done(Empty {}));
    }
    if src_is_dir
        && (dp == src_ino
            || dst_walk.nodes[1..dst.depth()]
                .iter()
                .any(|n| n.ino == src_ino))
    {
        return Err(NnError::SubdirOfItself {
            src: src_text,
            dst: dst_text,
        });
    }

    let (sp_text, dp_text) = (src.parent().text(), dst.parent().text());
    perm::check(caller, &sp_inode, &sp_text, perm::WRITE | perm::EXECUTE)?;
    perm::check(caller, &dp_inode, &dp_text, perm::WRITE | perm::EXECUTE)?;
    perm::check_sticky(caller, &sp_inode, &sp_text, &src_inode, &src_text)?;

    let now = attrs::now_ns();
    let mut counters = CounterUpdates::default();
    let mut replaced_dir = false;
    if let Some(dd) = &dst_dentry {
        if noreplace {
            return Err(NnError::AlreadyExists(dst_text));
        }
        let Some(dst_inode) = dst_inode_at
            .map(|i| attrs::decode_inode(&rows[i]))
            .transpose()?
            .flatten()
        else {
            return Err(NnError::raced("destination inode vanished"));
        };
        perm::check_sticky(caller, &dp_inode, &dp_text, &dst_inode, &dst_text)?;
        let dst_kind = attrs::dentry_kind(dd);
        match (src_is_dir, dst_kind == InodeKind::Directory) {
            (true, false) => return Err(NnError::NotADirectory(dst_text)),
            (false, true) => return Err(NnError::IsADirectory(dst_text)),
            (true, true) => {
                if !dir_is_empty(txn, dd.ino).await? {
                    return Err(NnError::NotEmpty(dst_text));
                }
                txn.require_empty(keys::content_route(dd.ino), keys::dentry_prefix(dd.ino));
                replaced_dir = true;
            }
            (false, false) => {}
        }
        delete_inode(txn, dd.ino, dst_kind).await?;
        counters.entries(dp, -1, -i64::from(replaced_dir), now);
    }

    txn.delete(keys::dentry(sp, src_name));
    txn.put(
        keys::dentry(dp, dst_name),
        attrs::dentry_value(src_ino, src_kind),
    );
    if src_is_dir {
        if sp != dp {
            // The directory's own row records where it hangs; its ctime moves with it.
            src_inode.parent = dp;
            src_inode.ctime_ns = now;
            txn.put(keys::inode(src_ino), src_inode.encode_to_vec());
        } else {
            // Same directory: only the ctime moves. The inode row lives beside the dentry
            // (unless the directory was moved here), and creates inside it never touch it.
            src_inode.ctime_ns = now;
            txn.put(keys::inode(src_ino), src_inode.encode_to_vec());
        }
    }
    let d = i64::from(src_is_dir);
    counters.entries(sp, -1, -d, now);
    counters.entries(dp, 1, d, now);
    counters.apply(txn);
    ns.resolver.forget(sp, src_name);
    ns.resolver.forget(dp, dst_name);
    Ok(Outcome::Done(Empty {}))
}

/// The rows of `keys`, validated: those at the positions in `absent` (the parents'
/// tombstones) are expected absent, a row one of the walks read becomes a read check at the
/// version it was read (no second read), and only the rest is fetched.
async fn read_checked<T: Txn>(
    txn: &mut T,
    walks: &[&Walk],
    keys: &[Key],
    absent: &[usize],
) -> Result<Vec<Versioned>, NnError> {
    let mut rows = vec![Versioned::default(); keys.len()];
    let mut fetch = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if absent.contains(&i) {
            txn.expect(key.clone(), 0);
            continue;
        }
        match walks.iter().find_map(|w| w.row(key)) {
            Some(row) => {
                txn.expect(key.clone(), row.version);
                rows[i] = row.clone();
            }
            None => fetch.push(i),
        }
    }
    if !fetch.is_empty() {
        let wanted: Vec<Key> = fetch.iter().map(|&i| keys[i].clone()).collect();
        for (i, row) in fetch.into_iter().zip(txn.get(&wanted, true).await?) {
            rows[i] = row;
        }
    }
    Ok(rows)
}
