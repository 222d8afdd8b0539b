//! The data path of the client: streaming writers and readers of file contents, and the
//! namenode calls they rest on (OpenWrite, AddBlock, CommitWrite, RenewLease, GetBlocks,
//! ReportBadShards) plus the erasure-coding policy and block-server calls.
//!
//! - [`writer`]: [`FileWriter`], one lease-holding writer of one file.
//! - [`reader`]: [`FileReader`], a reader of a file as it was at open.
//! - [`lease`]: the background renewal of a writer's lease.
//! - [`range`]: pure offset math (which blocks a byte range touches, readahead chunks).
//!
//! Every namenode call goes through [`Client`]'s failover with one call id per logical call,
//! so a mutating data call retried on another namenode takes effect once.

pub mod lease;
pub mod range;
pub mod reader;
pub mod writer;

use arbor_proto::namenode::{
    AddBlockReply, AddBlockRequest, BadShard, BlockInfo, BlockServerInfo, CommitWriteRequest,
    Empty, ErrorCode, FileStatus, GetBlocksReply, GetBlocksRequest, GetEcPolicyReply, InoRequest,
    ListEcPoliciesReply, OpenWriteReply, OpenWriteRequest, PathRequest, RenewLeaseRequest,
    ReportBadShardsRequest, SetEcPolicyRequest,
};

use crate::client::Client;
use crate::error::{Error, Result};

pub use reader::FileReader;
pub use writer::FileWriter;

/// How a file is opened for writing.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Permission bits of a created file.
    pub mode: u32,
    /// Create the file when it is missing.
    pub create: bool,
    /// Fail with `ALREADY_EXISTS` when the file exists (O_EXCL).
    pub exclusive: bool,
    /// Truncate an existing file to zero (O_TRUNC, `put -f`).
    pub overwrite: bool,
    /// Start writing at the end (appendToFile).
    pub append: bool,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            mode: 0o644,
            create: true,
            exclusive: false,
            overwrite: false,
            append: false,
        }
    }
}

/// Maps an error of the block-server library to the client's error, naming `what` (the file
/// and block) when a block cannot be read.
pub(crate) fn shard_error(e: arbor_blockserver::Error, what: &str) -> Error {
    use arbor_blockserver::Error as B;
    match e {
        B::NotEnoughShards {
            block_id,
            good,
            needed,
        } => Error::new(
            ErrorCode::BlockMissing,
            format!(
                "Could not obtain block blk_{block_id} of {what}: {good} of the {needed} \
                 shards needed are available"
            ),
        ),
        B::Unavailable(m) => Error::unavailable(format!("{what}: block server unavailable: {m}")),
        B::InvalidArgument(m) => Error::invalid(format!("{what}: {m}")),
        other => Error::new(ErrorCode::Internal, format!("{what}: {other}")),
    }
}

