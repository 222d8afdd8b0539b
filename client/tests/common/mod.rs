//! An in-memory namenode served over real gRPC on loopback, for the client's own tests: a
//! namespace kept as a map of absolute paths with POSIX-style answers for the cases the client
//! and CLI care about, a log of every request's call context, and a switch that makes the next
//! calls fail with UNAVAILABLE (as a namenode that lost its shards would).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor_proto::error::status;
use arbor_proto::namenode as pb;
use arbor_proto::namenode::namenode_server::{Namenode, NamenodeServer};
use arbor_proto::namenode::*;
use arbor_proto::records::InodeKind;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

/// Every timestamp of the fake: 2026-11-25 15:33:07.5 UTC.
pub const T_NS: i64 = 1_795_620_787_500_000_000;
/// Entries per list page when the request says 0 (small, so paging is exercised).
pub const PAGE: usize = 2;

#[derive(Default)]
pub struct State {
    pub nodes: BTreeMap<String, FileStatus>,
    pub xattrs: BTreeMap<(String, String), Vec<u8>>,
    /// (method, context) of every call, in arrival order.
    pub calls: Vec<(String, CallContext)>,
    next_ino: u64,
}

#[derive(Clone, Default)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    /// The next this-many calls fail with UNAVAILABLE (after being logged).
    pub fail_next: Arc<AtomicU32>,
}

type R<T> = Result<Response<T>, Status>;

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].into(),
    }
}

fn name_of(path: &str) -> String {
    path.rsplit('/').next().unwrap_or("").into()
}

