//! Tests of a whole shard in process: durability and replay, validation through the committer,
//! counters under concurrency, the 2PC participant, resolution, trimming and sweeping.

use super::*;
use crate::engine::SledEngine;
use crate::txn::Conflict;
use crate::txn::tests::{counter, del, put, read};
use arbor_proto::metastore::{CounterOp, conflict::Reason};
use std::collections::BTreeMap;
use std::path::Path;

fn config(dir: &Path, shard: u32) -> ShardConfig {
    let mut c = ShardConfig::new(dir, shard);
    c.segment_bytes = 256 << 10;
    c.flush_interval = Duration::from_millis(100);
    c.cache_bytes = 16 << 20;
    c
}

fn body(writes: Vec<pb::Write>) -> TxnBody {
    TxnBody {
        writes,
        ..Default::default()
    }
}

async fn committed(shard: &Shard, body: TxnBody) -> u64 {
    match shard.commit(b"t".to_vec(), body).await.unwrap() {
        CommitOutcome::Committed(seq) => seq,
        CommitOutcome::Conflict(c) => panic!("unexpected conflict {c:?}"),
    }
}

async fn conflict(shard: &Shard, body: TxnBody) -> (Reason, Vec<u8>) {
    match shard.commit(b"t".to_vec(), body).await.unwrap() {
        CommitOutcome::Conflict(c) => (c.reason, c.key),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn row(shard: &Shard, key: &[u8]) -> (u64, Vec<u8>) {
    let rows = shard.get(vec![key.to_vec()]).await.unwrap();
    (rows[0].version, rows[0].value.clone())
}

fn prepare_req(
    txn: &[u8],
    this: u32,
    primary: u32,
    primary_addr: &str,
    body: TxnBody,
) -> PrepareRequest {
    PrepareRequest {
        txn_id: txn.to_vec(),
        body: Some(body),
        primary_shard: primary,
        primary_addr: primary_addr.to_string(),
        participants: vec![primary, this],
        this_shard: this,
        ..Default::default()
    }
}

async fn reopen(shard: Shard, cfg: ShardConfig) -> Shard {
    shard.close().await.unwrap();
    drop(shard);
    Shard::open(cfg).await.unwrap()
}

/// Rewrites the applied marker of a closed shard's tables, optionally dropping its user rows,
/// as if the tables had lost everything after `marker`.
fn rewind_tables(cfg: &ShardConfig, marker: u64, wipe_rows: bool) {
    let engine = SledEngine::open(&cfg.tables_dir(), 1 << 20).unwrap();
    let mut b = WriteBatch::default();
    if wipe_rows {
        for (k, _) in engine.scan(&[DATA], Some(&[DATA + 1]), usize::MAX).unwrap() {
            b.delete(k);
        }
    }
    keyspace::mark_applied(&mut b, marker);
    engine.apply(&b).unwrap();
    engine.flush_durable().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_scan_read_committed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let shard = Shard::open(config(dir.path(), 0)).await.unwrap();
    let s1 = committed(
        &shard,
        body(vec![put(b"a", b"1"), put(b"b", b"2"), put(b"c", b"3")]),
    )
    .await;
    let s2 = committed(&shard, body(vec![del(b"b"), put(b"d", b"4")])).await;
    assert!(s2 > s1);
    assert_eq!(row(&shard, b"a").await, (s1, b"1".to_vec()));
    assert_eq!(row(&shard, b"b").await, (0, Vec::new()));
    assert_eq!(row(&shard, b"d").await, (s2, b"4".to_vec()));

    let keys = |rows: &[Row]| rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    let (rows, more) = shard
        .scan(b"a".to_vec(), b"d".to_vec(), 0, false)
        .await
        .unwrap();
    assert_eq!(keys(&rows), vec![b"a".to_vec(), b"c".to_vec()]);
    assert!(!more);
    assert_eq!(rows[1].value, b"3".to_vec());
    assert_eq!(rows[1].version, s1);
    let (rows, more) = shard.scan(Vec::new(), Vec::new(), 2, true).await.unwrap();
    assert_eq!(keys(&rows), vec![b"a".to_vec(), b"c".to_vec()]);
    assert!(more);
    assert!(rows.iter().all(|r| r.value.is_empty() && r.version > 0));
    let (rows, more) = shard
        .scan(b"b".to_vec(), Vec::new(), 10, false)
        .await
        .unwrap();
    assert_eq!(keys(&rows), vec![b"c".to_vec(), b"d".to_vec()]);
    assert!(!more);
    let (rows, _) = shard
        .scan(b"d".to_vec(), b"a".to_vec(), 10, false)
        .await
        .unwrap();
    assert!(rows.is_empty());

    let status = shard.status().await.unwrap();
    assert_eq!(status.rows, 3);
    assert_eq!(status.applied_seq, s2);
    assert_eq!(status.shard, 0);
    // Malformed requests are errors, not conflicts.
    let bad = body(vec![pb::Write {
        key: b"x".to_vec(),
        op: None,
    }]);
    assert!(matches!(
        shard.commit(Vec::new(), bad).await,
        Err(Error::InvalidArgument(_))
    ));
    shard.close().await.unwrap();
    // A closed shard refuses changes.
    assert!(matches!(
        shard.commit(Vec::new(), body(vec![put(b"z", b"")])).await,
        Err(Error::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_restores_every_acknowledged_commit_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    // What every acknowledged commit says the shard must hold: key -> (version, value).
    let mut expect: BTreeMap<Vec<u8>, (u64, Vec<u8>)> = BTreeMap::new();
    let mut total = 0i64;
    for i in 0..400u32 {
        let key = format!("k{i:04}").into_bytes();
        let value = vec![(i % 251) as u8; 700];
        let mut writes = vec![
            put(&key, &value),
            counter(b"count", 1, &[(0, CounterOp::CounterAdd, 1)]),
        ];
        let gone = (i % 7 == 0 && i >= 5).then(|| format!("k{:04}", i - 5).into_bytes());
        if let Some(g) = &gone {
            writes.push(del(g));
        }
        let seq = committed(&shard, body(writes)).await;
        total += 1;
        expect.insert(key, (seq, value));
        expect.insert(b"count".to_vec(), (seq, total.to_le_bytes().to_vec()));
        if let Some(g) = gone {
            expect.remove(&g);
        }
    }
    assert!(shard.log_segments() > 1, "the log spans segments");
    let last = shard.applied_seq();

    async fn check(shard: &Shard, expect: &BTreeMap<Vec<u8>, (u64, Vec<u8>)>, last: u64) {
        let (rows, more) = shard
            .scan(Vec::new(), Vec::new(), 10_000, false)
            .await
            .unwrap();
        assert!(!more);
        let got: BTreeMap<Vec<u8>, (u64, Vec<u8>)> = rows
            .into_iter()
            .map(|r| (r.key, (r.version, r.value)))
            .collect();
        assert_eq!(&got, expect);
        assert_eq!(shard.applied_seq(), last);
    }
    check(&shard, &expect, last).await;
    shard.close().await.unwrap();
    drop(shard);

    // The tables lost everything: the whole log is replayed.
    rewind_tables(&cfg, 0, true);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    check(&shard, &expect, last).await;
    shard.close().await.unwrap();
    drop(shard);

    // The tables lost the second half.
    rewind_tables(&cfg, last / 2, false);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    check(&shard, &expect, last).await;
    shard.close().await.unwrap();
    drop(shard);

    // The tables are complete but their marker says nothing was applied: replaying the whole
    // log over them again changes nothing.
    rewind_tables(&cfg, 0, false);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    check(&shard, &expect, last).await;
    // And the shard goes on from the right seq.
    let next = committed(&shard, body(vec![put(b"after", b"x")])).await;
    assert_eq!(next, last + 1);
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_conflicts_through_the_committer() {
    let dir = tempfile::tempdir().unwrap();
    let shard = Shard::open(config(dir.path(), 0)).await.unwrap();
    let s = committed(&shard, body(vec![put(b"a", b"1"), put(b"dir/x", b"")])).await;

    let reads = |r: Vec<pb::ReadCheck>| TxnBody {
        reads: r,
        ..Default::default()
    };
    assert_eq!(
        conflict(&shard, reads(vec![read(b"a", s - 1)])).await,
        (Reason::Version, b"a".to_vec())
    );
    assert_eq!(
        conflict(&shard, reads(vec![read(b"a", 0)])).await,
        (Reason::Version, b"a".to_vec())
    );
    assert_eq!(
        conflict(&shard, reads(vec![read(b"new", 7)])).await,
        (Reason::Version, b"new".to_vec())
    );
    // A read-only commit that validates is answered with the current seq.
    assert_eq!(
        committed(&shard, reads(vec![read(b"a", s), read(b"new", 0)])).await,
        s
    );
    let empty = |p: &[u8]| TxnBody {
        empty_prefixes: vec![p.to_vec()],
        writes: vec![put(b"other", b"")],
        ..Default::default()
    };
    assert_eq!(
        conflict(&shard, empty(b"dir/")).await,
        (Reason::NotEmpty, b"dir/".to_vec())
    );
    committed(&shard, empty(b"dis/")).await;
    // Deleting the last row empties the prefix.
    committed(&shard, body(vec![del(b"dir/x")])).await;
    committed(&shard, empty(b"dir/")).await;

    // Read-modify-write: the second of two commits read at the same version fails.
    let (v, _) = row(&shard, b"a").await;
    let rmw = |val: &[u8]| TxnBody {
        reads: vec![read(b"a", v)],
        writes: vec![put(b"a", val)],
        ..Default::default()
    };
    let (first, second) = tokio::join!(
        shard.commit(b"x".to_vec(), rmw(b"x")),
        shard.commit(b"y".to_vec(), rmw(b"y"))
    );
    let outcomes = [first.unwrap(), second.unwrap()];
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o, CommitOutcome::Committed(_)))
        .count();
    assert_eq!(wins, 1, "{outcomes:?}");
    assert!(outcomes.iter().any(|o| matches!(
        o,
        CommitOutcome::Conflict(Conflict {
            reason: Reason::Version,
            ..
        })
    )));
    shard.close().await.unwrap();
}

/// Optimistic read-modify-write from many tasks: every increment that commits must see every
/// earlier one, even while earlier groups are still being synced or applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_sees_every_earlier_commit_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let shard = Shard::open(config(dir.path(), 0)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let shard = shard.clone();
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                let mut done = 0;
                while done < 50 {
                    let (version, value) = row(&shard, b"x").await;
                    let n = if version == 0 {
                        0
                    } else {
                        u64::from_le_bytes(value.as_slice().try_into().unwrap())
                    };
                    let b = TxnBody {
                        reads: vec![read(b"x", version)],
                        writes: vec![put(b"x", &(n + 1).to_le_bytes())],
                        ..Default::default()
                    };
                    match shard.commit(Vec::new(), b).await.unwrap() {
                        CommitOutcome::Committed(_) => done += 1,
                        CommitOutcome::Conflict(c) => {
                            assert_eq!(c.reason, Reason::Version);
                            conflicts += 1;
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let (_, value) = row(&shard, b"x").await;
    assert_eq!(
        u64::from_le_bytes(value.as_slice().try_into().unwrap()),
        400
    );
    assert!(conflicts > 0, "concurrent increments must have collided");
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_commute_under_concurrent_commits() {
    let dir = tempfile::tempdir().unwrap();
    let shard = Shard::open(config(dir.path(), 0)).await.unwrap();
    let tasks: Vec<_> = (0..8i64)
        .map(|t| {
            let shard = shard.clone();
            tokio::spawn(async move {
                for i in 0..500i64 {
                    let b = body(vec![
                        counter(
                            b"dir",
                            3,
                            &[
                                (0, CounterOp::CounterAdd, 1),
                                (1, CounterOp::CounterMax, t * 1000 + i),
                                (2, CounterOp::CounterAdd, -2),
                            ],
                        ),
                        put(format!("child/{t}/{i}").as_bytes(), b""),
                    ]);
                    match shard.commit(Vec::new(), b).await.unwrap() {
                        CommitOutcome::Committed(_) => {}
                        other => panic!("counter commit conflicted: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (version, value) = row(&shard, b"dir").await;
    let fields: Vec<i64> = value
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(fields, vec![4000, 7499, -8000]);
    assert_eq!(version, shard.applied_seq());
    let stats = shard.commit_stats();
    assert_eq!(stats.records, 4000);
    assert!(
        stats.syncs < 4000,
        "concurrent commits share syncs: {stats:?}"
    );
    assert_eq!(shard.status().await.unwrap().rows, 4001);
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_locks_block_commits_survive_reopen_and_go_with_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    let base = committed(&shard, body(vec![put(b"a", b"0")])).await;
    let t1 = TxnBody {
        reads: vec![read(b"a", base)],
        empty_prefixes: vec![b"dir/".to_vec()],
        writes: vec![
            put(b"b", b"from-t1"),
            counter(b"n", 1, &[(0, CounterOp::CounterAdd, 10)]),
        ],
    };
    let prepared = shard
        .prepare(prepare_req(b"t1", 0, 0, "127.0.0.1:1", t1))
        .await
        .unwrap();
    assert_eq!(prepared, PrepareOutcome::Prepared);
    // Prepared again: same answer, nothing new.
    let again = shard
        .prepare(prepare_req(b"t1", 0, 0, "127.0.0.1:1", TxnBody::default()))
        .await
        .unwrap();
    assert_eq!(again, PrepareOutcome::Prepared);

    async fn blocked(shard: &Shard) {
        let locked = |r: Reason, k: &[u8]| (r, k.to_vec());
        assert_eq!(
            conflict(shard, body(vec![put(b"b", b"")])).await,
            locked(Reason::Locked, b"b")
        );
        assert_eq!(
            conflict(shard, body(vec![put(b"a", b"")])).await,
            locked(Reason::Locked, b"a")
        );
        assert_eq!(
            conflict(shard, body(vec![put(b"dir/f", b"")])).await,
            locked(Reason::Locked, b"dir/f")
        );
        let read_b = TxnBody {
            reads: vec![read(b"b", 0)],
            ..Default::default()
        };
        assert_eq!(conflict(shard, read_b).await, locked(Reason::Locked, b"b"));
        let over_b = TxnBody {
            empty_prefixes: vec![b"b".to_vec()],
            ..Default::default()
        };
        assert_eq!(conflict(shard, over_b).await, locked(Reason::Locked, b"b"));
        // A shared lock lets others read; a counter is never blocked.
        let read_a = TxnBody {
            reads: vec![read(b"a", 1)],
            writes: vec![counter(b"n", 1, &[(0, CounterOp::CounterAdd, 1)])],
            ..Default::default()
        };
        committed(shard, read_a).await;
        // Another prepare that meets the locks aborts at once.
        let t2 = shard
            .prepare(prepare_req(
                b"t2",
                0,
                0,
                "127.0.0.1:1",
                body(vec![put(b"b", b"t2")]),
            ))
            .await
            .unwrap();
        assert!(matches!(
            t2,
            PrepareOutcome::Conflict(Conflict {
                reason: Reason::Locked,
                ..
            })
        ));
    }
    blocked(&shard).await;
    let status = shard.status().await.unwrap();
    assert_eq!(status.intents.len(), 1);
    assert_eq!(status.intents[0].txn_id, b"t1".to_vec());
    assert!(status.intents[0].is_primary);

    // The intent and its locks survive a restart.
    let shard = reopen(shard, cfg.clone()).await;
    blocked(&shard).await;
    assert_eq!(shard.status().await.unwrap().intents.len(), 1);

    // Commit point: writes applied at a new seq, counter resolved now (after two +1s).
    let seq = match shard.decide(b"t1".to_vec(), true).await.unwrap() {
        DecideOutcome::Committed(seq) => seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(row(&shard, b"b").await, (seq, b"from-t1".to_vec()));
    assert_eq!(row(&shard, b"n").await, (seq, 12i64.to_le_bytes().to_vec()));
    assert_eq!(
        shard.decide(b"t1".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(seq)
    );
    assert!(shard.status().await.unwrap().intents.is_empty());
    // Locks released.
    committed(&shard, body(vec![put(b"b", b"free"), put(b"dir/f", b"")])).await;

    // Abort: locks released, the decision sticks.
    let t3 = prepare_req(b"t3", 0, 0, "127.0.0.1:1", body(vec![put(b"c", b"t3")]));
    assert_eq!(
        shard.prepare(t3.clone()).await.unwrap(),
        PrepareOutcome::Prepared
    );
    assert_eq!(
        conflict(&shard, body(vec![put(b"c", b"")])).await.0,
        Reason::Locked
    );
    assert_eq!(
        shard.decide(b"t3".to_vec(), false).await.unwrap(),
        DecideOutcome::Aborted
    );
    assert_eq!(
        shard.decide(b"t3".to_vec(), false).await.unwrap(),
        DecideOutcome::Aborted
    );
    assert_eq!(
        shard.decide(b"t3".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );
    assert_eq!(row(&shard, b"c").await.0, 0);
    committed(&shard, body(vec![put(b"c", b"free")])).await;
    assert!(matches!(
        shard.prepare(t3).await.unwrap(),
        PrepareOutcome::Conflict(Conflict {
            reason: Reason::DecidedAbort,
            ..
        })
    ));
    // A prepare for another shard, or without a txn id, is a caller's bug.
    assert!(matches!(
        shard
            .prepare(prepare_req(b"", 0, 0, "127.0.0.1:1", TxnBody::default()))
            .await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        shard
            .prepare(prepare_req(b"t4", 5, 0, "127.0.0.1:1", TxnBody::default()))
            .await,
        Err(Error::InvalidArgument(_))
    ));
    // Decided state survives a restart too.
    let shard = reopen(shard, cfg).await;
    assert_eq!(
        shard.decide(b"t1".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(seq)
    );
    assert_eq!(
        shard.decide(b"t3".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_outcomes_on_the_primary() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.intent_timeout = Duration::from_millis(1000);
    let shard = Shard::open(cfg).await.unwrap();
    let addr = "127.0.0.1:1";

    // Committed.
    let t = prepare_req(b"done", 0, 0, addr, body(vec![put(b"x", b"1")]));
    assert_eq!(shard.prepare(t).await.unwrap(), PrepareOutcome::Prepared);
    assert!(matches!(
        shard.decide(b"done".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(_)
    ));
    assert_eq!(
        shard.resolve(b"done".to_vec()).await.unwrap(),
        ResolveOutcome::Committed
    );

    // Undecided: pending while young, aborted by the primary once expired.
    let t = prepare_req(b"slow", 0, 0, addr, body(vec![put(b"y", b"1")]));
    assert_eq!(
        shard.prepare(t.clone()).await.unwrap(),
        PrepareOutcome::Prepared
    );
    assert_eq!(
        shard.resolve(b"slow".to_vec()).await.unwrap(),
        ResolveOutcome::Pending
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        shard.resolve(b"slow".to_vec()).await.unwrap(),
        ResolveOutcome::Aborted
    );
    assert_eq!(
        shard.resolve(b"slow".to_vec()).await.unwrap(),
        ResolveOutcome::Aborted
    );
    // The coordinator's late commit fails, its late prepare too, and the lock is gone.
    assert_eq!(
        shard.decide(b"slow".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );
    assert!(matches!(
        shard.prepare(t).await.unwrap(),
        PrepareOutcome::Conflict(Conflict {
            reason: Reason::DecidedAbort,
            ..
        })
    ));
    committed(&shard, body(vec![put(b"y", b"free")])).await;

    // Never prepared here: aborted on the spot, so a prepare that lands later fails.
    assert_eq!(
        shard.resolve(b"ghost".to_vec()).await.unwrap(),
        ResolveOutcome::Aborted
    );
    let late = prepare_req(b"ghost", 0, 0, addr, body(vec![put(b"z", b"1")]));
    assert!(matches!(
        shard.prepare(late).await.unwrap(),
        PrepareOutcome::Conflict(Conflict {
            reason: Reason::DecidedAbort,
            ..
        })
    ));

    // Left alone, an expired undecided intent is aborted by the shard's own resolver.
    let t = prepare_req(b"left", 0, 0, addr, body(vec![put(b"w", b"1")]));
    assert_eq!(shard.prepare(t).await.unwrap(), PrepareOutcome::Prepared);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shard.status().await.unwrap().intents.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "intent never resolved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        shard.decide(b"left".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolver_finishes_what_a_vanished_coordinator_left() {
    let primary_addr = "127.0.0.1:19401";
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut cfg_a = config(dir_a.path(), 0);
    cfg_a.intent_timeout = Duration::from_millis(1000);
    let mut cfg_b = config(dir_b.path(), 1);
    cfg_b.intent_timeout = Duration::from_millis(1000);
    let a = Shard::open(cfg_a).await.unwrap();
    let b = Shard::open(cfg_b).await.unwrap();
    let listener = tokio::net::TcpListener::bind(primary_addr).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(a.clone(), listener, async {
        let _ = stopped.await;
    }));

    // T1 reached its commit point on the primary, then the coordinator vanished before
    // telling shard 1.
    let w_a = body(vec![put(b"on-a", b"1")]);
    let w_b = body(vec![
        put(b"on-b", b"1"),
        counter(b"count-b", 1, &[(0, CounterOp::CounterAdd, 5)]),
    ]);
    assert_eq!(
        a.prepare(prepare_req(b"T1", 0, 0, primary_addr, w_a))
            .await
            .unwrap(),
        PrepareOutcome::Prepared
    );
    assert_eq!(
        b.prepare(prepare_req(b"T1", 1, 0, primary_addr, w_b))
            .await
            .unwrap(),
        PrepareOutcome::Prepared
    );
    assert!(matches!(
        a.decide(b"T1".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(_)
    ));
    // T2 was prepared on both and never decided anywhere.
    assert_eq!(
        a.prepare(prepare_req(
            b"T2",
            0,
            0,
            primary_addr,
            body(vec![put(b"t2-a", b"")])
        ))
        .await
        .unwrap(),
        PrepareOutcome::Prepared
    );
    assert_eq!(
        b.prepare(prepare_req(
            b"T2",
            1,
            0,
            primary_addr,
            body(vec![put(b"t2-b", b"")])
        ))
        .await
        .unwrap(),
        PrepareOutcome::Prepared
    );
    // T3's primary cannot be reached: shard 1 must keep waiting, never decide alone.
    assert_eq!(
        b.prepare(prepare_req(
            b"T3",
            1,
            0,
            "127.0.0.1:19402",
            body(vec![put(b"t3-b", b"")])
        ))
        .await
        .unwrap(),
        PrepareOutcome::Prepared
    );
    // Shard 1 still blocks T1's key until the resolver runs.
    assert_eq!(
        conflict(&b, body(vec![put(b"on-b", b"")])).await.0,
        Reason::Locked
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ids: Vec<Vec<u8>> = b
            .status()
            .await
            .unwrap()
            .intents
            .into_iter()
            .map(|i| i.txn_id)
            .collect();
        if ids == vec![b"T3".to_vec()] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still open on shard 1: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (v, value) = row(&b, b"on-b").await;
    assert!(v > 0);
    assert_eq!(value, b"1".to_vec());
    assert_eq!(row(&b, b"count-b").await.1, 5i64.to_le_bytes().to_vec());
    assert_eq!(row(&b, b"t2-b").await.0, 0);
    assert_eq!(row(&a, b"t2-a").await.0, 0);
    assert!(a.status().await.unwrap().intents.is_empty());
    assert_eq!(
        a.decide(b"T2".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );
    // Locks of T1 and T2 are released on shard 1; T3's are still held.
    committed(&b, body(vec![put(b"on-b", b"2"), put(b"t2-b", b"")])).await;
    assert_eq!(
        conflict(&b, body(vec![put(b"t3-b", b"")])).await.0,
        Reason::Locked
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_flushes_let_old_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.segment_bytes = 64 << 10;
    cfg.log_retain_bytes = 256 << 10;
    cfg.flush_interval = Duration::from_millis(50);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    let value = vec![3u8; 2000];
    for i in 0..600u32 {
        committed(
            &shard,
            body(vec![put(format!("r{i:04}").as_bytes(), &value)]),
        )
        .await;
    }
    let last = shard.applied_seq();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shard.durable_seq() < last {
        assert!(std::time::Instant::now() < deadline, "no durable flush");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the trimmer a round after the flush that covered everything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let segments = shard.log_segments();
    assert!(
        (segments as u64) * cfg.segment_bytes <= cfg.log_retain_bytes + cfg.segment_bytes,
        "{segments} segments kept"
    );
    let shard = reopen(shard, cfg).await;
    assert_eq!(shard.applied_seq(), last);
    let (rows, _) = shard
        .scan(Vec::new(), Vec::new(), 10_000, true)
        .await
        .unwrap();
    assert_eq!(rows.len(), 600);
    let next = committed(&shard, body(vec![put(b"next", b"")])).await;
    assert_eq!(next, last + 1);
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_transaction_records_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.txn_record_ttl = Duration::from_millis(200);
    cfg.flush_interval = Duration::from_millis(50);
    let shard = Shard::open(cfg).await.unwrap();
    // An abort decided before any prepare leaves a record that refuses a later prepare...
    assert_eq!(
        shard.decide(b"old".to_vec(), false).await.unwrap(),
        DecideOutcome::Aborted
    );
    let req = prepare_req(b"old", 0, 0, "127.0.0.1:1", body(vec![put(b"k", b"")]));
    assert!(matches!(
        shard.prepare(req.clone()).await.unwrap(),
        PrepareOutcome::Conflict(_)
    ));
    // ... until it is swept.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if shard.prepare(req.clone()).await.unwrap() == PrepareOutcome::Prepared {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "record never swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shard.close().await.unwrap();
}

/// A shard served over gRPC on `addr` until [`Served::stop`].
struct Served {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Served {
    async fn start(shard: &Shard, addr: &str) -> Served {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::server::serve(shard.clone(), listener, async {
            let _ = stopped.await;
        }));
        Served { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Two shards in temp dirs, shard 0 the primary of every transaction, both with `timeout`.
async fn two_shards(timeout: Duration) -> (Shard, Shard, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut cfg_a = config(dirs[0].path(), 0);
    cfg_a.intent_timeout = timeout;
    let mut cfg_b = config(dirs[1].path(), 1);
    cfg_b.intent_timeout = timeout;
    let a = Shard::open(cfg_a).await.unwrap();
    let b = Shard::open(cfg_b).await.unwrap();
    (a, b, dirs)
}

/// Prepares `txn` on both shards (shard 0 primary at `primary_addr`).
async fn prepare_both(
    a: &Shard,
    b: &Shard,
    txn: &[u8],
    primary_addr: &str,
    on_a: TxnBody,
    on_b: TxnBody,
) {
    let mut req_a = prepare_req(txn, 0, 0, primary_addr, on_a);
    req_a.participants = vec![0, 1];
    let mut req_b = prepare_req(txn, 1, 0, primary_addr, on_b);
    req_b.participants = vec![0, 1];
    assert_eq!(a.prepare(req_a).await.unwrap(), PrepareOutcome::Prepared);
    assert_eq!(b.prepare(req_b).await.unwrap(), PrepareOutcome::Prepared);
}

async fn scan_keys(shard: &Shard, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (rows, more) = shard
        .scan(start.to_vec(), end.to_vec(), 0, false)
        .await
        .unwrap();
    assert!(!more);
    rows.into_iter().map(|r| (r.key, r.value)).collect()
}

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

/// The coordinator died right after the commit point: the primary holds COMMITTED, the other
/// participant still holds the intent. A read there finishes the transaction at once (the
/// intent timeout is 30 s, so the background resolver cannot be what does it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_participant_finishes_what_its_primary_committed() {
    let primary_addr = "127.0.0.1:19421";
    let (a, b, _dirs) = two_shards(Duration::from_secs(30)).await;
    let served = Served::start(&a, primary_addr).await;
    let base = committed(&b, body(vec![put(b"x", b"old"), put(b"dir/a", b"old")])).await;

    prepare_both(
        &a,
        &b,
        b"T1",
        primary_addr,
        body(vec![put(b"on-a", b"1")]),
        body(vec![
            put(b"x", b"new"),
            del(b"dir/a"),
            put(b"dir/b", b"new"),
            counter(b"n", 1, &[(0, CounterOp::CounterAdd, 5)]),
        ]),
    )
    .await;
    assert!(matches!(
        a.decide(b"T1".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(_)
    ));
    let started = std::time::Instant::now();
    let rows = b
        .get(vec![b"x".to_vec(), b"dir/a".to_vec(), b"dir/b".to_vec()])
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let seq = rows[0].version;
    assert!(seq > base);
    assert_eq!(rows[0].value, b"new".to_vec());
    assert_eq!(rows[1].version, 0, "dir/a was deleted by T1");
    assert_eq!(
        (rows[2].version, rows[2].value.clone()),
        (seq, b"new".to_vec())
    );
    assert_eq!(row(&b, b"n").await, (seq, 5i64.to_le_bytes().to_vec()));
    assert!(b.status().await.unwrap().intents.is_empty());
    // The coordinator's decide, arriving late, changes nothing.
    assert_eq!(
        b.decide(b"T1".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(seq)
    );

    // A transaction that only updates a counter here: counters take no lock, yet a read of the
    // counter row must still see the committed update, not the row without it.
    prepare_both(
        &a,
        &b,
        b"T1c",
        primary_addr,
        body(vec![put(b"on-a", b"1c")]),
        body(vec![counter(b"n", 1, &[(0, CounterOp::CounterAdd, 2)])]),
    )
    .await;
    assert!(matches!(
        a.decide(b"T1c".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(_)
    ));
    let rows = b.get(vec![b"n".to_vec()]).await.unwrap();
    assert_eq!(rows[0].value, 7i64.to_le_bytes().to_vec());
    assert!(b.status().await.unwrap().intents.is_empty());

    // The same through a scan over a range the intent inserts into (and deletes from).
    prepare_both(
        &a,
        &b,
        b"T2",
        primary_addr,
        body(vec![put(b"on-a", b"2")]),
        body(vec![put(b"dir/c", b"new"), del(b"dir/b")]),
    )
    .await;
    assert!(matches!(
        a.decide(b"T2".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(_)
    ));
    let started = std::time::Instant::now();
    assert_eq!(
        scan_keys(&b, b"dir/", b"dir0").await,
        vec![kv(b"dir/c", b"new")]
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Aborted at the primary only: a read drops the intent and sees the rows as they were.
    prepare_both(
        &a,
        &b,
        b"T3",
        primary_addr,
        body(vec![put(b"on-a", b"3")]),
        body(vec![put(b"x", b"t3"), put(b"dir/d", b"t3")]),
    )
    .await;
    assert_eq!(
        a.decide(b"T3".to_vec(), false).await.unwrap(),
        DecideOutcome::Aborted
    );
    let started = std::time::Instant::now();
    assert_eq!(
        scan_keys(&b, b"dir/", b"dir0").await,
        vec![kv(b"dir/c", b"new")]
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(row(&b, b"x").await, (seq, b"new".to_vec()));
    assert!(b.status().await.unwrap().intents.is_empty());
    committed(&b, body(vec![put(b"x", b"after"), put(b"dir/d", b"")])).await;
    assert_eq!(
        b.decide(b"T3".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );

    served.stop().await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// While the primary is undecided, reads of what the transaction writes wait (on the primary
/// as on the other participant) and return the new rows right after a commit, the old ones
/// right after an abort. Reads of other keys do not wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_for_an_undecided_primary() {
    let primary_addr = "127.0.0.1:19422";
    let (a, b, _dirs) = two_shards(Duration::from_secs(30)).await;
    let served = Served::start(&a, primary_addr).await;
    committed(&a, body(vec![put(b"on-a", b"old")])).await;
    committed(&b, body(vec![put(b"x", b"old"), put(b"dir/a", b"old")])).await;

    for commit in [true, false] {
        let txn = if commit { b"C".to_vec() } else { b"A".to_vec() };
        let (new_x, new_entry) = if commit {
            (b"new".to_vec(), b"dir/b".to_vec())
        } else {
            (b"aborted".to_vec(), b"dir/z".to_vec())
        };
        prepare_both(
            &a,
            &b,
            &txn,
            primary_addr,
            body(vec![put(b"on-a", &new_x)]),
            body(vec![put(b"x", &new_x), put(&new_entry, b"e")]),
        )
        .await;
        let (b1, b2, a1) = (b.clone(), b.clone(), a.clone());
        let get = tokio::spawn(async move { b1.get(vec![b"x".to_vec()]).await });
        let scan =
            tokio::spawn(
                async move { b2.scan(b"dir/".to_vec(), b"dir0".to_vec(), 0, false).await },
            );
        let on_primary = tokio::spawn(async move { a1.get(vec![b"on-a".to_vec()]).await });
        // Keys the transaction does not write are read at once.
        let free = tokio::time::timeout(
            Duration::from_secs(2),
            b.get(vec![b"dir/a".to_vec(), b"y".to_vec()]),
        )
        .await
        .expect("a read of unlocked keys waited")
        .unwrap();
        assert_eq!(free[0].value, b"old".to_vec());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !get.is_finished(),
            "a get returned while the primary was undecided"
        );
        assert!(
            !scan.is_finished(),
            "a scan returned while the primary was undecided"
        );
        assert!(
            !on_primary.is_finished(),
            "a get on the primary returned while it was undecided"
        );

        let outcome = a.decide(txn.clone(), commit).await.unwrap();
        assert_eq!(matches!(outcome, DecideOutcome::Committed(_)), commit);
        let soon = Duration::from_secs(3);
        let got = tokio::time::timeout(soon, get)
            .await
            .expect("get still blocked")
            .unwrap()
            .unwrap();
        let (rows, _) = tokio::time::timeout(soon, scan)
            .await
            .expect("scan still blocked")
            .unwrap()
            .unwrap();
        let here = tokio::time::timeout(soon, on_primary)
            .await
            .expect("get on the primary still blocked")
            .unwrap()
            .unwrap();
        let listed: Vec<Vec<u8>> = rows.into_iter().map(|r| r.key).collect();
        // After the commit the new rows; after the abort still those of the commit.
        assert_eq!(got[0].value, b"new".to_vec());
        assert_eq!(here[0].value, b"new".to_vec());
        assert_eq!(listed, vec![b"dir/a".to_vec(), b"dir/b".to_vec()]);
        assert!(b.status().await.unwrap().intents.is_empty());
        assert!(a.status().await.unwrap().intents.is_empty());
    }

    served.stop().await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A read blocked by a transaction whose primary never answers gives up after the intent
/// timeout + 2 s with an error that gRPC reports as UNAVAILABLE, leaving the intent alone (a
/// participant never decides by itself). On the primary, a read blocked by an expired undecided
/// intent aborts it and reads the old rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_reads_give_up_or_resolve_an_expired_intent() {
    let gone_primary = "127.0.0.1:19424";
    let served_addr = "127.0.0.1:19425";
    let timeout = Duration::from_millis(300);
    let (a, b, _dirs) = two_shards(timeout).await;
    committed(&b, body(vec![put(b"k", b"old")])).await;
    let mut req = prepare_req(b"T", 1, 0, gone_primary, body(vec![put(b"k", b"new")]));
    req.participants = vec![0, 1];
    assert_eq!(b.prepare(req).await.unwrap(), PrepareOutcome::Prepared);
    let served = Served::start(&b, served_addr).await;

    let mut client =
        pb::metastore_client::MetastoreClient::connect(format!("http://{served_addr}"))
            .await
            .unwrap();
    let started = std::time::Instant::now();
    let status = client
        .get(pb::GetRequest {
            keys: vec![b"k".to_vec()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("blocked"), "{status:?}");
    let bound = timeout + crate::read_resolve::BLOCKED_SLACK;
    assert!(
        waited >= bound - Duration::from_millis(50) && waited < bound + Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    assert!(matches!(
        b.scan(b"a".to_vec(), b"z".to_vec(), 0, false).await,
        Err(Error::Blocked(_))
    ));
    // Other keys are still read at once, and the intent is still there.
    let started = std::time::Instant::now();
    assert_eq!(row(&b, b"other").await.0, 0);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(b.status().await.unwrap().intents.len(), 1);
    served.stop().await;

    // On its own primary an undecided intent is aborted once expired, by the read if the
    // background resolver has not done it first.
    let v = committed(&a, body(vec![put(b"p", b"old")])).await;
    let req = prepare_req(b"P", 0, 0, "127.0.0.1:1", body(vec![put(b"p", b"new")]));
    assert_eq!(a.prepare(req).await.unwrap(), PrepareOutcome::Prepared);
    let started = std::time::Instant::now();
    assert_eq!(row(&a, b"p").await, (v, b"old".to_vec()));
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "read the old row before the intent expired: {:?}",
        started.elapsed()
    );
    assert_eq!(
        a.decide(b"P".to_vec(), true).await.unwrap(),
        DecideOutcome::AlreadyAborted
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// The coordinator tells a participant to commit (the primary has committed: the commit point
/// is passed) while readers read what the transaction writes. Until the decision is applied to
/// the tables the intent keeps its locks, so no read started after the commit point returns
/// the old rows, not even in the moment between the committer taking the decision and the
/// applier writing it. The primary's address answers nothing: only the decide can finish the
/// transactions here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_racing_a_decide_never_see_the_old_rows() {
    const ROUNDS: u64 = 30;
    const READERS: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.intent_timeout = Duration::from_secs(30);
    let b = Shard::open(cfg).await.unwrap();
    committed(&b, body(vec![put(b"k", &0u64.to_le_bytes())])).await;
    let mut reads = 0;
    for round in 1..=ROUNDS {
        let txn = format!("T{round}").into_bytes();
        let entry = format!("r/{round:03}").into_bytes();
        let mut req = prepare_req(
            &txn,
            1,
            0,
            "127.0.0.1:19423",
            body(vec![put(b"k", &round.to_le_bytes()), put(&entry, b"")]),
        );
        req.participants = vec![0, 1];
        assert_eq!(b.prepare(req).await.unwrap(), PrepareOutcome::Prepared);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..READERS)
            .map(|i| {
                let (b, stop) = (b.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if i % 2 == 0 {
                            let (_, value) = row(&b, b"k").await;
                            assert_eq!(value, round.to_le_bytes().to_vec(), "round {round}");
                        } else {
                            let (rows, _) = b
                                .scan(b"r/".to_vec(), b"r0".to_vec(), 0, true)
                                .await
                                .unwrap();
                            assert_eq!(rows.len() as u64, round, "round {round}");
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // The decision lands at a different moment of the readers' backoff each round.
        tokio::time::sleep(Duration::from_millis(round % 7)).await;
        assert!(matches!(
            b.decide(txn, true).await.unwrap(),
            DecideOutcome::Committed(_)
        ));
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            reads += r.await.expect("a reader saw the old rows");
        }
    }
    assert!(reads >= ROUNDS * READERS, "{reads} reads");
    b.close().await.unwrap();
}

/// Waits (a bounded while) until the tables have caught up with everything visible.
async fn tables_catch_up(shard: &Shard) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while shard.tables_seq() < shard.applied_seq() || shard.overlay_rows() > 0 {
        assert!(Instant::now() < deadline, "the applier never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A commit is answered once its record is synced, before the tables have it: with the applier
/// held back, gets and scans right after the answer see its writes (deletes included) from the
/// read overlay, and see the same once the tables have them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_answered_commits_before_the_tables_do() {
    let dir = tempfile::tempdir().unwrap();
    let shard = Shard::open(config(dir.path(), 0)).await.unwrap();
    let s0 = committed(&shard, body(vec![put(b"a", b"0"), put(b"c", b"0")])).await;
    tables_catch_up(&shard).await;
    shard.applier_hold().pause();
    let s1 = committed(
        &shard,
        body(vec![put(b"a", b"1"), put(b"b", b"1"), del(b"c")]),
    )
    .await;
    let s2 = committed(&shard, body(vec![put(b"d", b"2")])).await;
    assert_eq!(shard.applied_seq(), s2);
    assert_eq!(shard.tables_seq(), s0, "the tables are held back");
    assert!(shard.overlay_rows() > 0);
    let check = async |shard: &Shard| {
        assert_eq!(row(shard, b"a").await, (s1, b"1".to_vec()));
        assert_eq!(row(shard, b"b").await, (s1, b"1".to_vec()));
        assert_eq!(row(shard, b"c").await, (0, Vec::new()));
        assert_eq!(row(shard, b"d").await, (s2, b"2".to_vec()));
        let (rows, more) = shard.scan(Vec::new(), Vec::new(), 0, false).await.unwrap();
        let got: Vec<_> = rows.iter().map(|r| (r.key.clone(), r.version)).collect();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), s1),
                (b"b".to_vec(), s1),
                (b"d".to_vec(), s2)
            ]
        );
        assert!(!more);
        // A page boundary inside the overlay's rows.
        let (rows, more) = shard.scan(Vec::new(), Vec::new(), 2, true).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(more);
    };
    check(&shard).await;
    // Validation sees them too: a stale read of `a` conflicts.
    let stale = TxnBody {
        reads: vec![read(b"a", s0)],
        ..Default::default()
    };
    assert_eq!(
        conflict(&shard, stale).await,
        (Reason::Version, b"a".to_vec())
    );
    shard.applier_hold().resume();
    tables_catch_up(&shard).await;
    check(&shard).await;
    shard.close().await.unwrap();
}

/// The process dies after commits were answered but before the tables got them: reopening
/// replays the log after the applied marker, so nothing answered is lost, the intent prepared
/// meanwhile is back with its locks, and the versions are those that were answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_answer_and_the_tables_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    let s0 = committed(&shard, body(vec![put(b"k0", b"v0")])).await;
    tables_catch_up(&shard).await;
    shard.applier_hold().pause();
    let mut answered = Vec::new();
    for i in 1..=20u32 {
        let key = format!("k{i}").into_bytes();
        let seq = committed(&shard, body(vec![put(&key, &i.to_le_bytes()), del(b"k0")])).await;
        answered.push((key, seq, i));
    }
    let req = prepare_req(b"T", 0, 0, "127.0.0.1:1", body(vec![put(b"locked", b"")]));
    assert_eq!(shard.prepare(req).await.unwrap(), PrepareOutcome::Prepared);
    assert_eq!(shard.tables_seq(), s0);
    // As if the process died now: the applier drops what it holds, the tables stay at s0.
    shard.applier_hold().crash();
    let last = shard.applied_seq();
    shard.close().await.unwrap();
    drop(shard);
    let shard = Shard::open(cfg).await.unwrap();
    assert_eq!(
        shard.tables_seq(),
        last,
        "replayed up to the last answered record"
    );
    for (key, seq, i) in &answered {
        assert_eq!(row(&shard, key).await, (*seq, i.to_le_bytes().to_vec()));
    }
    assert_eq!(row(&shard, b"k0").await, (0, Vec::new()));
    assert_eq!(
        conflict(&shard, body(vec![put(b"locked", b"x")])).await,
        (Reason::Locked, b"locked".to_vec())
    );
    shard.close().await.unwrap();
}

/// When the applier falls behind, the rows waiting for the tables stay under their bound: the
/// committer holds new commits back (reads go on meanwhile), and lets them go once the applier
/// has made room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_holds_commits_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.backlog_rows = 8;
    let shard = Shard::open(cfg).await.unwrap();
    shard.applier_hold().pause();
    let three = |i: u8| {
        body(vec![
            put(&[b'a', i], b""),
            put(&[b'b', i], b""),
            put(&[b'c', i], b""),
        ])
    };
    for i in 0..3 {
        committed(&shard, three(i)).await;
    }
    assert_eq!(shard.backlog_rows(), 9);
    let waiting = {
        let shard = shard.clone();
        tokio::spawn(async move { committed(&shard, three(3)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a commit went past the full backlog"
    );
    assert_eq!(shard.backlog_rows(), 9);
    // Reads do not wait for the applier.
    assert_eq!(row(&shard, &[b'c', 2]).await.1, Vec::<u8>::new());
    assert!(row(&shard, &[b'c', 2]).await.0 > 0);
    shard.applier_hold().resume();
    let seq = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the held commit went on")
        .unwrap();
    assert_eq!(row(&shard, &[b'a', 3]).await.0, seq);
    tables_catch_up(&shard).await;
    assert_eq!(shard.backlog_rows(), 0);
    shard.close().await.unwrap();
}

/// A decision is visible as soon as it is durable: with the applier held back, a read of what
/// a transaction decided here returns its writes at once instead of waiting for the tables (and
/// the primary, which would be asked, answers nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_read_before_the_tables_hold_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1);
    cfg.intent_timeout = Duration::from_secs(30);
    let shard = Shard::open(cfg).await.unwrap();
    let s0 = committed(&shard, body(vec![put(b"k", b"old")])).await;
    tables_catch_up(&shard).await;
    shard.applier_hold().pause();
    let req = prepare_req(b"T", 1, 0, "127.0.0.1:19424", body(vec![put(b"k", b"new")]));
    assert_eq!(shard.prepare(req).await.unwrap(), PrepareOutcome::Prepared);
    let seq = match shard.decide(b"T".to_vec(), true).await.unwrap() {
        DecideOutcome::Committed(seq) => seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(shard.tables_seq(), s0);
    let read = tokio::time::timeout(Duration::from_secs(2), row(&shard, b"k"))
        .await
        .expect("the read waited for the tables");
    assert_eq!(read, (seq, b"new".to_vec()));
    // The locks went with the decision: a commit on the key goes through.
    committed(&shard, body(vec![put(b"k", b"after")])).await;
    shard.applier_hold().resume();
    tables_catch_up(&shard).await;
    assert_eq!(row(&shard, b"k").await.1, b"after".to_vec());
    shard.close().await.unwrap();
}
