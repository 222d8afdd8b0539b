//! The namespace client: one async method per namenode call, with failover across a list of
//! equal namenodes. Invariants it keeps:
//! - a logical call is built once (one `call_id`, fresh from a per-client counter) and every
//!   retry of it, on any namenode, sends that same request, so the namenodes' retry records make
//!   a mutation take effect exactly once;
//! - only "could not be answered" errors (transport failures, `UNAVAILABLE`) are retried, on the
//!   next namenode of the list, with backoff, until a deadline; every other error is the answer;
//! - every attempt carries a deadline, both as gRPC timeout and as a local timer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arbor_blockserver::ShardPool;
use arbor_proto::namenode::namenode_client::NamenodeClient;
use arbor_proto::namenode::{
    CallContext, ClusterInfoReply, ContentSummaryReply, CreateRequest, DeleteRequest, DirEntry,
    Empty, ErrorCode, FileStatus, FsckReply, FsckRequest, ListRequest, MkdirRequest, PathRequest,
    RenameRequest, SetAttrRequest, SetXattrRequest, StatusReply, SymlinkRequest, XattrRequest,
    delete_request::Expect, set_xattr_request::Flag,
};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::paths::parse_target;

/// Where the namenodes are when nothing else says.
pub const DEFAULT_NAMENODE: &str = "127.0.0.1:8020";
/// The environment variable holding a comma-separated namenode list.
pub const NAMENODE_ENV: &str = "ARBOR_NAMENODE";

/// Attributes to change in one call ([`Client::change_attrs`]); `None` keeps one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttrChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime_ns: Option<i64>,
    pub atime_ns: Option<i64>,
}

impl AttrChange {
    pub fn is_empty(&self) -> bool {
        *self == AttrChange::default()
    }

    /// Adds `later` on top: what it sets wins, what it leaves keeps this change's value.
    pub fn merge(&mut self, later: &AttrChange) {
        self.mode = later.mode.or(self.mode);
        self.uid = later.uid.or(self.uid);
        self.gid = later.gid.or(self.gid);
        self.mtime_ns = later.mtime_ns.or(self.mtime_ns);
        self.atime_ns = later.atime_ns.or(self.atime_ns);
    }

    /// `status` as it reads once this change is made.
    pub fn apply_to(&self, status: &mut FileStatus) {
        if let Some(m) = self.mode {
            status.mode = (status.mode & !0o7777) | (m & 0o7777);
        }
        if let Some(u) = self.uid {
            status.uid = u;
        }
        if let Some(g) = self.gid {
            status.gid = g;
        }
        if let Some(t) = self.mtime_ns {
            status.mtime_ns = t;
        }
        if let Some(t) = self.atime_ns {
            status.atime_ns = t;
        }
    }
}

/// Deadlines and failover pacing.
#[derive(Debug, Clone)]
pub struct Options {
    /// Deadline of one attempt of an ordinary call. Longer than the namenode's own retry budget
    /// for conflicts (~30 s), so a busy namenode answers `BUSY` rather than timing out.
    pub call_timeout: Duration,
    /// Deadline of one attempt of a call that walks a subtree (fsck, content summary).
    pub scan_timeout: Duration,
    /// How long a call keeps failing over before it gives up with `UNAVAILABLE`.
    pub failover_deadline: Duration,
    pub connect_timeout: Duration,
    /// Deadline of one call to a block server (one shard read, one streamed write's ack).
    pub shard_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            call_timeout: Duration::from_secs(40),
            scan_timeout: Duration::from_secs(600),
            failover_deadline: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            shard_timeout: Duration::from_secs(60),
        }
    }
}

/// A handle on an Arbor cluster; cheap to clone (clones share channels, the client id and the
/// call counter).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Vec<Node>,
    /// Index of the namenode that answered last: calls start there.
    preferred: AtomicUsize,
    client_id: Vec<u8>,
    next_call: AtomicU64,
    identity: Identity,
    options: Options,
    /// Clients for the namenodes that `arbor://host:port/…` paths name, by authority.
    by_authority: Mutex<HashMap<String, Client>>,
    /// Channels to block servers, made at the first data call.
    shard_pool: OnceLock<ShardPool>,
    /// The cluster's inline threshold, asked once (ClusterInfo) by the first new-file writer.
    inline_threshold: tokio::sync::OnceCell<u64>,
}

