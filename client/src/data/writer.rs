//! [`FileWriter`]: the one writer of one file. It holds the file's lease (renewed in the
//! background by a [`LeaseKeeper`]) and turns writes at any offset into committed data:
//!
//! - a writer that created its file ([`FileWriter::created`]) starts without a lease: while
//!   the file stays inline it commits with the ctime it last left the file with, which the
//!   namenode checks (nobody else touched the file); a close with nothing to commit costs no
//!   call at all. Past the inline threshold, or when that check fails, it takes the lease by
//!   inode number and goes on as any writer;
//! - while the file fits under the inline threshold and never had a block, its bytes stay in
//!   memory and are committed as `inline_data` (no block server is touched);
//! - past it, the file is a sequence of blocks. One block at a time is *dirty*: its bytes are
//!   kept in memory (so a failed block write can be redone from them) and streamed through an
//!   `arbor_blockserver::BlockWriter` as they arrive. A dirty block is written out and committed
//!   (CommitWrite) when it is full, when a write moves to another block, on hsync and on close;
//!   memory stays at one block plus what the block writer buffers (a stripe).
//! - a write below the committed end loads the block it touches, patches it and commits the
//!   new copy at the same index (the namenode frees the old one).
//!
//! Invariants: the size committed to the namenode never covers bytes not yet durable on block
//! servers (or in the metastore); blocks stay contiguous; a block is committed only once at
//! least k of its shards are durable, else it is rewritten on other servers.

use arbor_blockserver::{BlockRef, BlockWriter, Layout, ShardPool, ShardTarget, read_range};
use arbor_proto::namenode::{
    BlockInfo, CommitWriteRequest, EcPolicy, ErrorCode, FileStatus, OpenWriteReply, ShardLocation,
};

use crate::client::{AttrChange, Client};
use crate::data::lease::LeaseKeeper;
use crate::data::range::{self, Extent};
use crate::data::shard_error;
use crate::error::{Error, Result};

/// Attempts at writing one block before the error is the answer.
const BLOCK_ATTEMPTS: usize = 4;
/// Zeros are written in pieces of this size when a file is extended.
const ZERO_PIECE: usize = 1 << 20;

/// A block being written.
struct Dirty {
    index: u64,
    /// File offset of its first byte.
    start: u64,
    /// Every byte of the block, kept until it is committed.
    buf: Vec<u8>,
    /// It is the file's last block, so it may grow up to the block size.
    last: bool,
    /// The block server stream, when one is open.
    stream: Option<Stream>,
    /// Servers that failed this block's earlier streams: the next stream avoids them.
    exclude: Vec<u64>,
}

struct Stream {
    writer: BlockWriter,
    block: BlockInfo,
    /// Bytes of `buf` already handed to the writer.
    sent: usize,
}

impl Dirty {
    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }
}

/// One writer of one file. Dropping it without `close` abandons what was not committed; the
/// lease then expires on the namenode.
pub struct FileWriter {
    client: Client,
    pool: ShardPool,
    what: String,
    ino: u64,
    lease: Vec<u8>,
    /// `None` while unleased.
    keeper: Option<LeaseKeeper>,
    /// While unleased: the ctime this writer last left the file with (its create, or its last
    /// commit), which each unleased commit must find unchanged.
    unleased: Option<i64>,
    policy: EcPolicy,
    layout: Layout,
    block_size: u64,
    inline_threshold: u64,
    status: FileStatus,
    /// `Some` while the file is inline: all its bytes.
    inline: Option<Vec<u8>>,
    inline_dirty: bool,
    /// The committed blocks, when known (loaded on the first rewrite).
    blocks: Option<Vec<BlockInfo>>,
    /// End of the last committed block.
    committed_end: u64,
    next_index: u64,
    cur: Option<Dirty>,
    /// Attributes to set with the next commit.
    access: AttrChange,
}

