//! Reads a byte range of a block. The fast path asks only the data shards that hold the
//! range, one GetShard each. If any of them is unreachable, missing or corrupt, the stripes
//! of the range are decoded from any k good shards instead, a few stripes at a time.
//!
//! Invariant: returned bytes are either checksum-verified shard bytes or decoded from k
//! verified shards; with fewer than k good shards the read fails with NotEnoughShards.

use crate::block::{BlockRef, ShardFailure};
use crate::codec::Codec;
use crate::error::Error;
use crate::fetch::{Gatherer, fetch_shard};
use crate::pool::ShardPool;
use crate::shardfile::ShardKey;
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// Shard bytes per shard decoded at once on the degraded path.
const DEGRADED_SPAN: u64 = 4 << 20;

/// What a read returned, and the shards it found bad on the way.
#[derive(Debug)]
pub struct ReadOutcome {
    pub data: Bytes,
    pub bad: Vec<ShardFailure>,
}

/// The part of data cell `i` of stripe `st` that falls in block range `r`, as
/// (block range, shard range); None when they do not meet.
fn cell_part(
    st: &crate::layout::Stripe,
    i: usize,
    r: &Range<u64>,
) -> Option<(Range<u64>, Range<u64>)> {
    let cell_start = st.data_offset + i as u64 * st.cell_len;
    let cell_end = (cell_start + st.cell_len).min(st.data_offset + st.data_len);
    let start = r.start.max(cell_start);
    let end = r.end.min(cell_end);
    if start >= end {
        return None;
    }
    let so = st.shard_offset + (start - cell_start);
    Some((start..end, so..so + (end - start)))
}

/// Reads [offset, offset+len) of a block (clipped to its length). Fast path: only the data
/// shards covering the range; a shard that is unreachable, missing or fails its checksum is
/// reported in `bad` and the affected stripes are decoded from any k good shards. Never
/// returns wrong bytes: fewer than k good shards is Error::NotEnoughShards naming the block.
pub async fn read_range(
    pool: &ShardPool,
    block: &BlockRef,
    offset: u64,
    len: usize,
) -> Result<ReadOutcome, Error> {
    let end = offset.saturating_add(len as u64).min(block.length);
    if offset >= end {
        return Ok(ReadOutcome {
            data: Bytes::new(),
            bad: Vec::new(),
        });
    }
    let range = offset..end;
    if block.shards.is_empty() {
        // A hole.
        return Ok(ReadOutcome {
            data: Bytes::from(vec![0u8; (end - offset) as usize]),
            bad: Vec::new(),
        });
    }
    let l = block.layout;
    if block.shards.len() != l.shards() {
        return Err(Error::InvalidArgument(format!(
            "block {:#x}: {} shard locations for {} shards",
            block.block_id,
            block.shards.len(),
            l.shards()
        )));
    }
    let s0 = l.stripe_of(range.start);
    let s1 = l.stripe_of(range.end - 1);

    // The span of each data shard the range touches.
    let mut spans: Vec<Option<Range<u64>>> = vec![None; l.k];
    for s in s0..=s1 {
        let st = l.stripe(s, block.length);
        for (i, span) in spans.iter_mut().enumerate() {
            if let Some((_, sr)) = cell_part(&st, i, &range) {
                *span = Some(match span.take() {
                    Some(p) => p.start.min(sr.start)..p.end.max(sr.end),
                    None => sr,
                });
            }
        }
    }

    let mut gatherer = Gatherer::new(pool, block);
    let shard_len = l.shard_len(block.length);
    let wanted: Vec<usize> = (0..l.k).filter(|i| spans[*i].is_some()).collect();
    let reads = wanted.iter().map(|&i| {
        let t = &block.shards[i];
        let span = spans[i].clone().unwrap_or(0..0);
        async move {
            if !t.is_placed() {
                return Err(None);
            }
            let key = ShardKey {
                block_id: block.block_id,
                index: t.index,
            };
            fetch_shard(pool, &t.addr, key, span, Some(shard_len))
                .await
                .map_err(Some)
        }
    });
    let results = futures::future::join_all(reads).await;
    let mut fetched: Vec<Option<Bytes>> = vec![None; l.k];
    let mut all_good = true;
    for (i, r) in wanted.into_iter().zip(results) {
        match r {
            Ok(b) => fetched[i] = Some(b),
            Err(e) => {
                all_good = false;
                match e {
                    Some(e) => gatherer.mark_bad(i, &e),
                    None => gatherer.exclude(i),
                }
            }
        }
    }

    let mut out = BytesMut::zeroed((range.end - range.start) as usize);
    if all_good {
        for s in s0..=s1 {
            let st = l.stripe(s, block.length);
            for i in 0..l.k {
                let (Some((br, sr)), Some(span), Some(b)) =
                    (cell_part(&st, i, &range), &spans[i], &fetched[i])
                else {
                    continue;
                };
                let from = (sr.start - span.start) as usize;
                let to = (br.start - range.start) as usize;
                let n = (br.end - br.start) as usize;
                out[to..to + n].copy_from_slice(&b[from..from + n]);
            }
        }
        return Ok(ReadOutcome {
            data: out.freeze(),
            bad: gatherer.into_bad(),
        });
    }

    // Degraded: decode the stripes of the range from any k good shards, a batch at a time.
    let codec = Codec::new(l)?;
    let batch = (DEGRADED_SPAN / l.cell as u64).max(1);
    let mut sa = s0;
    while sa <= s1 {
        let sb = (sa + batch - 1).min(s1);
        let last = l.stripe(sb, block.length);
        let span_start = l.stripe(sa, block.length).shard_offset;
        let span = span_start..last.shard_offset + last.cell_len;
        let got = gatherer.gather(span.clone()).await?;
        let (codec, range, block_len) = (codec.clone(), range.clone(), block.length);
        // Decoding is CPU work: keep it off the runtime. Returns (output offset, bytes).
        let pieces =
            tokio::task::spawn_blocking(move || -> Result<Vec<(usize, Vec<u8>)>, Error> {
                let mut pieces = Vec::new();
                let present: Vec<bool> = got.iter().map(|g| g.is_some()).collect();
                for s in sa..=sb {
                    let st = l.stripe(s, block_len);
                    let cl = st.cell_len as usize;
                    let at = (st.shard_offset - span_start) as usize;
                    let mut cells: Vec<Vec<u8>> = got
                        .iter()
                        .map(|g| match g {
                            Some(b) => b[at..at + cl].to_vec(),
                            None => vec![0u8; cl],
                        })
                        .collect();
                    let need_decode =
                        (0..l.k).any(|i| !present[i] && cell_part(&st, i, &range).is_some());
                    if need_decode {
                        codec.reconstruct(&mut cells, &present)?;
                    }
                    for (i, cell) in cells.iter().enumerate().take(l.k) {
                        if let Some((br, sr)) = cell_part(&st, i, &range) {
                            let from = (sr.start - st.shard_offset) as usize;
                            let n = (br.end - br.start) as usize;
                            pieces.push((
                                (br.start - range.start) as usize,
                                cell[from..from + n].to_vec(),
                            ));
                        }
                    }
                }
                Ok(pieces)
            })
            .await
            .map_err(|e| Error::Internal(format!("decode task: {e}")))??;
        for (to, bytes) in pieces {
            out[to..to + bytes.len()].copy_from_slice(&bytes);
        }
        sa = sb + 1;
    }
    Ok(ReadOutcome {
        data: out.freeze(),
        bad: gatherer.into_bad(),
    })
}
