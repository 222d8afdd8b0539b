//! A file's data as rows: inline bytes (`L ‖ ino`) or blocks (`B ‖ ino ‖ index`), never both.
//! Invariants kept by every change made through [`FileData`]: block indexes run 0, 1, 2, …
//! without gaps; each block's offset is the previous block's end; the lengths add up to the
//! file's size (an inline file's bytes are exactly its size). A block that leaves the file
//! (replaced, truncated away, or the file deleted) goes to the freed queue (`G`) in the same
//! transaction when it has shards on block servers, so no shard is lost track of.

use std::collections::{BTreeMap, HashSet};

use arbor_proto::records::{BlockPolicy, BlockRecord, FreedBlock, PendingBlock};
use prost::Message;

use crate::error::NnError;
use crate::keys::{self, Ino};
use crate::ops::scan_prefix;
use crate::txn::{Txn, Versioned};

/// A file's data as read in one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileData {
    pub inline: Option<Vec<u8>>,
    pub blocks: BTreeMap<u64, BlockRecord>,
}

impl FileData {
    /// Reads the file's inline row and block rows (unvalidated: the caller validates the
    /// inode or lease row that every change of them also writes).
    pub async fn load<T: Txn>(txn: &mut T, ino: Ino) -> Result<FileData, NnError> {
        let inline = txn.get(&[keys::inline(ino)], false).await?;
        let rows = scan_prefix(txn, keys::route_of(ino), keys::block_prefix(ino)).await?;
        Self::from_rows(&inline[0], rows)
    }

    /// The file's data from its inline row and its block rows.
    pub fn from_rows(
        inline: &Versioned,
        block_rows: Vec<(Vec<u8>, Versioned)>,
    ) -> Result<FileData, NnError> {
        let mut data = FileData {
            inline: inline.exists().then(|| inline.value.clone()),
            blocks: BTreeMap::new(),
        };
        for (key, row) in block_rows {
            let Some((_, index)) = keys::block_key_parts(&key) else {
                continue;
            };
            data.blocks
                .insert(index, BlockRecord::decode(row.value.as_slice())?);
        }
        Ok(data)
    }

