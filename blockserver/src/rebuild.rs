//! Regenerates lost shards of a block onto new servers: reads any k good shards a few
//! stripes at a time, decodes the missing cells and streams them to their new homes.
//!
//! Invariant: memory stays bounded by a batch of stripes whatever the block size, and the
//! rebuild succeeds only when every target acknowledged its shard as durable.

use crate::block::{BlockRef, ShardTarget};
use crate::checksum;
use crate::codec::Codec;
use crate::error::Error;
use crate::fetch::Gatherer;
use crate::pool::ShardPool;
use crate::sender::ShardSender;
use crate::shardfile::ShardKey;
use bytes::Bytes;

/// Shard bytes per shard decoded at once.
const BATCH_SPAN: u64 = 4 << 20;

/// Regenerates the shards whose indexes appear in `targets` (their new homes) from k good
/// shards of `block`, stripe by stripe (bounded memory), and writes them durably.
pub async fn rebuild(
    pool: &ShardPool,
    block: &BlockRef,
    targets: &[ShardTarget],
) -> Result<(), Error> {
    let l = block.layout;
    if block.shards.len() != l.shards() {
        return Err(Error::InvalidArgument(format!(
            "block {:#x}: {} shard locations for {} shards",
            block.block_id,
            block.shards.len(),
            l.shards()
        )));
    }
    let mut seen = vec![false; l.shards()];
    for t in targets {
        let i = t.index as usize;
        if i >= l.shards() || seen[i] || !t.is_placed() {
            return Err(Error::InvalidArgument(format!(
                "block {:#x}: bad rebuild target {t:?}",
                block.block_id
            )));
        }
        seen[i] = true;
    }
    if targets.is_empty() {
        return Ok(());
    }
    let codec = Codec::new(l)?;
    let mut gatherer = Gatherer::new(pool, block);
    for t in targets {
        // The shard being replaced is presumed bad wherever it still is.
        gatherer.exclude(t.index as usize);
    }
    let chunk = checksum::chunk_for_cell(l.cell);
    let mut senders: Vec<ShardSender> = targets
        .iter()
        .map(|t| {
            let key = ShardKey {
                block_id: block.block_id,
                index: t.index,
            };
            ShardSender::start(pool, &t.addr, key, chunk)
        })
        .collect();

    let stripes = l.stripe_count(block.length);
    let batch = (BATCH_SPAN / l.cell as u64).max(1);
    let mut sa = 0;
    while sa < stripes {
        let sb = (sa + batch - 1).min(stripes - 1);
        let first = l.stripe(sa, block.length);
        let last = l.stripe(sb, block.length);
        let span = first.shard_offset..last.shard_offset + last.cell_len;
        let got = gatherer.gather(span.clone()).await?;
        let present: Vec<bool> = got.iter().map(|g| g.is_some()).collect();
        let codec = codec.clone();
        let targets_idx: Vec<usize> = targets.iter().map(|t| t.index as usize).collect();
        let block_len = block.length;
        // Decoding is CPU work: keep it off the runtime.
        let outputs = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>, Error> {
            let mut outs: Vec<Vec<u8>> = vec![Vec::new(); targets_idx.len()];
            for s in sa..=sb {
                let st = l.stripe(s, block_len);
                let cl = st.cell_len as usize;
                let at = (st.shard_offset - span.start) as usize;
                let mut cells: Vec<Vec<u8>> = got
                    .iter()
                    .map(|g| match g {
                        Some(b) => b[at..at + cl].to_vec(),
                        None => vec![0u8; cl],
                    })
                    .collect();
                codec.reconstruct(&mut cells, &present)?;
                for (o, &i) in outs.iter_mut().zip(&targets_idx) {
                    o.extend_from_slice(&cells[i]);
                }
            }
            Ok(outs)
        })
        .await
        .map_err(|e| Error::Internal(format!("decode task: {e}")))??;
        let sends = senders
            .iter_mut()
            .zip(outputs)
            .map(|(s, o)| s.send(Bytes::from(o)));
        for r in futures::future::join_all(sends).await {
            r?;
        }
        sa = sb + 1;
    }
    let expect = l.shard_len(block.length);
    let results = futures::future::join_all(senders.into_iter().map(|s| s.finish())).await;
    for (t, r) in targets.iter().zip(results) {
        let n = r?;
        if n != expect {
            return Err(Error::Internal(format!(
                "block {:#x} shard {} on {}: stored {n} bytes, expected {expect}",
                block.block_id, t.index, t.addr
            )));
        }
    }
    tracing::info!(
        block = block.block_id,
        shards = ?targets.iter().map(|t| t.index).collect::<Vec<_>>(),
        "rebuilt"
    );
    Ok(())
}
