//! Writes one block: buffers at most one stripe, encodes it, and streams each cell to its
//! shard's server; `finish` codes the partial last stripe and waits for every server's
//! durable acknowledgement.
//!
//! Invariant: a shard whose stream failed is never written to again and comes back lost
//! (server id 0); the block is good when at least k shards are durable.

use crate::block::{ShardFailure, ShardTarget, order_targets};
use crate::checksum;
use crate::codec::Codec;
use crate::error::Error;
use crate::layout::Layout;
use crate::pool::ShardPool;
use crate::sender::ShardSender;
use crate::shardfile::ShardKey;
use bytes::Bytes;

/// What a finished block looks like: its length and where each shard ended up.
#[derive(Clone, Debug)]
pub struct WrittenBlock {
    pub length: u64,
    /// By index, k+m entries; failed shards have server_id 0 and addr "".
    pub shards: Vec<ShardTarget>,
    pub failed: Vec<ShardFailure>,
}

/// Streams one block: buffers at most one stripe, encodes it, sends each cell to its
/// shard's server over a PutShard stream (bounded in-flight), and on finish waits for every
/// server's durable acknowledgement.
pub struct BlockWriter {
    pool: ShardPool,
    block_id: u64,
    layout: Layout,
    targets: Vec<ShardTarget>,
    /// Set when the layout or targets were unusable: every call returns it.
    invalid: Option<Error>,
    senders: Vec<Option<ShardSender>>,
    started: bool,
    failed: Vec<ShardFailure>,
    stripe: Vec<u8>,
    len: u64,
}

impl BlockWriter {
    pub fn new(
        pool: ShardPool,
        block_id: u64,
        layout: Layout,
        targets: Vec<ShardTarget>,
    ) -> BlockWriter {
        let mut invalid = None;
        let targets = match order_targets(block_id, layout, targets.clone()) {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                invalid = Some(Error::InvalidArgument(format!(
                    "block {block_id:#x}: no shard targets"
                )));
                targets
            }
            Err(e) => {
                invalid = Some(e);
                targets
            }
        };
        if let Err(e) = Layout::new(layout.k, layout.m, layout.cell, layout.replication) {
            invalid = Some(e);
        }
        let n = targets.len();
        BlockWriter {
            pool,
            block_id,
            layout,
            targets,
            invalid,
            senders: (0..n).map(|_| None).collect(),
            started: false,
            failed: Vec::new(),
            stripe: Vec::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shards that failed so far (their servers are worth excluding from a retry).
    pub fn failures(&self) -> &[ShardFailure] {
        &self.failed
    }

    fn check(&self) -> Result<(), Error> {
        match &self.invalid {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let chunk = checksum::chunk_for_cell(self.layout.cell);
        for (i, t) in self.targets.iter().enumerate() {
            if t.is_placed() {
                let key = ShardKey {
                    block_id: self.block_id,
                    index: t.index,
                };
                self.senders[i] = Some(ShardSender::start(&self.pool, &t.addr, key, chunk));
            } else {
                self.failed.push(ShardFailure {
                    index: t.index,
                    server_id: t.server_id,
                    reason: "no server assigned".into(),
                });
            }
        }
    }

    fn alive(&self) -> usize {
        self.senders.iter().filter(|s| s.is_some()).count()
    }

    fn fail(&mut self, i: usize, e: &Error) {
        tracing::warn!(block = self.block_id, index = i, error = %e, "shard write failed");
        self.senders[i] = None;
        let t = &self.targets[i];
        self.failed.push(ShardFailure {
            index: t.index,
            server_id: t.server_id,
            reason: e.to_string(),
        });
    }

    fn enough(&self) -> Result<(), Error> {
        let good = self.alive();
        if good < self.layout.k {
            return Err(Error::NotEnoughShards {
                block_id: self.block_id,
                good,
                needed: self.layout.k,
            });
        }
        Ok(())
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.check()?;
        let sd = self.layout.stripe_data();
        while !data.is_empty() {
            if self.stripe.capacity() < sd {
                self.stripe.reserve_exact(sd - self.stripe.len());
            }
            let take = (sd - self.stripe.len()).min(data.len());
            self.stripe.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.len += take as u64;
            if self.stripe.len() == sd {
                self.flush_stripe(self.layout.cell).await?;
            }
        }
        Ok(())
    }

    /// Encodes the buffered stripe with cells of `cell_len` bytes and sends it.
    async fn flush_stripe(&mut self, cell_len: usize) -> Result<(), Error> {
        self.start();
        self.enough()?;
        let l = self.layout;
        let mut data = std::mem::take(&mut self.stripe);
        data.resize(l.k * cell_len, 0);
        let codec = Codec::new(l)?;
        let cells = tokio::task::spawn_blocking(move || {
            let mut cells: Vec<Vec<u8>> = data.chunks(cell_len).map(<[u8]>::to_vec).collect();
            cells.resize(l.shards(), vec![0u8; cell_len]);
            codec.encode(&mut cells).map(|_| (cells, data))
        })
        .await
        .map_err(|e| Error::Internal(format!("encode task: {e}")))??;
        let (cells, mut buf) = cells;
        buf.clear();
        self.stripe = buf;
        let sends = self.senders.iter_mut().zip(cells).map(|(s, c)| async move {
            match s {
                Some(s) => s.send(Bytes::from(c)).await,
                None => Ok(()),
            }
        });
        let results = futures::future::join_all(sends).await;
        for (i, r) in results.into_iter().enumerate() {
            if let Err(e) = r {
                self.fail(i, &e);
            }
        }
        self.enough()
    }

    /// Ok when at least k shards are durable; failed shards come back with server_id 0.
    pub async fn finish(mut self) -> Result<WrittenBlock, Error> {
        self.check()?;
        if !self.stripe.is_empty() {
            let last = self.layout.last_cell(self.len) as usize;
            self.flush_stripe(last).await?;
        }
        self.start();
        let expect = self.layout.shard_len(self.len);
        let finishes = self.senders.iter_mut().map(|s| {
            let s = s.take();
            async move {
                match s {
                    Some(s) => Some(s.finish().await),
                    None => None,
                }
            }
        });
        let results = futures::future::join_all(finishes).await;
        let mut shards = self.targets.clone();
        let mut good = 0;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(Ok(n)) if n == expect => good += 1,
                Some(Ok(n)) => self.fail(
                    i,
                    &Error::Internal(format!("stored {n} bytes, expected {expect}")),
                ),
                Some(Err(e)) => self.fail(i, &e),
                None => {}
            }
        }
        for f in &self.failed {
            if let Some(t) = shards.iter_mut().find(|t| t.index == f.index) {
                *t = t.lost();
            }
        }
        if good < self.layout.k {
            return Err(Error::NotEnoughShards {
                block_id: self.block_id,
                good,
                needed: self.layout.k,
            });
        }
        Ok(WrittenBlock {
            length: self.len,
            shards,
            failed: std::mem::take(&mut self.failed),
        })
    }

    /// Cancels every shard stream; nothing of this block is published.
    pub async fn abort(self) {
        // Dropping the senders cancels their calls (see `sender`).
        drop(self);
    }
}
