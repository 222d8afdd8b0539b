//! ContentSummary: recursive counts under a path (directories including itself, files,
//! symlinks, total file size, and the space the files' data takes: block lengths scaled by
//! each block's (k+m)/k, plus inline bytes), walking the subtree with paged dentry scans and batched inode
//! reads. Not a snapshot: a subtree changing meanwhile is counted as the walk finds it.
//! Non-superusers need READ+EXECUTE on every directory counted, as in HDFS.

use std::collections::VecDeque;

use arbor_proto::namenode::ContentSummaryReply;
use arbor_proto::records::InodeKind;

use crate::attrs;
use crate::data::blocks::{self, FileData};
use crate::error::NnError;
use crate::keys::{self, Ino};
use crate::ops::{Namespace, Outcome, Runner, prefix_end};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::txn::{Key, Store, Txn};

const PAGE: u32 = 1000;

pub async fn content_summary<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
) -> Result<ContentSummaryReply, NnError> {
    let path = NsPath::parse(path)?;
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("content_summary");
        let exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, &path).await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

/// Bytes stored for one file (an empty file has no data rows to read).
async fn space_of<T: Txn>(txn: &mut T, ino: Ino, size: u64) -> Result<u64, NnError> {
    if size == 0 {
        return Ok(0);
    }
    Ok(blocks::space_consumed(&FileData::load(txn, ino).await?))
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    path: &NsPath,
) -> Result<Outcome<ContentSummaryReply>, NnError> {
    let walk = ns.resolver.walk(txn, caller, path, false).await?;
    let node = walk.target()?;
    let mut sum = ContentSummaryReply::default();
    match node.kind() {
        InodeKind::Directory => {}
        InodeKind::Symlink => {
            sum.symlinks = 1;
            return Ok(Outcome::Done(sum));
        }
        _ => {
            sum.files = 1;
            sum.length = node.inode.size;
            sum.space_consumed = space_of(txn, node.ino, node.inode.size).await?;
            return Ok(Outcome::Done(sum));
        }
    }
    perm::check(
        caller,
        &node.inode,
        &path.text(),
        perm::READ | perm::EXECUTE,
    )?;
    sum.directories = 1;
    let mut queue: VecDeque<(Ino, String)> = VecDeque::from([(node.ino, path.text())]);
    while let Some((dir, dir_path)) = queue.pop_front() {
        let prefix = keys::dentry_prefix(dir);
        let end = prefix_end(&prefix);
        let mut start = prefix;
        loop {
            let (rows, more) = txn
                .scan(keys::content_route(dir), start.clone(), end.clone(), PAGE)
                .await?;
            let mut inodes: Vec<Key> = Vec::new();
            let mut names: Vec<(String, Ino, InodeKind)> = Vec::new();
            for (key, row) in &rows {
                let (Some(name), Some(d)) = (keys::dentry_name(key), attrs::decode_dentry(row)?)
                else {
                    continue;
                };
                let kind = attrs::dentry_kind(&d);
                let needs_inode = kind == InodeKind::File
                    || (kind == InodeKind::Directory && !caller.is_superuser());
                if needs_inode {
                    inodes.push(keys::inode(d.ino));
                }
                names.push((name.to_string(), d.ino, kind));
            }
            let got = txn.get(&inodes, false).await?;
            let mut got = got.iter();
            for (name, ino, kind) in names {
                match kind {
                    InodeKind::Directory => {
                        let child_path = format!("{}/{name}", dir_path.trim_end_matches('/'));
                        if !caller.is_superuser() {
                            if let Some(inode) =
                                got.next().map(attrs::decode_inode).transpose()?.flatten()
                            {
                                perm::check(
                                    caller,
                                    &inode,
                                    &child_path,
                                    perm::READ | perm::EXECUTE,
                                )?;
                            } else {
                                continue;
                            }
                        }
                        sum.directories += 1;
                        queue.push_back((ino, child_path));
                    }
                    InodeKind::File => {
                        if let Some(inode) =
                            got.next().map(attrs::decode_inode).transpose()?.flatten()
                        {
                            sum.files += 1;
                            sum.length += inode.size;
                            sum.space_consumed += space_of(txn, ino, inode.size).await?;
                        }
                    }
                    InodeKind::Symlink => sum.symlinks += 1,
                    InodeKind::KindUnspecified => {}
                }
            }
            match (more, rows.last()) {
                (true, Some((k, _))) => {
                    start = k.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(Outcome::Done(sum))
}