impl FileWriter {
    pub(crate) fn start(client: Client, what: String, reply: OpenWriteReply) -> Result<Self> {
        let status = reply
            .status
            .ok_or_else(|| Error::new(ErrorCode::Internal, "OpenWrite reply carried no status"))?;
        let policy = reply
            .policy
            .ok_or_else(|| Error::new(ErrorCode::Internal, "OpenWrite reply carried no policy"))?;
        let layout = Layout::from_policy(&policy).map_err(|e| shard_error(e, &what))?;
        let keeper = LeaseKeeper::start(
            client.clone(),
            status.ino,
            reply.lease.clone(),
            reply.lease_renew_ms,
        );
        let is_inline = reply.inline || (status.size == 0 && reply.next_block_index == 0);
        let pool = client.shard_pool();
        Ok(FileWriter {
            client,
            pool,
            what,
            ino: status.ino,
            lease: reply.lease,
            keeper: Some(keeper),
            unleased: None,
            policy,
            layout,
            block_size: reply.block_size.max(1),
            inline_threshold: reply.inline_threshold,
            inline: is_inline.then_some(reply.inline_data),
            inline_dirty: false,
            blocks: is_inline.then(Vec::new),
            committed_end: if is_inline { 0 } else { status.size },
            next_index: reply.next_block_index,
            cur: None,
            access: AttrChange::default(),
            status,
        })
    }

    /// The writer of a file this caller just created (`status`, from Create): no lease yet,
    /// the file inline and empty. `inline_threshold` is the cluster's.
    pub(crate) fn created(
        client: Client,
        what: String,
        status: FileStatus,
        inline_threshold: u64,
    ) -> Result<Self> {
        // Block mode needs the lease, and the lease's reply brings the real layout: until
        // then this one is never used.
        let layout = Layout::new(1, 0, 1 << 20, true).map_err(|e| shard_error(e, &what))?;
        let pool = client.shard_pool();
        Ok(FileWriter {
            client,
            pool,
            what,
            ino: status.ino,
            lease: Vec::new(),
            keeper: None,
            unleased: Some(status.ctime_ns),
            policy: EcPolicy::default(),
            layout,
            block_size: status.block_size.max(1),
            inline_threshold,
            inline: Some(Vec::new()),
            inline_dirty: false,
            blocks: Some(Vec::new()),
            committed_end: 0,
            next_index: 0,
            cur: None,
            access: AttrChange::default(),
            status,
        })
    }

