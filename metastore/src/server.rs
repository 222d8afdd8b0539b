//! The gRPC face of a shard: `arbor.metastore.Metastore` over a [`Shard`]. This is the one place
//! where shard errors become `tonic::Status`.

use crate::error::Error;
use crate::intent::{DecideOutcome, PrepareOutcome, ResolveOutcome};
use crate::shard::Shard;
use crate::txn::{CommitOutcome, Conflict};
use arbor_proto::metastore::{
    self as pb, commit_response, decide_response, metastore_server::Metastore,
    metastore_server::MetastoreServer, prepare_response, resolve_response,
};
use std::future::Future;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Largest message accepted or sent (a transaction carrying inline file data can be large).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::InvalidArgument(_) => Status::invalid_argument(msg),
            Error::Closed | Error::Failed(_) | Error::Unavailable(_) | Error::Blocked(_) => {
                Status::unavailable(msg)
            }
            Error::Corrupt { .. } => Status::data_loss(msg),
            Error::Trimmed { .. } => Status::out_of_range(msg),
            Error::Io(_) | Error::Engine(_) | Error::Internal(_) => Status::internal(msg),
        }
    }
}

fn conflict(c: Conflict) -> pb::Conflict {
    pb::Conflict {
        reason: c.reason as i32,
        key: c.key,
    }
}

impl MetastoreService {
    async fn commit_one(&self, r: pb::CommitRequest) -> Result<pb::CommitResponse, Status> {
        let outcome = match self
            .shard
            .commit_as(&r.lease_holder, r.txn_id, r.body.unwrap_or_default())
            .await?
        {
            CommitOutcome::Committed(seq) => commit_response::Outcome::CommittedSeq(seq),
            CommitOutcome::Conflict(c) => commit_response::Outcome::Conflict(conflict(c)),
        };
        Ok(pb::CommitResponse {
            outcome: Some(outcome),
        })
    }
}

/// The service; cheap to clone.
#[derive(Clone)]
pub struct MetastoreService {
    shard: Shard,
}

impl MetastoreService {
    pub fn new(shard: Shard) -> Self {
        Self { shard }
    }

    pub fn into_server(self) -> MetastoreServer<Self> {
        MetastoreServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl Metastore for MetastoreService {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let r = req.into_inner();
        let length = std::time::Duration::from_millis(u64::from(r.lease_ms));
        let scans = r
            .scans
            .into_iter()
            .map(|s| crate::shard::ScanSpec {
                start: s.start,
                end: s.end,
                limit: s.limit,
                keys_only: s.keys_only,
            })
            .collect();
        let (rows, pages) = self
            .shard
            .read(r.keys, &r.lease_holder, length, &r.leased, scans)
            .await?;
        let pages = pages
            .into_iter()
            .map(|(rows, more)| pb::ScanResponse { rows, more })
            .collect();
        Ok(Response::new(pb::GetResponse { rows, pages }))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let r = req.into_inner();
        let (rows, more) = self
            .shard
            .scan(r.start, r.end, r.limit, r.keys_only)
            .await?;
        Ok(Response::new(pb::ScanResponse { rows, more }))
    }

    async fn commit(
        &self,
        req: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        Ok(Response::new(self.commit_one(req.into_inner()).await?))
    }

    async fn commit_many(
        &self,
        req: Request<pb::CommitManyRequest>,
    ) -> Result<Response<pb::CommitManyResponse>, Status> {
        // All reach the committer's queue in one poll, so they usually share one log sync.
        let answers = futures::future::join_all(
            req.into_inner()
                .commits
                .into_iter()
                .map(|c| self.commit_one(c)),
        )
        .await
        .into_iter()
        .map(|r| pb::CommitAnswer {
            answer: Some(match r {
                Ok(done) => pb::commit_answer::Answer::Done(done),
                Err(status) => pb::commit_answer::Answer::Failed(pb::CommitFailure {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                }),
            }),
        })
        .collect();
        Ok(Response::new(pb::CommitManyResponse { answers }))
    }

    async fn prepare(
        &self,
        req: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::PrepareResponse>, Status> {
        let r = req.into_inner();
        let writer = r.lease_holder.clone();
        let outcome = match self.shard.prepare_as(&writer, r).await? {
            PrepareOutcome::Prepared => prepare_response::Outcome::Prepared(pb::Empty {}),
            PrepareOutcome::Conflict(c) => prepare_response::Outcome::Conflict(conflict(c)),
        };
        Ok(Response::new(pb::PrepareResponse {
            outcome: Some(outcome),
        }))
    }

    async fn decide(
        &self,
        req: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::DecideResponse>, Status> {
        let r = req.into_inner();
        let (outcome, seq) = match self.shard.decide(r.txn_id, r.commit).await? {
            DecideOutcome::Committed(seq) => (decide_response::Outcome::Committed, seq),
            DecideOutcome::Aborted => (decide_response::Outcome::Aborted, 0),
            DecideOutcome::AlreadyAborted => (decide_response::Outcome::AlreadyAborted, 0),
            DecideOutcome::Unknown => (decide_response::Outcome::Unknown, 0),
        };
        Ok(Response::new(pb::DecideResponse {
            outcome: outcome as i32,
            committed_seq: seq,
        }))
    }

    async fn resolve(
        &self,
        req: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let outcome = match self.shard.resolve(req.into_inner().txn_id).await? {
            ResolveOutcome::Committed => resolve_response::Outcome::Committed,
            ResolveOutcome::Aborted => resolve_response::Outcome::Aborted,
            ResolveOutcome::Pending => resolve_response::Outcome::Pending,
        };
        Ok(Response::new(pb::ResolveResponse {
            outcome: outcome as i32,
        }))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.shard.status().await?))
    }

    type SubscribeStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::ChangeBatch, Status>> + Send + 'static>,
    >;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = req.into_inner();
        let batches = self.shard.subscribe(r.from_seq, r.max_batch)?;
        let stream = futures::stream::unfold(batches, |mut batches| async move {
            let item = batches.recv().await?;
            Some((item.map_err(Status::from), batches))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_cursor(
        &self,
        req: Request<pb::SetCursorRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.shard.set_cursor(r.consumer, r.seq).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_cursors(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListCursorsResponse>, Status> {
        let cursors = self
            .shard
            .list_cursors()
            .into_iter()
            .map(|c| pb::Cursor {
                consumer: c.consumer,
                seq: c.seq,
                updated_ns: c.updated_ns,
            })
            .collect();
        Ok(Response::new(pb::ListCursorsResponse { cursors }))
    }

    async fn delete_cursor(
        &self,
        req: Request<pb::DeleteCursorRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        // Deleting a cursor that does not exist is not an error: the outcome is the same.
        self.shard.delete_cursor(req.into_inner().consumer).await?;
        Ok(Response::new(pb::Empty {}))
    }
}

/// Serves `shard` on `listener` until `shutdown` completes. Then the shard's change-stream
/// subscriptions end, since a graceful stop waits for every open stream.
pub async fn serve(
    shard: Shard,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let ending = shard.clone();
    let shutdown = async move {
        shutdown.await;
        ending.end_subscriptions();
    };
    arbor_proto::serve::server()
        .add_service(MetastoreService::new(shard).into_server())
        .serve_with_incoming_shutdown(arbor_proto::serve::incoming(listener), shutdown)
        .await
        .map_err(|e| Error::Internal(format!("gRPC server: {e}")))
}
