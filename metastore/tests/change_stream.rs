//! The change stream of a shard: `Subscribe` from the log and its live tail, exact resumption
//! from `through_seq`, two-phase transactions at their decision, consumers' cursors and the
//! trimming they hold back, `OUT_OF_RANGE` past a forced trim, a subscriber outliving a SIGKILL
//! of the real binary, and 100k records streamed with bounded memory.
//!
//! In-process shards serve gRPC on 127.0.0.1 port 0; the binary test uses 127.0.0.1:19410.

use arbor_metastore::{CommitOutcome, DecideOutcome, Error, PrepareOutcome, Shard, ShardConfig};
use arbor_proto::metastore::{
    ChangeBatch, ChangeRecord, ChangeRow, CommitRequest, CounterField, CounterOp, CounterUpdate,
    DeleteCursorRequest, Empty, PrepareRequest, ReadCheck, SetCursorRequest, StatusRequest,
    SubscribeRequest, TxnBody, Write, commit_response, metastore_client::MetastoreClient, write,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tonic::transport::Channel;

fn config(dir: &Path, shard: u32) -> ShardConfig {
    let mut c = ShardConfig::new(dir, shard);
    c.segment_bytes = 64 << 10;
    c.flush_interval = Duration::from_millis(50);
    c.cache_bytes = 16 << 20;
    c
}

fn put(key: &str, value: &[u8]) -> Write {
    Write {
        key: key.as_bytes().to_vec(),
        op: Some(write::Op::Put(value.to_vec())),
    }
}

fn del(key: &str) -> Write {
    Write {
        key: key.as_bytes().to_vec(),
        op: Some(write::Op::Delete(Empty {})),
    }
}

fn counter(key: &str, width: u32, fields: &[(u32, CounterOp, i64)]) -> Write {
    Write {
        key: key.as_bytes().to_vec(),
        op: Some(write::Op::Counter(CounterUpdate {
            width,
            fields: fields
                .iter()
                .map(|&(index, op, value)| CounterField {
                    index,
                    op: op as i32,
                    value,
                })
                .collect(),
        })),
    }
}

fn body(writes: Vec<Write>) -> TxnBody {
    TxnBody {
        writes,
        ..Default::default()
    }
}

fn row(key: &str, value: &[u8]) -> ChangeRow {
    ChangeRow {
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        deleted: false,
    }
}

fn gone(key: &str) -> ChangeRow {
    ChangeRow {
        key: key.as_bytes().to_vec(),
        value: Vec::new(),
        deleted: true,
    }
}

fn i64s(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

async fn commit(shard: &Shard, txn: &str, writes: Vec<Write>) -> u64 {
    match shard
        .commit(txn.as_bytes().to_vec(), body(writes))
        .await
        .unwrap()
    {
        CommitOutcome::Committed(seq) => seq,
        other => panic!("commit {txn}: {other:?}"),
    }
}

/// A shard served over gRPC on an ephemeral loopback port.
struct Served {
    addr: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Served {
    async fn start(shard: &Shard) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(arbor_metastore::server::serve(
            shard.clone(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        Served { addr, stop, task }
    }

    async fn client(&self) -> MetastoreClient<Channel> {
        client(&self.addr).await
    }

    /// Stops the server; open subscriptions must not hold it up.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops although subscriptions are open")
            .unwrap()
            .unwrap();
    }
}

async fn client(addr: &str) -> MetastoreClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    MetastoreClient::new(channel).max_decoding_message_size(64 << 20)
}

/// What a consumer has seen: records in order and the position to resume from.
#[derive(Default)]
struct Seen {
    records: Vec<ChangeRecord>,
    through: u64,
    batches: usize,
}

impl Seen {
    /// Takes a batch, checking that it continues exactly where the previous one ended.
    fn take(&mut self, batch: ChangeBatch) {
        assert!(
            batch.through_seq >= self.through,
            "through_seq went back from {} to {}",
            self.through,
            batch.through_seq
        );
        let mut last = self.records.last().map_or(0, |r| r.seq);
        for r in &batch.records {
            assert!(r.seq > self.through, "record {} repeats", r.seq);
            assert!(
                r.seq <= batch.through_seq,
                "record {} beyond through",
                r.seq
            );
            assert!(r.seq > last, "records out of order");
            assert!(!r.rows.is_empty(), "a record without rows");
            last = r.seq;
        }
        self.through = batch.through_seq;
        self.records.extend(batch.records);
        self.batches += 1;
    }

    fn seqs(&self) -> Vec<u64> {
        self.records.iter().map(|r| r.seq).collect()
    }
}

/// Reads a library subscription until it has covered `upto`.
async fn read_until(batches: &mut arbor_metastore::changelog::Batches, seen: &mut Seen, upto: u64) {
    while seen.through < upto {
        let batch = tokio::time::timeout(Duration::from_secs(20), batches.recv())
            .await
            .unwrap_or_else(|_| panic!("no batch after through {}", seen.through))
            .expect("stream open")
            .unwrap();
        seen.take(batch);
    }
}

/// Reads a gRPC subscription until it has covered `upto`.
async fn read_grpc_until(stream: &mut tonic::Streaming<ChangeBatch>, seen: &mut Seen, upto: u64) {
    while seen.through < upto {
        let batch = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("no batch after through {}", seen.through))
            .unwrap()
            .expect("stream open");
        seen.take(batch);
    }
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_from_zero_sees_every_commit_and_follows_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let shard = Shard::open(config(dir.path(), 0)).await.unwrap();
    let s1 = commit(&shard, "t1", vec![put("a", b"1"), put("b", b"2")]).await;
    let s2 = commit(&shard, "t2", vec![del("a"), put("b", b"3")]).await;
    // Counter rows arrive as their resulting value.
    let s3 = commit(
        &shard,
        "t3",
        vec![counter(
            "n",
            2,
            &[(0, CounterOp::CounterAdd, 5), (1, CounterOp::CounterMax, 9)],
        )],
    )
    .await;
    let s4 = commit(
        &shard,
        "t4",
        vec![counter(
            "n",
            2,
            &[(0, CounterOp::CounterAdd, 3), (1, CounterOp::CounterMax, 4)],
        )],
    )
    .await;
    // A commit that only validates reads writes no record; a conflicting one neither.
    let read_only = shard
        .commit(
            b"r".to_vec(),
            TxnBody {
                reads: vec![ReadCheck {
                    key: b"b".to_vec(),
                    version: s2,
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read_only, CommitOutcome::Committed(s4));
    let conflicting = shard
        .commit(
            b"c".to_vec(),
            TxnBody {
                reads: vec![ReadCheck {
                    key: b"b".to_vec(),
                    version: s1,
                }],
                writes: vec![put("z", b"never")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(conflicting, CommitOutcome::Conflict(_)));

    let served = Served::start(&shard).await;
    let mut c = served.client().await;
    let status = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.first_retained_seq, 1);
    let mut stream = c
        .subscribe(SubscribeRequest {
            from_seq: 0,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Seen::default();
    read_grpc_until(&mut stream, &mut seen, s4).await;
    let expect = vec![
        (s1, "t1", vec![row("a", b"1"), row("b", b"2")]),
        (s2, "t2", vec![gone("a"), row("b", b"3")]),
        (s3, "t3", vec![row("n", &i64s(&[5, 9]))]),
        (s4, "t4", vec![row("n", &i64s(&[8, 9]))]),
    ];
    let got: Vec<_> = seen
        .records
        .iter()
        .map(|r| {
            (
                r.seq,
                String::from_utf8(r.txn_id.clone()).unwrap(),
                r.rows.clone(),
            )
        })
        .collect();
    let expect: Vec<_> = expect
        .into_iter()
        .map(|(s, t, rows)| (s, t.to_string(), rows))
        .collect();
    assert_eq!(got, expect);
    assert!(seen.records.windows(2).all(|w| w[0].hlc < w[1].hlc));
    assert_eq!(seen.through, s4);

    // Then new commits, as they become durable.
    let s5 = commit(&shard, "t5", vec![put("live", b"x")]).await;
    let s6 = commit(&shard, "t6", vec![del("live")]).await;
    read_grpc_until(&mut stream, &mut seen, s6).await;
    assert_eq!(seen.seqs(), vec![s1, s2, s3, s4, s5, s6]);
    assert_eq!(seen.records[4].rows, vec![row("live", b"x")]);
    assert_eq!(seen.records[5].rows, vec![gone("live")]);

    // Beyond the next sequence: INVALID_ARGUMENT.
    let err = c
        .subscribe(SubscribeRequest {
            from_seq: s6 + 2,
            max_batch: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    // The next sequence itself is fine: the stream waits for it.
    let mut next = c
        .subscribe(SubscribeRequest {
            from_seq: s6 + 1,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let s7 = commit(&shard, "t7", vec![put("after", b"y")]).await;
    let mut tail = Seen {
        through: s6,
        ..Default::default()
    };
    read_grpc_until(&mut next, &mut tail, s7).await;
    assert_eq!(tail.seqs(), vec![s7]);

    // Stopping the server ends the open streams instead of waiting for them.
    served.stop().await;
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_through_seq_gives_no_duplicates_and_no_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.segment_bytes = 16 << 10;
    let shard = Shard::open(cfg).await.unwrap();
    let mut commits = Vec::new();
    for i in 0..300u32 {
        commits.push(
            commit(
                &shard,
                &format!("t{i}"),
                vec![put(&format!("k{i:04}"), &[7u8; 150])],
            )
            .await,
        );
        if i % 10 == 0 {
            // Records that change no user row: a prepare and its abort.
            let txn = format!("aborted{i}").into_bytes();
            let prepared = shard
                .prepare(PrepareRequest {
                    txn_id: txn.clone(),
                    body: Some(body(vec![put("never", b"x")])),
                    primary_shard: 0,
                    primary_addr: String::new(),
                    participants: vec![0],
                    this_shard: 0,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(prepared, PrepareOutcome::Prepared);
            assert_eq!(
                shard.decide(txn, false).await.unwrap(),
                DecideOutcome::Aborted
            );
        }
    }
    let last = shard.applied_seq();
    assert_eq!(last, 300 + 2 * 30, "the prepares and aborts are logged too");
    assert!(shard.log_segments() > 3, "the stream crosses segments");

    // A whole read, in small batches.
    let mut whole = Seen::default();
    let mut all = shard.subscribe(0, 7).unwrap();
    read_until(&mut all, &mut whole, last).await;
    assert_eq!(whole.seqs(), commits);
    assert!(
        whole
            .records
            .iter()
            .all(|r| r.rows.iter().all(|x| x.key != b"never"))
    );

    // Stop part way, resume from through_seq + 1 with another batch size: the same records.
    let mut first_part = Seen::default();
    let mut sub = shard.subscribe(0, 7).unwrap();
    for _ in 0..13 {
        let batch = sub.recv().await.unwrap().unwrap();
        first_part.take(batch);
    }
    drop(sub);
    let cut = first_part.through;
    assert!(cut > 0 && cut < last);
    let mut resumed = Seen {
        through: cut,
        ..Default::default()
    };
    let mut sub = shard.subscribe(cut + 1, 50).unwrap();
    read_until(&mut sub, &mut resumed, last).await;
    let mut joined = first_part.seqs();
    joined.extend(resumed.seqs());
    assert_eq!(joined, commits);
    // Resuming from every position gives exactly the records after it.
    for from in [1, 2, cut, cut + 1, last - 1, last] {
        let mut s = Seen {
            through: from - 1,
            ..Default::default()
        };
        let mut sub = shard.subscribe(from, 0).unwrap();
        read_until(&mut sub, &mut s, last).await;
        let want: Vec<u64> = commits.iter().copied().filter(|&c| c >= from).collect();
        assert_eq!(s.seqs(), want, "from {from}");
    }
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_phase_commit_appears_once_at_its_decision_and_aborts_never() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Shard::open(config(dirs[0].path(), 0)).await.unwrap();
    let b = Shard::open(config(dirs[1].path(), 1)).await.unwrap();
    // Subscribed from the start: the prepares must not show up live either.
    let mut sub_a = a.subscribe(0, 0).unwrap();
    let mut sub_b = b.subscribe(0, 0).unwrap();
    let prepare = |shard: u32, txn: &str, writes: Vec<Write>| PrepareRequest {
        txn_id: txn.as_bytes().to_vec(),
        body: Some(body(writes)),
        primary_shard: 0,
        primary_addr: "127.0.0.1:1".into(),
        participants: vec![0, 1],
        this_shard: shard,
        ..Default::default()
    };
    for (shard, writes) in [
        (&a, vec![put("src/x", b"old")]),
        (&b, vec![put("dst/y", b"old")]),
    ] {
        commit(shard, "setup", writes).await;
    }
    // A committed cross-shard rename: a delete on one shard, a put on the other.
    assert_eq!(
        a.prepare(prepare(
            0,
            "mv",
            vec![
                del("src/x"),
                counter("src", 1, &[(0, CounterOp::CounterAdd, -1)])
            ]
        ))
        .await
        .unwrap(),
        PrepareOutcome::Prepared
    );
    assert_eq!(
        b.prepare(prepare(1, "mv", vec![put("dst/x", b"moved")]))
            .await
            .unwrap(),
        PrepareOutcome::Prepared
    );
    let prepared_a = a.applied_seq();
    let prepared_b = b.applied_seq();
    // An aborted one.
    assert_eq!(
        a.prepare(prepare(0, "no", vec![put("src/never", b"x")]))
            .await
            .unwrap(),
        PrepareOutcome::Prepared
    );
    assert_eq!(
        b.prepare(prepare(1, "no", vec![put("dst/never", b"x")]))
            .await
            .unwrap(),
        PrepareOutcome::Prepared
    );
    // Live subscribers have seen the prepares pass (counted in through_seq) without a record.
    let mut seen_a = Seen::default();
    let mut seen_b = Seen::default();
    read_until(&mut sub_a, &mut seen_a, prepared_a).await;
    read_until(&mut sub_b, &mut seen_b, prepared_b).await;
    assert_eq!(seen_a.records.len(), 1, "only the setup commit");
    assert_eq!(seen_b.records.len(), 1, "only the setup commit");

    let DecideOutcome::Committed(at_a) = a.decide(b"mv".to_vec(), true).await.unwrap() else {
        panic!("primary did not commit")
    };
    let DecideOutcome::Committed(at_b) = b.decide(b"mv".to_vec(), true).await.unwrap() else {
        panic!("participant did not commit")
    };
    // A repeated decide changes nothing and adds no record.
    assert_eq!(
        b.decide(b"mv".to_vec(), true).await.unwrap(),
        DecideOutcome::Committed(at_b)
    );
    assert_eq!(
        a.decide(b"no".to_vec(), false).await.unwrap(),
        DecideOutcome::Aborted
    );
    assert_eq!(
        b.decide(b"no".to_vec(), false).await.unwrap(),
        DecideOutcome::Aborted
    );
    let end_a = commit(&a, "after", vec![put("src/z", b"z")]).await;
    let end_b = commit(&b, "after", vec![put("dst/z", b"z")]).await;
    read_until(&mut sub_a, &mut seen_a, end_a).await;
    read_until(&mut sub_b, &mut seen_b, end_b).await;

    let summary = |s: &Seen| -> Vec<(u64, String, Vec<ChangeRow>)> {
        s.records
            .iter()
            .map(|r| {
                (
                    r.seq,
                    String::from_utf8(r.txn_id.clone()).unwrap(),
                    r.rows.clone(),
                )
            })
            .collect()
    };
    let sa = summary(&seen_a);
    let sb = summary(&seen_b);
    assert_eq!(sa.len(), 3, "{sa:?}");
    assert_eq!(sb.len(), 3, "{sb:?}");
    assert_eq!(
        sa[1],
        (
            at_a,
            "mv".to_string(),
            vec![gone("src/x"), row("src", &i64s(&[-1]))]
        )
    );
    assert_eq!(
        sb[1],
        (at_b, "mv".to_string(), vec![row("dst/x", b"moved")])
    );
    assert_eq!((sa[2].0, sb[2].0), (end_a, end_b));
    // The same, read back from the log.
    for (shard, live) in [(&a, &sa), (&b, &sb)] {
        let mut again = Seen::default();
        let mut sub = shard.subscribe(1, 0).unwrap();
        read_until(&mut sub, &mut again, shard.applied_seq()).await;
        assert_eq!(&summary(&again), live);
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_are_durable_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let shard = Shard::open(cfg.clone()).await.unwrap();
    for i in 0..5 {
        commit(&shard, "t", vec![put(&format!("k{i}"), b"v")]).await;
    }
    let served = Served::start(&shard).await;
    let mut c = served.client().await;
    let set = |consumer: &str, seq| SetCursorRequest {
        consumer: consumer.into(),
        seq,
    };
    c.set_cursor(set("search", 4)).await.unwrap();
    // 0 registers at the oldest retained record.
    c.set_cursor(set("audit", 0)).await.unwrap();
    c.set_cursor(set("gone", 2)).await.unwrap();
    c.set_cursor(set("search", 6)).await.unwrap();
    let err = c.set_cursor(set("search", 8)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    let err = c.set_cursor(set("", 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    c.delete_cursor(DeleteCursorRequest {
        consumer: "gone".into(),
    })
    .await
    .unwrap();
    // Deleting what is not there is not an error.
    c.delete_cursor(DeleteCursorRequest {
        consumer: "never".into(),
    })
    .await
    .unwrap();
    let listed = |r: arbor_proto::metastore::ListCursorsResponse| -> Vec<(String, u64)> {
        r.cursors.into_iter().map(|c| (c.consumer, c.seq)).collect()
    };
    let before = c.list_cursors(Empty {}).await.unwrap().into_inner();
    assert!(before.cursors.iter().all(|c| c.updated_ns > 0));
    assert_eq!(
        listed(before),
        vec![("audit".to_string(), 1), ("search".to_string(), 6)]
    );
    served.stop().await;
    shard.close().await.unwrap();
    drop(shard);

    let shard = Shard::open(cfg).await.unwrap();
    let served = Served::start(&shard).await;
    let mut c = served.client().await;
    assert_eq!(
        listed(c.list_cursors(Empty {}).await.unwrap().into_inner()),
        vec![("audit".to_string(), 1), ("search".to_string(), 6)]
    );
    served.stop().await;
    shard.close().await.unwrap();
}

/// Commits `n` records of about `size` bytes each; returns their seqs.
async fn fill(shard: &Shard, n: usize, size: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(
            commit(
                shard,
                "fill",
                vec![put(&format!("f{i:06}"), &vec![1u8; size])],
            )
            .await,
        );
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_trimmed_below_the_lowest_cursor_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.segment_bytes = 16 << 10;
    // Nothing kept for its own sake: only cursors hold the log back.
    cfg.log_retain_bytes = 0;
    let shard = Shard::open(cfg).await.unwrap();
    shard.set_cursor("slow".into(), 0).await.unwrap();
    shard.set_cursor("fast".into(), 0).await.unwrap();
    let seqs = fill(&shard, 400, 200).await;
    assert!(shard.log_segments() >= 5);
    // Flushes go on, yet the cursors at seq 1 keep everything.
    let flushed = shard.durable_seq();
    wait_for("a durable flush", async || shard.durable_seq() > flushed).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shard.first_retained_seq(), 1);

    let slow = seqs[200];
    shard.set_cursor("slow".into(), slow).await.unwrap();
    shard.set_cursor("fast".into(), seqs[390]).await.unwrap();
    wait_for("trimming up to the slow cursor", async || {
        shard.first_retained_seq() > 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = shard.first_retained_seq();
    assert!(
        first <= slow,
        "trimmed past the lowest cursor: {first} > {slow}"
    );
    // Everything from the slow cursor on is still there, in order.
    let mut s = Seen {
        through: slow - 1,
        ..Default::default()
    };
    let mut sub = shard.subscribe(slow, 0).unwrap();
    read_until(&mut sub, &mut s, *seqs.last().unwrap()).await;
    assert_eq!(s.seqs(), seqs[200..].to_vec());
    // What lies below the first retained record is gone, and says so.
    match shard.subscribe(first - 1, 0) {
        Err(Error::Trimmed { wanted, first: f }) => assert_eq!((wanted, f), (first - 1, first)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("subscribed below the first retained record"),
    }
    // A cursor cannot be set below it either.
    assert!(matches!(
        shard.set_cursor("late".into(), first - 1).await,
        Err(Error::Trimmed { .. })
    ));

    // Without the slow consumer, the log goes up to the fast one.
    shard.delete_cursor("slow".into()).await.unwrap();
    wait_for("trimming up to the fast cursor", async || {
        shard.first_retained_seq() > slow
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(shard.first_retained_seq() <= seqs[390]);
    shard.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_behind_a_forced_trim_gets_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.segment_bytes = 16 << 10;
    cfg.log_retain_bytes = 0;
    // The change-log bound: a few segments, whatever the cursors need.
    cfg.changes_retain_bytes = 48 << 10;
    let shard = Shard::open(cfg).await.unwrap();
    shard.set_cursor("stuck".into(), 0).await.unwrap();
    let seqs = fill(&shard, 600, 200).await;
    wait_for("the forced trim", async || shard.first_retained_seq() > 1).await;
    let served = Served::start(&shard).await;
    let mut c = served.client().await;
    // Stable once the log fits its bound again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = c
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .first_retained_seq;
    assert!(first > 1 && first <= *seqs.last().unwrap());
    let cursors = c.list_cursors(Empty {}).await.unwrap().into_inner().cursors;
    assert_eq!(cursors.len(), 1);
    let stuck = cursors[0].seq;
    assert_eq!(stuck, 1);
    let err = c
        .subscribe(SubscribeRequest {
            from_seq: stuck,
            max_batch: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    let msg = err.message();
    assert!(msg.contains("trimmed"), "{msg}");
    assert!(
        msg.contains(&format!("oldest sequence kept is {first}")),
        "{msg}"
    );
    assert!(msg.contains("rebuild from a scan"), "{msg}");
    // The consumer recovers by starting over from what is kept.
    c.set_cursor(SetCursorRequest {
        consumer: "stuck".into(),
        seq: first,
    })
    .await
    .unwrap();
    let mut stream = c
        .subscribe(SubscribeRequest {
            from_seq: first,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut s = Seen {
        through: first - 1,
        ..Default::default()
    };
    read_grpc_until(&mut stream, &mut s, *seqs.last().unwrap()).await;
    let want: Vec<u64> = seqs.iter().copied().filter(|&q| q >= first).collect();
    assert_eq!(s.seqs(), want);

    // A subscriber that stalls while the log is trimmed past its position: it gets every
    // record up to the trimmed ones, then the error, never a skip.
    let mut stalled = shard.subscribe(first, 5).unwrap();
    let mut part = Seen {
        through: first - 1,
        ..Default::default()
    };
    let batch = stalled.recv().await.unwrap().unwrap();
    part.take(batch);
    let more = fill(&shard, 600, 200).await;
    wait_for("the trim past the stalled subscriber", async || {
        shard.first_retained_seq() > more[0]
    })
    .await;
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(20), stalled.recv())
            .await
            .expect("the stalled subscription goes on")
        {
            Some(Ok(batch)) => part.take(batch),
            Some(Err(e)) => break e,
            None => panic!("ended without saying why, at {}", part.through),
        }
    };
    match err {
        Error::Trimmed { wanted, .. } => assert_eq!(wanted, part.through + 1),
        other => panic!("{other}"),
    }
    let all: Vec<u64> = seqs.iter().chain(&more).copied().collect();
    let want: Vec<u64> = all
        .into_iter()
        .filter(|&q| q >= first && q <= part.through)
        .collect();
    assert_eq!(part.seqs(), want);
    served.stop().await;
    shard.close().await.unwrap();
}

const BIN_ADDR: &str = "127.0.0.1:19410";

/// Starts the real binary and waits for its "listening" line.
fn start_binary(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shard.log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_arbor-metastore"))
        .arg("--dir")
        .arg(dir.join("data"))
        .args(["--listen", BIN_ADDR, "--shard", "3", "--segment-mb", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the shard printed its listening line");
    assert_eq!(
        line,
        format!("arbor-metastore shard 3 listening on {BIN_ADDR}")
    );
    child
}

async fn grpc_commit(c: &mut MetastoreClient<Channel>, i: u64) -> u64 {
    let answer = c
        .commit(CommitRequest {
            txn_id: format!("txn{i}").into_bytes(),
            body: Some(body(vec![
                put(&format!("row/{i:05}"), format!("value {i}").as_bytes()),
                counter("count", 1, &[(0, CounterOp::CounterAdd, 1)]),
            ])),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    match answer.outcome {
        Some(commit_response::Outcome::CommittedSeq(seq)) => seq,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_outlives_a_shard_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_binary(dir.path());
    let mut c = client(BIN_ADDR).await;
    let mut acked = BTreeMap::new();
    for i in 0..300 {
        acked.insert(grpc_commit(&mut c, i).await, i);
    }
    let mut stream = c
        .subscribe(SubscribeRequest {
            from_seq: 0,
            max_batch: 64,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Seen::default();
    read_grpc_until(&mut stream, &mut seen, *acked.keys().last().unwrap()).await;
    // Live ones, then the shard dies under the open stream.
    for i in 300..400 {
        acked.insert(grpc_commit(&mut c, i).await, i);
    }
    read_grpc_until(&mut stream, &mut seen, *acked.keys().last().unwrap() - 20).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the stream ends when the shard dies")
        {
            Ok(Some(batch)) => seen.take(batch),
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    eprintln!("stream ended with {ended:?} at through {}", seen.through);

    let mut child = start_binary(dir.path());
    let mut c = client(BIN_ADDR).await;
    let status = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        status.first_retained_seq, 1,
        "recovery kept the retained log"
    );
    // Resume where the stream stopped, while new commits arrive.
    let mut stream = c
        .subscribe(SubscribeRequest {
            from_seq: seen.through + 1,
            max_batch: 64,
        })
        .await
        .unwrap()
        .into_inner();
    for i in 400..500 {
        acked.insert(grpc_commit(&mut c, i).await, i);
    }
    read_grpc_until(&mut stream, &mut seen, *acked.keys().last().unwrap()).await;
    assert_eq!(seen.seqs(), acked.keys().copied().collect::<Vec<_>>());
    for r in &seen.records {
        let i = acked[&r.seq];
        assert_eq!(r.txn_id, format!("txn{i}").into_bytes());
        assert_eq!(
            r.rows[0],
            row(&format!("row/{i:05}"), format!("value {i}").as_bytes())
        );
        // The counter's value after this commit: one per commit so far.
        let n = acked.range(..=r.seq).count() as i64;
        assert_eq!(r.rows[1], row("count", &i64s(&[n])));
    }
    // And from the start after the restart: the whole log.
    let mut all = c
        .subscribe(SubscribeRequest {
            from_seq: 0,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut again = Seen::default();
    read_grpc_until(&mut all, &mut again, *acked.keys().last().unwrap()).await;
    assert_eq!(again.seqs(), seen.seqs());

    // SIGTERM stops it although two streams are open.
    drop(c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("no exit after SIGTERM with open streams");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    // The streams end with UNAVAILABLE (or the connection drops), never with a silent end
    // before their records.
    let tail = stream.message().await;
    assert!(!matches!(tail, Ok(Some(_))), "{tail:?}");
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb << 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_records_stream_with_bounded_memory() {
    const RECORDS: u64 = 100_000;
    const VALUE: usize = 1200;
    const WRITERS: u64 = 128;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = config(dir.path(), 0);
    cfg.segment_bytes = 8 << 20;
    let shard = Shard::open(cfg).await.unwrap();
    let served = Served::start(&shard).await;

    // A subscriber following live from the start, pausing now and then: it falls behind the
    // broadcast and must pick up what it missed from the log. Its first pause lasts until
    // 60k commits are issued: with at most WRITERS commits in flight, no applied batch holds
    // more than WRITERS records, so that is more published batches than the broadcast keeps.
    let next = Arc::new(AtomicU64::new(0));
    let issued = next.clone();
    let mut c = served.client().await;
    let mut live = c
        .subscribe(SubscribeRequest {
            from_seq: 0,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let live_reader = tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut n = 0u64;
        while seen.records.len() < RECORDS as usize {
            let batch = live.message().await.unwrap().expect("stream open");
            seen.take(batch);
            n += 1;
            if n == 1 {
                while issued.load(Ordering::Relaxed) < 60_000 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } else if n.is_multiple_of(100) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        seen
    });

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let shard = shard.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= RECORDS {
                        return mine;
                    }
                    let seq = commit(
                        &shard,
                        "w",
                        vec![put(&format!("m{i:06}"), &[(i % 251) as u8; VALUE])],
                    )
                    .await;
                    mine.push((seq, i));
                }
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    eprintln!(
        "{RECORDS} commits in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let seen = tokio::time::timeout(Duration::from_secs(300), live_reader)
        .await
        .expect("the live subscriber caught up")
        .unwrap();
    assert_eq!(seen.seqs(), acked.keys().copied().collect::<Vec<_>>());
    for r in seen.records.iter().step_by(997) {
        let i = acked[&r.seq];
        assert_eq!(
            r.rows,
            vec![row(&format!("m{i:06}"), &[(i % 251) as u8; VALUE])]
        );
    }
    let lags = shard.subscriber_lags();
    eprintln!("the live subscriber fell behind the broadcast {lags} times");
    assert!(lags > 0, "the pauses were meant to outrun the broadcast");
    drop(seen);

    // Catching up on the whole log (over 100 MB) with a slow consumer: memory stays flat.
    let baseline = rss_bytes();
    let mut stream = c
        .subscribe(SubscribeRequest {
            from_seq: 1,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut peak = baseline;
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut through = 0;
    let mut batches = 0u64;
    let last = *acked.keys().last().unwrap();
    while through < last {
        let batch = stream.message().await.unwrap().expect("stream open");
        let mut prev = through;
        for r in &batch.records {
            assert!(r.seq > prev && r.seq <= batch.through_seq);
            prev = r.seq;
        }
        records += batch.records.len() as u64;
        bytes += batch
            .records
            .iter()
            .flat_map(|r| &r.rows)
            .map(|r| r.value.len() as u64)
            .sum::<u64>();
        through = batch.through_seq;
        batches += 1;
        if batches.is_multiple_of(20) {
            // The consumer stalls: the server must wait for it, not buffer ahead.
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(rss_bytes());
        }
    }
    peak = peak.max(rss_bytes());
    assert_eq!(records, RECORDS);
    let grown = peak.saturating_sub(baseline);
    eprintln!(
        "streamed {records} records ({} MiB of values) in {batches} batches; RSS {} MiB, peak growth {} MiB",
        bytes >> 20,
        baseline >> 20,
        grown >> 20
    );
    assert!(bytes > 100 << 20);
    assert!(
        grown < 48 << 20,
        "memory grew by {} MiB while streaming",
        grown >> 20
    );
    served.stop().await;
    shard.close().await.unwrap();
}
