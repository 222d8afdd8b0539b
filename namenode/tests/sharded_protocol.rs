//! The sharded store's commit protocol against scripted in-process shards: which requests go
//! to which shard in which order, and what the store reports when a shard conflicts, refuses,
//! aborts or goes silent at each step. The scripted shard keeps rows and intents like a real
//! one (without locks) and records every call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arbor_namenode::keys;
use arbor_namenode::sharded::{ShardedStore, StoreConfig};
use arbor_namenode::txn::{CounterOp, Key, Route, Store, Txn, TxnError};
use arbor_proto::metastore as pb;
use arbor_proto::metastore::metastore_server::{Metastore, MetastoreServer};
use arbor_proto::metastore::{
    CommitAnswer, CommitManyRequest, CommitManyResponse, CommitRequest, CommitResponse, Conflict,
    DecideRequest, DecideResponse, Empty, GetRequest, GetResponse, Intent, PrepareRequest,
    PrepareResponse, ResolveRequest, ResolveResponse, Row, ScanRequest, ScanResponse,
    StatusRequest, StatusResponse, TxnBody, commit_answer, commit_response, conflict,
    decide_response, prepare_response, write,
};
use parking_lot::Mutex;
use tonic::{Request, Response, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrepareMode {
    Prepare,
    Conflict,
    Refuse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecideMode {
    Apply,
    AlreadyAborted,
    Silent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Get(usize),
    Scan,
    Commit,
    Prepare {
        primary: u32,
        primary_addr: String,
        participants: Vec<u32>,
        this_shard: u32,
        txn_id: Vec<u8>,
    },
    Decide {
        commit: bool,
        txn_id: Vec<u8>,
    },
    Status,
}

struct ShardState {
    rows: BTreeMap<Vec<u8>, (u64, Vec<u8>)>,
    seq: u64,
    intents: HashMap<Vec<u8>, TxnBody>,
    prepare: PrepareMode,
    decide_commit: DecideMode,
}

/// Calls of every scripted shard in arrival order, as (shard, call).
type CallLog = Arc<Mutex<Vec<(u32, Call)>>>;

/// One page of a scan of the scripted rows.
fn page(state: &ShardState, req: ScanRequest) -> ScanResponse {
    let mut rows: Vec<Row> = state
        .rows
        .range(req.start..)
        .take_while(|(k, _)| req.end.is_empty() || **k < req.end)
        .map(|(k, (version, value))| Row {
            key: k.clone(),
            value: value.clone(),
            version: *version,
        })
        .collect();
    let more = rows.len() > req.limit as usize;
    rows.truncate(req.limit as usize);
    ScanResponse { rows, more }
}

#[derive(Clone)]
struct ScriptedShard {
    shard: u32,
    state: Arc<Mutex<ShardState>>,
    log: CallLog,
}

impl ScriptedShard {
    fn record(&self, call: Call) {
        self.log.lock().push((self.shard, call));
    }

    fn conflict_of(state: &ShardState, body: &TxnBody) -> Option<Conflict> {
        for read in &body.reads {
            let version = state.rows.get(&read.key).map_or(0, |r| r.0);
            if version != read.version {
                return Some(Conflict {
                    reason: conflict::Reason::Version as i32,
                    key: read.key.clone(),
                });
            }
        }
        for prefix in &body.empty_prefixes {
            if let Some((k, _)) = state.rows.range(prefix.clone()..).next()
                && k.starts_with(prefix)
            {
                return Some(Conflict {
                    reason: conflict::Reason::NotEmpty as i32,
                    key: k.clone(),
                });
            }
        }
        None
    }

    fn apply(state: &mut ShardState, body: &TxnBody) -> u64 {
        state.seq += 1;
        let seq = state.seq;
        for w in &body.writes {
            match &w.op {
                Some(write::Op::Put(v)) => {
                    state.rows.insert(w.key.clone(), (seq, v.clone()));
                }
                Some(write::Op::Delete(_)) => {
                    state.rows.remove(&w.key);
                }
                Some(write::Op::Counter(c)) => {
                    let old = state
                        .rows
                        .get(&w.key)
                        .map(|r| r.1.clone())
                        .unwrap_or_default();
                    let mut cells: Vec<i64> = old
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    cells.resize(cells.len().max(c.width as usize), 0);
                    for f in &c.fields {
                        let cell = &mut cells[f.index as usize];
                        *cell = match f.op {
                            0 => *cell + f.value,
                            1 => (*cell).max(f.value),
                            _ => f.value,
                        };
                    }
                    let v = cells.iter().flat_map(|c| c.to_le_bytes()).collect();
                    state.rows.insert(w.key.clone(), (seq, v));
                }
                None => {}
            }
        }
        seq
    }
}

impl ScriptedShard {
    fn commit_one(&self, req: CommitRequest) -> CommitResponse {
        self.record(Call::Commit);
        let body = req.body.unwrap_or_default();
        let mut state = self.state.lock();
        let outcome = match Self::conflict_of(&state, &body) {
            Some(c) => commit_response::Outcome::Conflict(c),
            None => commit_response::Outcome::CommittedSeq(Self::apply(&mut state, &body)),
        };
        CommitResponse {
            outcome: Some(outcome),
        }
    }
}

#[tonic::async_trait]
impl Metastore for ScriptedShard {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let req = req.into_inner();
        self.record(Call::Get(req.keys.len()));
        let state = self.state.lock();
        let rows = req
            .keys
            .into_iter()
            .map(|key| {
                let (version, value) = state.rows.get(&key).cloned().unwrap_or_default();
                Row {
                    key,
                    value,
                    version,
                }
            })
            .collect();
        let pages = req
            .scans
            .into_iter()
            .map(|scan| {
                self.record(Call::Scan);
                page(&state, scan)
            })
            .collect();
        Ok(Response::new(GetResponse { rows, pages }))
    }

    async fn scan(&self, req: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        let req = req.into_inner();
        self.record(Call::Scan);
        let state = self.state.lock();
        Ok(Response::new(page(&state, req)))
    }

    async fn commit(
        &self,
        req: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        Ok(Response::new(self.commit_one(req.into_inner())))
    }

    async fn commit_many(
        &self,
        req: Request<CommitManyRequest>,
    ) -> Result<Response<CommitManyResponse>, Status> {
        let answers = req
            .into_inner()
            .commits
            .into_iter()
            .map(|c| CommitAnswer {
                answer: Some(commit_answer::Answer::Done(self.commit_one(c))),
            })
            .collect();
        Ok(Response::new(CommitManyResponse { answers }))
    }

    async fn prepare(
        &self,
        req: Request<PrepareRequest>,
    ) -> Result<Response<PrepareResponse>, Status> {
        let req = req.into_inner();
        self.record(Call::Prepare {
            primary: req.primary_shard,
            primary_addr: req.primary_addr.clone(),
            participants: req.participants.clone(),
            this_shard: req.this_shard,
            txn_id: req.txn_id.clone(),
        });
        let body = req.body.unwrap_or_default();
        let mut state = self.state.lock();
        let outcome = match state.prepare {
            PrepareMode::Refuse => return Err(Status::unavailable("scripted refusal")),
            PrepareMode::Conflict => prepare_response::Outcome::Conflict(Conflict {
                reason: conflict::Reason::Locked as i32,
                key: b"scripted".to_vec(),
            }),
            PrepareMode::Prepare => match Self::conflict_of(&state, &body) {
                Some(c) => prepare_response::Outcome::Conflict(c),
                None => {
                    state.intents.insert(req.txn_id, body);
                    prepare_response::Outcome::Prepared(Empty {})
                }
            },
        };
        Ok(Response::new(PrepareResponse {
            outcome: Some(outcome),
        }))
    }

    async fn decide(
        &self,
        req: Request<DecideRequest>,
    ) -> Result<Response<DecideResponse>, Status> {
        let req = req.into_inner();
        self.record(Call::Decide {
            commit: req.commit,
            txn_id: req.txn_id.clone(),
        });
        let mode = self.state.lock().decide_commit;
        if !req.commit {
            let dropped = self.state.lock().intents.remove(&req.txn_id).is_some();
            let outcome = if dropped {
                decide_response::Outcome::Aborted
            } else {
                decide_response::Outcome::Unknown
            };
            return Ok(Response::new(DecideResponse {
                outcome: outcome as i32,
                committed_seq: 0,
            }));
        }
        match mode {
            DecideMode::Silent => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            DecideMode::AlreadyAborted => {
                self.state.lock().intents.remove(&req.txn_id);
                Ok(Response::new(DecideResponse {
                    outcome: decide_response::Outcome::AlreadyAborted as i32,
                    committed_seq: 0,
                }))
            }
            DecideMode::Apply => {
                let mut state = self.state.lock();
                let Some(body) = state.intents.remove(&req.txn_id) else {
                    return Ok(Response::new(DecideResponse {
                        outcome: decide_response::Outcome::Unknown as i32,
                        committed_seq: 0,
                    }));
                };
                let seq = Self::apply(&mut state, &body);
                Ok(Response::new(DecideResponse {
                    outcome: decide_response::Outcome::Committed as i32,
                    committed_seq: seq,
                }))
            }
        }
    }

    async fn resolve(
        &self,
        _req: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    type SubscribeStream = futures::stream::Empty<Result<pb::ChangeBatch, Status>>;

    async fn subscribe(
        &self,
        _req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn set_cursor(
        &self,
        _req: Request<pb::SetCursorRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_cursors(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListCursorsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn delete_cursor(
        &self,
        _req: Request<pb::DeleteCursorRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.record(Call::Status);
        let state = self.state.lock();
        Ok(Response::new(StatusResponse {
            shard: self.shard,
            applied_seq: state.seq,
            intents: state
                .intents
                .keys()
                .map(|id| Intent {
                    txn_id: id.clone(),
                    primary_shard: 0,
                    age_ms: 1,
                    is_primary: false,
                })
                .collect(),
            rows: state.rows.len() as u64,
            intent_timeout_ms: 1000,
            ..Default::default()
        }))
    }
}

/// Three scripted shards on loopback and a store connected to them.
struct Rig {
    shards: Vec<ScriptedShard>,
    addrs: Vec<String>,
    log: CallLog,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Rig {
    async fn start(base_port: u16) -> Rig {
        let log: CallLog = Arc::default();
        let mut shards = Vec::new();
        let mut addrs = Vec::new();
        let mut servers = Vec::new();
        for i in 0..3u32 {
            let shard = ScriptedShard {
                shard: i,
                state: Arc::new(Mutex::new(ShardState {
                    rows: BTreeMap::new(),
                    seq: 0,
                    intents: HashMap::new(),
                    prepare: PrepareMode::Prepare,
                    decide_commit: DecideMode::Apply,
                })),
                log: Arc::clone(&log),
            };
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", base_port + i as u16))
                .await
                .unwrap();
            addrs.push(listener.local_addr().unwrap().to_string());
            let svc = MetastoreServer::new(shard.clone());
            servers.push(tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await;
            }));
            shards.push(shard);
        }
        Rig {
            shards,
            addrs,
            log,
            servers,
        }
    }

    async fn store(&self) -> Arc<ShardedStore> {
        ShardedStore::connect(StoreConfig {
            metastores: self.addrs.clone(),
            vparts: 6,
            rpc_timeout: Duration::from_millis(400),
            id_batch: 4,
            intent_timeout_ms: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
    }

    fn script(&self, shard: usize, prepare: PrepareMode, decide: DecideMode) {
        let mut state = self.shards[shard].state.lock();
        state.prepare = prepare;
        state.decide_commit = decide;
    }

    /// Waits until no shard holds an intent: after a two-phase commit returns, the other
    /// participants' decisions are still on their way.
    async fn settle(&self) {
        for _ in 0..500 {
            if self
                .shards
                .iter()
                .all(|s| s.state.lock().intents.is_empty())
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("intents still open after 5 s");
    }

    fn take_log(&self) -> Vec<(u32, Call)> {
        std::mem::take(&mut *self.log.lock())
    }

    fn row(&self, shard: usize, key: &Key) -> Option<(u64, Vec<u8>)> {
        self.shards[shard]
            .state
            .lock()
            .rows
            .get(&key.bytes)
            .cloned()
    }

    fn intents(&self, shard: usize) -> usize {
        self.shards[shard].state.lock().intents.len()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

/// A key on the shard of virtual partition `v` (vpart v lives on shard v % 3).
fn key(v: u16, name: &str) -> Key {
    Key::new(Route::Vpart(v), format!("T{name}").into_bytes())
}

fn prepares(log: &[(u32, Call)]) -> Vec<(u32, Call)> {
    log.iter()
        .filter(|(_, c)| matches!(c, Call::Prepare { .. }))
        .cloned()
        .collect()
}

fn decides(log: &[(u32, Call)]) -> Vec<(u32, bool)> {
    log.iter()
        .filter_map(|(s, c)| match c {
            Call::Decide { commit, .. } => Some((*s, *commit)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn formats_once_and_routes_by_the_loaded_map() {
    let rig = Rig::start(19350).await;
    let (a, b) = tokio::join!(rig.store(), rig.store());
    assert_eq!(a.partition_map(), b.partition_map());
    assert_eq!(a.partition_map().shard_of, vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(a.vparts(), 6);
    assert_eq!(a.shards(), 3);
    assert_eq!(a.shard_of(Route::Vpart(5)), 2);
    assert_eq!(a.metastores(), rig.addrs.as_slice());
    // The format rows all went to shard 0, in one commit that only one store won.
    let root = rig
        .row(0, &keys::inode(keys::ROOT_INO))
        .expect("root inode");
    let map = rig.row(0, &keys::meta(keys::META_PARTMAP)).expect("map");
    assert_eq!(root.0, map.0);
    assert_eq!(rig.shards[0].state.lock().seq, 1);
    assert!(rig.shards[1].state.lock().rows.is_empty());
    // A third store loads the same map without writing.
    rig.take_log();
    let c = rig.store().await;
    assert_eq!(c.partition_map(), a.partition_map());
    assert!(!rig.take_log().iter().any(|(_, c)| *c == Call::Commit));
}

#[tokio::test]
async fn reads_go_once_to_each_shard_in_parallel_and_come_back_in_order() {
    let rig = Rig::start(19353).await;
    let store = rig.store().await;
    let mut t = store.begin();
    for v in 0..6u16 {
        t.put(key(v, &v.to_string()), vec![v as u8]);
    }
    t.commit().await.unwrap();
    rig.settle().await;
    rig.take_log();

    let ks: Vec<Key> = [5u16, 0, 4, 3, 1]
        .iter()
        .map(|v| key(*v, &v.to_string()))
        .chain([key(2, "absent")])
        .collect();
    let mut t = store.begin();
    let rows = t.get(&ks, true).await.unwrap();
    let values: Vec<Vec<u8>> = rows.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        vec![vec![5], vec![0], vec![4], vec![3], vec![1], vec![]]
    );
    assert!(rows[..5].iter().all(|r| r.exists()));
    assert!(!rows[5].exists());
    let mut gets: Vec<(u32, Call)> = rig.take_log();
    gets.sort_by_key(|(s, _)| *s);
    assert_eq!(
        gets,
        vec![(0, Call::Get(2)), (1, Call::Get(2)), (2, Call::Get(2))]
    );
    // Validated reads alone make no commit.
    assert!(t.is_read_only());
    t.commit().await.unwrap();
    assert!(rig.take_log().is_empty());
}

#[tokio::test]
async fn one_shard_means_one_commit_and_no_prepare() {
    let rig = Rig::start(19356).await;
    let store = rig.store().await;
    rig.take_log();
    let mut t = store.begin();
    let _ = t.get(&[key(1, "a")], true).await.unwrap();
    t.put(key(1, "a"), b"x".to_vec());
    t.counter(key(4, "c"), 2, vec![(0, CounterOp::Add, 5)]);
    t.require_empty(Route::Vpart(1), b"Tp".to_vec());
    assert_eq!(t.participants(), vec![1]);
    t.commit().await.unwrap();
    assert_eq!(rig.take_log(), vec![(1, Call::Get(1)), (1, Call::Commit)]);
    assert_eq!(rig.row(1, &key(1, "a")).unwrap().1, b"x".to_vec());

    // The read changed under a second transaction: its commit conflicts.
    let mut stale = store.begin();
    let seen = stale.get(&[key(1, "a")], true).await.unwrap();
    let mut t = store.begin();
    t.put(key(1, "a"), b"y".to_vec());
    t.commit().await.unwrap();
    stale.put(key(4, "b"), seen[0].value.clone());
    match stale.commit().await {
        Err(TxnError::Conflict(why)) => assert!(why.contains("VERSION"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(rig.row(1, &key(4, "b")).is_none());
}

#[tokio::test]
async fn two_phase_commit_prepares_all_then_commits_the_primary_first() {
    let rig = Rig::start(19359).await;
    let store = rig.store().await;
    rig.take_log();
    let mut t = store.begin();
    // Shard 1 only validates a read, yet it is the lowest participant: the primary.
    let _ = t.get(&[key(1, "r")], true).await.unwrap();
    t.put(key(2, "w"), b"2".to_vec());
    t.counter(key(5, "c"), 1, vec![(0, CounterOp::Add, 3)]);
    t.set_label("unit");
    assert_eq!(t.participants(), vec![1, 2]);
    t.commit().await.unwrap();
    rig.settle().await;

    let log = rig.take_log();
    let p = prepares(&log);
    assert_eq!(p.len(), 2);
    let mut txn_ids = Vec::new();
    for (shard, call) in &p {
        let Call::Prepare {
            primary,
            primary_addr,
            participants,
            this_shard,
            txn_id,
        } = call
        else {
            unreachable!()
        };
        assert_eq!(*primary, 1);
        assert_eq!(primary_addr, &rig.addrs[1]);
        assert_eq!(participants, &vec![1, 2]);
        assert_eq!(this_shard, shard);
        assert_eq!(txn_id.len(), 16);
        txn_ids.push(txn_id.clone());
    }
    assert_eq!(txn_ids[0], txn_ids[1]);
    // Every prepare before any decide; the primary's decide before the other's.
    let first_decide = log
        .iter()
        .position(|(_, c)| matches!(c, Call::Decide { .. }))
        .unwrap();
    assert!(
        log[..first_decide]
            .iter()
            .filter(|(_, c)| matches!(c, Call::Prepare { .. }))
            .count()
            == 2
    );
    assert_eq!(decides(&log), vec![(1, true), (2, true)]);
    assert_eq!(rig.row(2, &key(2, "w")).unwrap().1, b"2".to_vec());
    assert_eq!(
        rig.row(2, &key(5, "c")).unwrap().1,
        3i64.to_le_bytes().to_vec()
    );
    assert_eq!(rig.intents(1) + rig.intents(2), 0);
    assert!(store.open_intents().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_conflicting_prepare_aborts_the_prepared_shards_only() {
    let rig = Rig::start(19362).await;
    let store = rig.store().await;
    rig.script(2, PrepareMode::Conflict, DecideMode::Apply);
    rig.take_log();
    let mut t = store.begin();
    t.put(key(0, "a"), b"0".to_vec());
    t.put(key(1, "b"), b"1".to_vec());
    t.put(key(2, "c"), b"2".to_vec());
    match t.commit().await {
        Err(TxnError::Conflict(why)) => assert!(why.contains("LOCKED"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let log = rig.take_log();
    assert_eq!(prepares(&log).len(), 3);
    let mut d = decides(&log);
    d.sort();
    assert_eq!(d, vec![(0, false), (1, false)]);
    assert!(rig.row(0, &key(0, "a")).is_none());
    assert!(rig.row(1, &key(1, "b")).is_none());
    assert_eq!(rig.intents(0) + rig.intents(1), 0);
}

#[tokio::test]
async fn a_refused_prepare_aborts_and_reports_unavailable() {
    let rig = Rig::start(19365).await;
    let store = rig.store().await;
    rig.script(1, PrepareMode::Refuse, DecideMode::Apply);
    rig.take_log();
    let mut t = store.begin();
    t.put(key(0, "a"), b"0".to_vec());
    t.put(key(1, "b"), b"1".to_vec());
    assert!(matches!(t.commit().await, Err(TxnError::Unavailable(_))));
    let log = rig.take_log();
    // The refusal might have followed a prepare, so shard 1 is told to abort too.
    let mut d = decides(&log);
    d.sort();
    d.dedup();
    assert_eq!(d, vec![(0, false), (1, false)]);
    assert!(!d.iter().any(|(_, commit)| *commit));
    assert_eq!(rig.intents(0), 0);
}

#[tokio::test]
async fn a_primary_that_already_aborted_turns_the_commit_into_a_conflict() {
    let rig = Rig::start(19368).await;
    let store = rig.store().await;
    rig.script(0, PrepareMode::Prepare, DecideMode::AlreadyAborted);
    rig.take_log();
    let mut t = store.begin();
    t.put(key(3, "a"), b"0".to_vec());
    t.put(key(5, "b"), b"2".to_vec());
    assert!(matches!(t.commit().await, Err(TxnError::Conflict(_))));
    let d = decides(&rig.take_log());
    assert_eq!(d, vec![(0, true), (2, false)]);
    assert!(rig.row(2, &key(5, "b")).is_none());
    assert_eq!(rig.intents(2), 0);
}

#[tokio::test]
async fn a_silent_primary_leaves_the_outcome_unknown() {
    let rig = Rig::start(19371).await;
    let store = rig.store().await;
    rig.script(0, PrepareMode::Prepare, DecideMode::Silent);
    rig.take_log();
    let mut t = store.begin();
    t.put(key(0, "a"), b"0".to_vec());
    t.put(key(1, "b"), b"1".to_vec());
    assert!(matches!(t.commit().await, Err(TxnError::Unknown(_))));
    let d = decides(&rig.take_log());
    // Nothing is aborted or committed elsewhere: that is for the primary to decide.
    assert!(d.iter().all(|(s, commit)| *s == 0 && *commit), "{d:?}");
    assert_eq!(rig.intents(1), 1);
}

#[tokio::test]
async fn a_silent_participant_after_the_commit_point_still_commits() {
    let rig = Rig::start(19374).await;
    let store = rig.store().await;
    rig.script(2, PrepareMode::Prepare, DecideMode::Silent);
    rig.take_log();
    let mut t = store.begin();
    t.put(key(0, "a"), b"0".to_vec());
    t.put(key(2, "c"), b"2".to_vec());
    let started = std::time::Instant::now();
    t.commit().await.unwrap();
    // Bounded by the call deadline, not stuck on the silent shard.
    assert!(started.elapsed() < Duration::from_secs(3));
    let d = decides(&rig.take_log());
    assert_eq!(d[0], (0, true));
    assert!(d[1..].iter().all(|x| *x == (2, true)));
    assert!(rig.row(0, &key(0, "a")).is_some());
    // Shard 2 still holds the intent its resolver would finish.
    assert_eq!(rig.intents(2), 1);
    assert_eq!(store.open_intents().await.unwrap().len(), 1);
}

#[tokio::test]
async fn sequence_numbers_never_repeat_across_stores_and_tasks() {
    let rig = Rig::start(19377).await;
    let stores = [rig.store().await, rig.store().await];
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..4 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..25 {
                    got.push(store.alloc_seq().await.unwrap());
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
    assert!(all[0] >= keys::FIRST_SEQ);
}

#[tokio::test]
async fn writes_to_routes_outside_the_cluster_fail_the_commit() {
    let rig = Rig::start(19380).await;
    let store = rig.store().await;
    let mut t = store.begin();
    assert!(t.get(&[key(6, "x")], false).await.is_err());
    t.put(key(0, "ok"), b"1".to_vec());
    t.put(Key::new(Route::Shard(7), b"x".to_vec()), b"1".to_vec());
    assert!(matches!(t.commit().await, Err(TxnError::Internal(_))));
    assert!(rig.row(0, &key(0, "ok")).is_none());
}

#[tokio::test]
async fn scan_reads_a_range_of_one_shard() {
    let rig = Rig::start(19383).await;
    let store = rig.store().await;
    let mut t = store.begin();
    for name in ["a", "b", "c", "d"] {
        t.put(key(4, name), name.as_bytes().to_vec());
    }
    t.commit().await.unwrap();
    let mut t = store.begin();
    let (rows, more) = t
        .scan(Route::Vpart(1), b"Tb".to_vec(), b"Tz".to_vec(), 2)
        .await
        .unwrap();
    assert!(more);
    let names: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(names, vec![b"Tb".as_slice(), b"Tc".as_slice()]);
    assert!(rows.iter().all(|(_, v)| v.exists()));
}