struct Node {
    addr: String,
    rpc: NamenodeClient<Channel>,
}

pub(crate) type Reply<T> =
    Pin<Box<dyn Future<Output = std::result::Result<Response<T>, Status>> + Send>>;

/// The namenode list from a `--namenode` value, else `ARBOR_NAMENODE`, else the default.
pub fn namenode_list(flag: Option<&str>) -> Vec<String> {
    let from_env = std::env::var(NAMENODE_ENV).ok();
    let raw = flag
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .or(from_env.filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_NAMENODE.to_string());
    split_list(&raw)
}

/// Splits a comma-separated address list, dropping blanks.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Client {
    /// A client for the given `host:port` namenodes. Channels connect lazily, so this succeeds
    /// while namenodes are down; calls then fail over among them.
    pub async fn connect(namenodes: &[String]) -> Result<Client> {
        Client::connect_with(namenodes, Identity::current(), Options::default())
    }

    /// A client for the namenodes of `--namenode` / `ARBOR_NAMENODE` / the default.
    pub async fn from_env(flag: Option<&str>) -> Result<Client> {
        Client::connect(&namenode_list(flag)).await
    }

    /// A client with an explicit identity and options. Must run inside a tokio runtime.
    pub fn connect_with(
        namenodes: &[String],
        identity: Identity,
        options: Options,
    ) -> Result<Client> {
        if namenodes.is_empty() {
            return Err(Error::invalid("no namenode address given"));
        }
        let nodes = namenodes
            .iter()
            .map(|addr| open_node(addr, &options))
            .collect::<Result<Vec<Node>>>()?;
        Ok(Client::from_nodes(nodes, identity, options))
    }

    fn from_nodes(nodes: Vec<Node>, identity: Identity, options: Options) -> Client {
        Client {
            inner: Arc::new(Inner {
                nodes,
                preferred: AtomicUsize::new(0),
                client_id: rand::rng().random::<[u8; 16]>().to_vec(),
                next_call: AtomicU64::new(1),
                identity,
                options,
                by_authority: Mutex::new(HashMap::new()),
                shard_pool: OnceLock::new(),
                inline_threshold: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The same namenodes (sharing their channels), acting as `id`. The new client has its own
    /// client id.
    pub fn with_identity(self, id: Identity) -> Client {
        let nodes = self
            .inner
            .nodes
            .iter()
            .map(|n| Node {
                addr: n.addr.clone(),
                rpc: n.rpc.clone(),
            })
            .collect();
        Client::from_nodes(nodes, id, self.inner.options.clone())
    }

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The namenode addresses, in failover order.
    pub fn namenodes(&self) -> Vec<String> {
        self.inner.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// The namenode calls go to first (the one that answered last).
    pub fn current_namenode(&self) -> &str {
        let i = self.inner.preferred.load(Ordering::Relaxed) % self.inner.nodes.len();
        &self.inner.nodes[i].addr
    }

    /// A fresh call context: this client's id, the next call id, the identity.
    pub(crate) fn ctx(&self) -> Option<CallContext> {
        let id = &self.inner.identity;
        Some(CallContext {
            client_id: self.inner.client_id.clone(),
            call_id: self.inner.next_call.fetch_add(1, Ordering::Relaxed),
            uid: id.uid,
            gids: id.gids.clone(),
            user: id.user.clone(),
        })
    }

    /// The client that serves `path` (another one for an `arbor://host:port/…` URL) and the
    /// namenode path.
    pub(crate) fn route(&self, path: &str) -> Result<(Client, String)> {
        let target = parse_target(path)?;
        let Some(authority) = target.authority else {
            return Ok((self.clone(), target.path));
        };
        let mut map = self
            .inner
            .by_authority
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = map.get(&authority) {
            return Ok((c.clone(), target.path));
        }
        let node = open_node(&authority, &self.inner.options)?;
        let client = Client::from_nodes(
            vec![node],
            self.inner.identity.clone(),
            self.inner.options.clone(),
        );
        map.insert(authority, client.clone());
        Ok((client, target.path))
    }

    /// Sends `req` (built once) until a namenode answers, failing over on transport errors
    /// and `UNAVAILABLE`.
    pub(crate) async fn call<Req, Resp>(
        &self,
        req: Req,
        timeout: Duration,
        send: impl Fn(NamenodeClient<Channel>, tonic::Request<Req>) -> Reply<Resp>,
    ) -> Result<Resp>
    where
        Req: Clone,
    {
        let inner = &self.inner;
        let n = inner.nodes.len();
        let deadline = Instant::now() + inner.options.failover_deadline;
        let mut idx = inner.preferred.load(Ordering::Relaxed) % n;
        let mut failures = 0u32;
        loop {
            let node = &inner.nodes[idx];
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(timeout);
            // The local timer backs up the gRPC deadline when the connection itself hangs.
            let outcome = tokio::time::timeout(
                timeout + Duration::from_secs(1),
                send(node.rpc.clone(), request),
            )
            .await;
            let err = match outcome {
                Ok(Ok(reply)) => {
                    inner.preferred.store(idx, Ordering::Relaxed);
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => Error::from(status),
                Err(_) => Error::unavailable(format!(
                    "namenode {} did not answer within {timeout:?}",
                    node.addr
                )),
            };
            if !err.is_retryable() {
                return Err(err);
            }
            failures += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::unavailable(format!(
                    "no namenode answered (tried {} for {:?}): {}",
                    self.namenodes().join(","),
                    inner.options.failover_deadline,
                    err.message
                )));
            }
            tracing::debug!(namenode = %node.addr, error = %err, "call failed; failing over");
            idx = (idx + 1) % n;
            let pause = backoff(failures, n).min(deadline - now);
            tokio::time::sleep(pause).await;
        }
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        self.inner.options.call_timeout
    }

    pub(crate) fn scan_timeout(&self) -> Duration {
        self.inner.options.scan_timeout
    }

    /// The block-server channels this client (and its clones) share.
    /// Files up to this size keep their bytes in the metastore.
    pub(crate) async fn inline_threshold(&self) -> Result<u64> {
        self.inner
            .inline_threshold
            .get_or_try_init(|| async { Ok(self.cluster_info().await?.inline_threshold) })
            .await
            .copied()
    }

    pub(crate) fn shard_pool(&self) -> ShardPool {
        self.inner
            .shard_pool
            .get_or_init(|| ShardPool::new(self.inner.options.shard_timeout))
            .clone()
    }

    pub async fn mkdir(&self, path: &str, mode: u32, parents: bool) -> Result<FileStatus> {
        let (c, path) = self.route(path)?;
        let req = MkdirRequest {
            ctx: c.ctx(),
            path,
            mode,
            parents,
        };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.mkdir(r).await })
            })
            .await?;
        status_of(reply)
    }

    pub async fn create(&self, path: &str, mode: u32, overwrite: bool) -> Result<FileStatus> {
        let (c, path) = self.route(path)?;
        let req = CreateRequest {
            ctx: c.ctx(),
            path,
            mode,
            overwrite,
        };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.create(r).await })
            })
            .await?;
        status_of(reply)
    }

    pub async fn stat(&self, path: &str) -> Result<FileStatus> {
        let (c, path) = self.route(path)?;
        let req = PathRequest { ctx: c.ctx(), path };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.get_file_info(r).await })
            })
            .await?;
        status_of(reply)
    }

    /// Whether `path` names something. A path through a file names nothing.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::NotADirectory) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One page of a directory's entries, in name order, strictly after `start_after`; the flag
    /// says whether more follow. Listing a file yields that file.
    pub async fn list_page(
        &self,
        path: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<(Vec<DirEntry>, bool)> {
        let (c, path) = self.route(path)?;
        let req = ListRequest {
            ctx: c.ctx(),
            path,
            start_after: start_after.to_string(),
            limit,
        };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.list(r).await })
            })
            .await?;
        Ok((reply.entries, reply.more))
    }

    /// Every entry of a directory, page by page.
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let (page, more) = self.list_page(path, &after, 0).await?;
            let last = page.last().map(|e| e.name.clone());
            all.extend(page);
            match last {
                Some(name) if more => after = name,
                _ => return Ok(all),
            }
        }
    }

    /// POSIX rename: `dst` is the new full path; an existing `dst` is replaced when allowed.
    pub async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.rename_inner(src, dst, false).await
    }

    /// Rename that fails with `ALREADY_EXISTS` instead of replacing `dst`.
    pub async fn rename_noreplace(&self, src: &str, dst: &str) -> Result<()> {
        self.rename_inner(src, dst, true).await
    }

    async fn rename_inner(&self, src: &str, dst: &str, noreplace: bool) -> Result<()> {
        let src_target = parse_target(src)?;
        let dst_target = parse_target(dst)?;
        if dst_target.authority.is_some() && dst_target.authority != src_target.authority {
            return Err(Error::invalid(format!(
                "Wrong FS: {dst}, expected the file system of {src}"
            )));
        }
        let (c, src_path) = self.route(src)?;
        let req = RenameRequest {
            ctx: c.ctx(),
            src: src_path,
            dst: dst_target.path,
            noreplace,
        };
        c.call(req, c.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.rename(r).await })
        })
        .await?;
        Ok(())
    }

    /// Deletes a file, a symlink or a directory (non-empty ones only when `recursive`).
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        self.delete_expecting(path, recursive, Expect::Any).await
    }

    /// Deletes a file or symlink; a directory is `IS_A_DIRECTORY`.
    pub async fn unlink(&self, path: &str) -> Result<bool> {
        self.delete_expecting(path, false, Expect::FileOnly).await
    }

    /// Deletes an empty directory; a file is `NOT_A_DIRECTORY`.
    pub async fn rmdir(&self, path: &str) -> Result<bool> {
        self.delete_expecting(path, false, Expect::DirOnly).await
    }

    async fn delete_expecting(&self, path: &str, recursive: bool, expect: Expect) -> Result<bool> {
        let (c, path) = self.route(path)?;
        let req = DeleteRequest {
            ctx: c.ctx(),
            path,
            recursive,
            expect: expect as i32,
        };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.delete(r).await })
            })
            .await?;
        Ok(reply.deleted)
    }

    async fn set_attr(
        &self,
        path: &str,
        fill: impl FnOnce(&mut SetAttrRequest),
    ) -> Result<FileStatus> {
        let (c, path) = self.route(path)?;
        let mut req = SetAttrRequest {
            ctx: c.ctx(),
            path,
            ..Default::default()
        };
        fill(&mut req);
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.set_attr(r).await })
            })
            .await?;
        status_of(reply)
    }

    /// Changes any of mode, owner, group and times in one transaction; the new status.
    pub async fn change_attrs(&self, path: &str, change: &AttrChange) -> Result<FileStatus> {
        self.set_attr(path, |r| {
            r.mode = change.mode;
            r.uid = change.uid;
            r.gid = change.gid;
            r.mtime_ns = change.mtime_ns;
            r.atime_ns = change.atime_ns;
        })
        .await
    }

    pub async fn chmod(&self, path: &str, mode: u32) -> Result<FileStatus> {
        self.set_attr(path, |r| r.mode = Some(mode)).await
    }

    pub async fn chown(
        &self,
        path: &str,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<FileStatus> {
        self.set_attr(path, |r| {
            r.uid = uid;
            r.gid = gid;
        })
        .await
    }

    pub async fn set_times(
        &self,
        path: &str,
        mtime_ns: Option<i64>,
        atime_ns: Option<i64>,
    ) -> Result<FileStatus> {
        self.set_attr(path, |r| {
            r.mtime_ns = mtime_ns;
            r.atime_ns = atime_ns;
        })
        .await
    }

    /// Sets a file's recorded length (truncate or extend).
    pub async fn truncate(&self, path: &str, size: u64) -> Result<FileStatus> {
        self.set_attr(path, |r| r.size = Some(size)).await
    }

    /// Creates `link` pointing at `target` (stored as given, not resolved).
    pub async fn symlink(&self, target: &str, link: &str) -> Result<FileStatus> {
        let (c, link) = self.route(link)?;
        let req = SymlinkRequest {
            ctx: c.ctx(),
            target: target.to_string(),
            link,
        };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.symlink(r).await })
            })
            .await?;
        status_of(reply)
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        let (c, path) = self.route(path)?;
        let req = PathRequest { ctx: c.ctx(), path };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.readlink(r).await })
            })
            .await?;
        Ok(reply.target)
    }

    /// Sets an extended attribute, creating or replacing it.
    pub async fn set_xattr(&self, path: &str, name: &str, value: &[u8]) -> Result<()> {
        self.set_xattr_flag(path, name, value, Flag::Any).await
    }

    /// Sets an extended attribute with `CREATE` (must be absent) or `REPLACE` (must exist).
    pub async fn set_xattr_flag(
        &self,
        path: &str,
        name: &str,
        value: &[u8],
        flag: Flag,
    ) -> Result<()> {
        let (c, path) = self.route(path)?;
        let req = SetXattrRequest {
            ctx: c.ctx(),
            path,
            name: name.to_string(),
            value: value.to_vec(),
            flag: flag as i32,
        };
        c.call(req, c.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.set_xattr(r).await })
        })
        .await?;
        Ok(())
    }

    pub async fn get_xattr(&self, path: &str, name: &str) -> Result<Vec<u8>> {
        let (c, path) = self.route(path)?;
        let req = XattrRequest {
            ctx: c.ctx(),
            path,
            name: name.to_string(),
        };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.get_xattr(r).await })
            })
            .await?;
        Ok(reply.value)
    }

    pub async fn list_xattrs(&self, path: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let (c, path) = self.route(path)?;
        let req = PathRequest { ctx: c.ctx(), path };
        let reply = c
            .call(req, c.call_timeout(), |mut rpc, r| {
                Box::pin(async move { rpc.list_xattrs(r).await })
            })
            .await?;
        Ok(reply
            .xattrs
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect())
    }

    pub async fn remove_xattr(&self, path: &str, name: &str) -> Result<()> {
        let (c, path) = self.route(path)?;
        let req = XattrRequest {
            ctx: c.ctx(),
            path,
            name: name.to_string(),
        };
        c.call(req, c.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.remove_xattr(r).await })
        })
        .await?;
        Ok(())
    }

    /// Recursive counts under `path` (directories including itself, files, symlinks, bytes).
    pub async fn content_summary(&self, path: &str) -> Result<ContentSummaryReply> {
        let (c, path) = self.route(path)?;
        let req = PathRequest { ctx: c.ctx(), path };
        c.call(req, c.scan_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.content_summary(r).await })
        })
        .await
    }

    /// Checks the namespace's invariants; counts are for `path`.
    pub async fn fsck(&self, path: &str) -> Result<FsckReply> {
        let (c, path) = self.route(path)?;
        let req = FsckRequest { ctx: c.ctx(), path };
        c.call(req, c.scan_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.fsck(r).await })
        })
        .await
    }

    pub async fn cluster_info(&self) -> Result<ClusterInfoReply> {
        self.call(Empty {}, self.call_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.cluster_info(r).await })
        })
        .await
    }
}

