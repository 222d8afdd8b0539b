//! What a client knows of a block: its id, length, layout and where each shard lives, as the
//! namenode describes it. A shard location with server id 0 (or no address) is lost.

use crate::error::Error;
use crate::layout::Layout;
use arbor_proto::namenode::BlockInfo;

/// Where shard `index` of a block lives; server_id 0 / addr "" = lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardTarget {
    pub index: u32,
    pub server_id: u64,
    pub addr: String,
}

impl ShardTarget {
    /// True when the shard has a home to read from or write to.
    pub fn is_placed(&self) -> bool {
        self.server_id != 0 && !self.addr.is_empty()
    }

    /// The same shard, marked lost.
    pub fn lost(&self) -> ShardTarget {
        ShardTarget {
            index: self.index,
            server_id: 0,
            addr: String::new(),
        }
    }
}

/// A shard that could not be written or read, and why ("missing", "corrupt",
/// "unreachable", or a server's message for a failed write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFailure {
    pub index: u32,
    pub server_id: u64,
    pub reason: String,
}

/// A committed block, as the namenode describes it (from a BlockInfo).
#[derive(Clone, Debug)]
pub struct BlockRef {
    pub block_id: u64,
    pub length: u64,
    pub layout: Layout,
    /// By shard index, k+m entries; empty for a hole.
    pub shards: Vec<ShardTarget>,
}

impl BlockRef {
    pub fn from_info(b: &BlockInfo) -> Result<BlockRef, Error> {
        let policy = b.policy.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("block {:#x} has no coding policy", b.block_id))
        })?;
        let layout = Layout::from_policy(policy)?;
        let shards = b
            .shards
            .iter()
            .map(|s| ShardTarget {
                index: s.index,
                server_id: s.server_id,
                addr: s.addr.clone(),
            })
            .collect();
        // A truncated block keeps the layout its shards were coded with; readers never ask past
        // the file's own (shorter) length.
        Ok(BlockRef {
            block_id: b.block_id,
            length: b.length.max(b.coded_length),
            layout,
            shards: order_targets(b.block_id, layout, shards)?,
        })
    }
}

/// Sorts shard targets by index and checks they are exactly 0..k+m (or none at all).
pub(crate) fn order_targets(
    block_id: u64,
    layout: Layout,
    mut targets: Vec<ShardTarget>,
) -> Result<Vec<ShardTarget>, Error> {
    if targets.is_empty() {
        return Ok(targets);
    }
    targets.sort_by_key(|t| t.index);
    let ok = targets.len() == layout.shards()
        && targets
            .iter()
            .enumerate()
            .all(|(i, t)| t.index as usize == i);
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "block {block_id:#x}: shard indexes {:?} are not 0..{}",
            targets.iter().map(|t| t.index).collect::<Vec<_>>(),
            layout.shards()
        )));
    }
    Ok(targets)
}