    /// The bytes the data holds.
    pub fn len(&self) -> u64 {
        match &self.inline {
            Some(bytes) if self.blocks.is_empty() => bytes.len() as u64,
            _ => self.blocks.values().map(|b| b.length).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index a writer's next block gets.
    pub fn next_index(&self) -> u64 {
        self.blocks.keys().next_back().map_or(0, |i| i + 1)
    }

    /// Rewrites the offsets from the lengths; fails unless the indexes are 0..n.
    pub fn renumber(&mut self, path: &str) -> Result<(), NnError> {
        let mut offset = 0u64;
        for (expect, (index, block)) in self.blocks.iter_mut().enumerate() {
            if *index != expect as u64 {
                return Err(NnError::invalid(
                    path,
                    format!("block {expect} is missing (the file would have a gap)"),
                ));
            }
            block.offset = offset;
            offset = offset.saturating_add(block.length);
        }
        Ok(())
    }

    /// Truncates or extends to `size`. An inline file stays inline while it fits under
    /// `threshold`; past it the inline bytes become a block kept in the metastore followed by
    /// holes. Shrinking drops whole blocks past the end and shortens the last one (its shards
    /// keep the old bytes, which are simply never read); growing appends holes of at most
    /// `block_size` bytes, which read as zeros.
    pub fn resize(&mut self, size: u64, threshold: u64, block_size: u64, hole: &BlockPolicy) {
        let block_size = block_size.max(1);
        if self.blocks.is_empty() {
            let mut bytes = self.inline.take().unwrap_or_default();
            if size <= threshold {
                bytes.resize(size as usize, 0);
                self.inline = (size > 0 || !bytes.is_empty()).then_some(bytes);
                return;
            }
            if !bytes.is_empty() {
                let length = bytes.len() as u64;
                self.blocks.insert(
                    0,
                    BlockRecord {
                        length,
                        policy: Some(hole.clone()),
                        data: bytes,
                        ..Default::default()
                    },
                );
            }
        }
        self.inline = None;
        let mut offset = 0u64;
        let mut keep = 0u64;
        for (index, block) in self.blocks.iter_mut() {
            block.offset = offset;
            if offset >= size {
                break;
            }
            if offset + block.length > size {
                // The shards keep the layout they were coded with; only the length shrinks.
                if !block.shards.is_empty() && block.coded_length == 0 {
                    block.coded_length = block.length;
                }
                block.length = size - offset;
                if block.data.len() as u64 > block.length {
                    block.data.truncate(block.length as usize);
                }
            }
            offset += block.length;
            keep = index + 1;
        }
        self.blocks.retain(|index, _| *index < keep);
        while offset < size {
            let length = (size - offset).min(block_size);
            self.blocks.insert(
                keep,
                BlockRecord {
                    offset,
                    length,
                    policy: Some(hole.clone()),
                    ..Default::default()
                },
            );
            keep += 1;
            offset += length;
        }
    }

    /// Buffers the rows that turn `before` into `self`, and frees the blocks that left.
    pub fn store<T: Txn>(&self, txn: &mut T, ino: Ino, before: &FileData, now: i64) {
        match (&before.inline, &self.inline) {
            (Some(_), None) => txn.delete(keys::inline(ino)),
            (old, Some(new)) if old.as_ref() != Some(new) => {
                txn.put(keys::inline(ino), new.clone())
            }
            _ => {}
        }
        for (index, block) in &self.blocks {
            if before.blocks.get(index) != Some(block) {
                txn.put(keys::block(ino, *index), block.encode_to_vec());
            }
        }
        let kept: HashSet<u64> = self
            .blocks
            .values()
            .map(|b| b.block_id)
            .filter(|id| *id != 0)
            .collect();
        for (index, old) in &before.blocks {
            if !self.blocks.contains_key(index) {
                txn.delete(keys::block(ino, *index));
            }
            if !kept.contains(&old.block_id) {
                free_block(txn, ino, old, now);
            }
        }
    }
}

/// Queues a block's shards for deletion (holes and metastore blocks have none).
pub fn free_block<T: Txn>(txn: &mut T, ino: Ino, block: &BlockRecord, now: i64) {
    free_shards(txn, ino, block.block_id, &block.shards, now);
}

fn free_shards<T: Txn>(
    txn: &mut T,
    ino: Ino,
    block_id: u64,
    shards: &[arbor_proto::records::ShardRef],
    now: i64,
) {
    let live: Vec<_> = shards
        .iter()
        .filter(|s| s.server_id != 0)
        .cloned()
        .collect();
    if block_id == 0 || live.is_empty() {
        return;
    }
    let record = FreedBlock {
        block_id,
        shards: live,
        freed_ns: now,
        ino,
    };
    txn.put(keys::freed(ino, block_id), record.encode_to_vec());
}

/// The file's pending allocations (unvalidated).
pub async fn pending<T: Txn>(txn: &mut T, ino: Ino) -> Result<Vec<PendingBlock>, NnError> {
    pending_from_rows(scan_prefix(txn, keys::route_of(ino), keys::pending_prefix(ino)).await?)
}

/// The pending allocations in a file's pending rows.
pub fn pending_from_rows(rows: Vec<(Vec<u8>, Versioned)>) -> Result<Vec<PendingBlock>, NnError> {
    rows.into_iter()
        .map(|(_, row)| Ok(PendingBlock::decode(row.value.as_slice())?))
        .collect()
}

/// Frees the pending allocations of `ino` (only those of `lease_id` when given): their
/// servers may hold partial shards. Returns how many.
pub async fn free_pending<T: Txn>(
    txn: &mut T,
    ino: Ino,
    lease_id: Option<&[u8]>,
    now: i64,
) -> Result<usize, NnError> {
    let mut n = 0;
    for p in pending(txn, ino).await? {
        if lease_id.is_some_and(|l| l != p.lease_id.as_slice()) {
            continue;
        }
        free_pending_one(txn, ino, &p, now);
        n += 1;
    }
    Ok(n)
}

/// Frees one pending allocation.
pub fn free_pending_one<T: Txn>(txn: &mut T, ino: Ino, p: &PendingBlock, now: i64) {
    txn.delete(keys::pending(ino, p.block_id));
    free_shards(txn, ino, p.block_id, &p.shards, now);
}

/// Bytes stored for `data`: inline bytes, plus each block's length scaled by its policy.
pub fn space_consumed(data: &FileData) -> u64 {
    let inline = data.inline.as_ref().map_or(0, |b| b.len() as u64);
    data.blocks.values().fold(inline, |acc, b| {
        let stored = if !b.data.is_empty() || b.shards.is_empty() {
            b.data.len() as u64
        } else {
            b.policy
                .as_ref()
                .map_or(b.length, |p| crate::data::policy::stored_bytes(p, b.length))
        };
        acc.saturating_add(stored)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pol() -> BlockPolicy {
        BlockPolicy {
            name: "RS-3-2-1024k".into(),
            data_shards: 3,
            parity_shards: 2,
            cell_size: 1024,
            replication: false,
        }
    }

    fn block(id: u64, length: u64) -> BlockRecord {
        BlockRecord {
            block_id: id,
            length,
            policy: Some(pol()),
            shards: (0..5)
                .map(|i| arbor_proto::records::ShardRef {
                    index: i,
                    server_id: 100 + u64::from(i),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn inline_grows_with_zeros_then_spills_into_blocks() {
        let mut d = FileData {
            inline: Some(b"abc".to_vec()),
            ..Default::default()
        };
        d.resize(5, 10, 4, &pol());
        assert_eq!(d.inline.as_deref(), Some(&b"abc\0\0"[..]));
        d.resize(2, 10, 4, &pol());
        assert_eq!(d.inline.as_deref(), Some(&b"ab"[..]));
        d.resize(11, 10, 4, &pol());
        assert!(d.inline.is_none());
        // The old bytes as a metastore block, then holes of at most the block size.
        let lens: Vec<_> = d.blocks.values().map(|b| (b.offset, b.length)).collect();
        assert_eq!(lens, vec![(0, 2), (2, 4), (6, 4), (10, 1)]);
        assert_eq!(d.blocks[&0].data, b"ab");
        assert!(d.blocks[&1].shards.is_empty() && d.blocks[&1].data.is_empty());
        assert_eq!(d.len(), 11);
    }

    #[test]
    fn shrinking_drops_whole_blocks_and_shortens_the_last() {
        let mut d = FileData::default();
        for i in 0..3 {
            d.blocks.insert(i, block(10 + i, 100));
        }
        d.renumber("/f").unwrap();
        let before = d.clone();
        d.resize(150, 10, 100, &pol());
        assert_eq!(d.blocks.len(), 2);
        assert_eq!(d.blocks[&1].length, 50);
        assert_eq!(d.blocks[&1].offset, 100);
        assert_eq!(d.len(), 150);
        d.resize(0, 10, 100, &pol());
        assert!(d.blocks.is_empty() && d.inline.is_none());
        // Growing past the end appends holes.
        let mut g = before.clone();
        g.resize(350, 10, 100, &pol());
        assert_eq!(g.blocks.len(), 4);
        assert_eq!((g.blocks[&3].offset, g.blocks[&3].length), (300, 50));
        assert!(g.blocks[&3].shards.is_empty());
    }

    #[test]
    fn renumber_rejects_gaps() {
        let mut d = FileData::default();
        d.blocks.insert(0, block(1, 10));
        d.blocks.insert(2, block(2, 10));
        assert!(d.renumber("/f").is_err());
        d.blocks.insert(1, block(3, 7));
        d.renumber("/f").unwrap();
        assert_eq!(d.blocks[&2].offset, 17);
    }

    #[test]
    fn space_counts_parity() {
        let mut d = FileData::default();
        d.blocks.insert(0, block(1, 300));
        d.blocks.insert(
            1,
            BlockRecord {
                length: 1000,
                ..Default::default()
            },
        );
        assert_eq!(space_consumed(&d), 500);
    }
}
