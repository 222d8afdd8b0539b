//! Verified reads of shard ranges: one shard from one server (`fetch_shard`), and "any k good
//! shards of a block" over a span of shard bytes (`Gatherer`), which degraded reads and
//! rebuilds share.
//!
//! Invariant: bytes leave this module only after their crc32c matched; a shard that is
//! unreachable, missing, of the wrong length or corrupt is reported, never returned.

use crate::block::{BlockRef, ShardFailure};
use crate::checksum;
use crate::error::Error;
use crate::pool::ShardPool;
use crate::shardfile::ShardKey;
use arbor_proto::blockserver::{GetShardRequest, ShardId};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::ops::Range;

/// Reads `range` of a shard from the server at `addr`, checking every chunk's crc and, when
/// `expect_len` is given, the shard's total length.
pub async fn fetch_shard(
    pool: &ShardPool,
    addr: &str,
    key: ShardKey,
    range: Range<u64>,
    expect_len: Option<u64>,
) -> Result<Bytes, Error> {
    let req = GetShardRequest {
        id: Some(ShardId {
            block_id: key.block_id,
            index: key.index,
        }),
        offset: range.start,
        length: range.end - range.start,
    };
    let what = format!("{key} on {addr}");
    let mut stream = pool
        .call(addr, &what, |mut c| async move {
            Ok(c.get_shard(req).await?.into_inner())
        })
        .await?;
    let mut buf = BytesMut::new();
    let mut header: Option<(u64, u64, usize)> = None; // (shard length, first offset, chunk)
    loop {
        let next = pool
            .deadline(&what, async { Ok(stream.next().await.transpose()?) })
            .await?;
        let Some(msg) = next else { break };
        let (shard_len, first, chunk) = match header {
            Some(h) => h,
            None => {
                let chunk = msg.checksum_chunk as usize;
                if chunk == 0 || msg.offset % chunk as u64 != 0 || msg.offset > range.start {
                    return Err(Error::Corrupt(format!(
                        "{what}: bad reply header (chunk {chunk}, offset {})",
                        msg.offset
                    )));
                }
                if let Some(want) = expect_len
                    && msg.shard_length != want
                {
                    return Err(Error::Corrupt(format!(
                        "{what}: shard is {} bytes, expected {want}",
                        msg.shard_length
                    )));
                }
                let h = (msg.shard_length, msg.offset, chunk);
                header = Some(h);
                h
            }
        };
        let at = first + buf.len() as u64;
        let ends_shard = at + msg.data.len() as u64 == shard_len;
        if !msg.data.len().is_multiple_of(chunk) && !ends_shard {
            return Err(Error::Corrupt(format!(
                "{what}: reply of {} bytes at {at} is not whole chunks",
                msg.data.len()
            )));
        }
        checksum::verify(&msg.data, chunk, &msg.crcs, &what)?;
        buf.extend_from_slice(&msg.data);
    }
    let Some((shard_len, first, _)) = header else {
        return Err(Error::Corrupt(format!("{what}: empty reply")));
    };
    let end = range.end.min(shard_len);
    if range.start > end {
        return Err(Error::InvalidArgument(format!(
            "{what}: offset {} past the shard's {shard_len} bytes",
            range.start
        )));
    }
    let have = first + buf.len() as u64;
    if have < end {
        return Err(Error::Corrupt(format!(
            "{what}: reply ends at {have}, wanted up to {end}"
        )));
    }
    let buf = buf.freeze();
    Ok(buf.slice((range.start - first) as usize..(end - first) as usize))
}

/// The reason a failed fetch is reported with.
pub fn reason(e: &Error) -> &'static str {
    match e {
        Error::NotFound(_) => "missing",
        Error::Corrupt(_) => "corrupt",
        _ => "unreachable",
    }
}

/// Collects k good shards of one block span by span, remembering which shards failed so each
/// is tried (and reported) once.
pub struct Gatherer<'a> {
    pool: &'a ShardPool,
    block: &'a BlockRef,
    shard_len: u64,
    /// Shards not to read (known bad, or being rebuilt).
    skip: Vec<bool>,
    bad: Vec<ShardFailure>,
}

impl<'a> Gatherer<'a> {
    pub fn new(pool: &'a ShardPool, block: &'a BlockRef) -> Gatherer<'a> {
        let n = block.layout.shards();
        let mut skip = vec![false; n];
        for (i, s) in skip.iter_mut().enumerate() {
            *s = !block.shards.get(i).is_some_and(|t| t.is_placed());
        }
        Gatherer {
            pool,
            block,
            shard_len: block.layout.shard_len(block.length),
            skip,
            bad: Vec::new(),
        }
    }

    /// Never reads shard `index` (it is known bad or being replaced).
    pub fn exclude(&mut self, index: usize) {
        if let Some(s) = self.skip.get_mut(index) {
            *s = true;
        }
    }

    /// Records a failed read of shard `index`, and skips it from now on.
    pub fn mark_bad(&mut self, index: usize, e: &Error) {
        tracing::debug!(block = self.block.block_id, index, error = %e, "shard read failed");
        if let Some(t) = self.block.shards.get(index) {
            self.bad.push(ShardFailure {
                index: t.index,
                server_id: t.server_id,
                reason: reason(e).to_string(),
            });
        }
        self.exclude(index);
    }

    pub fn into_bad(self) -> Vec<ShardFailure> {
        self.bad
    }

    /// Reads `span` of shards until k of them are good (data shards first, then parity,
    /// `want` first of all). Returns k+m slots, at least k of them filled.
    pub async fn gather(&mut self, span: Range<u64>) -> Result<Vec<Option<Bytes>>, Error> {
        let k = self.block.layout.k;
        let n = self.block.layout.shards();
        let mut got: Vec<Option<Bytes>> = vec![None; n];
        let mut good = 0;
        let mut next = 0;
        while good < k {
            let mut batch = Vec::new();
            while batch.len() < k - good && next < n {
                if !self.skip[next] {
                    batch.push(next);
                }
                next += 1;
            }
            if batch.is_empty() {
                return Err(Error::NotEnoughShards {
                    block_id: self.block.block_id,
                    good,
                    needed: k,
                });
            }
            let reads = batch.iter().map(|&i| {
                let t = &self.block.shards[i];
                let key = ShardKey {
                    block_id: self.block.block_id,
                    index: t.index,
                };
                fetch_shard(self.pool, &t.addr, key, span.clone(), Some(self.shard_len))
            });
            let results = futures::future::join_all(reads).await;
            for (i, r) in batch.into_iter().zip(results) {
                match r {
                    Ok(b) => {
                        got[i] = Some(b);
                        good += 1;
                    }
                    Err(e) => self.mark_bad(i, &e),
                }
            }
        }
        Ok(got)
    }
}
