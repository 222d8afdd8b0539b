//! Streams one shard to one block server over PutShard. Data is cut into messages of whole
//! checksum chunks with their crcs; at most a couple of messages wait in the channel, so a
//! slow server slows its writer instead of growing memory, and a server that stops reading
//! fails the send after the pool's deadline.
//!
//! Invariant: a shard reaches the server's store only when `finish` sends the end marker (the
//! last message repeats the shard id); a dropped sender cancels the call, and a stream that
//! ends without the marker is discarded by the server, so a partial shard is never published.

use crate::checksum;
use crate::error::Error;
use crate::pool::ShardPool;
use crate::shardfile::ShardKey;
use arbor_proto::blockserver::{PutShardChunk, ShardId};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most data bytes in one message.
const MAX_MESSAGE_DATA: usize = 1 << 20;
/// Messages queued per shard stream.
const QUEUE: usize = 2;

pub struct ShardSender {
    key: ShardKey,
    addr: String,
    chunk: usize,
    pool: ShardPool,
    /// `None` on the channel ends the stream; see `body`.
    tx: Option<mpsc::Sender<Option<PutShardChunk>>>,
    task: Option<JoinHandle<Result<u64, Error>>>,
    carry: BytesMut,
    sent: u64,
}

impl ShardSender {
    /// Opens the stream (the call starts at once; a dead server shows up on the first send).
    pub fn start(pool: &ShardPool, addr: &str, key: ShardKey, chunk: usize) -> ShardSender {
        let (tx, rx) = mpsc::channel(QUEUE);
        let header = PutShardChunk {
            id: Some(ShardId {
                block_id: key.block_id,
                index: key.index,
            }),
            checksum_chunk: chunk as u32,
            data: Vec::new(),
            crcs: Vec::new(),
        };
        // Never fails: the receiver is alive and the queue empty.
        let _ = tx.try_send(Some(header));
        let client = pool.client(addr);
        let task = tokio::spawn(async move {
            let mut client = client?;
            let reply = client.put_shard(body(rx)).await?;
            Ok(reply.into_inner().length)
        });
        ShardSender {
            key,
            addr: addr.to_string(),
            chunk,
            pool: pool.clone(),
            tx: Some(tx),
            task: Some(task),
            carry: BytesMut::new(),
            sent: 0,
        }
    }

    pub fn key(&self) -> ShardKey {
        self.key
    }

    /// Bytes handed to `send` so far.
    pub fn sent(&self) -> u64 {
        self.sent + self.carry.len() as u64
    }

    /// Queues shard bytes; whole chunks go out, a tail waits for more (or for `finish`).
    pub async fn send(&mut self, data: Bytes) -> Result<(), Error> {
        if self.carry.is_empty() && data.len().is_multiple_of(self.chunk) {
            return self.send_whole(data).await;
        }
        self.carry.extend_from_slice(&data);
        let whole = self.carry.len() / self.chunk * self.chunk;
        if whole > 0 {
            let out = self.carry.split_to(whole).freeze();
            self.send_whole(out).await?;
        }
        Ok(())
    }

    async fn send_whole(&mut self, data: Bytes) -> Result<(), Error> {
        let step = (MAX_MESSAGE_DATA / self.chunk).max(1) * self.chunk;
        let mut at = 0;
        while at < data.len() {
            let piece = data.slice(at..(at + step).min(data.len()));
            at += piece.len();
            self.send_message(piece).await?;
        }
        Ok(())
    }

    async fn send_message(&mut self, data: Bytes) -> Result<(), Error> {
        let msg = PutShardChunk {
            id: None,
            checksum_chunk: 0,
            crcs: checksum::crcs(&data, self.chunk),
            // Zero-copy when `data` owns its whole buffer (a cell moved in whole).
            data: Vec::from(data),
        };
        let n = msg.data.len() as u64;
        let Some(tx) = self.tx.as_ref() else {
            return Err(Error::Internal(format!("{} already finished", self.key)));
        };
        match tokio::time::timeout(self.pool.timeout(), tx.send(Some(msg))).await {
            Ok(Ok(())) => {
                self.sent += n;
                Ok(())
            }
            // The call ended early: its result says why.
            Ok(Err(_)) => Err(self.call_error().await),
            Err(_) => Err(Error::Unavailable(format!(
                "{} on {}: not accepting data within {:?}",
                self.key,
                self.addr,
                self.pool.timeout()
            ))),
        }
    }

    async fn call_error(&mut self) -> Error {
        self.tx = None;
        match self.task.take() {
            Some(task) => match tokio::time::timeout(self.pool.timeout(), task).await {
                Ok(Ok(Err(e))) => self.name(e),
                Ok(Ok(Ok(_))) => Error::Internal(format!(
                    "{} on {}: the server ended the stream early",
                    self.key, self.addr
                )),
                Ok(Err(e)) => Error::Internal(format!("put task: {e}")),
                Err(_) => Error::Unavailable(format!("{} on {}: no answer", self.key, self.addr)),
            },
            None => Error::Internal(format!("{} on {}: stream closed", self.key, self.addr)),
        }
    }

    fn name(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) => {
                Error::Unavailable(format!("{} on {}: {m}", self.key, self.addr))
            }
            other => other,
        }
    }

    /// Sends the tail with the end marker, closes the stream and waits until the server says
    /// the shard is durable; returns its length.
    pub async fn finish(mut self) -> Result<u64, Error> {
        let tail = std::mem::take(&mut self.carry).freeze();
        let end = PutShardChunk {
            id: Some(ShardId {
                block_id: self.key.block_id,
                index: self.key.index,
            }),
            checksum_chunk: self.chunk as u32,
            crcs: checksum::crcs(&tail, self.chunk),
            data: Vec::from(tail),
        };
        self.sent += end.data.len() as u64;
        if let Some(tx) = self.tx.take() {
            let sent = async {
                tx.send(Some(end)).await.ok()?;
                tx.send(None).await.ok()
            };
            if !matches!(
                tokio::time::timeout(self.pool.timeout(), sent).await,
                Ok(Some(()))
            ) {
                return Err(self.call_error().await);
            }
        }
        let Some(task) = self.task.take() else {
            return Err(Error::Internal(format!("{} already finished", self.key)));
        };
        let len = match tokio::time::timeout(self.pool.timeout(), task).await {
            Ok(Ok(r)) => r.map_err(|e| self.name(e))?,
            Ok(Err(e)) => return Err(Error::Internal(format!("put task: {e}"))),
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "{} on {}: not durable within {:?}",
                    self.key,
                    self.addr,
                    self.pool.timeout()
                )));
            }
        };
        if len != self.sent {
            return Err(Error::Internal(format!(
                "{} on {}: server stored {len} bytes, {} sent",
                self.key, self.addr, self.sent
            )));
        }
        Ok(len)
    }
}

/// The request body: ends only on an explicit end marker. A sender dropped without one leaves
/// the body pending until the call is cancelled, which resets the stream; ending it cleanly
/// would make the server publish a partial shard.
fn body(
    rx: mpsc::Receiver<Option<PutShardChunk>>,
) -> impl futures::Stream<Item = PutShardChunk> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Some(msg)) => Some((msg, rx)),
            Some(None) => None,
            None => futures::future::pending().await,
        }
    })
}

impl Drop for ShardSender {
    fn drop(&mut self) {
        // Cancelling the call resets the stream, so the server drops the partial shard
        // instead of taking a closed stream for a complete one.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
