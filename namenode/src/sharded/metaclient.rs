//! The gRPC client of one metastore shard: a lazily connected channel (cloned per call; tonic
//! channels multiplex), a deadline on every call, and the one place where a failed call is
//! classified by what it tells about the request: never sent (the connection could not be
//! made), maybe applied (lost in transit or past its deadline), or refused by the shard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arbor_proto::metastore::commit_answer;
use arbor_proto::metastore::metastore_client::MetastoreClient;
use arbor_proto::metastore::{
    CommitManyRequest, CommitRequest, CommitResponse, DecideRequest, DecideResponse, GetRequest,
    PrepareRequest, PrepareResponse, Row, ScanRequest, ScanResponse, StatusRequest, StatusResponse,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::coalesce::{self, Kind, Lane};
use crate::txn::TxnError;

/// Largest answer accepted from a shard: a scan page of inline files is far above tonic's
/// 4 MiB default.
const MAX_MESSAGE: usize = 256 << 20;

/// Why a call to a shard failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The connection could not be made: the request never reached the shard.
    NotSent(String),
    /// The transport failed or the deadline passed after the request may have reached the
    /// shard: whatever it asked may or may not have happened.
    Lost(String),
    /// The shard itself answered with an error status.
    Refused(Code, String),
}

impl CallError {
    /// The shard may have acted on the request.
    pub fn maybe_applied(&self) -> bool {
        match self {
            CallError::NotSent(_) => false,
            CallError::Lost(_) => true,
            CallError::Refused(code, _) => !refusal_is_definite(*code),
        }
    }

    /// As the error of a read (nothing to be unsure about: reads change nothing).
    pub fn into_read_error(self) -> TxnError {
        match self {
            CallError::NotSent(m) | CallError::Lost(m) => TxnError::Unavailable(m),
            CallError::Refused(code, m) if transient(code) => TxnError::Unavailable(m),
            CallError::Refused(_, m) => TxnError::Internal(m),
        }
    }

    /// As the error of a call that commits: unsure unless the request provably did nothing.
    pub fn into_commit_error(self) -> TxnError {
        match self {
            CallError::NotSent(m) => TxnError::Unavailable(m),
            CallError::Refused(code, m) if refusal_is_definite(code) => TxnError::Internal(m),
            CallError::Lost(m) | CallError::Refused(_, m) => TxnError::Unknown(m),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(m) => write!(f, "not sent: {m}"),
            CallError::Lost(m) => write!(f, "no answer: {m}"),
            CallError::Refused(code, m) => write!(f, "refused ({code:?}): {m}"),
        }
    }
}

/// Codes with which a shard rejects a request before acting on it.
fn refusal_is_definite(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
    )
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

