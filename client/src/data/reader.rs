//! [`FileReader`]: a reader of one file as it was when opened. The block list (or the inline
//! bytes) is fetched at open, page by page; reads go straight to the block servers
//! (`arbor_blockserver::read_range`), which decode around missing or corrupt shards.
//!
//! Invariants: a read never returns bytes other than the file's (a block that cannot be
//! decoded is `BLOCK_MISSING` naming the file and the block); reads are short only at the end
//! of the file; readahead memory is bounded by `READAHEAD_CHUNKS + 1` chunks of about a stripe
//! plus the chunks the current read needs. Shards found bad are reported to the namenode in
//! the background, never delaying the read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arbor_blockserver::{BlockRef, ShardFailure, ShardPool, read_range};
use arbor_proto::namenode::{BadShard, BlockInfo, ErrorCode, FileStatus};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, join_all};

use crate::client::Client;
use crate::data::range::{self, Extent};
use crate::data::shard_error;
use crate::error::{Error, Result};

/// Chunks fetched ahead of a sequential reader.
const READAHEAD_CHUNKS: u64 = 3;
/// Smallest readahead chunk: a stripe of small cells is too little per round trip.
const MIN_CHUNK: u64 = 1 << 20;

/// What one block of the file is, for reading.
enum Source {
    /// Coded shards on block servers.
    Shards(BlockRef),
    /// Bytes kept in the metastore (a short block), or none: a hole reading as zeros.
    Inline(Bytes),
}

struct Block {
    index: u64,
    source: Source,
}

struct Inner {
    client: Client,
    pool: ShardPool,
    status: FileStatus,
    /// For messages: the path as the caller named it.
    what: String,
    /// The whole file, when it is inline.
    inline: Option<Bytes>,
    extents: Vec<Extent>,
    blocks: Vec<Block>,
}

type Chunk = Shared<BoxFuture<'static, Result<Bytes>>>;

#[derive(Default)]
struct ReadAhead {
    /// Where the next read of a sequential reader starts.
    next: u64,
    chunks: BTreeMap<u64, Chunk>,
}

/// A reader of one file as it was at open. `read_at` takes `&self`: reads may run at once.
pub struct FileReader {
    inner: Arc<Inner>,
    chunk: u64,
    ahead: Mutex<ReadAhead>,
}

impl FileReader {
    pub(crate) async fn open(client: Client, path: String, ino: u64, what: String) -> Result<Self> {
        let first = client.get_blocks(&path, ino, 0).await?;
        let status = first
            .status
            .clone()
            .ok_or_else(|| Error::new(ErrorCode::Internal, "GetBlocks reply carried no status"))?;
        let what = if path.is_empty() { what } else { path.clone() };
        let inline = first.inline.then(|| Bytes::from(first.inline_data.clone()));
        let mut infos: Vec<BlockInfo> = first.blocks;
        let mut more = first.more;
        while more {
            let from = infos.last().map_or(0, |b| b.index + 1);
            let page = client.get_blocks(&path, ino, from).await?;
            if page.blocks.is_empty() {
                break;
            }
            infos.extend(page.blocks);
            more = page.more;
        }
        let mut extents = Vec::with_capacity(infos.len());
        let mut blocks = Vec::with_capacity(infos.len());
        let mut stripe = 0u64;
        for b in &infos {
            extents.push(Extent {
                offset: b.offset,
                length: b.length,
            });
            let source = if b.shards.is_empty() {
                Source::Inline(Bytes::from(b.data.clone()))
            } else {
                let r = BlockRef::from_info(b).map_err(|e| {
                    shard_error(e, &format!("{what} (block {} of the file)", b.index))
                })?;
                stripe = stripe.max(r.layout.stripe_data() as u64);
                Source::Shards(r)
            };
            blocks.push(Block {
                index: b.index,
                source,
            });
        }
        let pool = client.shard_pool();
        Ok(FileReader {
            inner: Arc::new(Inner {
                client,
                pool,
                status,
                what,
                inline,
                extents,
                blocks,
            }),
            chunk: stripe.max(MIN_CHUNK),
            ahead: Mutex::new(ReadAhead::default()),
        })
    }

    pub fn status(&self) -> &FileStatus {
        &self.inner.status
    }

