//! The namenode gRPC service: decodes each request, runs the operation over the namespace,
//! and encodes the answer. [`status_of`] is the one place a namenode error becomes a gRPC
//! status. Failed calls are logged at debug, the server's own failures at warn.

use std::sync::Arc;
use std::time::Duration;

use arbor_proto::error;
use arbor_proto::namenode as pb;
use arbor_proto::namenode::namenode_server::Namenode;
use arbor_proto::namenode::{
    ClusterInfoReply, ContentSummaryReply, CreateRequest, DeleteReply, DeleteRequest, Empty,
    FsckReply, FsckRequest, GetXattrReply, ListReply, ListRequest, ListXattrsReply, MkdirRequest,
    PathRequest, ReadlinkReply, RenameRequest, SetAttrRequest, SetXattrRequest, StatusReply,
    SymlinkRequest, XattrRequest,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::data::{addblock, commit, ec, open, read, report, servers};
use crate::error::NnError;
use crate::fsck;
use crate::ops::setattr::SetAttr;
use crate::ops::{
    Namespace, content_summary, create, delete, list, mkdir, readlink, rename, setattr, stat,
    symlink, xattr,
};
use crate::perm::Caller;
use crate::txn::Store;

/// What ClusterInfo reports besides the store's shape.
#[derive(Clone, Debug, Default)]
pub struct ServiceInfo {
    pub namenode_id: Vec<u8>,
    pub metastores: Vec<String>,
    pub cluster_id: Vec<u8>,
    /// The search service's address, "" when none is configured.
    pub search_addr: String,
    /// How long removed paths stay in the trash (zero: no trash).
    pub trash_interval: Duration,
}

pub struct NamenodeService<S: Store> {
    ns: Arc<Namespace<S>>,
    info: ServiceInfo,
    leader: watch::Receiver<bool>,
}

impl<S: Store> NamenodeService<S> {
    pub fn new(ns: Arc<Namespace<S>>, info: ServiceInfo, leader: watch::Receiver<bool>) -> Self {
        NamenodeService { ns, info, leader }
    }
}

/// The gRPC status of a namenode error (the only such conversion).
pub fn status_of(e: &NnError) -> Status {
    error::status(e.code(), e.to_string())
}

fn answer<T>(call: &str, result: Result<T, NnError>) -> Result<Response<T>, Status> {
    match result {
        Ok(v) => Ok(Response::new(v)),
        Err(e) => {
            if e.is_internal() {
                tracing::warn!(call, error = %e, "call failed");
            } else {
                tracing::debug!(call, error = %e, "call failed");
            }
            Err(status_of(&e))
        }
    }
}

fn status_reply(
    r: Result<arbor_proto::namenode::FileStatus, NnError>,
) -> Result<StatusReply, NnError> {
    r.map(|status| StatusReply {
        status: Some(status),
    })
}

#[tonic::async_trait]
impl<S: Store> Namenode for NamenodeService<S> {
    async fn mkdir(&self, request: Request<MkdirRequest>) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = mkdir::mkdir(&self.ns, &caller, &r.path, r.mode, r.parents).await;
        answer("mkdir", status_reply(out))
    }

    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = create::create(&self.ns, &caller, &r.path, r.mode, r.overwrite).await;
        answer("create", status_reply(out))
    }

    async fn get_file_info(
        &self,
        request: Request<PathRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = stat::stat(&self.ns, &caller, &r.path).await;
        answer("get_file_info", status_reply(out))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = list::list(&self.ns, &caller, &r.path, &r.start_after, r.limit).await;
        answer("list", out)
    }

    async fn rename(&self, request: Request<RenameRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = rename::rename(&self.ns, &caller, &r.src, &r.dst, r.noreplace).await;
        answer("rename", out.map(|()| Empty {}))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let expect = r.expect();
        let out = delete::delete(&self.ns, &caller, &r.path, r.recursive, expect).await;
        answer("delete", out)
    }

    async fn set_attr(
        &self,
        request: Request<SetAttrRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let change = SetAttr {
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            mtime_ns: r.mtime_ns,
            atime_ns: r.atime_ns,
            size: r.size,
        };
        let out = setattr::setattr(&self.ns, &caller, &r.path, &change).await;
        answer("set_attr", status_reply(out))
    }

    async fn symlink(
        &self,
        request: Request<SymlinkRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = symlink::symlink(&self.ns, &caller, &r.target, &r.link).await;
        answer("symlink", status_reply(out))
    }

    async fn readlink(
        &self,
        request: Request<PathRequest>,
    ) -> Result<Response<ReadlinkReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = readlink::readlink(&self.ns, &caller, &r.path).await;
        answer("readlink", out.map(|target| ReadlinkReply { target }))
    }

    async fn set_xattr(
        &self,
        request: Request<SetXattrRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let flag = r.flag();
        let out = xattr::set_xattr(&self.ns, &caller, &r.path, &r.name, &r.value, flag).await;
        answer("set_xattr", out.map(|()| Empty {}))
    }

    async fn get_xattr(
        &self,
        request: Request<XattrRequest>,
    ) -> Result<Response<GetXattrReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = xattr::get_xattr(&self.ns, &caller, &r.path, &r.name).await;
        answer("get_xattr", out.map(|value| GetXattrReply { value }))
    }

    async fn list_xattrs(
        &self,
        request: Request<PathRequest>,
    ) -> Result<Response<ListXattrsReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = xattr::list_xattrs(&self.ns, &caller, &r.path).await;
        answer("list_xattrs", out.map(|xattrs| ListXattrsReply { xattrs }))
    }

    async fn remove_xattr(
        &self,
        request: Request<XattrRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = xattr::remove_xattr(&self.ns, &caller, &r.path, &r.name).await;
        answer("remove_xattr", out.map(|()| Empty {}))
    }

    async fn content_summary(
        &self,
        request: Request<PathRequest>,
    ) -> Result<Response<ContentSummaryReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = content_summary::content_summary(&self.ns, &caller, &r.path).await;
        answer("content_summary", out)
    }

    async fn fsck(&self, request: Request<FsckRequest>) -> Result<Response<FsckReply>, Status> {
        let r = request.into_inner();
        let path = if r.path.is_empty() {
            "/"
        } else {
            r.path.as_str()
        };
        let out = fsck::fsck_with(&*self.ns.store, path, &self.ns.config.data).await;
        answer("fsck", out)
    }

    async fn cluster_info(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<ClusterInfoReply>, Status> {
        let store = &self.ns.store;
        let counters = store.counters();
        Ok(Response::new(ClusterInfoReply {
            shard_gets: counters.gets,
            shard_scans: counters.scans,
            commits: counters
                .commits
                .into_iter()
                .map(|(op, c)| pb::CommitCount {
                    op,
                    single_shard: c.single_shard,
                    two_phase: c.two_phase,
                })
                .collect(),
            shards: store.shards(),
            vparts: store.vparts(),
            metastores: self.info.metastores.clone(),
            namenode_id: self.info.namenode_id.clone(),
            leader: *self.leader.borrow(),
            cluster_id: self.info.cluster_id.clone(),
            search_addr: self.info.search_addr.clone(),
            trash_interval_ms: self.info.trash_interval.as_millis() as u64,
            inline_threshold: self.ns.config.data.inline_threshold,
        }))
    }

    async fn expunge(
        &self,
        request: Request<pb::ExpungeRequest>,
    ) -> Result<Response<pb::ExpungeReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = crate::trash::expunge(
            &self.ns,
            &caller,
            &caller.user,
            self.info.trash_interval,
            r.immediate,
        )
        .await;
        answer("expunge", out)
    }

    async fn stat_ino(
        &self,
        request: Request<pb::InoRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = read::stat_ino(&self.ns, &caller, r.ino).await;
        answer("stat_ino", status_reply(out))
    }

    async fn open_write(
        &self,
        request: Request<pb::OpenWriteRequest>,
    ) -> Result<Response<pb::OpenWriteReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        answer("open_write", open::open_write(&self.ns, &caller, &r).await)
    }

    async fn add_block(
        &self,
        request: Request<pb::AddBlockRequest>,
    ) -> Result<Response<pb::AddBlockReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        answer(
            "add_block",
            addblock::add_block(&self.ns, &caller, &r).await,
        )
    }

    async fn commit_write(
        &self,
        request: Request<pb::CommitWriteRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = commit::commit_write(&self.ns, &caller, &r).await;
        answer("commit_write", status_reply(out))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = commit::renew_lease(&self.ns, &caller, &r).await;
        answer("renew_lease", out.map(|()| Empty {}))
    }

    async fn get_blocks(
        &self,
        request: Request<pb::GetBlocksRequest>,
    ) -> Result<Response<pb::GetBlocksReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        answer("get_blocks", read::get_blocks(&self.ns, &caller, &r).await)
    }

    async fn report_bad_shards(
        &self,
        request: Request<pb::ReportBadShardsRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = report::report_bad_shards(&self.ns, &caller, &r).await;
        answer("report_bad_shards", out.map(|()| Empty {}))
    }

    async fn set_ec_policy(
        &self,
        request: Request<pb::SetEcPolicyRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        let out = ec::set_ec_policy(&self.ns, &caller, &r.path, &r.policy).await;
        answer("set_ec_policy", out.map(|()| Empty {}))
    }

    async fn get_ec_policy(
        &self,
        request: Request<PathRequest>,
    ) -> Result<Response<pb::GetEcPolicyReply>, Status> {
        let r = request.into_inner();
        let caller = Caller::from_ctx(r.ctx.as_ref());
        answer(
            "get_ec_policy",
            ec::get_ec_policy(&self.ns, &caller, &r.path).await,
        )
    }

    async fn list_ec_policies(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<pb::ListEcPoliciesReply>, Status> {
        Ok(Response::new(ec::list_ec_policies(&self.ns)))
    }

    async fn block_server_heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        let r = request.into_inner();
        answer(
            "block_server_heartbeat",
            servers::heartbeat(&self.ns, &r).await,
        )
    }

    async fn list_block_servers(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<pb::ListBlockServersReply>, Status> {
        answer("list_block_servers", servers::list(&self.ns).await)
    }
}