/// Sorts a failed call's status. A status the shard sent has no source error; one made by
/// the transport carries the failure it came from, and a connect failure in that chain means
/// the request never left.
pub fn classify(shard: u32, addr: &str, status: &Status) -> CallError {
    let what = format!("shard {shard} ({addr}): {}", status.message());
    let Some(source) = std::error::Error::source(status) else {
        return CallError::Refused(status.code(), what);
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(err) = cause {
        if err.is::<tonic::ConnectError>() {
            return CallError::NotSent(what);
        }
        cause = err.source();
    }
    CallError::Lost(what)
}

/// A client of one shard.
#[derive(Clone, Debug)]
pub struct ShardClient {
    shard: u32,
    addr: String,
    channel: Channel,
    timeout: Duration,
    lanes: Arc<Lanes>,
    lease: ReadLease,
}

/// Who this namenode is to the shards' read leases, and how long a lease it asks for (zero:
/// none).
#[derive(Clone, Debug, Default)]
pub struct ReadLease {
    pub holder: Arc<[u8]>,
    pub length: Duration,
}

/// The keys of one read, which of them to lease (empty: none), and the ranges scanned in
/// the same call.
#[derive(Debug, Default)]
pub struct ReadKeys {
    pub keys: Vec<Vec<u8>>,
    pub leased: Vec<bool>,
    pub scans: Vec<ScanRequest>,
}

/// What a read gives: one row per key, one page per scan, in order.
#[derive(Clone, Debug, Default)]
pub struct ReadAnswer {
    pub rows: Vec<Row>,
    pub pages: Vec<ScanResponse>,
}

/// The coalescing lanes of one shard client.
#[derive(Debug, Default)]
struct Lanes {
    reads: Lane<Reads>,
    commits: Lane<Commits>,
}

impl ShardClient {
    /// Prepares a lazy connection to `addr` ("host:port"); nothing is dialled until the first
    /// call, and a lost connection is re-dialled by the next call.
    pub fn new(shard: u32, addr: &str, timeout: Duration) -> Result<Self, TxnError> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| TxnError::Internal(format!("bad metastore address {addr:?}: {e}")))?
            .connect_timeout(connect_timeout(timeout))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10));
        Ok(Self {
            shard,
            addr: addr.to_string(),
            channel: endpoint.connect_lazy(),
            timeout,
            lanes: Arc::default(),
            lease: ReadLease::default(),
        })
    }

    /// The same client, asking for read leases as `lease` says.
    pub fn with_read_lease(mut self, lease: ReadLease) -> Self {
        self.lease = lease;
        self
    }

    /// The id this client's writes carry, so the shard does not hold them up for this
    /// namenode's own leases.
    pub fn lease_holder(&self) -> Vec<u8> {
        self.lease.holder.to_vec()
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn client(&self) -> MetastoreClient<Channel> {
        MetastoreClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    fn request<T>(&self, msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        // Tells the shard when to give up too, so it does not work for a caller that left.
        req.set_timeout(timeout);
        req
    }

    /// Runs one call under `timeout`.
    async fn run<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(classify(self.shard, &self.addr, &status)),
            Err(_) => Err(CallError::Lost(format!(
                "shard {} ({}): no answer within {:?}",
                self.shard, self.addr, timeout
            ))),
        }
    }

    /// (Get calls sent, key lists they carried) and (Commit calls, commits they carried).
    pub fn sent(&self) -> ((u64, u64), (u64, u64)) {
        (self.lanes.reads.sent(), self.lanes.commits.sent())
    }

    /// The rows of `keys`, in order; coalesced with other reads of this shard under load.
    pub async fn get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Row>, CallError> {
        self.get_leased(ReadKeys {
            keys,
            ..ReadKeys::default()
        })
        .await
    }

    /// [`ShardClient::get`], leasing the keys `read.leased` marks (when leases are on).
    pub async fn get_leased(&self, read: ReadKeys) -> Result<Vec<Row>, CallError> {
        Ok(self.read(read).await?.rows)
    }

    /// Point reads and scans in one call; coalesced with other reads of this shard.
    pub async fn read(&self, read: ReadKeys) -> Result<ReadAnswer, CallError> {
        coalesce::call::<Reads>(self, read).await
    }

    /// One Get call for exactly these keys and scans.
    async fn get_now(&self, read: ReadKeys) -> Result<ReadAnswer, CallError> {
        let ReadKeys {
            keys,
            leased,
            scans,
        } = read;
        let n = keys.len();
        let n_scans = scans.len();
        let leased: Vec<u32> = if self.lease.length.is_zero() {
            Vec::new()
        } else {
            leased
                .iter()
                .enumerate()
                .filter(|(_, l)| **l)
                .map(|(i, _)| i as u32)
                .collect()
        };
        let msg = GetRequest {
            keys,
            lease_holder: if leased.is_empty() {
                Vec::new()
            } else {
                self.lease.holder.to_vec()
            },
            lease_ms: self.lease.length.as_millis().min(u128::from(u32::MAX)) as u32,
            leased,
            scans,
        };
        let req = self.request(msg, self.timeout);
        let resp = self.run(self.timeout, self.client().get(req)).await?;
        if resp.rows.len() != n || resp.pages.len() != n_scans {
            return Err(CallError::Refused(
                Code::Internal,
                format!(
                    "shard {} ({}): asked {n} keys and {n_scans} scans, got {} rows and {} pages",
                    self.shard,
                    self.addr,
                    resp.rows.len(),
                    resp.pages.len()
                ),
            ));
        }
        Ok(ReadAnswer {
            rows: resp.rows,
            pages: resp.pages,
        })
    }

    pub async fn scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    ) -> Result<ScanResponse, CallError> {
        let req = self.request(
            ScanRequest {
                start,
                end,
                limit,
                keys_only: false,
            },
            self.timeout,
        );
        self.run(self.timeout, self.client().scan(req)).await
    }

    /// A single-shard transaction; coalesced with other commits to this shard under load.
    pub async fn commit(&self, msg: CommitRequest) -> Result<CommitResponse, CallError> {
        coalesce::call::<Commits>(self, msg).await
    }

    async fn commit_now(&self, msg: CommitRequest) -> Result<CommitResponse, CallError> {
        let req = self.request(msg, self.timeout);
        self.run(self.timeout, self.client().commit(req)).await
    }

    /// Several commits in one call; one answer each, in order.
    async fn commit_many_now(
        &self,
        commits: Vec<CommitRequest>,
    ) -> Vec<Result<CommitResponse, CallError>> {
        let n = commits.len();
        let req = self.request(CommitManyRequest { commits }, self.timeout);
        let answers = match self.run(self.timeout, self.client().commit_many(req)).await {
            Ok(resp) if resp.answers.len() == n => resp.answers,
            Ok(resp) => {
                let e = CallError::Lost(format!(
                    "shard {} ({}): sent {n} commits, got {} answers",
                    self.shard,
                    self.addr,
                    resp.answers.len()
                ));
                return vec![Err(e); n];
            }
            Err(e) => return vec![Err(e); n],
        };
        answers
            .into_iter()
            .map(|a| match a.answer {
                Some(commit_answer::Answer::Done(done)) => Ok(done),
                Some(commit_answer::Answer::Failed(f)) => Err(classify(
                    self.shard,
                    &self.addr,
                    &Status::new(Code::from_i32(f.code), f.message),
                )),
                None => Err(CallError::Lost(format!(
                    "shard {} ({}): a commit answered without an outcome",
                    self.shard, self.addr
                ))),
            })
            .collect()
    }

    pub async fn prepare(&self, msg: PrepareRequest) -> Result<PrepareResponse, CallError> {
        let req = self.request(msg, self.timeout);
        self.run(self.timeout, self.client().prepare(req)).await
    }

    /// Decide with its own deadline: the coordinator spreads retries over one budget.
    pub async fn decide(
        &self,
        msg: DecideRequest,
        timeout: Duration,
    ) -> Result<DecideResponse, CallError> {
        let req = self.request(msg, timeout);
        self.run(timeout, self.client().decide(req)).await
    }

    pub async fn status(&self) -> Result<StatusResponse, CallError> {
        let req = self.request(StatusRequest {}, self.timeout);
        self.run(self.timeout, self.client().status(req)).await
    }
}