    pub fn len(&self) -> u64 {
        self.inner.status.size
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `[offset, offset+len)`; short only at the end of the file.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let (offset, n) = range::clip(offset, len as u64, self.len());
        if n == 0 {
            return Ok(Bytes::new());
        }
        if let Some(data) = &self.inner.inline {
            return Ok(slice_padded(data, offset, n));
        }
        let wanted = {
            let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            let sequential =
                offset == ra.next || ra.chunks.contains_key(&(offset / self.chunk)) && offset > 0;
            ra.next = offset + n;
            if !sequential {
                None
            } else {
                let (first, last) = range::chunks(offset, n, self.chunk);
                ra.chunks = ra.chunks.split_off(&first);
                let size = self.len();
                for c in first..=last + READAHEAD_CHUNKS {
                    let start = c * self.chunk;
                    if start >= size {
                        break;
                    }
                    ra.chunks.entry(c).or_insert_with(|| {
                        let inner = self.inner.clone();
                        let len = self.chunk.min(size - start);
                        let task = tokio::spawn(async move { fetch(&inner, start, len).await });
                        async move {
                            task.await.unwrap_or_else(|e| {
                                Err(Error::new(ErrorCode::Internal, format!("read task: {e}")))
                            })
                        }
                        .boxed()
                        .shared()
                    });
                }
                Some(
                    (first..=last)
                        .filter_map(|c| ra.chunks.get(&c).map(|f| (c, f.clone())))
                        .collect::<Vec<_>>(),
                )
            }
        };
        let Some(parts) = wanted else {
            return fetch(&self.inner, offset, n).await;
        };
        let mut out = BytesMut::with_capacity(n as usize);
        let end = offset + n;
        for (c, fut) in parts {
            let data = match fut.await {
                Ok(d) => d,
                Err(e) => {
                    // A failed chunk is fetched again by the next read, not remembered.
                    let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
                    ra.chunks.remove(&c);
                    return Err(e);
                }
            };
            let start = c * self.chunk;
            let from = offset.max(start) - start;
            let to = (end.min(start + data.len() as u64) - start).max(from);
            out.extend_from_slice(&data[from as usize..to as usize]);
        }
        Ok(out.freeze())
    }
}

/// `n` bytes of `data` from `offset`, zero-filled past its end.
fn slice_padded(data: &Bytes, offset: u64, n: u64) -> Bytes {
    let start = (offset as usize).min(data.len());
    let end = ((offset + n) as usize).min(data.len());
    if end - start == n as usize {
        return data.slice(start..end);
    }
    let mut out = BytesMut::with_capacity(n as usize);
    out.extend_from_slice(&data[start..end]);
    out.resize(n as usize, 0);
    out.freeze()
}

/// Reads `[offset, offset+n)` (already clipped to the file) from the blocks, in parallel.
async fn fetch(inner: &Arc<Inner>, offset: u64, n: u64) -> Result<Bytes> {
    let pieces = range::pieces(&inner.extents, offset, n);
    let reads = pieces.iter().map(|p| async move {
        let block = &inner.blocks[p.block];
        match &block.source {
            Source::Inline(data) => Ok::<Bytes, Error>(slice_padded(data, p.offset, p.len)),
            Source::Shards(r) => {
                let outcome = read_range(&inner.pool, r, p.offset, p.len as usize)
                    .await
                    .map_err(|e| {
                        shard_error(
                            e,
                            &format!(
                                "{} (block {} of the file, blk_{})",
                                inner.what, block.index, r.block_id
                            ),
                        )
                    })?;
                if !outcome.bad.is_empty() {
                    report(inner, block.index, r.block_id, outcome.bad);
                }
                Ok(outcome.data)
            }
        }
    });
    let results = join_all(reads).await;
    let mut out = BytesMut::with_capacity(n as usize);
    for r in results {
        out.extend_from_slice(&r?);
    }
    // Blocks never end before the file; should they, the rest reads as a hole.
    out.resize(n as usize, 0);
    Ok(out.freeze())
}

/// Tells the namenode about bad shards, in the background.
fn report(inner: &Arc<Inner>, block_index: u64, block_id: u64, bad: Vec<ShardFailure>) {
    let shards = bad
        .into_iter()
        .map(|f| BadShard {
            block_id,
            index: f.index,
            server_id: f.server_id,
            reason: reason_word(&f.reason).to_string(),
            ino: inner.status.ino,
            block_index,
        })
        .collect::<Vec<_>>();
    tracing::info!(file = %inner.what, block_id, shards = shards.len(), "reporting bad shards");
    let client = inner.client.clone();
    tokio::spawn(async move {
        if let Err(e) = client.report_bad_shards(shards).await {
            tracing::warn!(error = %e, "could not report bad shards");
        }
    });
}

/// The namenode's word for why a shard is bad.
pub fn reason_word(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("corrupt") || r.contains("checksum") || r.contains("crc") {
        "corrupt"
    } else if r.contains("missing") || r.contains("not found") || r.contains("notfound") {
        "missing"
    } else {
        "unreachable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_slices_pad_with_zeros() {
        let d = Bytes::from_static(b"abcdef");
        assert_eq!(slice_padded(&d, 1, 3), Bytes::from_static(b"bcd"));
        assert_eq!(slice_padded(&d, 4, 4), Bytes::from_static(b"ef\0\0"));
        assert_eq!(slice_padded(&d, 9, 2), Bytes::from_static(b"\0\0"));
        assert_eq!(slice_padded(&Bytes::new(), 0, 3).len(), 3);
    }

    #[test]
    fn bad_shard_reasons_use_the_namenode_words() {
        assert_eq!(reason_word("checksum mismatch in chunk 3"), "corrupt");
        assert_eq!(reason_word("Corrupt shard"), "corrupt");
        assert_eq!(reason_word("shard not found"), "missing");
        assert_eq!(reason_word("connection refused"), "unreachable");
    }
}