impl Client {
    /// Opens `path` for writing, taking its lease (renewed in the background until close).
    pub async fn open_write(&self, path: &str, opts: WriteOptions) -> Result<FileWriter> {
        let (c, npath) = self.route(path)?;
        let req = OpenWriteRequest {
            ctx: c.ctx(),
            path: npath,
            mode: opts.mode,
            create: opts.create,
            exclusive: opts.exclusive,
            overwrite: opts.overwrite,
            append: opts.append,
            ..Default::default()
        };
        let reply: OpenWriteReply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.open_write(r).await })
            })
            .await?;
        FileWriter::start(c, path.to_string(), reply)
    }

    /// Creates `path` and opens it for writing, as `open(2)` with O_CREAT on a name that is
    /// absent: one namenode round (Create), no lease. While the file stays inline and nobody
    /// else touches it, the writer commits without a lease (a close of a file never written
    /// costs nothing); past the inline threshold, or once the file changed under it, it takes
    /// the lease by inode number. When the name exists after all (made meanwhile), it is
    /// opened as [`Client::open_write`] would, unless `opts.exclusive`.
    pub async fn create_for_write(&self, path: &str, opts: WriteOptions) -> Result<FileWriter> {
        if opts.append || !opts.create {
            return self.open_write(path, opts).await;
        }
        let (c, npath) = self.route(path)?;
        let threshold = c.inline_threshold().await?;
        match c.create(&npath, opts.mode, opts.overwrite).await {
            Ok(status) => FileWriter::created(c, path.to_string(), status, threshold),
            Err(e) if e.code == ErrorCode::AlreadyExists && !opts.exclusive => {
                self.open_write(path, opts).await
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the lease of the existing file `ino` (named `what` in messages); `created_btime`
    /// is the creation time its Create gave this caller (0: none), which lets the creator
    /// write a file whose mode would refuse it.
    pub(crate) async fn open_write_ino(
        &self,
        ino: u64,
        what: &str,
        created_btime: i64,
    ) -> Result<OpenWriteReply> {
        let req = OpenWriteRequest {
            ctx: self.ctx(),
            path: what.to_string(),
            ino,
            created_btime_ns: created_btime,
            ..Default::default()
        };
        self.call(req, self.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.open_write(r).await })
        })
        .await
    }

    /// Opens `path` for reading: the file as it is now (close-to-open consistency).
    pub async fn open_read(&self, path: &str) -> Result<FileReader> {
        let (c, npath) = self.route(path)?;
        FileReader::open(c, npath, 0, path.to_string()).await
    }

    /// Opens the file `ino` for reading; read permission is checked on the inode itself.
    pub async fn open_read_ino(&self, ino: u64) -> Result<FileReader> {
        FileReader::open(self.clone(), String::new(), ino, format!("inode {ino}")).await
    }

    /// The attributes of inode `ino` (no path walk).
    pub async fn stat_ino(&self, ino: u64) -> Result<FileStatus> {
        let req = InoRequest {
            ctx: self.ctx(),
            ino,
        };
        let reply = self
            .call(req, self.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.stat_ino(r).await })
            })
            .await?;
        reply
            .status
            .ok_or_else(|| Error::new(ErrorCode::Internal, "namenode reply carried no status"))
    }

    /// Every block server the namenodes know, live or not.
    pub async fn block_servers(&self) -> Result<Vec<BlockServerInfo>> {
        let reply = self
            .call(Empty {}, self.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.list_block_servers(r).await })
            })
            .await?;
        Ok(reply.servers)
    }

    /// Sets the erasure-coding policy of a directory ("" unsets it: inherit again).
    pub async fn set_ec_policy(&self, path: &str, policy: &str) -> Result<()> {
        let (c, path) = self.route(path)?;
        let req = SetEcPolicyRequest {
            ctx: c.ctx(),
            path,
            policy: policy.to_string(),
        };
        c.call(req, c.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.set_ec_policy(r).await })
        })
        .await?;
        Ok(())
    }

    /// The policy in effect at `path` and where it was set.
    pub async fn get_ec_policy(&self, path: &str) -> Result<GetEcPolicyReply> {
        let (c, path) = self.route(path)?;
        let req = PathRequest { ctx: c.ctx(), path };
        c.call(req, c.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.get_ec_policy(r).await })
        })
        .await
    }

    /// The policies the cluster knows, and its default.
    pub async fn list_ec_policies(&self) -> Result<ListEcPoliciesReply> {
        self.call(Empty {}, self.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.list_ec_policies(r).await })
        })
        .await
    }

    /// A fresh block (id and targets) for the file a writer holds the lease of.
    pub(crate) async fn add_block(
        &self,
        ino: u64,
        lease: &[u8],
        exclude_servers: Vec<u64>,
    ) -> Result<BlockInfo> {
        let req = AddBlockRequest {
            ctx: self.ctx(),
            ino,
            lease: lease.to_vec(),
            exclude_servers,
        };
        let reply: AddBlockReply = self
            .call(req, self.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.add_block(r).await })
            })
            .await?;
        reply
            .block
            .ok_or_else(|| Error::new(ErrorCode::Internal, "AddBlock reply carried no block"))
    }

    /// Commits what a writer wrote since its last commit.
    pub(crate) async fn commit_write(&self, req: CommitWriteRequest) -> Result<FileStatus> {
        let req = CommitWriteRequest {
            ctx: self.ctx(),
            ..req
        };
        let reply = self
            .call(req, self.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.commit_write(r).await })
            })
            .await?;
        reply
            .status
            .ok_or_else(|| Error::new(ErrorCode::Internal, "CommitWrite reply carried no status"))
    }

    pub(crate) async fn renew_leases(&self, inos: Vec<u64>, leases: Vec<Vec<u8>>) -> Result<()> {
        let req = RenewLeaseRequest {
            ctx: self.ctx(),
            inos,
            leases,
        };
        self.call(req, self.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.renew_lease(r).await })
        })
        .await?;
        Ok(())
    }

    /// One page of a file's blocks, by path or (when `ino` is not 0) by inode.
    pub(crate) async fn get_blocks(
        &self,
        path: &str,
        ino: u64,
        from_index: u64,
    ) -> Result<GetBlocksReply> {
        let req = GetBlocksRequest {
            ctx: self.ctx(),
            path: path.to_string(),
            ino,
            from_index,
            limit: 0,
        };
        self.call(req, self.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.get_blocks(r).await })
        })
        .await
    }

    pub(crate) async fn report_bad_shards(&self, shards: Vec<BadShard>) -> Result<()> {
        let req = ReportBadShardsRequest {
            ctx: self.ctx(),
            shards,
        };
        self.call(req, self.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.report_bad_shards(r).await })
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn readers_are_shared_and_writers_move_between_tasks() {
        send_sync::<FileReader>();
        send::<FileWriter>();
    }

    #[test]
    fn write_options_default_to_create() {
        let o = WriteOptions::default();
        assert_eq!(o.mode, 0o644);
        assert!(o.create && !o.exclusive && !o.overwrite && !o.append);
    }

    #[test]
    fn unreadable_blocks_are_block_missing_naming_the_file() {
        let e = shard_error(
            arbor_blockserver::Error::NotEnoughShards {
                block_id: 42,
                good: 3,
                needed: 4,
            },
            "/d/f (block 2 of the file)",
        );
        assert_eq!(e.code, ErrorCode::BlockMissing);
        assert!(
            e.message
                .starts_with("Could not obtain block blk_42 of /d/f")
        );
        let e = shard_error(arbor_blockserver::Error::Unavailable("down".into()), "/f");
        assert_eq!(e.code, ErrorCode::Unavailable);
    }
}