fn norm(path: &str) -> Result<String, Status> {
    if !path.starts_with('/') {
        return Err(status(
            ErrorCode::InvalidArgument,
            format!("{path}: relative path"),
        ));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(status(
            ErrorCode::InvalidArgument,
            format!("{path}: bad name"),
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn under(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.starts_with(&format!("{dir}/"))
}

impl State {
    fn new() -> State {
        let mut s = State {
            next_ino: 2,
            ..Default::default()
        };
        let root = s.status(InodeKind::Directory, "", 0o755, 0, 0);
        s.nodes.insert("/".into(), root);
        s
    }

    fn status(&mut self, kind: InodeKind, name: &str, mode: u32, uid: u32, gid: u32) -> FileStatus {
        self.next_ino += 1;
        FileStatus {
            ino: self.next_ino,
            kind: kind as i32,
            mode,
            uid,
            gid,
            mtime_ns: T_NS,
            atime_ns: T_NS,
            ctime_ns: T_NS,
            btime_ns: T_NS,
            nlink: 1,
            name: name.into(),
            block_size: if kind == InodeKind::File { 64 << 20 } else { 0 },
            ..Default::default()
        }
    }

    /// The status at `path`, with NOT_A_DIRECTORY when an ancestor is a file.
    fn lookup(&self, path: &str) -> Result<FileStatus, Status> {
        if let Some(st) = self.nodes.get(path) {
            let mut st = st.clone();
            if st.kind() == InodeKind::Directory {
                st.children = self.children(path).len() as u64;
            }
            return Ok(st);
        }
        let mut p = parent_of(path);
        loop {
            if let Some(st) = self.nodes.get(&p) {
                if st.kind() != InodeKind::Directory {
                    return Err(status(
                        ErrorCode::NotADirectory,
                        format!("{p}: not a directory"),
                    ));
                }
                break;
            }
            if p == "/" {
                break;
            }
            p = parent_of(&p);
        }
        Err(status(ErrorCode::NotFound, format!("{path}: not found")))
    }

    fn dir(&self, path: &str) -> Result<FileStatus, Status> {
        let st = self.lookup(path)?;
        if st.kind() != InodeKind::Directory {
            return Err(status(
                ErrorCode::NotADirectory,
                format!("{path}: not a directory"),
            ));
        }
        Ok(st)
    }

    fn children(&self, dir: &str) -> Vec<(String, FileStatus)> {
        self.nodes
            .iter()
            .filter(|(p, _)| p.as_str() != "/" && parent_of(p) == dir)
            .map(|(p, st)| (name_of(p), st.clone()))
            .collect()
    }

    fn subtree(&self, dir: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| under(p, dir))
            .cloned()
            .collect()
    }
}

impl Fake {
    pub fn new() -> Fake {
        Fake {
            state: Arc::new(Mutex::new(State::new())),
            fail_next: Arc::new(AtomicU32::new(0)),
        }
    }

    fn enter(
        &self,
        method: &str,
        ctx: Option<&CallContext>,
    ) -> Result<std::sync::MutexGuard<'_, State>, Status> {
        let mut s = self.state.lock().unwrap();
        s.calls
            .push((method.into(), ctx.cloned().unwrap_or_default()));
        let left = self.fail_next.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_next.store(left - 1, Ordering::SeqCst);
            return Err(status(
                ErrorCode::Unavailable,
                "shard unreachable (injected)",
            ));
        }
        Ok(s)
    }

    pub fn calls(&self) -> Vec<(String, CallContext)> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn exists(&self, path: &str) -> bool {
        self.state.lock().unwrap().nodes.contains_key(path)
    }

    /// Serves on `addr` until the returned sender is dropped or fired.
    pub async fn serve(&self, addr: &str) -> oneshot::Sender<()> {
        let addr: SocketAddr = addr.parse().unwrap();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let (tx, rx) = oneshot::channel::<()>();
        let svc = NamenodeServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx
    }
}

fn reply(st: FileStatus) -> R<StatusReply> {
    Ok(Response::new(StatusReply { status: Some(st) }))
}

#[tonic::async_trait]
impl Namenode for Fake {
    async fn mkdir(&self, req: Request<MkdirRequest>) -> R<StatusReply> {
        let r = req.into_inner();
        let mut s = self.enter("mkdir", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        let ctx = r.ctx.unwrap_or_default();
        if let Ok(st) = s.lookup(&path) {
            if r.parents && st.kind() == InodeKind::Directory {
                return reply(st);
            }
            return Err(status(ErrorCode::AlreadyExists, format!("{path}: exists")));
        }
        // Ancestors first (created with -p, else they must exist).
        let mut missing = Vec::new();
        let mut p = parent_of(&path);
        loop {
            match s.lookup(&p) {
                Ok(st) if st.kind() == InodeKind::Directory => break,
                Ok(_) => {
                    return Err(status(
                        ErrorCode::NotADirectory,
                        format!("{p}: not a directory"),
                    ));
                }
                Err(e) if arbor_proto::error::code_of(&e) == ErrorCode::NotFound && r.parents => {
                    missing.push(p.clone());
                    p = parent_of(&p);
                }
                Err(e) => return Err(e),
            }
        }
        missing.reverse();
        missing.push(path.clone());
        let mut last = None;
        for m in missing {
            let gid = s.lookup(&parent_of(&m))?.gid;
            let st = s.status(InodeKind::Directory, &name_of(&m), r.mode, ctx.uid, gid);
            s.nodes.insert(m, st.clone());
            last = Some(st);
        }
        reply(last.unwrap())
    }

    async fn create(&self, req: Request<CreateRequest>) -> R<StatusReply> {
        let r = req.into_inner();
        let mut s = self.enter("create", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        let parent = s.dir(&parent_of(&path))?;
        if let Some(st) = s.nodes.get_mut(&path) {
            if st.kind() == InodeKind::Directory {
                return Err(status(
                    ErrorCode::IsADirectory,
                    format!("{path}: is a directory"),
                ));
            }
            if !r.overwrite {
                return Err(status(ErrorCode::AlreadyExists, format!("{path}: exists")));
            }
            st.size = 0;
            let st = st.clone();
            return reply(st);
        }
        let uid = r.ctx.unwrap_or_default().uid;
        let st = s.status(InodeKind::File, &name_of(&path), r.mode, uid, parent.gid);
        s.nodes.insert(path, st.clone());
        reply(st)
    }

    async fn get_file_info(&self, req: Request<PathRequest>) -> R<StatusReply> {
        let r = req.into_inner();
        let s = self.enter("stat", r.ctx.as_ref())?;
        reply(s.lookup(&norm(&r.path)?)?)
    }

    async fn list(&self, req: Request<ListRequest>) -> R<ListReply> {
        let r = req.into_inner();
        let s = self.enter("list", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        let st = s.lookup(&path)?;
        if st.kind() != InodeKind::Directory {
            return Ok(Response::new(ListReply {
                entries: vec![DirEntry {
                    name: st.name.clone(),
                    status: Some(st),
                }],
                more: false,
            }));
        }
        let limit = if r.limit == 0 { PAGE } else { r.limit as usize };
        let after: Vec<(String, FileStatus)> = s
            .children(&path)
            .into_iter()
            .filter(|(n, _)| n.as_str() > r.start_after.as_str())
            .collect();
        let more = after.len() > limit;
        let entries = after
            .into_iter()
            .take(limit)
            .map(|(name, st)| DirEntry {
                name,
                status: Some(st),
            })
            .collect();
        Ok(Response::new(ListReply { entries, more }))
    }

    async fn rename(&self, req: Request<RenameRequest>) -> R<Empty> {
        let r = req.into_inner();
        let mut s = self.enter("rename", r.ctx.as_ref())?;
        let src = norm(&r.src)?;
        let dst = norm(&r.dst)?;
        if src == "/" || dst == "/" {
            return Err(status(ErrorCode::Root, "rename of /"));
        }
        let src_st = s.lookup(&src)?;
        s.dir(&parent_of(&dst))?;
        if src == dst {
            return Ok(Response::new(Empty {}));
        }
        if src_st.kind() == InodeKind::Directory && under(&dst, &src) {
            return Err(status(
                ErrorCode::SubdirOfItself,
                format!("{dst} is under {src}"),
            ));
        }
        if let Ok(d) = s.lookup(&dst) {
            if r.noreplace {
                return Err(status(ErrorCode::AlreadyExists, format!("{dst}: exists")));
            }
            match (
                src_st.kind() == InodeKind::Directory,
                d.kind() == InodeKind::Directory,
            ) {
                (false, true) => return Err(status(ErrorCode::IsADirectory, dst)),
                (true, false) => return Err(status(ErrorCode::NotADirectory, dst)),
                (true, true) if d.children > 0 => return Err(status(ErrorCode::NotEmpty, dst)),
                _ => {
                    s.nodes.remove(&dst);
                }
            }
        }
        for old in s.subtree(&src) {
            if let Some(mut st) = s.nodes.remove(&old) {
                let new = format!("{dst}{}", &old[src.len()..]);
                if old == src {
                    st.name = name_of(&dst);
                }
                s.nodes.insert(new, st);
            }
        }
        Ok(Response::new(Empty {}))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> R<DeleteReply> {
        let r = req.into_inner();
        let mut s = self.enter("delete", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        if path == "/" {
            return Err(status(ErrorCode::Root, "delete of /"));
        }
        let st = s.lookup(&path)?;
        let is_dir = st.kind() == InodeKind::Directory;
        match r.expect() {
            delete_request::Expect::FileOnly if is_dir => {
                return Err(status(ErrorCode::IsADirectory, path));
            }
            delete_request::Expect::DirOnly if !is_dir => {
                return Err(status(ErrorCode::NotADirectory, path));
            }
            _ => {}
        }
        if is_dir && st.children > 0 && !r.recursive {
            return Err(status(ErrorCode::NotEmpty, path));
        }
        for p in s.subtree(&path) {
            s.nodes.remove(&p);
        }
        Ok(Response::new(DeleteReply { deleted: true }))
    }

    async fn set_attr(&self, req: Request<SetAttrRequest>) -> R<StatusReply> {
        let r = req.into_inner();
        let mut s = self.enter("setattr", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        let caller = r.ctx.clone().unwrap_or_default().uid;
        let st = s.nodes.get_mut(&path).unwrap();
        // As the namenode: only the superuser gives files away; only the owner changes modes.
        if r.uid.is_some_and(|u| u != st.uid) && caller != 0 {
            return Err(status(
                ErrorCode::NotPermitted,
                format!("`{path}': Operation not permitted: only root may chown"),
            ));
        }
        if r.mode.is_some() && caller != 0 && caller != st.uid {
            return Err(status(
                ErrorCode::NotPermitted,
                format!("`{path}': Operation not permitted: not the owner"),
            ));
        }
        if let Some(m) = r.mode {
            st.mode = m;
        }
        if let Some(u) = r.uid {
            st.uid = u;
        }
        if let Some(g) = r.gid {
            st.gid = g;
        }
        if let Some(t) = r.mtime_ns {
            st.mtime_ns = t;
        }
        if let Some(t) = r.atime_ns {
            st.atime_ns = t;
        }
        if let Some(size) = r.size {
            st.size = size;
        }
        let st = st.clone();
        reply(st)
    }

    async fn symlink(&self, req: Request<SymlinkRequest>) -> R<StatusReply> {
        let r = req.into_inner();
        let mut s = self.enter("symlink", r.ctx.as_ref())?;
        let link = norm(&r.link)?;
        s.dir(&parent_of(&link))?;
        if s.nodes.contains_key(&link) {
            return Err(status(ErrorCode::AlreadyExists, link));
        }
        let mut st = s.status(InodeKind::Symlink, &name_of(&link), 0o777, 0, 0);
        st.symlink_target = r.target.clone();
        st.size = r.target.len() as u64;
        s.nodes.insert(link, st.clone());
        reply(st)
    }

    async fn readlink(&self, req: Request<PathRequest>) -> R<ReadlinkReply> {
        let r = req.into_inner();
        let s = self.enter("readlink", r.ctx.as_ref())?;
        let st = s.lookup(&norm(&r.path)?)?;
        Ok(Response::new(ReadlinkReply {
            target: st.symlink_target,
        }))
    }

    async fn set_xattr(&self, req: Request<SetXattrRequest>) -> R<Empty> {
        let r = req.into_inner();
        let mut s = self.enter("setxattr", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        s.xattrs.insert((path, r.name), r.value);
        Ok(Response::new(Empty {}))
    }

    async fn get_xattr(&self, req: Request<XattrRequest>) -> R<GetXattrReply> {
        let r = req.into_inner();
        let s = self.enter("getxattr", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        match s.xattrs.get(&(path, r.name.clone())) {
            Some(v) => Ok(Response::new(GetXattrReply { value: v.clone() })),
            None => Err(status(ErrorCode::NoXattr, r.name)),
        }
    }

    async fn list_xattrs(&self, req: Request<PathRequest>) -> R<ListXattrsReply> {
        let r = req.into_inner();
        let s = self.enter("listxattrs", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        let xattrs = s
            .xattrs
            .iter()
            .filter(|((p, _), _)| *p == path)
            .map(|((_, n), v)| Xattr {
                name: n.clone(),
                value: v.clone(),
            })
            .collect();
        Ok(Response::new(ListXattrsReply { xattrs }))
    }

    async fn remove_xattr(&self, req: Request<XattrRequest>) -> R<Empty> {
        let r = req.into_inner();
        let mut s = self.enter("removexattr", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        match s.xattrs.remove(&(path, r.name.clone())) {
            Some(_) => Ok(Response::new(Empty {})),
            None => Err(status(ErrorCode::NoXattr, r.name)),
        }
    }

    async fn content_summary(&self, req: Request<PathRequest>) -> R<ContentSummaryReply> {
        let r = req.into_inner();
        let s = self.enter("summary", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        let mut out = ContentSummaryReply::default();
        for p in s.subtree(&path) {
            let st = &s.nodes[&p];
            match st.kind() {
                InodeKind::Directory => out.directories += 1,
                InodeKind::Symlink => out.symlinks += 1,
                _ => {
                    out.files += 1;
                    out.length += st.size;
                }
            }
        }
        Ok(Response::new(out))
    }

    async fn fsck(&self, req: Request<FsckRequest>) -> R<FsckReply> {
        let r = req.into_inner();
        let s = self.enter("fsck", r.ctx.as_ref())?;
        let path = norm(&r.path)?;
        s.lookup(&path)?;
        let n = s.subtree(&path).len() as u64;
        Ok(Response::new(FsckReply {
            healthy: true,
            directories: n,
            ..Default::default()
        }))
    }

    async fn cluster_info(&self, _req: Request<Empty>) -> R<ClusterInfoReply> {
        let _s = self.enter("clusterinfo", None)?;
        Ok(Response::new(ClusterInfoReply {
            shards: 1,
            vparts: 16,
            ..Default::default()
        }))
    }

    // No trash here (ClusterInfo says an interval of 0), so nothing expunges.
    async fn expunge(&self, _req: Request<pb::ExpungeRequest>) -> R<pb::ExpungeReply> {
        Err(Status::unimplemented("expunge"))
    }

    // The data path is not part of this fake: it serves the namespace calls only.
    async fn stat_ino(&self, _req: Request<pb::InoRequest>) -> R<pb::StatusReply> {
        Err(Status::unimplemented("stat_ino"))
    }

    async fn open_write(&self, _req: Request<pb::OpenWriteRequest>) -> R<pb::OpenWriteReply> {
        Err(Status::unimplemented("open_write"))
    }

    async fn add_block(&self, _req: Request<pb::AddBlockRequest>) -> R<pb::AddBlockReply> {
        Err(Status::unimplemented("add_block"))
    }

    async fn commit_write(&self, _req: Request<pb::CommitWriteRequest>) -> R<pb::StatusReply> {
        Err(Status::unimplemented("commit_write"))
    }

    async fn renew_lease(&self, _req: Request<pb::RenewLeaseRequest>) -> R<pb::Empty> {
        Err(Status::unimplemented("renew_lease"))
    }

    async fn get_blocks(&self, _req: Request<pb::GetBlocksRequest>) -> R<pb::GetBlocksReply> {
        Err(Status::unimplemented("get_blocks"))
    }

    async fn report_bad_shards(&self, _req: Request<pb::ReportBadShardsRequest>) -> R<pb::Empty> {
        Err(Status::unimplemented("report_bad_shards"))
    }

    async fn set_ec_policy(&self, _req: Request<pb::SetEcPolicyRequest>) -> R<pb::Empty> {
        Err(Status::unimplemented("set_ec_policy"))
    }

    async fn get_ec_policy(&self, _req: Request<pb::PathRequest>) -> R<pb::GetEcPolicyReply> {
        Err(Status::unimplemented("get_ec_policy"))
    }

    async fn list_ec_policies(&self, _req: Request<pb::Empty>) -> R<pb::ListEcPoliciesReply> {
        Err(Status::unimplemented("list_ec_policies"))
    }

    async fn block_server_heartbeat(
        &self,
        _req: Request<pb::HeartbeatRequest>,
    ) -> R<pb::HeartbeatReply> {
        Err(Status::unimplemented("block_server_heartbeat"))
    }

    async fn list_block_servers(&self, _req: Request<pb::Empty>) -> R<pb::ListBlockServersReply> {
        Err(Status::unimplemented("list_block_servers"))
    }
}