/// Point reads: a batch is one Get asking each distinct key once.
#[derive(Debug)]
pub struct Reads;

impl Kind for Reads {
    type Client = ShardClient;
    type Item = ReadKeys;
    type Answer = Result<ReadAnswer, CallError>;
    const BUDGET: usize = 4096;

    fn weight(read: &Self::Item) -> usize {
        read.keys.len() + read.scans.len()
    }

    fn lane(client: &ShardClient) -> &Lane<Self> {
        &client.lanes.reads
    }

    async fn one(client: &ShardClient, keys: Self::Item) -> Self::Answer {
        client.get_now(keys).await
    }

    async fn many(client: &ShardClient, items: Vec<Self::Item>) -> Vec<Self::Answer> {
        let mut unique: Vec<Vec<u8>> = Vec::new();
        let mut leased: Vec<bool> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut scans = Vec::new();
        // Per item: where its rows are among the unique keys, and where its pages start.
        let positions: Vec<(Vec<usize>, usize, usize)> = items
            .into_iter()
            .map(|read| {
                let first_page = scans.len();
                let n_pages = read.scans.len();
                scans.extend(read.scans);
                let flags = read.leased;
                let pos = read
                    .keys
                    .into_iter()
                    .enumerate()
                    .map(|(j, k)| {
                        let lease = flags.get(j).copied().unwrap_or(false);
                        let i = match index.get(&k) {
                            Some(&i) => i,
                            None => {
                                unique.push(k.clone());
                                leased.push(false);
                                index.insert(k, unique.len() - 1);
                                unique.len() - 1
                            }
                        };
                        leased[i] |= lease;
                        i
                    })
                    .collect();
                (pos, first_page, n_pages)
            })
            .collect();
        // `get_now` checks one row per key and one page per scan, so every position is in
        // range.
        let answer = client
            .get_now(ReadKeys {
                keys: unique,
                leased,
                scans,
            })
            .await;
        positions
            .into_iter()
            .map(|(pos, first, n)| match &answer {
                Ok(a) => Ok(ReadAnswer {
                    rows: pos.iter().map(|&i| a.rows[i].clone()).collect(),
                    pages: a.pages[first..first + n].to_vec(),
                }),
                Err(e) => Err(e.clone()),
            })
            .collect()
    }

