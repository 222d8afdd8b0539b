//! The read side: GetBlocks (a file's status with its inline bytes or a page of its blocks,
//! shard addresses filled in from the server table) and StatIno. Read permission is checked
//! on the file; by path the walk also checks EXECUTE on every directory. Shards on dead
//! servers are still listed: the reader skips what it cannot reach and decodes from the rest.

use std::collections::HashMap;

use arbor_proto::namenode::{
    BlockInfo, FileStatus, GetBlocksReply, GetBlocksRequest, ShardLocation,
};
use arbor_proto::records::{BlockRecord, BlockServerRecord, InodeKind, InodeRecord};
use prost::Message;

use crate::attrs;
use crate::data::{policy, servers};
use crate::error::NnError;
use crate::keys::{self, Ino};
use crate::ops::{Namespace, Outcome, Runner, prefix_end};
use crate::path::NsPath;
use crate::perm::{self, Caller};
use crate::txn::{Store, Txn};

pub async fn get_blocks<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &GetBlocksRequest,
) -> Result<GetBlocksReply, NnError> {
    let what = if req.ino != 0 {
        format!("inode {}", req.ino)
    } else {
        req.path.clone()
    };
    let mut runner = Runner::new(ns, caller, &what);
    loop {
        let mut txn = ns.begin("get_blocks");
        let exo = runner.exo();
        let result = attempt(ns, &mut txn, caller, req).await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

/// The inode `ino` and the status a client sees of it (no name: it was not reached by path).
async fn by_ino<T: Txn>(txn: &mut T, ino: Ino) -> Result<(InodeRecord, FileStatus), NnError> {
    let rows = txn
        .get(&[keys::inode(ino), keys::counter(ino)], false)
        .await?;
    let inode =
        attrs::decode_inode(&rows[0])?.ok_or_else(|| NnError::NotFound(format!("inode {ino}")))?;
    let counter =
        (attrs::kind_of(&inode) == InodeKind::Directory).then(|| attrs::decode_counter(&rows[1]));
    let status = attrs::file_status(ino, "", &inode, counter);
    Ok((inode, status))
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    caller: &Caller,
    req: &GetBlocksRequest,
) -> Result<Outcome<GetBlocksReply>, NnError> {
    let (ino, status, what) = if req.ino != 0 {
        let (inode, status) = by_ino(txn, req.ino).await?;
        let what = format!("inode {}", req.ino);
        perm::check(caller, &inode, &what, perm::READ)?;
        (req.ino, status, what)
    } else {
        let path = NsPath::parse(&req.path)?;
        let walk = ns.resolver.walk(txn, caller, &path, false).await?;
        let node = walk.target()?;
        let text = path.text();
        perm::check(caller, &node.inode, &text, perm::READ)?;
        let status = attrs::file_status(node.ino, path.name(), &node.inode, None);
        (node.ino, status, text)
    };
    match InodeKind::try_from(status.kind).unwrap_or(InodeKind::KindUnspecified) {
        InodeKind::File => {}
        InodeKind::Directory => return Err(NnError::IsADirectory(what)),
        _ => return Err(NnError::invalid(&what, "not a regular file")),
    }
    let cfg = &ns.config.data;
    let limit = match req.limit {
        0 => cfg.blocks_page,
        n => n.min(cfg.blocks_page.max(1) * 10),
    };
    let inline = txn.get(&[keys::inline(ino)], false).await?;
    let prefix = keys::block_prefix(ino);
    let start = keys::block(ino, req.from_index).bytes;
    let (rows, more) = txn
        .scan(keys::route_of(ino), start, prefix_end(&prefix), limit)
        .await?;
    let mut records = Vec::with_capacity(rows.len());
    for (key, row) in &rows {
        let Some((_, index)) = keys::block_key_parts(key) else {
            continue;
        };
        records.push((index, BlockRecord::decode(row.value.as_slice())?));
    }
    let table = if records.iter().any(|(_, b)| !b.shards.is_empty()) {
        servers::load(txn).await?
    } else {
        HashMap::new()
    };
    let blocks: Vec<BlockInfo> = records
        .iter()
        .map(|(index, b)| block_info(*index, b, &table))
        .collect();
    let is_inline = inline[0].exists() || (req.from_index == 0 && blocks.is_empty());
    Ok(Outcome::Done(GetBlocksReply {
        status: Some(status),
        inline: is_inline,
        inline_data: if inline[0].exists() {
            inline[0].value.clone()
        } else {
            Vec::new()
        },
        blocks,
        more,
    }))
}

/// A block row as a client sees it, with each shard's server address.
pub fn block_info(
    index: u64,
    b: &BlockRecord,
    table: &HashMap<u64, BlockServerRecord>,
) -> BlockInfo {
    BlockInfo {
        index,
        offset: b.offset,
        length: b.length,
        block_id: b.block_id,
        policy: b.policy.as_ref().map(policy::from_record),
        shards: b
            .shards
            .iter()
            .map(|s| ShardLocation {
                index: s.index,
                server_id: s.server_id,
                addr: if s.server_id == 0 {
                    String::new()
                } else {
                    table
                        .get(&s.server_id)
                        .map(|r| r.addr.clone())
                        .unwrap_or_default()
                },
            })
            .collect(),
        data: b.data.clone(),
        coded_length: if b.shards.is_empty() || b.coded_length == 0 {
            b.length
        } else {
            b.coded_length
        },
    }
}

/// The status of an inode by number; no path, so no permission applies.
pub async fn stat_ino<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    ino: Ino,
) -> Result<FileStatus, NnError> {
    let mut runner = Runner::new(ns, caller, &format!("inode {ino}"));
    loop {
        let mut txn = ns.begin("stat_ino");
        let exo = runner.exo();
        let result = by_ino(&mut txn, ino).await.map(|(_, s)| Outcome::Done(s));
        if let Some(status) = runner.finish(txn, exo, result).await? {
            return Ok(status);
        }
    }
}