    /// Takes the lease of a writer that has none yet (by inode number, with the file's
    /// creation time as proof it made it). Its buffered bytes carry over when the file is
    /// still inline; if another writer changed the file meanwhile, they win only over an
    /// inline file.
    async fn take_lease(&mut self) -> Result<()> {
        let Some(ctime) = self.unleased else {
            return Ok(());
        };
        let reply = self
            .client
            .open_write_ino(self.ino, &self.what, self.status.btime_ns)
            .await?;
        let same = reply.status.as_ref().is_some_and(|s| s.ctime_ns == ctime);
        let mut leased = FileWriter::start(self.client.clone(), self.what.clone(), reply)?;
        if leased.inline.is_some() && (same || self.inline_dirty) {
            leased.inline = self.inline.take();
            leased.inline_dirty = self.inline_dirty;
        } else if self.inline_dirty {
            return Err(Error::new(
                ErrorCode::LeaseExpired,
                format!(
                    "{}: another writer wrote the file while this one was writing it",
                    self.what
                ),
            ));
        }
        leased.access = std::mem::take(&mut self.access);
        *self = leased;
        Ok(())
    }

    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The file's size including bytes still buffered.
    pub fn len(&self) -> u64 {
        if let Some(buf) = &self.inline {
            return buf.len() as u64;
        }
        let cur = self.cur.as_ref().filter(|c| c.last).map_or(0, |c| c.end());
        self.committed_end.max(cur)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets mode, owner, group or times (`None` keeps one) with the next commit (hsync or
    /// close), in the same transaction as the data; the namenode applies SetAttr's
    /// permission rules to the writer's identity then. A write after it sets the mtime to
    /// the commit's time again, as a write after futimens does.
    pub fn change_attrs_at_commit(&mut self, change: &AttrChange) {
        self.access.merge(change);
    }

    /// The status as the next commit will leave it: the attributes waiting for it applied.
    pub fn pending_status(&self) -> FileStatus {
        let mut s = self.status.clone();
        self.access.apply_to(&mut s);
        s
    }

    /// `req` carrying the attributes waiting for the next commit.
    fn with_access(&self, req: CommitWriteRequest) -> CommitWriteRequest {
        CommitWriteRequest {
            mode: self.access.mode,
            uid: self.access.uid,
            gid: self.access.gid,
            mtime_ns: self.access.mtime_ns,
            atime_ns: self.access.atime_ns,
            ..req
        }
    }

    /// The status the namenode gave at the last commit (or at open).
    pub fn status(&self) -> &FileStatus {
        &self.status
    }

    /// Appends at `len()`.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        let at = self.len();
        self.write_at(at, data).await
    }

    /// Writes at any offset: past `len()` the gap reads as zeros; below it the bytes are
    /// replaced (in memory, or by rewriting the committed blocks touched).
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.access.mtime_ns = None;
        self.check_lease()?;
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::invalid(format!("{}: write past the largest size", self.what)))?;
        if self.unleased.is_some() && end > self.inline_threshold {
            self.take_lease().await?;
        }
        if let Some(buf) = &mut self.inline {
            if end <= self.inline_threshold {
                patch(buf, offset as usize, data);
                self.inline_dirty = true;
                return Ok(());
            }
            // The file outgrows the metastore: its bytes so far become its first block.
            let old = std::mem::take(buf);
            self.inline = None;
            self.blocks = Some(Vec::new());
            self.committed_end = 0;
            self.next_index = 0;
            self.write_blocks(0, &old).await?;
        }
        self.write_blocks(offset, data).await
    }

    /// Truncates or extends the file while open.
    pub async fn set_len(&mut self, size: u64) -> Result<()> {
        self.check_lease()?;
        self.access.mtime_ns = None;
        let len = self.len();
        if size > len {
            let zeros = vec![0u8; ZERO_PIECE];
            let mut at = len;
            while at < size {
                let n = (size - at).min(ZERO_PIECE as u64) as usize;
                self.write_at(at, &zeros[..n]).await?;
                at += n as u64;
            }
            return Ok(());
        }
        if size == len {
            return Ok(());
        }
        if let Some(buf) = &mut self.inline {
            buf.truncate(size as usize);
            self.inline_dirty = true;
            return Ok(());
        }
        if let Some(cur) = &mut self.cur
            && cur.last
            && size >= cur.start
        {
            if size == cur.start && cur.index < self.next_index {
                // The rewritten last block goes away entirely.
                let index = cur.index;
                if let Some(s) = cur.stream.take() {
                    s.writer.abort().await;
                }
                self.cur = None;
                self.forget_from(index, size);
                self.commit(Vec::new(), false).await?;
                return Ok(());
            }
            truncate_dirty(cur, (size - cur.start) as usize).await;
            self.committed_end = self.committed_end.min(size);
            return Ok(());
        }
        // Below the committed end: write out what is dirty, then shorten the block holding
        // the new end by rewriting it (its coding depends on its length), dropping the rest.
        if let Some(info) = self.finish_cur().await? {
            self.commit(vec![info], false).await?;
        }
        let blocks = self.committed_blocks().await?;
        let extents = extents_of(&blocks);
        match range::find(&extents, size) {
            Some(i) if extents[i].offset < size => {
                let mut dirty = self.load(&blocks[i]).await?;
                truncate_dirty(&mut dirty, (size - extents[i].offset) as usize).await;
                dirty.last = true;
                self.forget_from(i as u64 + 1, size);
                self.cur = Some(dirty);
            }
            Some(i) => {
                self.forget_from(i as u64, size);
                self.commit(Vec::new(), false).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Makes everything written so far durable and visible to readers that open afterwards.
    pub async fn hsync(&mut self) -> Result<FileStatus> {
        self.check_lease()?;
        self.flush(false).await
    }

    /// `hsync`, then releases the lease.
    pub async fn close(mut self) -> Result<FileStatus> {
        self.check_lease()?;
        self.flush(true).await
    }

    async fn flush(&mut self, close: bool) -> Result<FileStatus> {
        let access_pending = !self.access.is_empty();
        if let Some(ctime) = self.unleased {
            if !self.inline_dirty && !access_pending {
                return Ok(self.status.clone());
            }
            let buf = self.inline.clone().unwrap_or_default();
            let req = self.with_access(CommitWriteRequest {
                ino: self.ino,
                size: buf.len() as u64,
                inline_data: Some(buf),
                unleased_ctime_ns: ctime,
                ..Default::default()
            });
            match self.client.commit_write(req).await {
                Ok(status) => {
                    self.unleased = Some(status.ctime_ns);
                    self.status = status;
                    self.inline_dirty = false;
                    self.access = AttrChange::default();
                    return Ok(self.status.clone());
                }
                // The file changed under this writer: commit under its lease instead.
                Err(e) if e.code == ErrorCode::LeaseExpired => self.take_lease().await?,
                Err(e) => return Err(e),
            }
        }
        if let Some(buf) = &self.inline {
            if !self.inline_dirty && !close && !access_pending {
                return Ok(self.status.clone());
            }
            let req = self.with_access(CommitWriteRequest {
                ino: self.ino,
                lease: self.lease.clone(),
                inline_data: Some(buf.clone()),
                size: buf.len() as u64,
                close,
                // Inline since its open: the file had no blocks then and this writer, holding
                // the lease, added none.
                no_blocks: true,
                ..Default::default()
            });
            self.status = self.client.commit_write(req).await?;
            self.inline_dirty = false;
            self.access = AttrChange::default();
            return Ok(self.status.clone());
        }
        let blocks = match self.finish_cur().await? {
            Some(info) => vec![info],
            None if !close && !access_pending => return Ok(self.status.clone()),
            None => Vec::new(),
        };
        self.commit(blocks, close).await
    }

    fn check_lease(&self) -> Result<()> {
        match self.keeper.as_ref().and_then(|k| k.lost()) {
            Some(e) => Err(Error::new(
                ErrorCode::LeaseExpired,
                format!("{}: the write lease was lost: {}", self.what, e.message),
            )),
            None => Ok(()),
        }
    }

    /// Block-mode write of `data` at `offset`, block by block.
    async fn write_blocks(&mut self, mut offset: u64, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if let Some(cur) = &mut self.cur {
                let cap = if cur.last {
                    cur.start + self.block_size
                } else {
                    cur.end()
                };
                if offset >= cur.start && offset < cap {
                    let n = data.len().min((cap - offset) as usize);
                    let pos = (offset - cur.start) as usize;
                    if let Some(s) = &cur.stream
                        && pos < s.sent
                    {
                        // Bytes already streamed changed: the block is streamed again.
                        if let Some(s) = cur.stream.take() {
                            s.writer.abort().await;
                        }
                    }
                    patch(&mut cur.buf, pos, &data[..n]);
                    offset += n as u64;
                    data = &data[n..];
                    if cur.buf.len() as u64 >= self.block_size {
                        self.seal().await?;
                    } else {
                        self.pump().await?;
                    }
                    continue;
                }
                if cur.last && offset >= cap {
                    // A gap past this block: it is full of zeros up to its end.
                    cur.buf.resize(self.block_size as usize, 0);
                    self.seal().await?;
                    continue;
                }
                self.seal().await?;
                continue;
            }
            if offset < self.committed_end {
                let blocks = self.committed_blocks().await?;
                let extents = extents_of(&blocks);
                let Some(i) = range::find(&extents, offset) else {
                    return Err(Error::new(
                        ErrorCode::Internal,
                        format!("{}: no block holds offset {offset}", self.what),
                    ));
                };
                let mut dirty = self.load(&blocks[i]).await?;
                dirty.last = i + 1 == blocks.len();
                self.cur = Some(dirty);
            } else {
                self.cur = Some(Dirty {
                    index: self.next_index,
                    start: self.committed_end,
                    buf: Vec::new(),
                    last: true,
                    stream: None,
                    exclude: Vec::new(),
                });
            }
        }
        Ok(())
    }

    /// Streams what the dirty block has beyond what was sent, once a stripe is waiting.
    async fn pump(&mut self) -> Result<()> {
        let stripe = self.layout.stripe_data();
        let Some(cur) = &mut self.cur else {
            return Ok(());
        };
        let waiting = cur.buf.len() - cur.stream.as_ref().map_or(0, |s| s.sent);
        if waiting < stripe {
            return Ok(());
        }
        if cur.stream.is_none() {
            cur.stream = Some(
                open_stream(
                    &self.client,
                    &self.pool,
                    self.ino,
                    &self.lease,
                    &self.layout,
                    cur.exclude.clone(),
                )
                .await?,
            );
        }
        if let Some(s) = &mut cur.stream {
            let from = s.sent;
            match s.writer.write(&cur.buf[from..]).await {
                Ok(()) => s.sent = cur.buf.len(),
                Err(e) => {
                    // The block is redone from the buffer when it is finished.
                    tracing::info!(file = %self.what, error = %e, "block stream failed; will rewrite");
                    if let Some(s) = cur.stream.take() {
                        cur.exclude.extend(failed_servers(&s));
                        s.writer.abort().await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes out the dirty block and commits it.
    async fn seal(&mut self) -> Result<()> {
        if let Some(info) = self.finish_cur().await? {
            self.commit(vec![info], false).await?;
        }
        Ok(())
    }

    /// Writes out the dirty block (retrying on other servers) and returns it for a commit.
    async fn finish_cur(&mut self) -> Result<Option<BlockInfo>> {
        let Some(mut cur) = self.cur.take() else {
            return Ok(None);
        };
        if cur.buf.is_empty() && cur.index >= self.next_index {
            if let Some(s) = cur.stream.take() {
                s.writer.abort().await;
            }
            return Ok(None);
        }
        let mut exclude: Vec<u64> = std::mem::take(&mut cur.exclude);
        let mut last_err = None;
        for attempt in 0..BLOCK_ATTEMPTS {
            let mut stream = match cur.stream.take() {
                Some(s) => s,
                None => {
                    open_stream(
                        &self.client,
                        &self.pool,
                        self.ino,
                        &self.lease,
                        &self.layout,
                        exclude.clone(),
                    )
                    .await?
                }
            };
            let targets: Vec<u64> = stream.block.shards.iter().map(|s| s.server_id).collect();
            let sent = stream.sent;
            // Failures seen before finishing are known by server; a failure inside `finish`
            // is not, and then every target of the attempt is avoided.
            let failed;
            let outcome = match stream.writer.write(&cur.buf[sent..]).await {
                Ok(()) => {
                    failed = failed_servers(&stream);
                    stream.writer.finish().await
                }
                Err(e) => {
                    failed = failed_servers(&stream);
                    stream.writer.abort().await;
                    Err(e)
                }
            };
            match outcome {
                Ok(written) => {
                    for f in &written.failed {
                        tracing::info!(file = %self.what, server = f.server_id, reason = %f.reason,
                            "shard lost while writing; the namenode repairs it");
                    }
                    let info = BlockInfo {
                        index: cur.index,
                        offset: cur.start,
                        length: written.length,
                        block_id: stream.block.block_id,
                        policy: stream.block.policy.clone().or(Some(self.policy.clone())),
                        shards: written
                            .shards
                            .into_iter()
                            .map(|t| ShardLocation {
                                index: t.index,
                                server_id: t.server_id,
                                addr: t.addr,
                            })
                            .collect(),
                        data: Vec::new(),
                        coded_length: written.length,
                    };
                    return Ok(Some(info));
                }
                Err(e) => {
                    tracing::warn!(file = %self.what, attempt, error = %e,
                        "block write failed; writing it again on other servers");
                    if failed.is_empty() {
                        exclude.extend(targets);
                    } else {
                        exclude.extend(failed);
                    }
                    exclude.sort_unstable();
                    exclude.dedup();
                    last_err = Some(e);
                }
            }
        }
        let what = format!("{} (block {} of the file)", self.what, cur.index);
        Err(match last_err {
            Some(e) => shard_error(e, &what),
            None => Error::unavailable(format!("{what}: could not be written")),
        })
    }

    /// Commits `blocks` (and the size they make) to the namenode.
    async fn commit(&mut self, blocks: Vec<BlockInfo>, close: bool) -> Result<FileStatus> {
        for b in &blocks {
            let end = b.offset + b.length;
            if b.index + 1 >= self.next_index {
                // The file's last block sets its end, whether it grew or shrank.
                self.committed_end = end;
            }
            self.next_index = self.next_index.max(b.index + 1);
            if let Some(known) = &mut self.blocks {
                let i = b.index as usize;
                if i < known.len() {
                    known[i] = b.clone();
                } else {
                    known.push(b.clone());
                }
            }
        }
        let req = self.with_access(CommitWriteRequest {
            ino: self.ino,
            lease: self.lease.clone(),
            blocks,
            inline_data: None,
            size: self.committed_end,
            close,
            ..Default::default()
        });
        self.status = self.client.commit_write(req).await?;
        self.access = AttrChange::default();
        Ok(self.status.clone())
    }

    /// Drops the committed blocks from `index` on (the next commit says so with its size).
    fn forget_from(&mut self, index: u64, size: u64) {
        if let Some(known) = &mut self.blocks {
            known.truncate(index as usize);
        }
        self.next_index = index;
        self.committed_end = size;
    }

    /// The committed blocks, fetched from the namenode the first time.
    async fn committed_blocks(&mut self) -> Result<Vec<BlockInfo>> {
        if let Some(b) = &self.blocks {
            return Ok(b.clone());
        }
        let mut all: Vec<BlockInfo> = Vec::new();
        loop {
            let from = all.last().map_or(0, |b| b.index + 1);
            let page = self.client.get_blocks("", self.ino, from).await?;
            let n = page.blocks.len();
            all.extend(page.blocks);
            if !page.more || n == 0 {
                break;
            }
        }
        self.blocks = Some(all.clone());
        Ok(all)
    }

    /// A committed block's bytes, as a dirty block to patch.
    async fn load(&self, info: &BlockInfo) -> Result<Dirty> {
        let mut buf = if info.shards.is_empty() {
            let mut d = info.data.clone();
            d.resize(info.length as usize, 0);
            d
        } else {
            let what = format!("{} (block {} of the file)", self.what, info.index);
            let r = BlockRef::from_info(info).map_err(|e| shard_error(e, &what))?;
            let out = read_range(&self.pool, &r, 0, info.length as usize)
                .await
                .map_err(|e| shard_error(e, &what))?;
            out.data.to_vec()
        };
        buf.truncate(info.length as usize);
        Ok(Dirty {
            index: info.index,
            start: info.offset,
            buf,
            last: false,
            stream: None,
            exclude: Vec::new(),
        })
    }
}

/// The servers whose shard streams failed in `s`.
fn failed_servers(s: &Stream) -> Vec<u64> {
    s.writer
        .failures()
        .iter()
        .map(|f| f.server_id)
        .filter(|id| *id != 0)
        .collect()
}

/// Copies `data` into `buf` at `pos`, zero-filling any gap and growing `buf` as needed.
fn patch(buf: &mut Vec<u8>, pos: usize, data: &[u8]) {
    let end = pos + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[pos..end].copy_from_slice(data);
}

/// Shortens a dirty block, restarting its stream if streamed bytes are cut.
async fn truncate_dirty(cur: &mut Dirty, len: usize) {
    cur.buf.truncate(len);
    if cur.stream.as_ref().is_some_and(|s| s.sent > len)
        && let Some(s) = cur.stream.take()
    {
        s.writer.abort().await;
    }
}

fn extents_of(blocks: &[BlockInfo]) -> Vec<Extent> {
    blocks
        .iter()
        .map(|b| Extent {
            offset: b.offset,
            length: b.length,
        })
        .collect()
}

/// Asks for a block and opens a stream to its servers. A request excluding servers that
/// leaves too few is asked again without exclusions.
async fn open_stream(
    client: &Client,
    pool: &ShardPool,
    ino: u64,
    lease: &[u8],
    layout: &Layout,
    exclude: Vec<u64>,
) -> Result<Stream> {
    let block = match client.add_block(ino, lease, exclude.clone()).await {
        Err(e) if e.code == ErrorCode::NoSpace && !exclude.is_empty() => {
            client.add_block(ino, lease, Vec::new()).await?
        }
        other => other?,
    };
    let targets = block
        .shards
        .iter()
        .map(|s| ShardTarget {
            index: s.index,
            server_id: s.server_id,
            addr: s.addr.clone(),
        })
        .collect();
    let layout = match &block.policy {
        Some(p) => Layout::from_policy(p).unwrap_or(*layout),
        None => *layout,
    };
    Ok(Stream {
        writer: BlockWriter::new(pool.clone(), block.block_id, layout, targets),
        block,
        sent: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_fill_gaps_with_zeros() {
        let mut b = b"abc".to_vec();
        patch(&mut b, 1, b"XY");
        assert_eq!(b, b"aXY");
        patch(&mut b, 5, b"Z");
        assert_eq!(b, b"aXY\0\0Z");
        patch(&mut b, 0, b"");
        assert_eq!(b.len(), 6);
    }
}