    fn dropped(client: &ShardClient) -> Self::Answer {
        Err(CallError::Lost(format!(
            "shard {} ({}): coalesced read dropped",
            client.shard, client.addr
        )))
    }
}

/// Single-shard commits: a batch is one CommitMany.
#[derive(Debug)]
pub struct Commits;

impl Kind for Commits {
    type Client = ShardClient;
    type Item = CommitRequest;
    type Answer = Result<CommitResponse, CallError>;
    const BUDGET: usize = 8 << 20;

    fn weight(c: &Self::Item) -> usize {
        c.body.as_ref().map_or(0, prost::Message::encoded_len) + 64
    }

    fn lane(client: &ShardClient) -> &Lane<Self> {
        &client.lanes.commits
    }

    async fn one(client: &ShardClient, c: Self::Item) -> Self::Answer {
        client.commit_now(c).await
    }

    async fn many(client: &ShardClient, items: Vec<Self::Item>) -> Vec<Self::Answer> {
        client.commit_many_now(items).await
    }

    fn dropped(client: &ShardClient) -> Self::Answer {
        // It may have been sent: its outcome is unknown.
        Err(CallError::Lost(format!(
            "shard {} ({}): coalesced commit dropped",
            client.shard, client.addr
        )))
    }
}

/// A refused connection fails at once on loopback; a silent host must fail well before the
/// call's own deadline, so that "could not connect" is told apart from "no answer".
fn connect_timeout(rpc_timeout: Duration) -> Duration {
    (rpc_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_from_the_shard_is_a_refusal() {
        let err = classify(1, "a:1", &Status::invalid_argument("bad"));
        assert!(matches!(err, CallError::Refused(Code::InvalidArgument, _)));
        assert!(!err.maybe_applied());
        assert!(matches!(err.into_commit_error(), TxnError::Internal(_)));
        let err = classify(1, "a:1", &Status::internal("disk"));
        assert!(err.maybe_applied());
        assert!(matches!(
            err.clone().into_commit_error(),
            TxnError::Unknown(_)
        ));
        assert!(matches!(err.into_read_error(), TxnError::Internal(_)));
        let err = classify(1, "a:1", &Status::unavailable("stopping"));
        assert!(matches!(err.into_read_error(), TxnError::Unavailable(_)));
    }

    #[tokio::test]
    async fn a_refused_connection_is_never_sent() {
        // Bind then drop: the port is free and nothing listens on it.
        let addr = std::net::TcpListener::bind("127.0.0.1:19399")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = ShardClient::new(0, &addr.to_string(), Duration::from_secs(2)).unwrap();
        let err = client.get(vec![b"k".to_vec()]).await.unwrap_err();
        assert!(matches!(err, CallError::NotSent(_)), "{err:?}");
        assert!(matches!(err.into_commit_error(), TxnError::Unavailable(_)));
    }

    #[tokio::test]
    async fn a_silent_shard_leaves_the_outcome_unknown() {
        // Accepts connections and never answers: the request is sent, the deadline passes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:19398")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let client = ShardClient::new(0, &addr.to_string(), Duration::from_millis(300)).unwrap();
        let err = client.commit(CommitRequest::default()).await.unwrap_err();
        assert!(err.maybe_applied(), "{err:?}");
        assert!(matches!(err.into_commit_error(), TxnError::Unknown(_)));
        hold.abort();
    }

    #[test]
    fn bad_addresses_are_rejected_up_front() {
        assert!(ShardClient::new(0, "not a uri at all", Duration::from_secs(1)).is_err());
    }
}
