//! AddBlock: a fresh block id and k+m distinct live block servers for the writer's next block.
//! The allocation is recorded as a pending row (`P ‖ ino ‖ block id`) in the same transaction
//! that checks and extends the writer's lease, so shards written for a block that is never
//! committed (the writer died) are found and freed: at close, at lease recovery, or by the
//! leader once the allocation is older than the lease's hard limit.

use arbor_proto::namenode::{AddBlockReply, AddBlockRequest, BlockInfo, ShardLocation};
use arbor_proto::records::{PendingBlock, ShardRef};
use prost::Message;

use crate::attrs;
use crate::data::{lease, policy, servers};
use crate::error::NnError;
use crate::keys;
use crate::ops::{Exo, Namespace, Outcome, Runner};
use crate::perm::Caller;
use crate::txn::{Store, Txn};

pub async fn add_block<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    req: &AddBlockRequest,
) -> Result<AddBlockReply, NnError> {
    let mut runner = Runner::new(ns, caller, &format!("inode {}", req.ino));
    loop {
        let mut txn = ns.begin("add_block");
        let mut exo = runner.exo();
        let result = attempt(ns, &mut txn, &mut exo, req).await;
        if let Some(reply) = runner.finish(txn, exo, result).await? {
            return Ok(reply);
        }
    }
}

async fn attempt<S: Store>(
    ns: &Namespace<S>,
    txn: &mut S::Txn,
    exo: &mut Exo,
    req: &AddBlockRequest,
) -> Result<Outcome<AddBlockReply>, NnError> {
    let cfg = &ns.config.data;
    let ino = req.ino;
    let (inode_row, lease_row) = match lease::read_file(txn, exo, ino).await? {
        Ok(rows) => rows,
        Err(answer) => return Ok(Outcome::Replayed(answer)),
    };
    if attrs::decode_inode(&inode_row)?.is_none() {
        return Err(NnError::NotFound(format!("inode {ino}")));
    }
    let held = lease::require(&lease_row, ino, &req.lease)?;
    let name = if held.policy.is_empty() {
        cfg.default_policy.clone()
    } else {
        held.policy.clone()
    };
    let pol = policy::parse(&name, cfg.cell_size, &format!("inode {ino}"))?;
    let width = (pol.data_shards + pol.parity_shards) as usize;
    let table = servers::load(txn).await?;
    let now = attrs::now_ns();
    let picked = servers::place(table.values(), width, &req.exclude_servers, &pol, cfg, now)?;
    let block_id = ns.store.alloc_seq().await?;
    let shards: Vec<ShardLocation> = picked
        .iter()
        .enumerate()
        .map(|(i, s)| ShardLocation {
            index: i as u32,
            server_id: s.server_id,
            addr: s.addr.clone(),
        })
        .collect();
    let pending = PendingBlock {
        block_id,
        lease_id: held.lease_id.clone(),
        allocated_ns: now,
        policy: Some(policy::to_record(&pol)),
        shards: shards
            .iter()
            .map(|s| ShardRef {
                index: s.index,
                server_id: s.server_id,
            })
            .collect(),
    };
    txn.put(keys::pending(ino, block_id), pending.encode_to_vec());
    lease::extend(txn, ino, held, cfg, now);
    Ok(Outcome::Done(AddBlockReply {
        block: Some(BlockInfo {
            block_id,
            policy: Some(pol),
            shards,
            ..Default::default()
        }),
    }))
}