fn status_of(reply: StatusReply) -> Result<FileStatus> {
    reply
        .status
        .ok_or_else(|| Error::new(ErrorCode::Internal, "namenode reply carried no file status"))
}

fn open_node(addr: &str, options: &Options) -> Result<Node> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| Error::invalid(format!("bad namenode address '{addr}': {e}")))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true);
    Ok(Node {
        addr: addr.to_string(),
        rpc: NamenodeClient::new(endpoint.connect_lazy()),
    })
}

/// Pause before the next attempt: short while there are untried namenodes in this round,
/// then growing (with jitter) up to a second, so a restarting cluster is not hammered.
fn backoff(failures: u32, nodes: usize) -> Duration {
    let round = failures as usize / nodes.max(1);
    let base_ms: u64 = if round == 0 {
        10
    } else {
        (50u64 << (round - 1).min(5)).min(1000)
    };
    let jitter = rand::rng().random_range(0.5..1.0);
    Duration::from_millis((base_ms as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namenode_lists_split_and_trim() {
        assert_eq!(
            split_list(" a:1, b:2,,"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(namenode_list(Some("x:1,y:2")), vec!["x:1", "y:2"]);
    }

    #[test]
    fn backoff_grows_after_a_full_round_and_stays_bounded() {
        assert!(backoff(1, 3) <= Duration::from_millis(10));
        assert!(backoff(3, 3) >= Duration::from_millis(25));
        for f in 0..100 {
            assert!(backoff(f, 2) <= Duration::from_secs(1));
        }
    }
}
