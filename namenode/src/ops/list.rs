//! List: a directory's entries, page by page. One scan of the dentry prefix on the
//! directory's shard gives a page of names in byte order; the entries' inodes (and the counter
//! rows of subdirectories) then come in one batched read, which the transaction spreads over
//! the shards in parallel. A page never loads more than `limit` entries, so a huge directory
//! lists without being loaded whole. Listing a file gives that file as the only entry.

use arbor_proto::namenode::{DirEntry, ListReply};
use arbor_proto::records::InodeKind;

use crate::attrs;
use crate::error::NnError;
use crate::keys;
use crate::ops::{Namespace, Outcome, Runner, prefix_end};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::txn::{Key, Store, Txn};

pub async fn list<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    path: &str,
    start_after: &str,
    limit: u32,
) -> Result<ListReply, NnError> {
    let path = NsPath::parse(path)?;
    let limit = match limit {
        0 => ns.config.list_default,
        n => n.min(ns.config.list_max),
    };
    let mut runner = Runner::new(ns, caller, &path.text());
    loop {
        let mut txn = ns.begin("list");
        let exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, &path, start_after, limit).await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    path: &NsPath,
    start_after: &str,
    limit: u32,
) -> Result<Outcome<ListReply>, NnError> {
    let walk = ns.resolver.walk(txn, caller, path, true).await?;
    let node = walk.target()?;
    if !node.is_dir() {
        let entry = DirEntry {
            name: path.name().to_string(),
            status: Some(attrs::file_status(node.ino, path.name(), &node.inode, None)),
        };
        let entries = if start_after.is_empty() || path.name() > start_after {
            vec![entry]
        } else {
            Vec::new()
        };
        return Ok(Outcome::Done(ListReply {
            entries,
            more: false,
        }));
    }
    perm::check(
        caller,
        &node.inode,
        &path.text(),
        perm::READ | perm::EXECUTE,
    )?;
    let dir = node.ino;
    let prefix = keys::dentry_prefix(dir);
    let end = prefix_end(&prefix);
    let mut start = prefix.clone();
    if !start_after.is_empty() {
        // Names hold no NUL, so `name ‖ 0` is the first key after `name`.
        start.extend_from_slice(start_after.as_bytes());
        start.push(0);
    }
    let (rows, more) = txn
        .scan(keys::content_route(dir), start, end, limit)
        .await?;

    let mut names = Vec::with_capacity(rows.len());
    let mut wanted: Vec<Key> = Vec::with_capacity(rows.len() * 2);
    for (key, row) in &rows {
        let Some(name) = keys::dentry_name(key) else {
            continue;
        };
        let Some(dentry) = attrs::decode_dentry(row)? else {
            continue;
        };
        let is_dir = attrs::dentry_kind(&dentry) == InodeKind::Directory;
        wanted.push(keys::inode(dentry.ino));
        if is_dir {
            wanted.push(keys::counter(dentry.ino));
        }
        names.push((name.to_string(), dentry.ino, is_dir));
    }
    let got = txn.get(&wanted, false).await?;
    let mut got = got.iter();
    let mut entries = Vec::with_capacity(names.len());
    for (name, ino, is_dir) in names {
        let inode_row = got.next();
        let counter = if is_dir {
            got.next().map(attrs::decode_counter)
        } else {
            None
        };
        // An entry removed between the scan and the read is left out of the page.
        let Some(inode) = inode_row.map(attrs::decode_inode).transpose()?.flatten() else {
            continue;
        };
        ns.resolver
            .remember(dir, &name, ino, attrs::kind_of(&inode));
        entries.push(DirEntry {
            status: Some(attrs::file_status(ino, &name, &inode, counter)),
            name,
        });
    }
    Ok(Outcome::Done(ListReply { entries, more }))
}
